"""The target locator in training: whether a run trains it (and so needs the simulator's
layouts as labels), and its pre-training alone on its keypoint labels."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from vla_ros.config import TrainConfig
from vla_ros.model.vla import SimpleVLA
from vla_ros.sim.commands import phrasings
from vla_ros.sim.layout import TARGET_COLOURS
from vla_ros.training.bank import FrameBank, gather_keypoints, gather_top


@dataclass(frozen=True)
class LocatorTraining:
    """What a run does with the target locator (both False without one): the one place that
    decides whether it needs its keypoint labels, i.e. the simulator's layouts."""

    pretrain: bool  # trained alone first: it starts from scratch (a new model, or one --init just gave it)
    joint: bool  # trained with the whole model (additive fusion); token fusion freezes it after its pre-training

    @classmethod
    def plan(cls, model: SimpleVLA, cfg: TrainConfig, resumed: bool, fine_tune: bool,
             added_locator: bool) -> LocatorTraining:
        if model.locator is None:
            return cls(False, False)
        return cls(pretrain=not resumed and (added_locator or not fine_tune) and cfg.locator_pretrain_steps > 0,
                   joint=model.fusion is None)

    @property
    def needs_labels(self) -> bool:
        """A locator that is trained needs labels in every episode; a frozen one reads its input alone."""
        return self.pretrain or self.joint


def pretrain_locator(model: SimpleVLA, bank: FrameBank, train_idx: np.ndarray, cfg: TrainConfig,
                     device: torch.device, progress: bool = True) -> dict[str, float]:
    """Train the target locator alone on its keypoint labels (``cfg.locator_pretrain_steps``).

    Every layout has a cone of each colour, so each sample is asked for a random one ("go to
    the green cone" from a forward episode's frame as well): three times the target labels of
    the goto episodes. The command encodings are fixed here (no gradient into the text layers).
    Returns the last batch's losses.
    """
    from vla_ros.model.locator import locator_loss

    rng = np.random.default_rng([cfg.seed, 7])
    # a token-fusion model learns its command projection here too; both are then frozen (LocatorTraining)
    learn_text = model.fusion is not None
    params = list(model.locator.parameters()) + (list(model.txt_proj.parameters()) if learn_text else [])
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=cfg.locator_pretrain_lr)
    # cosine decay to a tenth: at a constant 2e-3 a 3,200-step run found the cones, then lost them
    # (target error 0.002 at step 700, 0.22 at the end; docs/results.md)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.1 + 0.45 * (1 + math.cos(math.pi * min(i, cfg.locator_pretrain_steps) / max(1, cfg.locator_pretrain_steps))))
    bar = tqdm(range(cfg.locator_pretrain_steps), desc="pre-training the target locator", unit="step",
               disable=not progress)
    model.train()
    last: dict[str, float] = {}
    for i in bar:
        sel = rng.choice(train_idx, cfg.batch_size, replace=len(train_idx) < cfg.batch_size)
        kinds = [f"goto_{TARGET_COLOURS[c]}" for c in rng.integers(len(TARGET_COLOURS), size=len(sel))]
        with torch.set_grad_enabled(learn_text):
            cmd = model.encode_text([str(rng.choice(phrasings(k, "train"))) for k in kinds])
        kp = gather_keypoints(bank, sel, kinds, device)
        located = model.locator(gather_top(model, bank, sel), cmd)
        loss = locator_loss(located, **kp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if i % 25 == 0 or i == len(bar) - 1:
            with torch.no_grad():
                last = {"loss": float(loss), "target_err": float((located.target - kp["target"]).norm(dim=-1).median()),
                        "robot_err": float((located.robot - kp["robot"]).norm(dim=-1).median())}
            bar.set_postfix(last)
    bar.close()
    return last
