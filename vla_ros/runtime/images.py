"""sensor_msgs/Image fields -> an RGB uint8 array (what cv_bridge would do, for the encodings we use).

``decode_image`` takes the message's fields rather than the message, so it needs no ROS; every
malformed image raises :class:`ImageError` whose ``reason`` is a short key for the rejection
counters (``bad_size``, ``bad_encoding``, ``empty_image``, ``bad_step``) and whose text says what was wrong.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ENCODINGS", "ImageError", "decode_image"]

# encoding -> (channels, index of R, G, B in a pixel); mono is broadcast to three channels.
ENCODINGS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}

# Larger images are rejected before any copy (a 16k x 16k frame would take 768 MB).
MAX_PIXELS = 4096 * 4096


class ImageError(ValueError):
    """A malformed image; ``reason`` is a stable key for counters and throttled logs."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def decode_image(encoding: str, height: int, width: int, step: int, data) -> np.ndarray:
    """Image fields -> (height, width, 3) uint8 RGB array that owns its memory.

    ``data`` is any bytes-like object (rclpy gives ``array.array('B')``). Rows may be padded:
    ``step`` >= width * channels bytes per row, and ``len(data)`` must be ``step * height``.
    8-bit encodings have no byte order, so ``is_bigendian`` does not matter.
    """
    if encoding not in ENCODINGS:
        raise ImageError("bad_encoding", f"unsupported encoding {encoding!r}; publish one of {sorted(ENCODINGS)}")
    channels, rgb = ENCODINGS[encoding]
    if height <= 0 or width <= 0:
        raise ImageError("empty_image", f"image of {width}x{height} pixels has no pixels")
    if height * width > MAX_PIXELS:
        raise ImageError("bad_size", f"image of {width}x{height} pixels is larger than {MAX_PIXELS} pixels")
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageError("bad_step", f"step {step} is smaller than width * channels = {row_bytes} "
                                     f"for a {width}x{height} {encoding} image")
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size != step * height:
        raise ImageError("bad_size", f"data has {buf.size} bytes but step * height = {step} * {height} = "
                                     f"{step * height} for a {width}x{height} {encoding} image")
    pixels = buf.reshape(height, step)[:, :row_bytes].reshape(height, width, channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)  # a new array
    if rgb == (0, 1, 2) and channels == 3:
        return pixels.copy()  # the message's buffer is not ours to keep
    return np.ascontiguousarray(pixels[:, :, list(rgb)])  # fancy indexing copies
