"""``vla eval``."""

from __future__ import annotations

import json
from pathlib import Path


def cmd_eval(args) -> int:
    from vla_ros.training.evaluate import evaluate, format_report, plot_report

    ckpt = args.checkpoint
    if ckpt is None:
        from vla_ros import paths

        ckpt = paths.default_checkpoint()
    from vla_ros.training.sources import parse_data

    cache = args.cache or (parse_data(args.data)[0].path / ".vla_cache")
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        cache = None  # read-only data: encode without caching
    r = evaluate(ckpt, args.data, device=args.device, max_samples=args.max_samples,
                 sweep_samples=args.sweep_samples, sweep=not args.no_sweep, cache_dir=cache,
                 every_frame=not args.half_frames, odometry=not args.no_odometry)
    print(format_report(r))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
        print(f"\nwrote {args.json}")
    if args.plot:
        plot_report(r, args.plot)
        print(f"wrote {args.plot}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("eval", help="ADE/FDE against baselines, and quality against sampling steps")
    p.add_argument("--checkpoint", help="checkpoint (default: the packaged default)")
    p.add_argument("--data", required=True,
                   help="dataset directory (ideally held out: seeds, --split eval, or bags converted with "
                        "vla data from-bag), or several, comma-separated")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--json", help="write the report as JSON")
    p.add_argument("--plot", help="write a PNG: ADE per command and the steps sweep")
    p.add_argument("--max-samples", type=int, help="evaluate a random subset of samples")
    p.add_argument("--sweep-samples", type=int, default=256, help="samples for the steps sweep")
    p.add_argument("--no-sweep", action="store_true", help="skip the steps sweep")
    p.add_argument("--no-odometry", action="store_true",
                   help="withhold the recorded velocity from a model with the odometry input (as when no odom arrives)")
    p.add_argument("--cache", type=Path, help="where to cache frozen frame features (default: DATA/.vla_cache)")
    p.add_argument("--half-frames", action="store_true",
                   help="score every other step only (half the encoding time; neighbours are near-duplicates)")
    p.set_defaults(func=cmd_eval)
