"""Run-time statistics for diagnostics: latency percentiles, achieved rate, counters, log throttling."""

from __future__ import annotations

import collections
import time
from typing import Callable

import numpy as np

__all__ = ["LatencyWindow", "RateMeter", "Throttle"]


class LatencyWindow:
    """The last ``size`` latencies (seconds) and their percentiles."""

    def __init__(self, size: int = 100) -> None:
        self._values: collections.deque[float] = collections.deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._values)

    def add(self, seconds: float) -> None:
        self._values.append(float(seconds))

    def percentile(self, q: float) -> float:
        """q-th percentile in seconds; NaN when empty."""
        return float(np.percentile(self._values, q)) if self._values else float("nan")


class RateMeter:
    """Events per second over the last ``window`` seconds (monotonic clock)."""

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._times: collections.deque[float] = collections.deque()

    def mark(self) -> None:
        self._times.append(self._clock())
        self._trim()

    def _trim(self) -> None:
        cutoff = self._clock() - self.window
        while self._times and self._times[0] < cutoff:
            self._times.popleft()

    def rate(self) -> float:
        """(events - 1) / span between first and last event in the window; 0 with fewer than 2."""
        self._trim()
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


class Throttle:
    """Log a message of each ``key`` at most once per ``period`` seconds, counting the ones skipped."""

    def __init__(self, period: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.period = period
        self._clock = clock
        self._last: dict[str, float] = {}
        self._skipped: collections.Counter[str] = collections.Counter()

    def __call__(self, key: str) -> int | None:
        """None: stay quiet; otherwise log now, and the number of messages skipped since the last one."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            self._skipped[key] += 1
            return None
        self._last[key] = now
        return self._skipped.pop(key, 0)
