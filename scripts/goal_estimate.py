#!/usr/bin/env python3
"""Does a token-fusion model's goal estimate go to the cone the command names? And its locator?

For every unblocked goto episode of a dataset, at steps 8 and 20, the model is asked "go to the
red / green / blue cone" from the same frames. For each colour it reports whether

* the goal estimate (``model.fusion_goal_token``: where the fusion thinks the trajectory ends) is
  nearer the expert's endpoint for that colour than for the other two (``goal_identified``);
* the locator's target, relative to the robot, points nearer the true bearing of that colour's
  cone than of the other two (``locator_identified``),

with the mean errors (goal endpoint in metres, bearings in degrees). Prints JSON.

Usage: .venv/bin/python scripts/goal_estimate.py --checkpoint CKPT --data EVAL
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch

from vla_ros.checkpoint import load_checkpoint
from vla_ros.data.io import list_episodes, load_episode
from vla_ros.sim.commands import phrasings
from vla_ros.sim.config import WorldConfig
from vla_ros.sim.expert import expert_trajectory
from vla_ros.sim.layout import TARGET_COLOURS, Layout


def _bearing(v) -> float:
    return math.atan2(float(v[1]), float(v[0]))


def _angle(a: float, b: float) -> float:
    return abs(math.degrees(math.remainder(a - b, 2 * math.pi)))


@torch.inference_mode()
def _sample(model, arrays, t: int, stride: int, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Goal estimates (3, 2) in metres (robot frame) and located targets (3, 2) for the three
    colours, asked with ``texts`` (one command per colour)."""
    idx = list(range(t - (model.config.history_length - 1) * stride, t + 1, stride))
    x = torch.as_tensor(np.stack([np.stack([arrays[c][idx] for c in model.config.cameras])]))
    x = x.repeat(len(TARGET_COLOURS), 1, 1, 1, 1, 1)  # (3, C, T, H, W, 3)
    cmd = model.encode_text(texts)
    located = model.locate(model.newest_top(x), cmd)
    frozen = model.frame_frozen(x)
    frozen = frozen.view(*x.shape[:3], *frozen.shape[1:])
    odometry = np.repeat(np.asarray(arrays["state"][t:t + 1, 3:5], np.float32), len(TARGET_COLOURS), 0)
    _, goal = model._condition_tokens(frozen, cmd, odometry, located)
    end = torch.zeros(len(TARGET_COLOURS), model.config.trajectory_length, 3)
    end[:, -1, :2] = goal
    return model.action_head.normalizer.unnormalize(end)[:, -1, :2].numpy(), located.relative.numpy()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True, help="a token-fusion checkpoint with the target locator")
    ap.add_argument("--data", required=True, help="dataset directory, e.g. held-out seeds (--split eval)")
    ap.add_argument("--phrasings", choices=("fixed", "train", "eval"), default="fixed",
                    help="how each colour is asked for: 'go to the <colour> cone' (fixed), or every "
                         "training or held-out phrasing of goto_<colour> in turn")
    args = ap.parse_args()
    if args.phrasings == "fixed":
        askings = [[f"go to the {c} cone" for c in TARGET_COLOURS]]
    else:
        askings = [list(t) for t in zip(*(phrasings(f"goto_{c}", args.phrasings) for c in TARGET_COLOURS))]
    model, _ = load_checkpoint(args.checkpoint)
    if model.fusion is None or model.locator is None:
        raise SystemExit(f"{args.checkpoint}: needs model.fusion: tokens and model.target_locator: true")
    model.eval()
    rows = {"goal_identified": [], "locator_identified": [], "goal_error_m": [], "locator_bearing_error_deg": []}
    by_text: dict[str, list[bool]] = {}  # goal identified, per command
    for path in list_episodes(args.data):
        arrays, meta = load_episode(path)
        if not meta["kind"].startswith("goto_") or meta["blocking_obstacle"]:
            continue
        config, layout = WorldConfig.from_dict(meta["config"]), Layout.from_dict(meta["layout"])
        half = config.arena_size / 2  # top-camera units -> metres
        for t, texts in ((t, texts) for t in (8, 20) for texts in askings):
            state = np.asarray(arrays["state"][t], dtype=np.float64)
            goal, rel = _sample(model, arrays, t, config.history_stride, texts)
            expert = np.stack([expert_trajectory(f"goto_{c}", state, layout, config)[-1, :2] for c in TARGET_COLOURS])
            x, y, yaw = state[:3]
            cones = [layout.cone(c) for c in TARGET_COLOURS]
            true_b = [math.atan2(k.y - y, k.x - x) - yaw for k in cones]
            for i in range(len(TARGET_COLOURS)):
                rows["goal_identified"].append(int(np.linalg.norm(expert - goal[i], axis=1).argmin()) == i)
                by_text.setdefault(texts[i], []).append(rows["goal_identified"][-1])
                rows["goal_error_m"].append(float(np.linalg.norm(expert[i] - goal[i])))
                errs = [_angle(_bearing(rel[i] * half), b) for b in true_b]
                rows["locator_identified"].append(int(np.argmin(errs)) == i)
                rows["locator_bearing_error_deg"].append(errs[i])
    out = {"checkpoint": args.checkpoint, "data": args.data, "phrasings": args.phrasings, "answers": len(rows["goal_identified"]),
           **{k: float(np.mean(v)) for k, v in rows.items()}, "chance": 1 / len(TARGET_COLOURS),
           "goal_identified_by_command": {t: round(float(np.mean(v)), 3) for t, v in by_text.items()}}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
