#!/usr/bin/env python3
"""Does a fusion bind a word to a place? A tiny SimpleVLA on a synthetic task, in minutes.

A red and a blue square at random cells of one camera image, the command names one colour, and
the trajectory is a straight line to the named square (no target locator: the fusion alone must
bind). Both colours are in every image, so a model that does not bind the word to the place
cannot do better than chance. Every ``--every`` steps it prints, for 24 held-out images answered
with both commands from one seeded noise draw: the share of answers nearer the named square
(0.5 = chance), how much the answers differ between images, and between the two commands.

``--task command`` is the control that needs no binding: "turn left" / "turn right" and a line
to a fixed point on that side, whatever the image; ``identified`` is then the share of answers
on the named side.

Usage: .venv/bin/python scripts/binding_probe.py [--fusion tokens|additive] [--task binding|command]
       [--goal-weight 1.0] [--goal-token on|off] [--teacher 0.5] [--steps 600] [--lr 1e-3]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from vla_ros.model.vla import SimpleVLA

SIZE = 64  # image size (--size); the tiny backbone's grid cells are 16 px: 4 x 4 cells at 64
CELLS = SIZE // 16
COMMANDS = {"red": "go to the red cone", "blue": "go to the blue cone"}
RGB = {"red": (230, 30, 30), "blue": (30, 60, 230)}


def set_size(size: int) -> None:
    """Image size in pixels, a multiple of 16 (the grid has size / 16 cells a side)."""
    global SIZE, CELLS
    if size % 16 or size < 32:
        raise SystemExit(f"--size {size}: use a multiple of 16, at least 32")
    SIZE, CELLS = size, size // 16


def _tiny(fusion: str, goal_weight: float = 1.0, goal_token: bool = True) -> SimpleVLA:
    return SimpleVLA(backbone="tiny", image_size=SIZE, cameras=("top",), history_length=1, cond_dim=64,
                     target_locator=False, odometry_input=False, fusion=fusion, fusion_dim=64,
                     fusion_layers=2, fusion_heads=4, fusion_readouts=0, unet_channels=(16, 32), use_lora=False,
                     fusion_goal_weight=goal_weight, fusion_goal_token=goal_token)


def _world(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One image (SIZE, SIZE, 3) with the two squares in distinct cells, and each square's place
    as (x ahead, y left) in [-1, 1] (image centre = robot, up = ahead)."""
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    cells = rng.choice(CELLS * CELLS, 2, replace=False)
    where = {}
    step = SIZE // CELLS
    for colour, cell in zip(RGB, cells):
        r, c = divmod(int(cell), CELLS)
        img[r * step + 4:(r + 1) * step - 4, c * step + 4:(c + 1) * step - 4] = RGB[colour]
        centre = np.array([(r + 0.5) * step, (c + 0.5) * step]) / SIZE * 2 - 1  # row, column in [-1, 1]
        where[colour] = np.array([-centre[0], -centre[1]], np.float32)  # ahead = up, left = left
    return img, where


def _line_to(point: np.ndarray, n: int = 16) -> np.ndarray:
    xy = point[None] * np.linspace(1 / n, 1, n)[:, None]
    return np.concatenate([xy, np.zeros((n, 1), np.float32)], 1).astype(np.float32)  # (n, 3)


TURNS = {"red": ("turn left", np.array([0.5, 0.6], np.float32)),  # --task command: colour -> side
         "blue": ("turn right", np.array([0.5, -0.6], np.float32))}


def _task(task: str, colour: str, where: dict[str, np.ndarray]) -> tuple[str, np.ndarray]:
    """(command, the point its trajectory goes to)."""
    return (COMMANDS[colour], where[colour]) if task == "binding" else TURNS[colour]


def _batch(rng, b, task: str = "binding"):
    imgs, cmds, trajs = [], [], []
    for _ in range(b):
        img, where = _world(rng)
        colour = str(rng.choice(list(RGB)))
        command, point = _task(task, colour, where)
        imgs.append(img)
        cmds.append(command)
        trajs.append(_line_to(point))
    return np.stack(imgs)[:, None, None], cmds, torch.from_numpy(np.stack(trajs))


