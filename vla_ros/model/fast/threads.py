"""Small CPU batches on one thread per core.

The CPU DDIM loop's operators are so small that a second thread costs more in synchronisation
than it saves; a new observation's frames are encoded one per core (:class:`SplitBatch`).
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import torch

__all__ = ["SINGLE_THREAD_MAX_BATCH", "SplitBatch", "intra_op_threads"]

# The CPU DDIM loop of up to this many rows runs on one thread (measured: B = 1-8 is 5-25% faster
# on one of this project's 2 cores; B = 64 is 1.4x slower).
SINGLE_THREAD_MAX_BATCH = 8


@contextlib.contextmanager
def intra_op_threads(n: int):
    """Run a block with ``n`` intra-op threads, then restore the caller's setting."""
    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SplitBatch:
    """Runs a function on the two halves of a small batch at once, each half on one core.

    ``fn(x[:h])`` runs on the caller's thread and ``fn(x[h:])`` on a worker thread, each with one
    intra-op thread; TorchScript graphs release the GIL while they run. For a new observation's
    two frames (ego and top) through the image encoder this replaces two-thread operators, whose
    every barrier waits for the slower core, by two independent single-thread runs.
    """

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None  # started on first use
        self._pid = 0  # the process that started it (a forked child has no worker thread)

    def __call__(self, fn: Callable[[torch.Tensor], tuple[torch.Tensor, ...]], x: torch.Tensor
                 ) -> tuple[torch.Tensor, ...]:
        """fn: (N, ...) -> a tuple of tensors with N rows -> the same for x, rows in order."""
        if self._pool is None or self._pid != os.getpid():
            self._pool = ThreadPoolExecutor(1, initializer=_one_thread, thread_name_prefix="vla-split")
            self._pid = os.getpid()
        h = (x.shape[0] + 1) // 2
        rest = self._pool.submit(_inference, fn, x[h:])
        with intra_op_threads(1):
            first = fn(x[:h])
        return tuple(torch.cat([a, b]) for a, b in zip(first, rest.result()))


def _one_thread() -> None:
    """The worker's intra-op threads: 1. A thread's first torch call sets them to the process's
    setting, so that call comes first (else it would undo this later)."""
    torch.get_num_threads()
    torch.set_num_threads(1)


def _inference(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Any:
    with torch.inference_mode():  # inference mode is per thread
        return fn(x)
