#!/usr/bin/env python3
"""How long does one training step take? Token fusion (the default) against the older design.

Times ``--steps`` steps (after two warm-up steps) of what ``vla train`` does per step -- gather a
batch from the cached frozen features, the loss, backward, AdamW -- for each design, on the
first episodes of a dataset, and prints (and writes) JSON with the median seconds per step:

* ``tokens`` (default): frame tokens from the cached frozen features, the LoRA'd block only on
  the newest frames (their grids), the frozen text encoder's encodings cached by string, the
  locator and the command projection frozen after their pre-training, fused AdamW;
* ``additive`` (the previous default with the target locator, as ``checkpoints/locator.pth``): the
  LoRA'd block on every frame, text LoRA, the locator trained with the rest.

Usage: .venv/bin/python scripts/train_step_time.py --data DIR [--episodes 40] [--steps 10] [--json F]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vla_ros.data.io import list_episodes
from vla_ros.model.vla import SimpleVLA
from vla_ros.sim.commands import phrasings
from vla_ros.training.bank import build_frame_bank, gather, gather_keypoints, gather_odometry, gather_top

DESIGNS = {
    "tokens": dict(fusion="tokens", frame_token_source="frozen", text_lora=False),
    "additive": dict(fusion="additive", frame_token_source="tuned", text_lora=True),
}


def time_design(name: str, data: Path, steps: int, batch: int) -> dict:
    torch.manual_seed(0)
    model = SimpleVLA(target_locator=True, **DESIGNS[name])
    frozen_parts = name == "tokens"  # vla train freezes these after the locator's pre-training
    if frozen_parts:
        model.locator.requires_grad_(False)
        model.txt_proj.requires_grad_(False)
    bank = build_frame_bank(model, data, progress=False, every_frame=False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=frozen_parts)
    rng = np.random.default_rng(0)
    model.train()
    times = []
    for _ in range(steps + 2):
        t0 = time.perf_counter()
        sel = rng.choice(len(bank.samples), batch)
        frozen, traj = gather(bank, sel, torch.device("cpu"))
        kinds = [bank.kinds[e] for e in bank.samples[sel, 0]]
        cmds = [str(rng.choice(phrasings(k))) for k in kinds]
        top = gather_top(model, bank, sel)
        keypoints = None if frozen_parts else gather_keypoints(bank, sel, kinds, torch.device("cpu"))
        loss = model.loss(frozen, cmds, traj, odometry=gather_odometry(bank, sel), top=top, keypoints=keypoints)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    sec = float(np.median(times[2:]))
    return {"seconds_per_step": round(sec, 4), "steps_per_second": round(1 / sec, 3),
            "trainable_parameters": sum(p.numel() for p in params)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="dataset directory (vla data generate)")
    ap.add_argument("--episodes", type=int, default=40, help="episodes to encode for the batches")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--json", help="write the figures as JSON")
    args = ap.parse_args()
    files = list_episodes(args.data)[:args.episodes]
    with tempfile.TemporaryDirectory() as tmp:
        sub = Path(tmp)
        for f in files:
            (sub / f.name).symlink_to(f.resolve())
            (sub / f.with_suffix(".json").name).symlink_to(f.with_suffix(".json").resolve())
        shutil.copy(Path(args.data) / "dataset.json", sub)
        out = {name: time_design(name, sub, args.steps, args.batch_size) for name in DESIGNS}
    out["speedup"] = round(out["additive"]["seconds_per_step"] / out["tokens"]["seconds_per_step"], 2)
    out["machine"] = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                      "torch": torch.__version__}
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
