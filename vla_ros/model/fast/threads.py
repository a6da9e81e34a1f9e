"""Small CPU sampling batches on one thread.

The CPU DDIM loop's operators are so small that a second thread costs more in synchronisation
than it saves.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["SINGLE_THREAD_MAX_BATCH", "intra_op_threads"]

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
