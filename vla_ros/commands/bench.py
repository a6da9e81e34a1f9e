"""``vla bench``."""

from __future__ import annotations

import json
from pathlib import Path


def cmd_bench(args) -> int:
    from vla_ros.inference.bench import format_bench, run_bench

    ckpt = args.checkpoint
    if ckpt is None:
        from vla_ros import paths

        ckpt = paths.default_checkpoint()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise FileNotFoundError("--device cuda: CUDA is not available on this machine; use --device cpu")
    r = run_bench(ckpt, device=args.device, quick=args.quick, compile=args.compile)
    print()
    print(format_bench(r))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
        print(f"\nwrote {args.json}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="latency: the seed's DDPM-1000 baseline, the diffusers DDIM loop, our fast path")
    p.add_argument("--checkpoint", help="checkpoint (default: the packaged default)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--json", help="write the figures as JSON")
    p.add_argument("--quick", action="store_true", help="fewer runs (one DDPM-1000 run)")
    p.add_argument("--compile", action="store_true", help="torch.compile the UNet in the fast path")
    p.set_defaults(func=cmd_bench)
