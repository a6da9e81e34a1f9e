"""Trajectory metrics (ADE / FDE), the command-only baseline, and the validation of a run."""

from __future__ import annotations

import numpy as np
import torch

from vla_ros.config import TrainConfig
from vla_ros.model.vla import SimpleVLA
from vla_ros.sim.commands import KINDS
from vla_ros.training.bank import FrameBank, gather, gather_keypoints, gather_odometry, gather_top


def ade_fde(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pred, gt (N, T, >=2) -> per-sample ADE and FDE (metres, x/y only)."""
    d = np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1)
    return d.mean(-1), d[:, -1]


def mean_trajectory_per_kind(bank: FrameBank) -> dict[str, list]:
    """The command-only baseline: the mean trajectory of each command kind (of each command
    text, for a robot's commands that are no known phrasing)."""
    keys = np.array([bank.command_key(e) for e in bank.samples[:, 0]], dtype=object)
    out = {}
    for key in [k for k in KINDS if k in set(keys)] + sorted(set(keys) - set(KINDS)):
        rows = bank.sample_rows(np.flatnonzero(keys == key))
        out[key] = bank.traj[torch.from_numpy(rows)].mean(0).tolist()
    return out


@torch.no_grad()
def validate(model: SimpleVLA, bank: FrameBank, idx: np.ndarray, cfg: TrainConfig, device: torch.device,
             texts: list[str]) -> dict[str, float]:
    """The model's figures on the validation samples ``idx`` (``texts``: every sample's command):
    denoising loss, ADE / FDE of its samples (fixed seeds), the goal loss of token fusion and the
    locator's errors where the samples have labels."""
    model.eval()
    g = torch.Generator().manual_seed(1234)
    losses, goals, ades, fdes, located = [], [], [], [], []
    for b in range(0, len(idx), cfg.batch_size):
        sel = idx[b:b + cfg.batch_size]
        frozen, traj = gather(bank, sel, device)
        cmds = [texts[i] for i in sel]
        odom = gather_odometry(bank, sel)
        top = gather_top(model, bank, sel)
        terms = model.loss_terms(frozen, cmds, traj, generator=g, odometry=odom, top=top)
        losses.append(float(terms["denoise"]))
        if "goal" in terms:
            goals.append(float(terms["goal"]))
        cmd = model.encode_text(cmds)
        loc = model.locate(top, cmd)
        pred = model.action_head.sample(model.condition_from_frozen_text(frozen, cmd, odom, located=loc),
                                        generator=torch.Generator().manual_seed(0))
        if loc is not None:  # its errors on the samples with labels (none from a robot's episodes)
            lab = np.flatnonzero(bank.labelled[bank.samples[sel, 0]])
            if len(lab):
                kinds = [bank.kinds[e] for e in bank.samples[sel[lab], 0]]
                found = torch.from_numpy(lab).to(device)
                located.append(({k: getattr(loc, k)[found] for k in ("target", "robot", "heading")},
                                gather_keypoints(bank, sel[lab], kinds, device)))
        a, f = ade_fde(pred.cpu().numpy(), traj.cpu().numpy())
        ades.append(a)
        fdes.append(f)
    model.train()
    out = {"val_loss": float(np.mean(losses)), "val_ade": float(np.concatenate(ades).mean()),
           "val_fde": float(np.concatenate(fdes).mean())}
    if goals:  # token fusion's goal estimate (weighted MSE, normalised units); val_loss is the head's alone
        out["val_goal_loss"] = float(np.mean(goals))
    if located:  # the locator's errors (top-camera units: half the image side)
        err_t = torch.cat([(loc["target"] - kp["target"]).norm(dim=-1)[kp["target_mask"] > 0] for loc, kp in located])
        err_r = torch.cat([(loc["robot"] - kp["robot"]).norm(dim=-1) for loc, kp in located])
        cos = torch.cat([(loc["heading"] * kp["heading"]).sum(-1) for loc, kp in located]).clamp(-1, 1)
        if len(err_t):
            out["val_target_err"] = float(err_t.median())
        out["val_robot_err"] = float(err_r.median())
        out["val_heading_err_deg"] = float(torch.rad2deg(torch.acos(cos)).median())
    return out