def _probe(model: SimpleVLA, task: str) -> dict[str, float]:
    """Held-out images answered with both commands (one seeded noise draw for all)."""
    model.eval()
    rng = np.random.default_rng(99)
    noise = torch.randn(1, model.config.action_dim, model.config.trajectory_length, 1,
                        generator=torch.Generator().manual_seed(0)).repeat(2, 1, 1, 1)
    right, ends = [], []
    for _ in range(24):
        img, where = _world(rng)
        x = np.repeat(img[None, None, None], 2, 0)
        (cmd_a, goal_a), (cmd_b, goal_b) = _task(task, "red", where), _task(task, "blue", where)
        end = model.predict(x, [cmd_a, cmd_b], noise=noise)[:, -1, :2].numpy()
        ends.append(end)
        for e, named, other in ((end[0], goal_a, goal_b), (end[1], goal_b, goal_a)):
            right.append(np.linalg.norm(e - named) < np.linalg.norm(e - other))
    model.train()
    ends = np.stack(ends)  # (24, 2 commands, 2)
    return {"identified": float(np.mean(right)), "spread_over_images": float(ends.std(0).mean()),
            "command_difference": float(np.linalg.norm(ends[:, 0] - ends[:, 1], axis=-1).mean())}


def train(model: SimpleVLA, steps: int, lr: float, task: str = "binding", teacher: float = 0.5,
          every: int = 0, batch: int = 32, on_probe=None) -> list[dict]:
    """Train ``model`` on the task from a fixed seed; probe every ``every`` steps and at the end."""
    torch.manual_seed(0)
    model.action_head.normalizer.fit(_batch(np.random.default_rng(1), 512, task)[2])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    rng = np.random.default_rng(0)
    model.train()
    t0, log = time.perf_counter(), []
    for step in range(1, steps + 1):
        imgs, cmds, traj = _batch(rng, batch, task)
        frozen = model.frame_frozen(imgs)
        loss = model.loss(frozen.view(batch, 1, 1, *frozen.shape[1:]), cmds, traj, goal_teacher_prob=teacher)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (every and step % every == 0) or step == steps:
            log.append({"step": step, "loss": round(loss.item(), 4), **_probe(model, task),
                        "seconds": round(time.perf_counter() - t0, 1)})
            if on_probe is not None:
                on_probe(log[-1])
    model.eval()
    return log


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fusion", choices=("tokens", "additive"), default="tokens")
    ap.add_argument("--task", choices=("binding", "command"), default="binding")
    ap.add_argument("--goal-weight", type=float, default=1.0,
                    help="tokens: weight of the auxiliary goal loss (the end of the trajectory)")
    ap.add_argument("--goal-token", choices=("on", "off"), default="on",
                    help="tokens: the goal estimate as a token of the head (model.fusion_goal_token)")
    ap.add_argument("--teacher", type=float, default=0.5,
                    help="goal token: share of samples whose token is the true end (train.goal_teacher_prob)")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--every", type=int, default=200, help="probe every this many steps")
    ap.add_argument("--json", help="write the probes as JSON")
    ap.add_argument("--size", type=int, default=64, help="image size: 64 = a 4 x 4 grid of cells, 32 = 2 x 2")
    args = ap.parse_args()
    set_size(args.size)
    torch.manual_seed(0)
    model = _tiny(args.fusion, args.goal_weight, args.goal_token == "on")
    log = train(model, args.steps, args.lr, args.task, args.teacher, args.every,
                on_probe=lambda row: print(json.dumps(row), flush=True))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"fusion": args.fusion, "goal_weight": args.goal_weight, "goal_token": args.goal_token,
                       "teacher": args.teacher, "task": args.task, "lr": args.lr, "size": args.size,
                       "probes": log}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
