"""One training batch: samples of the frame bank with their commands, odometry, locator labels and
diffusion noise, every random choice drawn for the whole global batch."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vla_ros.config import TrainConfig
from vla_ros.model.vla import SimpleVLA
from vla_ros.sim.commands import KINDS, phrasings
from vla_ros.training.bank import FrameBank, gather, gather_keypoints, gather_odometry, gather_top


def batch_commands(bank: FrameBank, sel: np.ndarray, kinds: list[str | None], rng: np.random.Generator) -> list[str]:
    """Language variety: a random training phrasing of each sample's command kind; a robot's own
    command (no known kind) verbatim."""
    return [str(rng.choice(phrasings(k, "train"))) if k else bank.texts[bank.samples[i, 0]]
            for i, k in zip(sel, kinds)]


def training_phrasebook(bank: FrameBank) -> list[str]:
    """Every command a training batch can hold (batch_commands; relabelling draws from the same
    training phrasings): each known kind's training phrasings, and a robot's commands verbatim."""
    known = [p for k in KINDS for p in phrasings(k, "train")] if any(bank.kinds) else []
    return known + [t for k, t in zip(bank.kinds, bank.texts) if not k]


def training_batch(model: SimpleVLA, bank: FrameBank, sel: np.ndarray, cfg: TrainConfig, rng: np.random.Generator,
                   relabels: torch.Tensor | None, with_keypoints: bool, device: torch.device) -> dict[str, Any]:
    """The loss's inputs for the global batch ``sel``, every random choice made for all of it
    (relabels, phrasings, odometry dropout, diffusion noise and timesteps), so that each process
    of a data-parallel run draws the same batch and takes its share (:mod:`vla_ros.training.distributed`)."""
    frozen, traj = gather(bank, sel, device)
    kinds = [bank.kinds[e] for e in bank.samples[sel, 0]]
    if relabels is not None:  # some samples answer another command from the same state
        swap = np.flatnonzero(rng.random(len(sel)) < cfg.relabel_prob)
        new_k = rng.integers(len(cfg.relabel_kinds), size=len(swap))
        for j, k in zip(swap, new_k):
            kinds[j] = cfg.relabel_kinds[k]
            traj[j] = relabels[bank.sample_rows(sel[j:j + 1])[0], k].to(device)
    cmds = batch_commands(bank, sel, kinds, rng)
    odom = gather_odometry(bank, sel)
    odom[rng.random(len(sel)) < cfg.odometry_dropout] = np.nan  # "no odometry" is an input too
    top = gather_top(model, bank, sel)
    keypoints = gather_keypoints(bank, sel, kinds, device) if top is not None and with_keypoints else None
    noise, timesteps = model.action_head.draw_noise(traj)
    # token fusion's goal token: which samples carry the demonstration's true end (model/fusion.py)
    teacher = torch.from_numpy(rng.random(len(sel)) < cfg.goal_teacher_prob).to(device)
    return {"frozen": frozen, "commands": cmds, "traj": traj, "odometry": odom, "top": top, "keypoints": keypoints,
            "noise": noise, "timesteps": timesteps, "teacher": teacher}
