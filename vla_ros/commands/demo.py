"""``vla demo``: watch the trained model drive the simulated robot (``make demo``).

Starts sim_node and vla_node (the default checkpoint) exactly like ``vla sim`` does, runs a few
closed-loop episodes in lockstep -- one command each -- prints what happens as it goes (the
command, what the robot does, success), and writes an animated GIF and a PNG overview with the
predicted trajectories drawn over the top camera.  A couple of minutes on 2 CPU cores.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

from vla_ros import paths
from vla_ros.commands.sim import add_guidance_arguments
from vla_ros.sim.options import SimOptions

__all__ = ["register", "cmd_demo", "DEMO_KINDS"]

#: What the demo asks for: two different goals (language grounding) and lane following.
DEMO_KINDS = ("goto_red", "follow_lane", "goto_blue")


def cmd_demo(args) -> int:
    from vla_ros.cli import UserError
    from vla_ros.commands.sim import check_guidance_arguments, report_failures, run_printing_progress
    from vla_ros.config import ConfigError
    from vla_ros.sim.node_config import episode_kinds, unblocked_seeds
    from vla_ros.sim.options import resolve_checkpoint
    from vla_ros.sim.summary import format_summary, summarize, write_outputs
    from vla_ros.sim.video import write_gif, write_strip

    check_guidance_arguments(args)
    checkpoint = resolve_checkpoint(args.checkpoint)
    try:
        kinds = episode_kinds(args.kinds or ",".join(DEMO_KINDS), args.episodes)
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    # seeds whose worlds have no obstacle across the expert's path: every episode can be finished
    seeds = unblocked_seeds(kinds, args.seed, split=args.split)
    out = Path(args.out)
    opts = SimOptions(episodes=len(kinds), seed=args.seed, seeds=seeds, kinds=",".join(kinds), split=args.split,
                      checkpoint=str(checkpoint), device=args.device, image_size=args.image_size,
                      duration=args.duration, cpu_threads=args.cpu_threads, guidance=args.guidance,
                      guidance_settings=args.guidance_settings, scan_guard=args.scan_guard,
                      out_dir=None if args.no_ros else str(out / "run"), no_ros=args.no_ros)
    how = "in this process (no ROS)" if args.no_ros else "sim_node + vla_node (lockstep, sim time)"
    print(f"vla demo: {len(kinds)} episodes with {checkpoint} through {how}", flush=True)
    print("starting the nodes (loading the model takes a few seconds) ..." if not args.no_ros else
          "loading the model ...", flush=True)
    t0 = time.perf_counter()
    failures: list[str] = []
    ran = run_printing_progress(opts, "vla demo", len(kinds), failures, show_commands=False)
    if ran is None:
        return 130
    records, _ = ran
    summary = summarize(records)
    print()
    print(format_summary(summary))
    print("drawing the episodes ...", flush=True)
    gif = write_gif(records, out / "demo.gif", size=args.video_size)
    png = write_strip(records, out / "demo.png")
    write_outputs(records, summary, opts, json_path=str(out / "results.json"), out=io.StringIO())
    print(f"\nwatch: {gif}  (animated: ego camera left, top camera right with the predicted trajectory "
          f"in orange)\n       {png}  (one row per episode)\nresults: {out / 'results.json'}"
          + ("" if args.no_ros else f"; node logs: {out / 'run'}")
          + f"\n({time.perf_counter() - t0:.0f} s)")
    return report_failures("vla demo", failures)


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="watch the trained model drive: a few closed-loop episodes through "
                                           "the ROS nodes, written as a GIF", description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=3, help="episodes (default 3)")
    p.add_argument("--kinds", help=f"comma-separated command kinds to cycle (default {','.join(DEMO_KINDS)})")
    p.add_argument("--seed", type=int, default=0, help="first seed to try (default 0)")
    p.add_argument("--split", choices=("train", "eval"), default="train",
                   help="command phrasings: 'eval' = held-out ones the model never saw")
    p.add_argument("--checkpoint", help=f"model (default: {paths.default_checkpoint()})")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    add_guidance_arguments(p)
    p.add_argument("--image-size", type=int, default=128, help="camera image side (default 128)")
    p.add_argument("--duration", type=float, default=7.0, help="seconds of control per episode (default 7)")
    p.add_argument("--cpu-threads", type=int, default=1, help="torch CPU threads of the model (0 = one per core)")
    p.add_argument("--video-size", type=int, default=192, help="side of each view in the GIF (default 192)")
    p.add_argument("--out", default="vla_demo", help="output folder (default ./vla_demo)")
    p.add_argument("--no-ros", action="store_true", help="run in this process without the ROS nodes")
    p.set_defaults(func=cmd_demo)
