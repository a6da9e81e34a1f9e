"""The DDIM (eta 0) sampling loop: one implementation for the plain and the fast path.

The update is written with the same float32 expressions as diffusers' ``DDIMScheduler.step``, so
with diffusers' UNet calls (``lean=False``) it reproduces the scheduler's rounding; the fast path
swaps in the lean UNet (:mod:`vla_ros.model.fast.unet`), frozen CPU graphs or ``torch.compile``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vla_ros.config import ModelConfig
from vla_ros.model.fast.cpu_graph import freeze_graph
from vla_ros.model.fast.unet import FastUNet, UnsupportedUNet
from vla_ros.model.head import DiffusionActionHead, build_scheduler

__all__ = ["DDIMSampler", "ddim_schedule"]


def ddim_schedule(cfg: ModelConfig, steps: int) -> tuple[list[int], torch.Tensor]:
    """The timesteps of a ``steps``-step DDIM run (diffusers' trailing spacing) and per step
    (S, 4): sqrt(a_t), sqrt(1 - a_t), sqrt(a_prev), sqrt(1 - a_prev)."""
    sched = build_scheduler(cfg, use_ddim=True)
    sched.set_timesteps(steps)
    ts = [int(t) for t in sched.timesteps]
    # float32 and the same expressions as diffusers, so rounding matches it too
    ac = sched.alphas_cumprod
    stride = cfg.num_timesteps // steps
    a_t = torch.stack([ac[t] for t in ts])
    a_prev = torch.stack([ac[t - stride] if t - stride >= 0 else sched.final_alpha_cumprod for t in ts])
    return ts, torch.stack([a_t ** 0.5, (1 - a_t) ** 0.5, a_prev ** 0.5, (1 - a_prev) ** 0.5], dim=1)


class DDIMSampler(nn.Module):
    """The DDIM (eta = 0) loop as fixed tensor operations, for graphs and compilers.

    Equal to diffusers' ``DDIMScheduler`` (trailing spacing, ``set_alpha_to_one``, optional
    ``clip_sample``); a test checks it. With ``lean=False`` every step calls the diffusers UNet:
    that is the plain path's DDIM loop (:meth:`DiffusionActionHead.sample`). With
    ``lean=True`` each UNet call runs through :class:`~vla_ros.model.fast.unet.FastUNet` (the
    same function on ``(B, C, T)`` with the timestep and cross-attention work hoisted out of
    the loop); UNet layouts it does not know keep diffusers. With ``cpu_graph=True`` (on the
    CPU) each lean call runs as a frozen TorchScript graph (:mod:`vla_ros.model.fast.cpu_graph`).
    """

    def __init__(self, head: DiffusionActionHead, steps: int, lean: bool = True, cpu_graph: bool = False,
                 compile: bool = False) -> None:
        super().__init__()
        cfg = head.config
        if not 1 <= steps <= cfg.num_timesteps:
            raise ValueError(f"num_inference_steps={steps} must be within [1, {cfg.num_timesteps}]")
        self.head = head
        self.steps = steps
        ts, coefs = ddim_schedule(cfg, steps)
        self.timesteps = ts
        dev = head.cond_proj.weight.device
        self.register_buffer("t_tensors", torch.tensor(ts, dtype=torch.long, device=dev), persistent=False)
        self.register_buffer("coefs", coefs.to(dev), persistent=False)
        self.clip = cfg.clip_sample
        self.prediction_type = cfg.prediction_type
        self.lean: FastUNet | None = None
        # on the CPU: each lean UNet call through a frozen TorchScript graph, one per input shape
        self.cpu_graph = cpu_graph and head.cond_proj.weight.device.type == "cpu"
        self._graphs: dict[tuple, Any] = {}
        self._rows: list[tuple[tuple, torch.Tensor]] | None = None  # per-step constants of the lean loop
        if lean:
            try:
                self.lean = FastUNet(head.unet)
            except UnsupportedUNet:
                self.lean = None  # an unusual UNet layout: diffusers runs every call
        # torch.compile of the lean step (the lean path never calls the diffusers UNet, so
        # compiling that would change nothing here); the frozen CPU graphs take precedence
        self._compiled = torch.compile(self._lean_step) if compile and self.lean is not None else None

    def forward(self, context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """context (B, N, cross_dim) projected tokens, x (B, D, T, 1) noise -> x_0 (B, D, T, 1)."""
        if self.lean is None:
            for i in range(self.steps):
                x = self._update(x, self.head.denoise(x, self.t_tensors[i], context), self.coefs[i])
            return x
        if self.lean.stale:  # weights were trained further since: re-read them
            self.lean = FastUNet(self.head.unet)
            self._graphs.clear()
            self._rows = None
        if self._rows is None:  # per step: every ResNet's time bias (Cout,), and the DDIM coefficients
            biases = self.lean.time_biases(self.t_tensors)  # per ResNet: (S, Cout)
            self._rows = [(tuple(tb[i] for tb in biases), self.coefs[i]) for i in range(self.steps)]
        # the same function with step-only and context-only work hoisted out of the loop
        kv = tuple(self.lean.cross_kv(context))  # per attention block: (B, H, N, d) twice
        x = x.squeeze(-1)  # (B, D, T)
        step = self._step_graph(x, kv) if self.cpu_graph else None
        if step is None:
            step = self._compiled if self._compiled is not None else self._lean_step
        for tb, coef in self._rows:
            x = step(x, tb, kv, coef)
        return x.unsqueeze(-1)

    def _update(self, x: torch.Tensor, out: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
        """One DDIM (eta 0) update: x_t and the model output -> x_{t-1}. coef (4,): sqrt(a_t),
        sqrt(1 - a_t), sqrt(a_prev), sqrt(1 - a_prev)."""
        sa, s1a = coef[0], coef[1]
        if self.prediction_type == "epsilon":
            x0, eps = (x - s1a * out) / sa, out
        elif self.prediction_type == "sample":
            x0, eps = out, (x - sa * out) / s1a
        else:  # v_prediction
            x0, eps = sa * x - s1a * out, sa * out + s1a * x
        if self.clip:
            x0 = x0.clamp(-1.0, 1.0)
        return coef[2] * x0 + coef[3] * eps

    def _lean_step(self, x: torch.Tensor, tb: tuple, kv: tuple, coef: torch.Tensor) -> torch.Tensor:
        """x (B, D, T) -> the next x: one lean UNet call and the DDIM update."""
        return self._update(x, self.lean(x, tb, kv), coef)

    def _step_graph(self, x: torch.Tensor, kv: tuple):
        """:meth:`_lean_step` as a frozen TorchScript graph for these shapes (built on first use,
        ~0.2 s), or None when it cannot be built (eager then)."""
        key = (tuple(x.shape), tuple(t.shape for pair in kv for t in pair))
        if key not in self._graphs:
            tb, coef = self._rows[0]
            self._graphs[key] = freeze_graph(self._lean_step, (x, tb, kv, coef), owner=self.head.unet,
                                             name="lean UNet step")
        return self._graphs[key]
