"""Data-parallel training under ``torchrun`` (PyTorch DistributedDataParallel; gloo on CPU, nccl on CUDA).

``vla train`` runs unchanged under ``torchrun --nproc_per_node N``: every process draws the same
global batch (same seeds: the sample choice, phrasings, odometry dropout, diffusion noise and
timesteps), trains on its ``1/N`` share, and DDP averages the gradients, so N processes take the
same steps as one process with the whole batch (up to the order of floating-point sums).
Process 0 alone validates and writes checkpoints.  Without torchrun's environment
(``WORLD_SIZE`` unset or 1) nothing here does anything.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch

__all__ = ["Distributed", "init_distributed", "share"]


class _LossModule(torch.nn.Module):
    """``model.loss`` as a forward: DDP synchronises the gradients of what its forward used."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, **batch: Any) -> torch.Tensor:
        return self.model.loss(**batch)


@dataclass
class Distributed:
    """This process's place in a data-parallel run (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this module started the process group (and ends it)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def part(self, n: int) -> slice:
        """This process's share of a global batch of ``n`` (n divisible by the world size)."""
        b = n // self.world
        return slice(self.rank * b, (self.rank + 1) * b)

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Process 0 runs the block first (filling caches on disk), the others after it (reading them)."""
        if self.world > 1 and not self.main:
            torch.distributed.barrier()
        yield
        if self.world > 1 and self.main:
            torch.distributed.barrier()

    def loss_fn(self, model: torch.nn.Module, device: torch.device) -> Callable[..., torch.Tensor]:
        """``model.loss``, wrapped in DistributedDataParallel when there are several processes."""
        if self.world == 1:
            return model.loss
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        # find_unused_parameters: a batch may leave a trainable part unused (e.g. no goto command
        # for the goal loss); broadcast from rank 0 at construction makes every copy start equal
        return DistributedDataParallel(_LossModule(model), device_ids=ids, find_unused_parameters=True)

    def step_figures(self, loss: float, stop: bool) -> tuple[float, bool]:
        """(mean loss over the processes, whether any process wants to stop): the same on every
        process, so that all of them log, check divergence and stop at the same step."""
        if self.world == 1:
            return loss, stop
        t = torch.tensor([loss, float(stop)], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t[0]) / self.world, bool(t[1] > 0)

    def finish(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()
            if self.owns_group:
                torch.distributed.destroy_process_group()


def init_distributed(device: str) -> tuple[Distributed, str]:
    """torchrun's environment -> the process group (nccl for CUDA, gloo for CPU) and this
    process's device (``cuda:LOCAL_RANK`` for CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.device(device).type == "cuda"
    if cuda:
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    owns = not torch.distributed.is_initialized()
    if owns:
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    return Distributed(rank, world, local, owns), device


def share(batch: dict[str, Any], part: slice) -> dict[str, Any]:
    """A batch's entries (tensors, arrays, lists, dicts of tensors, None) cut to ``part``."""
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, dict):
            out[key] = {k: v[part] for k, v in value.items()}
        elif isinstance(value, (torch.Tensor, np.ndarray, list)):
            out[key] = value[part]
        else:
            out[key] = value
    return out
