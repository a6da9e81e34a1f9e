"""sensor_msgs/Image (and CompressedImage) fields -> an RGB uint8 array (what cv_bridge would do, for
the encodings we use), and the centre crop + downscale to the model's image size that the node applies on
arrival (and ``vla data from-bag`` to recorded frames).

``decode_image`` / ``decode_compressed`` take the message's fields rather than the message, so they
need no ROS; every
malformed image raises :class:`ImageError` whose ``reason`` is a short key for the rejection
counters (``bad_size``, ``bad_encoding``, ``empty_image``, ``bad_step``) and whose text says what was wrong.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ENCODINGS", "ImageError", "decode_image", "decode_compressed", "centre_crop", "downscale"]

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


def decode_compressed(format: str, data,  # noqa: A002 - the message field's name
                      min_size: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """sensor_msgs/CompressedImage fields -> ((H, W, 3) uint8 RGB, (height, width) as encoded), JPEG or PNG.

    ``format`` is image_transport's (``"jpeg"``, ``"png"``, ``"rgb8; jpeg compressed bgr8"``, ...):
    the data itself says what it is, so the format is only used in messages; colour JPEG/PNG
    decode to RGB whatever the camera's channel order was (the codec stores colour, not bytes).

    ``min_size``: the caller downscales to ``min_size`` x ``min_size`` anyway, so a JPEG is decoded
    at the smallest DCT scale (1/2, 1/4 or 1/8, libjpeg's) that keeps both sides at least
    ``min_size``: a 640x480 frame for a 128x128 model decodes at 320x240, about 2.8x less CPU
    per frame (decode + downscale) than decoding it whole, and the same picture within a grey
    level on average. PNG has no such scales and decodes whole.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    buf = bytes(data)
    if not buf:
        raise ImageError("empty_image", f"compressed image ({format!r}) has no data")
    try:
        with Image.open(io.BytesIO(buf)) as img:
            width, height = img.size
            if width * height > MAX_PIXELS:  # before decoding: the header is enough
                raise ImageError("bad_size", f"image of {width}x{height} pixels is larger than {MAX_PIXELS} pixels")
            if min_size:
                img.draft("RGB", (min_size, min_size))  # JPEG only; a no-op for other formats
            return np.asarray(img.convert("RGB")).copy(), (height, width)
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError("bad_encoding", f"compressed image ({format!r}, {len(buf)} bytes) does not decode as "
                                         f"JPEG or PNG: {exc}") from None


def centre_crop(image: np.ndarray) -> np.ndarray:
    """(H, W, C) -> the centred (min(H, W), min(H, W), C) square (a view): the model's cameras are
    square, and cropping keeps the geometry where squashing a 4:3 frame would not."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top:top + side, left:left + side]


def downscale(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8: centre-cropped to a square (:func:`centre_crop`),
    then area-averaged (Pillow's reducing bilinear), as the model sees every frame; an image
    already that size is returned as it is.  The node does this to every frame on arrival and
    ``vla data from-bag`` to every recorded frame, so training and deployment see the same pixels.

    The model resizes any other size itself (bilinear, no anti-aliasing); doing it here, once per
    frame on arrival, keeps 640x480 frames out of the history (50 kB per frame instead of 900 kB).
    """
    if image.shape[0] == size and image.shape[1] == size:
        return image
    from PIL import Image

    square = np.ascontiguousarray(centre_crop(image))
    if square.shape[0] == size:
        return square
    return np.array(Image.fromarray(square).resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0))
