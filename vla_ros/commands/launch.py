"""``vla launch``: start the vla_ros nodes without ROS launch (same nodes as vla.launch.py).

    vla launch [--params-file F] [--checkpoint C] [--device D] [--namespace NS] [--rate-hz R]
               [--use-sim-time] [--follower] [--remap from:=to ...] [--dry-run] [name:=value ...]

``name:=value`` are the launch arguments of vla.launch.py (``vla launch follower:=true``); they
override the flags.

Each node of :func:`vla_ros.launch_description.describe` runs as
``python -m vla_ros.ros.vla_node --ros-args ...``.  SIGINT / SIGTERM are forwarded to the nodes;
``vla launch`` exits when they have exited (when one exits, the others are asked to stop), with
the first non-zero exit status.  The nodes die with the launcher even if it is killed (Linux).
"""

from __future__ import annotations

import shlex

from vla_ros.config import ConfigError
from vla_ros.launch_description import LAUNCH_ARGUMENTS, describe_from_launch_arguments, process_command
from vla_ros.ros.orchestration import run_processes


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "launch", help="start vla_node with parameters and remaps (what `ros2 launch vla_ros vla.launch.py` starts)",
        description=__doc__.split("\n\n")[0])
    p.add_argument("--params-file", help=LAUNCH_ARGUMENTS["params_file"][1])
    p.add_argument("--checkpoint", help=LAUNCH_ARGUMENTS["checkpoint"][1])
    p.add_argument("--device", help=LAUNCH_ARGUMENTS["device"][1])
    p.add_argument("--namespace", default="", help=LAUNCH_ARGUMENTS["namespace"][1])
    p.add_argument("--rate-hz", type=float, help=LAUNCH_ARGUMENTS["rate_hz"][1])
    p.add_argument("--use-sim-time", action="store_true", help=LAUNCH_ARGUMENTS["use_sim_time"][1])
    p.add_argument("--remap", action="append", default=[], metavar="FROM:=TO",
                   help="topic remap, repeatable, e.g. --remap ego/image_raw:=/cam_front/image_raw")
    p.add_argument("--follower", action="store_true", help=LAUNCH_ARGUMENTS["follower"][1])
    p.add_argument("--scan-guard", action="store_true", help=LAUNCH_ARGUMENTS["scan_guard"][1])
    p.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    p.add_argument("arguments", nargs="*", metavar="NAME:=VALUE",
                   help=f"launch arguments as ros2 launch takes them ({', '.join(LAUNCH_ARGUMENTS)}); "
                        "they override the flags")
    p.set_defaults(func=cmd_launch)


def launch_arguments(args) -> dict[str, str]:
    """The flags and the ``name:=value`` arguments as the string values of LAUNCH_ARGUMENTS."""
    values = {"params_file": args.params_file or "", "checkpoint": args.checkpoint or "", "device": args.device or "",
              "namespace": args.namespace or "", "rate_hz": "" if args.rate_hz is None else repr(args.rate_hz),
              "use_sim_time": "true" if args.use_sim_time else "", "follower": "true" if args.follower else "",
              "scan_guard": "true" if args.scan_guard else "",
              "remappings": " ".join(args.remap)}
    for text in args.arguments:
        name, sep, value = text.partition(":=")
        if not sep or name not in LAUNCH_ARGUMENTS:
            raise ConfigError(f"launch argument {text!r}: write name:=value with a name from "
                              f"{', '.join(LAUNCH_ARGUMENTS)}, e.g. follower:=true")
        values[name] = value
    return values


def cmd_launch(args) -> int:
    descs = describe_from_launch_arguments(launch_arguments(args))
    commands = [process_command(d) for d in descs]
    if args.dry_run:
        for cmd in commands:
            print(shlex.join(cmd))
        return 0
    return run_processes(commands, names=[d.name for d in descs])
