#!/usr/bin/env python3
"""Where does the target locator put the cone that each goto wording names? Per wording.

For every held-out world (``--seed`` .. ``--seed + --worlds - 1``, eval split) and each colour,
the packaged locator model (or ``--checkpoint``) locates the cone on the first top-camera frame
for each held-out wording of that colour and for "go to the <colour> cone"; the error is the
distance in metres to the simulator's cone, in the robot frame. Prints a table per wording
(median, 90th percentile, share beyond 0.8 m: the success radius of a goto episode) and writes
JSON with ``--json``. Unknown colour words show up here before they fail an episode.

Usage: .venv/bin/python scripts/locate_wordings.py [--checkpoint CKPT] [--worlds 32] [--json F]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from tqdm import tqdm

from vla_ros import paths
from vla_ros.errors import InputError
from vla_ros.inference import VLAInferenceAPI
from vla_ros.sim.commands import phrasings
from vla_ros.sim.geometry import world_to_robot
from vla_ros.sim.layout import TARGET_COLOURS
from vla_ros.sim.world import World


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", help="a model with the target locator (default: checkpoints/locator.pth)")
    ap.add_argument("--seed", type=int, default=5000, help="first world seed (default 5000, the closed-loop set)")
    ap.add_argument("--worlds", type=int, default=32)
    ap.add_argument("--json", help="write the figures as JSON")
    args = ap.parse_args()
    ckpt = args.checkpoint or paths.default_checkpoint().with_name("locator.pth")
    try:  # guidance needs the locator (a clear error without one) and knows its units in metres
        api = VLAInferenceAPI(ckpt, warmup=False, guidance="target")
    except InputError as exc:
        raise SystemExit(str(exc)) from None
    half = api._guide.steer.metres_per_unit  # locator units -> metres
    world = World()
    errors: dict[str, list[float]] = {}
    for seed in tqdm(range(args.seed, args.seed + args.worlds), desc="worlds", unit="world"):
        for colour in TARGET_COLOURS:
            kind = f"goto_{colour}"
            obs = world.reset(seed, kind=kind, split="eval")
            cone = world.layout.cone(colour)
            truth = torch.as_tensor(world_to_robot([cone.x, cone.y], world.state), dtype=torch.float32)
            texts = [*phrasings(kind, "eval"), f"go to the {colour} cone"]
            with torch.inference_mode():
                cmd = api.model.encode_text(texts)  # (W, d)
                top = api.model.preprocess(np.stack([obs["top"]] * len(texts))).to(cmd.dtype)
                found = api.model.locate(top, cmd).relative.float() * half  # (W, 2) metres
            for text, f in zip(texts, found):
                errors.setdefault(text, []).append(float((f - truth).norm()))
    rows = {t: {"median_m": float(np.median(e)), "p90_m": float(np.percentile(e, 90)),
                "beyond_0.8m": int(sum(v > 0.8 for v in e)), "worlds": len(e)} for t, e in errors.items()}
    print(f"{'wording':36s} {'median':>7s} {'p90':>6s}  beyond 0.8 m")
    for t, r in rows.items():
        print(f"{t:36s} {r['median_m']:6.2f}m {r['p90_m']:5.2f}m  {r['beyond_0.8m']}/{r['worlds']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"checkpoint": str(ckpt), "seed": args.seed, "worlds": args.worlds, "wordings": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
