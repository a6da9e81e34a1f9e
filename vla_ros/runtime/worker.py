"""TickWorker: runs the inference of a tick on its own thread; a tick that finds it busy is dropped.

The node's timer calls :meth:`TickWorker.request` ``rate_hz`` times per second.  The call never
blocks: it hands the tick to the worker thread, or returns False when the previous tick is still
running (the caller counts it as dropped).  Ticks are never queued, so a slow model lowers the
achieved rate instead of building up a backlog of ever-older observations.
"""

from __future__ import annotations

import threading
from typing import Callable

__all__ = ["TickWorker"]


class TickWorker:
    def __init__(self, run: Callable[[], None], name: str = "vla-inference",
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self._run = run
        self._on_error = on_error
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._busy = False
        self._idle = threading.Event()  # set while no tick runs
        self._idle.set()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> "TickWorker":
        self._thread.start()
        return self

    @property
    def busy(self) -> bool:
        return self._busy

    def request(self) -> bool:
        """Start a tick now; False (dropped) when the previous one has not finished."""
        with self._lock:
            if self._busy or self._stopping:
                return False
            self._busy = True
            self._idle.clear()
        self._wake.set()
        return True

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no tick runs (e.g. before the node stops publishing); False on timeout."""
        return self._idle.wait(timeout)

    def stop(self, timeout: float | None = 10.0) -> None:
        """Finish the running tick (if any) and end the thread."""
        with self._lock:
            self._stopping = True
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                if self._stopping:
                    return
            try:
                self._run()
            except BaseException as exc:  # noqa: BLE001 - keep serving ticks
                if self._on_error is not None:
                    self._on_error(exc)
            finally:
                with self._lock:
                    self._busy = False
                    self._idle.set()
