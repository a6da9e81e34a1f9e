"""Frozen TorchScript graphs for the CPU fast path (the image encoder and one lean UNet step).

On the 2-core CPU every stage of a prediction is dominated by per-operator overhead, not
arithmetic: a lean UNet call is ~170 small operators on a ``(1, C, 16)`` tensor, and
EfficientNet-Lite0 at 128x128 is a chain of small convolutions. Tracing a stage once,
freezing it (weights become constants, conv + batch-norm folded) and running
``torch.jit.optimize_for_inference`` (oneDNN convolutions, fused ops) removes the Python
interpreter from the loop. Measured with ``vla bench`` on this project's CPU (see docs/latency.md):
the image encoder ~1.6x and the DDIM loop ~1.5x faster than eager.

Why TorchScript and not ``torch.compile``: both give about the same speed here, but inductor
needed ~60 s per shape to compile cold on this CPU (a node start, every batch size of the
benchmark), while a trace takes well under a second for a UNet step and ~2 s for the image
encoder. ``torch.jit.trace`` is deprecated in torch 2.13 (pinned in requirements.txt) and is
only a speed-up: :func:`freeze_graph` checks the graph against eager on its example and
returns ``None`` (the caller keeps eager) when tracing fails or the outputs differ.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Callable, Iterable

import torch
from torch import nn

__all__ = ["GRAPH_ATOL", "freeze_graph", "param_versions"]

log = logging.getLogger(__name__)

# Largest abs difference accepted between a frozen graph and eager on its example input
# (oneDNN convolutions and folded batch norms round differently; measured ~1e-5).
GRAPH_ATOL = 1e-3


def param_versions(params: Iterable[torch.Tensor]) -> tuple[int, ...]:
    """In-place version counters of parameters (pass a list: walking modules costs ~1 ms): a
    change means the constants frozen into a graph are out of date."""
    return tuple(p._version for p in params)


def _flat(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for o in out for t in _flat(o)]


class _Wrap(nn.Module):
    def __init__(self, fn: Callable[..., Any], owner: nn.Module | None) -> None:
        super().__init__()
        self.fn = fn
        self.owner = owner  # the weights, as module attributes, so freezing folds them

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)


def freeze_graph(fn: Callable[..., Any], example: tuple, owner: nn.Module | None = None,
                 name: str = "graph", atol: float = GRAPH_ATOL, optimize: bool = True
                 ) -> torch.jit.ScriptModule | None:
    """Trace ``fn(*example)``, freeze and optimise it for inference; check it against eager.

    ``fn`` must return a tensor or a (nested) tuple of tensors, and take the same control-flow
    path for every input it will be called with (shapes of the example: callers key graphs by
    the shapes that change the path). ``owner``: the module whose parameters ``fn`` reads (they
    must not require grad). ``optimize``: also ``torch.jit.optimize_for_inference`` (oneDNN
    convolutions: faster for an image encoder, but they round differently, which a function that
    sharpens its logits -- the target locator's soft-argmax -- amplifies past ``atol``; without
    it the frozen graph computes exactly what eager does). Returns ``None`` -- use eager -- if
    tracing fails or the graph's output differs from eager by more than ``atol``.
    """
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation and tracer warnings
            example = tuple(_clone(e) for e in example)
            ref = _flat(fn(*example))
            traced = torch.jit.trace(_Wrap(fn, owner).eval(), example, check_trace=False)
            graph = torch.jit.freeze(traced)
            if optimize:
                graph = torch.jit.optimize_for_inference(graph)
            got = _flat(graph(*example))
            got = _flat(graph(*example))  # the profiling executor specialises on the 2nd run
    except Exception as exc:  # noqa: BLE001 -- any failure only costs the speed-up
        log.warning("%s: TorchScript graph not built (%s: %s); running eager", name, type(exc).__name__, exc)
        return None
    if len(got) != len(ref) or any(a.shape != b.shape for a, b in zip(got, ref)):
        log.warning("%s: the frozen graph's outputs have other shapes than eager; running eager", name)
        return None
    diff = max(float((a - b).abs().max()) for a, b in zip(got, ref)) if ref else 0.0
    if not diff <= atol:  # also catches NaN
        log.warning("%s: the frozen graph differs from eager by %.3g (> %.0e); running eager", name, diff, atol)
        return None
    return graph


def _clone(x: Any) -> Any:
    """Normal (non-inference) copies of the example tensors, so tracing may record them."""
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, (tuple, list)):
        return type(x)(_clone(e) for e in x)
    return x
