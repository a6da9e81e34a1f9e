"""``vla sim``: closed-loop episodes of the model driving the simulated robot, scored per command.

    vla sim --episodes 16 --seed 0 [--split eval] [--json results.json] [--video vids/]
            [--checkpoint C] [--image-size 128] [--kinds goto_red,stop] [--real-time] [--no-ros]

Main path: ``sim_node`` and ``vla_node`` run as two processes, brought up like ``vla launch``
does (the vla_node description of :func:`vla_ros.launch_description.describe`, plus a
description of sim_node, each run as ``python -m <module> --ros-args ...``), on a private ROS
domain (loopback only) unless ``--domain-id`` is given.  sim_node runs the episodes (a command
per episode, cycling through the kinds) and writes one JSON record per episode; this command
follows its progress, stops vla_node after the last episode, prints the table, and writes the
JSON / videos.  ``--no-ros`` runs the same closed loop in this process, calling the model
directly (no DDS): fast and deterministic, for tests and quality measurements.
"""

from __future__ import annotations

import sys

from vla_ros import paths
from vla_ros.config import GUIDANCE_MODES, NOISE_MODES
from vla_ros.sim.options import SimOptions

__all__ = ["register", "cmd_sim", "add_common_arguments", "options_from_args", "run_printing_progress",
           "report_failures"]


def options_from_args(args) -> SimOptions:
    return SimOptions(
        episodes=args.episodes, seed=args.seed, kinds=args.kinds or "", command=args.command or "",
        split=args.split, checkpoint=args.checkpoint or "", device=args.device, image_size=args.image_size,
        duration=args.duration, warmup=args.warmup, real_time=args.real_time, real_time_factor=args.real_time_factor,
        rate_hz=args.rate_hz, num_inference_steps=args.num_inference_steps, num_samples=args.num_samples,
        noise=args.noise, guidance=args.guidance, guidance_settings=args.guidance_settings, scan_guard=args.scan_guard,
        odometry=not args.no_odometry, cpu_threads=args.cpu_threads,
        params_file=args.params_file, namespace=args.namespace, domain_id=args.domain_id,
        trajectory_timeout=args.trajectory_timeout, tracker_horizon=args.tracker_horizon,
        lockstep_timeout=args.lockstep_timeout, out_dir=args.out,
        no_ros=args.no_ros, robot_input=args.robot_input)


def cmd_sim(args) -> int:
    from vla_ros.cli import UserError
    from vla_ros.config import ConfigError
    from vla_ros.sim.in_process import expert_reference
    from vla_ros.sim.node_config import SimNodeConfig
    from vla_ros.sim.summary import format_summary, summarize, write_outputs

    check_guidance_arguments(args)
    opts = options_from_args(args)
    if opts.episodes < 1:
        raise UserError("--episodes must be >= 1")
    try:  # the sim node's settings, checked before anything starts
        SimNodeConfig(seed=opts.seed, episodes=opts.episodes, kinds=opts.kinds, command=opts.command,
                      split=opts.split, image_size=opts.image_size, duration=opts.duration, warmup=opts.warmup,
                      real_time_factor=opts.real_time_factor, trajectory_timeout=opts.trajectory_timeout,
                      tracker_horizon=opts.tracker_horizon,
                      mode="real_time" if opts.real_time else "lockstep")
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    if opts.no_ros and opts.real_time:
        raise UserError("--real-time needs the ROS path (drop --no-ros)")
    mode = "in process (no ROS)" if opts.no_ros else ("real time" if opts.real_time else "lockstep") + \
        " through sim_node + vla_node"
    print(f"vla sim: {opts.episodes} episode(s), seed {opts.seed}, split {opts.split}, {mode}", flush=True)
    failures: list[str] = []
    ran = run_printing_progress(opts, "vla sim", opts.episodes, failures)
    if ran is None:
        return 130
    records, kept = ran
    summary = summarize(records)
    summary["mode"] = "in_process" if opts.no_ros else ("real_time" if opts.real_time else "lockstep")
    if not opts.command:  # free text has no expert
        summary["expert"] = expert_reference(records)
    print()
    print(format_summary(summary))
    write_outputs(records, summary, opts, json_path=args.json, video_dir=args.video, video_size=args.video_size)
    if kept:
        print(f"episode records and node logs: {kept}")
    return report_failures("vla sim", failures)


def run_printing_progress(opts: SimOptions, name: str, episodes: int, failures: list[str],
                          show_commands: bool = True) -> tuple[list, object] | None:
    """Run the episodes with a line per progress event -> (records, kept folder); None after Ctrl-C."""
    from vla_ros.cli import UserError
    from vla_ros.ros.orchestration import run_episodes
    from vla_ros.sim.summary import print_event

    try:
        records, kept = run_episodes(opts, on_event=lambda ev: print_event(ev, episodes), failures=failures,
                                     show_commands=show_commands)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return None
    if not records:
        raise UserError("no episode finished")
    return records, kept


def report_failures(name: str, failures: list[str]) -> int:
    """Each failure on stderr; the exit status (1 when there were any)."""
    for line in failures:
        print(f"{name}: error: {line}", file=sys.stderr)
    return 1 if failures else 0


