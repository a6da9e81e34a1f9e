"""The condition of a prediction straight in the head's cross-attention width (the CPU fast path).

The plain path computes ``head.cond_proj(fusion(...))``: token fusion projects its tokens from
``fusion_dim`` (256) up to ``cond_dim`` (2048) -- ``out`` on every token, ``broadcast`` and the goal
token's last layer on one row each -- and the head's ``cond_proj`` projects them straight back to
``cross_attention_dim`` (256). A linear map of a linear map is one linear map, so
:class:`NarrowReadout` multiplies those weights once, at build time, and computes the same context
with 256-wide products: two ``(45, 256) x (256, 2048)``-sized products per prediction are saved
(float sums in another order: ~1e-6).

:func:`condition_function` puts the target locator, token fusion and that readout into one function
of tensors, which :class:`~vla_ros.inference.VLAInferenceAPI` freezes into one TorchScript graph
(:mod:`vla_ros.model.fast.cpu_graph`), so the ~150 small operators of the fusion transformer run
without the Python interpreter.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
from torch import nn

from vla_ros.model.fast.cpu_graph import freeze_graph, param_versions
from vla_ros.model.fusion import TokenFusion
from vla_ros.model.locator import Located

__all__ = ["ConditionGraph", "NarrowReadout", "condition_function"]


def _compose(outer: nn.Linear, inner: nn.Linear, outer_bias: bool = False) -> nn.Linear:
    """``outer(inner(x))`` (or ``outer.weight @ inner(x)`` without ``outer``'s bias) as one
    Linear, multiplied in float64 so the composition adds no rounding of its own."""
    w = outer.weight.double() @ inner.weight.double()
    b = outer.weight.double() @ inner.bias.double()
    if outer_bias:
        b = b + outer.bias.double()
    layer = nn.Linear(w.shape[1], w.shape[0]).to(device=outer.weight.device)
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.bias.copy_(b)
    return layer.requires_grad_(False)


class NarrowReadout(nn.Module):
    """``cond_proj(TokenFusion's readout(x, goal))`` with 256-wide products.

    A snapshot of the weights: rebuild it when they change (the API does, by version counters).
    """

    def __init__(self, fusion: TokenFusion, cond_proj: nn.Linear) -> None:
        super().__init__()
        self.num_special = fusion.num_special
        self.readouts = 0 if fusion.readouts is None else int(fusion.readouts.shape[0])
        self.out = _compose(cond_proj, fusion.out, outer_bias=True)  # every token (+ cond_proj's bias)
        self.broadcast = _compose(cond_proj, fusion.broadcast)  # special tokens -> every token
        self.goal_hidden = self.goal_out = None
        if fusion.goal_in is not None:  # the goal token: its hidden layers as they are, the last composed
            self.goal_hidden = fusion.goal_in[:-1]
            self.goal_out = _compose(cond_proj, fusion.goal_in[-1])
            self.register_buffer("bias", cond_proj.bias.detach().clone(), persistent=False)

    def forward(self, x: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """x (B, N, d) tokens after token fusion's transformer and norm, goal (B, 2) its estimate
        -> the head's context (B, num_out + V (or R), cross_attention_dim)."""
        shared = self.broadcast(x[:, :self.num_special].flatten(1))[:, None]  # (B, 1, cross)
        context = self.out(x if not self.readouts else x[:, -self.readouts:])
        if self.goal_out is not None:
            goal_tok = self.goal_out(self.goal_hidden(goal))[:, None]  # (B, 1, cross), no bias
            context = torch.cat([goal_tok + self.bias, context], 1)
            shared = shared + goal_tok
        return context + shared


def condition_function(model: nn.Module, readout: NarrowReadout) -> Callable[..., tuple[torch.Tensor, ...]]:
    """For a token-fusion ``SimpleVLA``: a function of ``(top (B, 3, S, S) in [0, 1] or None for a
    model without the locator, frame tokens (B, C, T, d), grid tokens (B, C, G, d) or None,
    commands (B, d), odometry features (B, 3))`` -> ``(context (B, N, cross_attention_dim),
    *located)``: the fields of the locator's :class:`~vla_ros.model.locator.Located` in order
    (none without the locator), which the guidance reads."""

    def condition(top, frame_tok, grid_tok, cmd, odometry):
        located = model.locate(top, cmd) if model.locator is not None else None
        visual, target = model.fusion_inputs(frame_tok, grid_tok, located)
        x, goal = model.fusion.mix(visual, cmd, odometry, target)
        fields = () if located is None else tuple(getattr(located, f.name) for f in dataclasses.fields(located))
        return (readout(x, goal), *fields)

    return condition


class ConditionGraph:
    """:func:`condition_function` as frozen TorchScript graphs, one per batch size and set of
    inputs given, rebuilt when the weights change in place (their version counters)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._params = [p for n, p in model.named_parameters()
                        if not n.startswith(("vision.", "text.", "action_head.unet.", "scene_map."))]
        self._versions: tuple[int, ...] = ()
        self._fn: Callable[..., tuple[torch.Tensor, ...]] | None = None
        self.graphs: dict[tuple, Any] = {}  # False: built and refused (eager then)

    def __call__(self, top: torch.Tensor | None, frame_tok: torch.Tensor, grid_tok: torch.Tensor | None,
                 cmd: torch.Tensor, odometry: torch.Tensor) -> tuple[torch.Tensor, Located | None]:
        """The arguments of :func:`condition_function` -> (the head's context, the located target)."""
        if self._versions != param_versions(self._params):  # new weights: a new snapshot
            readout = NarrowReadout(self.model.fusion, self.model.action_head.cond_proj)
            self._fn = condition_function(self.model, readout)
            self.graphs.clear()
            self._versions = param_versions(self._params)
        args = (top, frame_tok, grid_tok, cmd, odometry)
        present = tuple(a is not None for a in args)  # no top frame without the locator, no grid without spatial tokens
        key = (cmd.shape[0], present)
        if key not in self.graphs:
            fn = self._fn
            self.graphs[key] = freeze_graph(lambda *t: fn(*_fill(t, present)), tuple(a for a in args if a is not None),
                                            owner=self.model, name="locator + fusion", optimize=False) or False
        graph = self.graphs[key]
        out = graph(*(a for a in args if a is not None)) if graph else self._fn(*args)
        return out[0], (Located(*out[1:]) if len(out) > 1 else None)


def _fill(tensors: tuple, present: tuple[bool, ...]) -> list:
    """The tensors back in their argument places, None where ``present`` is False."""
    it = iter(tensors)
    return [next(it) if p else None for p in present]
