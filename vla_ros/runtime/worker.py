"""The node's own threads: TickWorker (inference) and DecodeWorker (a camera's frames).

TickWorker runs the inference of a tick on its own thread; a tick that finds it busy is dropped.
The node's timer calls :meth:`TickWorker.request` ``rate_hz`` times per second.  The call never
blocks: it hands the tick to the worker thread, or returns False when the previous tick is still
running (the caller counts it as dropped).  Ticks are never queued, so a slow model lowers the
achieved rate instead of building up a backlog of ever-older observations.

DecodeWorker decodes one camera's frames on its own thread, so that a subscription callback only
hands a message over (:meth:`DecodeWorker.put`, a one-slot mailbox) and returns to the executor.
The newest message wins: one that is still waiting when the next arrives is dropped (``put``
returns True; the caller counts it), so a slow decode never builds up a backlog either.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

__all__ = ["DecodeWorker", "TickWorker"]


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


class DecodeWorker:
    """A thread that calls ``handle(item)`` for the newest item :meth:`put` in its one-slot mailbox.

    ``handle`` raising does not end the thread: ``on_error(exc)`` is called (if given) and the next
    item is handled.  Not started: :meth:`put` only fills the mailbox.  Stopped: :meth:`put` drops.
    """

    def __init__(self, handle: Callable[[Any], None], name: str = "vla-decode",
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self._handle = handle
        self._on_error = on_error
        self._cond = threading.Condition()
        self._item: Any = None
        self._pending = False  # an item waits in the mailbox
        self._busy = False  # handle() runs
        self._stopping = False
        self.superseded = 0  # items replaced before they were handled
        self.handled = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> "DecodeWorker":
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def put(self, item: Any) -> bool:
        """Hand ``item`` over without waiting; True when it replaced one that was not handled yet (that
        one is dropped). After :meth:`stop` the item is dropped (False)."""
        with self._cond:
            if self._stopping:
                return False
            superseded = self._pending
            self._item, self._pending = item, True
            if superseded:
                self.superseded += 1
            self._cond.notify()
        return superseded

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until the mailbox is empty and nothing is being handled; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not (self._pending or self._busy) or self._stopping, timeout)

    def stop(self, timeout: float | None = 10.0) -> None:
        """Drop the waiting item (if any), let the running ``handle`` finish and end the thread (idempotent)."""
        with self._cond:
            self._stopping = True
            self._item, self._pending = None, False
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._stopping)
                if self._stopping:
                    return
                item, self._item, self._pending, self._busy = self._item, None, False, True
            try:
                self._handle(item)
            except BaseException as exc:  # noqa: BLE001 - keep serving frames
                if self._on_error is not None:
                    try:
                        self._on_error(exc)
                    except BaseException:  # noqa: BLE001 - nor may the error report end the thread
                        pass
            finally:
                del item  # the frame's buffer goes now, not when the next one arrives
                with self._cond:
                    self.handled += 1
                    self._busy = False
                    self._cond.notify_all()
