"""Per-camera frame histories keyed on header stamps, and their alignment across cameras.

Every time is an integer of nanoseconds (``header.stamp`` as ``sec * 10**9 + nanosec``), so
stamps compare exactly.  A :class:`CameraHistory` keeps a camera's recent frames in stamp order;
:func:`align` picks, for every camera, the ``n`` frames closest to the target times::

    anchor, anchor - spacing, anchor - 2 * spacing, ...   (anchor = the oldest newest frame)

each within ``tolerance`` of its target, and measures how far the cameras' frames of the same
slot are apart (the skew).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = ["Frame", "CameraHistory", "Alignment", "align", "select_indices", "NS"]

NS = 1_000_000_000


@dataclass(frozen=True)
class Frame:
    stamp_ns: int
    image: np.ndarray  # (H, W, 3) uint8 RGB


class CameraHistory:
    """A camera's frames, oldest first, newer than ``newest - keep_ns`` and at most ``max_frames``."""

    def __init__(self, keep_ns: int, max_frames: int = 256) -> None:
        self.keep_ns = int(keep_ns)
        self.max_frames = max_frames
        self._stamps: list[int] = []
        self._frames: list[Frame] = []

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def newest(self) -> Frame | None:
        return self._frames[-1] if self._frames else None

    @property
    def shape(self) -> tuple[int, ...] | None:
        return self._frames[-1].image.shape if self._frames else None

    def clear(self) -> None:
        self._stamps.clear()
        self._frames.clear()

    def add(self, frame: Frame) -> None:
        """Append a frame newer than every stored one (the caller checks the order)."""
        if self._stamps and frame.stamp_ns <= self._stamps[-1]:
            raise ValueError(f"frame at {frame.stamp_ns} ns is not newer than {self._stamps[-1]} ns")
        self._stamps.append(frame.stamp_ns)
        self._frames.append(frame)
        cut = bisect.bisect_left(self._stamps, frame.stamp_ns - self.keep_ns)
        cut = max(cut, len(self._frames) - self.max_frames)
        if cut > 0:
            del self._stamps[:cut]
            del self._frames[:cut]

    def select(self, anchor_ns: int, n: int, spacing_ns: int, tolerance_ns: int) -> list[Frame | None]:
        """Oldest-first frames closest to ``anchor - i * spacing`` (i = n-1 .. 0) within tolerance.

        A frame is used for at most one slot; a slot without a frame is ``None``.
        """
        return self.select_at([anchor_ns - i * spacing_ns for i in range(n)][::-1], tolerance_ns)

    def select_at(self, targets: list[int | None], tolerance_ns: int) -> list[Frame | None]:
        """For each target time (oldest first), the closest unused frame within tolerance, or None."""
        picked = select_indices(self._stamps, targets, tolerance_ns)
        return [self._frames[k] if k is not None else None for k in picked]


def select_indices(stamps: Sequence[int], targets: Sequence[int | None], tolerance_ns: int,
                   hi: int | None = None) -> list[int | None]:
    """The node's frame selection, on stamps alone: for each target time (oldest first), the index
    of the closest stamp among ``stamps[:hi]`` (ascending) strictly within ``tolerance_ns``, or None.

    Targets are served newest first, so the newest slot gets the newest frame, and a stamp is
    used for at most one target.  ``hi`` limits the candidates to the frames that had arrived by
    then (``vla data from-bag`` passes the frames stamped at or before its sample time).
    """
    hi = len(stamps) if hi is None else hi
    picked: list[int | None] = []
    used: set[int] = set()
    for target in reversed(targets):
        if target is None:
            picked.append(None)
            continue
        j = bisect.bisect_left(stamps, target, 0, hi)
        best = None
        for k in (j - 1, j):
            if 0 <= k < hi and k not in used:
                d = abs(stamps[k] - target)
                if d < tolerance_ns and (best is None or d < abs(stamps[best] - target)):
                    best = k
        if best is not None:
            used.add(best)
        picked.append(best)
    return picked[::-1]


@dataclass
class Alignment:
    """Result of :func:`align`: ``frames`` per camera, oldest first (``None`` where a slot is empty)."""

    frames: dict[str, list[Frame | None]]
    anchor_ns: int
    missing: dict[str, int] = field(default_factory=dict)  # camera -> empty slots
    worst_skew_ns: int = 0  # largest |stamp difference| between cameras within one slot

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def stamp_ns(self) -> int:
        """Stamp of the newest frame used (the prediction's time)."""
        return max(f[-1].stamp_ns for f in self.frames.values() if f and f[-1] is not None)

    def images(self, camera: str) -> list[np.ndarray]:
        return [f.image for f in self.frames[camera]]  # type: ignore[union-attr]


def align(histories: dict[str, CameraHistory], n: int, spacing_ns: int, tolerance_ns: int) -> Alignment:
    """Pick ``n`` frames per camera at the common target times (all histories must be non-empty).

    The first camera (the reference, ``ego``) picks the frames closest to the target times; every
    other camera picks, for each slot, its frame closest to the reference frame of that slot, so
    the skew measures how far the cameras disagree, not how far each is from the target.
    """
    anchor = min(h.newest.stamp_ns for h in histories.values())  # type: ignore[union-attr]
    ref_cam, *others = histories
    frames = {ref_cam: histories[ref_cam].select(anchor, n, spacing_ns, tolerance_ns)}
    ref_stamps = [f.stamp_ns if f is not None else None for f in frames[ref_cam]]
    for cam in others:
        frames[cam] = histories[cam].select_at(ref_stamps, tolerance_ns)
    missing = {cam: sum(f is None for f in fr) for cam, fr in frames.items() if any(f is None for f in fr)}
    skew = 0
    for slot in range(n):
        stamps = [fr[slot].stamp_ns for fr in frames.values() if fr[slot] is not None]
        if len(stamps) > 1:
            skew = max(skew, max(stamps) - min(stamps))
    return Alignment(frames, anchor, missing, skew)
