"""``vla scene-map``: give a checkpoint the scene map (model/scene_map.py) and train it.

The map is trained alone, on the top-camera frames of a dataset, against labels drawn from each
episode's recorded layout (``scene_map_labels``); every other weight of the checkpoint is copied
unchanged, so the model predicts exactly as before and only ``guidance: scene`` uses the map.

    summary = train_scene_map("checkpoints/locator.pth", ["data/sim"], "checkpoints/scene.pth")

Reports per-cell figures on held-out episodes (``validation_episodes``, as training splits):
obstacle precision / recall / IoU and road accuracy / IoU; writes them into the checkpoint's
``meta["scene_map"]`` and returns them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from vla_ros.checkpoint import load_checkpoint, save_checkpoint
from vla_ros.data.io import list_episodes, load_meta, open_npz
from vla_ros.errors import UserError
from vla_ros.model.scene_map import MAP_CHANNELS, scene_map_labels, scene_map_loss
from vla_ros.sim.config import WorldConfig
from vla_ros.training.sources import validation_episodes

__all__ = ["train_scene_map", "map_metrics", "load_map_data"]


def load_map_data(data: Sequence[str | Path], frames_per_episode: int = 4, progress: bool = True
                  ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, list[Path]]:
    """Top frames and labels: ``(top (N, H, W, 3) uint8, labels (N, 2, R, R), episode (N,), files)``
    with ``frames_per_episode`` frames spread over each episode (the robot moves; the rest stays).
    R is half the frame side, rounded up (the map's cells)."""
    files = [f for d in ([data] if isinstance(data, (str, Path)) else data) for f in list_episodes(d)]
    tops, labels, owner = [], [], []
    for e, f in enumerate(tqdm(files, desc="reading top frames and layouts", unit="ep", disable=not progress)):
        meta = load_meta(f)
        if "layout" not in meta:
            raise UserError(f"{f.with_suffix('.json')} has no 'layout': the scene map's labels come from "
                             "the recorded layout (vla data generate writes it)")
        top = open_npz(f)["top"]  # (T, H, W, 3)
        arena = float(meta.get("config", {}).get("arena_size", WorldConfig().arena_size))
        cells = (top.shape[1] + 1) // 2
        lab = scene_map_labels(meta["layout"], arena, cells)
        for t in np.linspace(0, len(top) - 1, frames_per_episode).round().astype(int):
            tops.append(np.asarray(top[t]))
            labels.append(lab)
            owner.append(e)
    return (torch.from_numpy(np.stack(tops)), torch.from_numpy(np.stack(labels)), np.asarray(owner), files)


def map_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """(N, 2, R, R) logits and labels -> per-cell obstacle precision / recall / IoU, road accuracy / IoU."""
    pred, lab = logits > 0, labels > 0.5
    out = {}
    for c, name in enumerate(MAP_CHANNELS):
        p, y = pred[:, c], lab[:, c]
        tp, fp, fn = (p & y).sum().item(), (p & ~y).sum().item(), (~p & y).sum().item()
        out[f"{name}_precision"] = tp / max(tp + fp, 1)
        out[f"{name}_recall"] = tp / max(tp + fn, 1)
        out[f"{name}_iou"] = tp / max(tp + fp + fn, 1)
        out[f"{name}_accuracy"] = (p == y).float().mean().item()
    return out


def _check_settings(init: str | Path, out: Path, steps: int, batch_size: int, lr: float, val_fraction: float) -> None:
    if steps < 1 or batch_size < 1 or not lr > 0:
        raise UserError(f"steps={steps}, batch_size={batch_size}, lr={lr}: need steps >= 1, batch_size >= 1, lr > 0")
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"val_fraction={val_fraction}: must be within (0, 1)")
    if out.resolve() == Path(init).resolve():
        raise UserError(f"--out {out} is the --init checkpoint: write the model with the map to a new file")


def _split_frames(owner: np.ndarray, files: list[Path], val_fraction: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(training frames, validation frames, validation episodes): whole episodes are held out."""
    val_eps = validation_episodes(files, max(1, int(round(val_fraction * len(files)))))
    is_val = np.isin(owner, sorted(val_eps))
    tr, va = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if len(tr) == 0:
        raise UserError(f"{len(files)} episode(s): too few to hold out validation episodes and still train")
    return tr, va, len(val_eps)


def _fit(net: torch.nn.Module, inputs: Callable[[np.ndarray], torch.Tensor], labels: torch.Tensor, tr: np.ndarray,
         steps: int, batch_size: int, lr: float, seed: int, device: str, progress: bool) -> list[float]:
    """Adam with cosine annealing on random batches of the training frames, mirrored east-west at
    random; returns the loss of every step."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    rng = np.random.default_rng(seed)
    curve = []
    bar = tqdm(range(steps), desc="training the scene map", unit="step", disable=not progress)
    for step in bar:
        idx = rng.choice(tr, size=min(batch_size, len(tr)), replace=False)
        x = inputs(idx)
        y = labels[torch.from_numpy(idx)].to(device)
        if rng.random() < 0.5:  # the world has no handedness: mirror east-west (labels alike)
            x, y = x.flip(-1), y.flip(-1)
        loss = scene_map_loss(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        curve.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(curve[-50:]):.4f}")
    return curve


def train_scene_map(init: str | Path, data: Sequence[str | Path], out: str | Path, steps: int = 1500,
                    batch_size: int = 32, lr: float = 2e-3, seed: int = 0, val_fraction: float = 0.1,
                    frames_per_episode: int = 4, device: str = "cpu", progress: bool = True,
                    json_path: str | Path | None = None) -> dict:
    """Train ``init``'s scene map (added when it has none) on ``data`` and write ``out``."""
    out = Path(out)
    _check_settings(init, out, steps, batch_size, lr, val_fraction)
    model, payload = load_checkpoint(init, device=device)
    half = any(v.dtype == torch.float16 for v in payload["state_dict"].values())  # as stored: keep its precision
    if "top" not in model.config.cameras:
        raise UserError(f"{init} has cameras {list(model.config.cameras)}: the scene map needs a 'top' camera")
    torch.manual_seed(seed)  # the map's initial weights too
    model.add_scene_map()
    net = model.scene_map.float().train()
    torch.nn.init.zeros_(net.net[-1].bias)

    t0 = time.time()
    top, labels, owner, files = load_map_data(data, frames_per_episode, progress)
    if top.shape[1] != model.config.image_size:
        raise UserError(f"the data's top frames are {top.shape[1]} px; the model takes {model.config.image_size}")
    tr, va, n_val_eps = _split_frames(owner, files, val_fraction)

    def inputs(idx: np.ndarray) -> torch.Tensor:
        return model.preprocess(top[torch.from_numpy(idx)]).to(device, torch.float32)

    curve = _fit(net, inputs, labels, tr, steps, batch_size, lr, seed, device, progress)
    net.eval()
    with torch.inference_mode():
        logits = torch.cat([net(inputs(va[i:i + 64])) for i in range(0, len(va), 64)])
    metrics = map_metrics(logits.cpu(), labels[torch.from_numpy(va)])
    summary = {"init": str(init), "out": str(out), "data": [str(d) for d in data], "episodes": len(files),
               "validation_episodes": n_val_eps, "frames": {"train": int(len(tr)), "validation": int(len(va))},
               "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
               "final_loss": float(np.mean(curve[-50:])), "validation": metrics,
               "seconds": round(time.time() - t0, 1)}
    meta = dict(payload.get("meta") or {})
    meta["scene_map"] = summary
    save_checkpoint(model, out, meta=meta, half=half)
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