def add_common_arguments(p, episodes: int, duration: float) -> None:
    p.add_argument("--episodes", type=int, default=episodes, help=f"episodes to run (default {episodes})")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode; episode i uses seed + i")
    p.add_argument("--checkpoint", help=f"model checkpoint (default: {paths.default_checkpoint()})")
    p.add_argument("--device", default="cpu", help="torch device of vla_node: cpu | cuda | cuda:N")
    p.add_argument("--split", choices=("train", "eval"), default="train",
                   help="command phrasings: 'eval' = held-out phrasings the model never saw in training")
    p.add_argument("--image-size", type=int, default=128, help="camera image side in pixels (default 128)")
    p.add_argument("--duration", type=float, default=duration,
                   help=f"seconds of control per episode after the {0.8:g} s warm-up (default {duration:g})")
    p.add_argument("--no-ros", action="store_true",
                   help="run the closed loop in this process with the model called directly (no DDS; "
                        "deterministic and faster; the main path goes through the nodes)")
    p.add_argument("--out", help="keep episode records (episode_NNN.json), and the node logs, in this folder")
    p.add_argument("--domain-id", type=int,
                   help="ROS_DOMAIN_ID for the nodes (default: a random private one, loopback only); give "
                        "yours to watch the run in rviz")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sim", help="closed-loop episodes: the model drives the simulated robot (sim_node + vla_node); "
                    "success per command", description=__doc__.split("\n\n")[0])
    add_common_arguments(p, episodes=8, duration=8.0)
    p.add_argument("--kinds", help="comma-separated command kinds to cycle through (default: all)")
    p.add_argument("--command", help="one command text for every episode (its kind is guessed for scoring "
                                     "unless --kinds is given)")
    p.add_argument("--json", help="write the summary and per-episode results to this JSON file")
    p.add_argument("--video", metavar="DIR", help="write a GIF per episode and a PNG overview to DIR")
    p.add_argument("--video-size", type=int, default=192, help="side of each view in the GIFs (default 192)")
    p.add_argument("--warmup", type=float, default=0.8,
                   help="seconds the robot keeps its start velocity while the node fills its history")
    p.add_argument("--real-time", action="store_true",
                   help="run the simulation on the wall clock instead of lockstep (results then depend on "
                        "CPU speed)")
    p.add_argument("--real-time-factor", type=float, default=1.0, help="with --real-time: sim seconds per wall s")
    p.add_argument("--rate-hz", type=float,
                   help="vla_node inference ticks per second (default: 20 in lockstep, the params file's "
                        "value with --real-time)")
    p.add_argument("--num-inference-steps", type=int, default=0, help="DDIM steps (0 = the checkpoint's)")
    p.add_argument("--num-samples", type=int, default=1,
                   help="diffusion samples vla_node averages per tick (default 1)")
    p.add_argument("--noise", choices=NOISE_MODES, default="fixed",
                   help="vla_node's initial noise: one draw every tick (fixed, default), a new draw per tick (varied) "
                        "or x_T = 0 (zero)")
    add_guidance_arguments(p)
    p.add_argument("--no-odometry", action="store_true",
                   help="vla_node without the odom input (use_odometry false): the model is told the robot's "
                        "velocity is unknown, as on a robot without odometry")
    p.add_argument("--cpu-threads", type=int, default=1,
                   help="torch CPU threads of the model (default 1: the simulation shares the CPU, and torch's "
                        "default of one thread per core slows down badly on a busy machine; 0 = torch's default)")
    p.add_argument("--params-file", help="vla_node params file (default: share/vla_ros/config/vla.yaml)")
    p.add_argument("--namespace", default="", help="namespace of both nodes")
    p.add_argument("--trajectory-timeout", type=float, default=1.0,
                   help="sim_node stops the robot after this long without a trajectory (s)")
    p.add_argument("--tracker-horizon", type=float, default=0.6,
                   help="seconds of each trajectory the robot's tracker follows in its feed-forward velocity "
                        "(default 0.6; 0 = the coming 0.1 s step only)")
    p.add_argument("--robot-input", choices=("cmd_vel", "trajectory"), default="cmd_vel",
                   help="what drives the simulated robot: cmd_vel from trajectory_follower (default: vla_node -> "
                        "trajectory_follower -> sim_node, as on a robot) or the trajectories through sim_node's own "
                        "tracker (the same tracker code; no follower process)")
    p.add_argument("--lockstep-timeout", type=float, default=60.0,
                   help="wall seconds sim_node waits for an answer before running on without the node")
    p.set_defaults(func=cmd_sim)


def add_guidance_arguments(p) -> None:
    """--guidance, --guidance-settings (the optional steering of vla_ros/guidance/) and --scan-guard (vla sim, vla demo)."""
    from vla_ros.guidance import GUIDANCE_SETTINGS

    p.add_argument("--guidance", choices=GUIDANCE_MODES, default="none",
                   help="steer the sampled trajectories: target turns goto trajectories toward the cone the "
                        "checkpoint's target locator finds (checkpoints/locator.pth); scene also steers around "
                        "the obstacles and along the road of its scene map (checkpoints/scene.pth); none "
                        "(default) = the model's own trajectories")
    p.add_argument("--guidance-settings", default="", metavar="NAME=VALUE,...",
                   help="overrides of the guidance's settings, e.g. max_turn=0.6,stop_distance=0.4; names: "
                        + ", ".join(GUIDANCE_SETTINGS))
    p.add_argument("--scan-guard", action="store_true",
                   help="cut every trajectory before the robot would come within scan_margin (0.1 m) of what the "
                        "simulated laser sees (vla_node's scan_guard; the same cut in process with --no-ros): a "
                        "safety layer under any model, which needs only a planar laser")


def check_guidance_arguments(args) -> None:
    """UserError for --guidance-settings that do not parse or come without --guidance."""
    from vla_ros.cli import UserError
    from vla_ros.errors import InputError
    from vla_ros.guidance import parse_settings

    try:
        parse_settings(args.guidance_settings, args.guidance)
    except InputError as exc:
        raise UserError(f"--guidance-settings: {exc}") from None
