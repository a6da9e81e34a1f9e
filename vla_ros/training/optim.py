"""The optimiser (AdamW with parameter groups), its learning-rate schedule (linear warm-up, then
cosine decay) and the exponential moving average (EMA) of the weights that is validated and saved."""

from __future__ import annotations

import math

import torch

from vla_ros.config import TrainConfig
from vla_ros.model.vla import SimpleVLA


class EMA:
    """Exponential moving average of the trainable parameters."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))  # warm-up: follow closely at the start
        for n, p in model.named_parameters():
            if n in self.shadow:
                self.shadow[n].mul_(d).add_(p.detach(), alpha=1 - d)

    @torch.no_grad()
    def swap(self, model: torch.nn.Module) -> None:
        """Exchange the model's weights with the EMA weights (call twice to undo)."""
        for n, p in model.named_parameters():
            if n in self.shadow:
                tmp = p.detach().clone()
                p.copy_(self.shadow[n])
                self.shadow[n].copy_(tmp)


def lr_lambda(cfg: TrainConfig):
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / max(1, cfg.warmup_steps)
        p = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))

    return f


def make_optimizer(model: SimpleVLA, params: list[torch.nn.Parameter], cfg: TrainConfig,
               odom_scale: float, loc_scale: float) -> torch.optim.AdamW:
    """AdamW over ``params``; the odometry layer and the target locator have parameter groups of
    their own: when one was just added to a trained model it starts from scratch and learns at
    ``*_scale`` times the rate (kept on resume)."""
    odom_ids = {id(p) for p in model.odom_proj.parameters()} if model.odom_proj is not None else set()
    loc_ids = {id(p) for m in (model.locator, model.target_proj) if m is not None for p in m.parameters()}
    groups = [{"params": [p for p in params if id(p) not in odom_ids | loc_ids]}]
    for ids, scale in ((odom_ids, odom_scale), (loc_ids, loc_scale)):
        own = [p for p in params if id(p) in ids]
        if own:
            groups.append({"params": own, "lr": cfg.lr * scale})
    # fused: one kernel over all tensors (CPU and CUDA); per-tensor loops cost ~0.1 s a step here
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
