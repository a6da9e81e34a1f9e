"""The API's input checks: frames, commands and odometry, with messages that say what to send."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vla_ros.config import MAX_ODOMETRY
from vla_ros.errors import InputError

__all__ = ["MAX_COMMAND_CHARS", "MIN_IMAGE_SIDE", "check_command", "check_frames", "check_odometry"]

MAX_COMMAND_CHARS = 2000  # longer commands are rejected (the text encoder reads 64 tokens anyway)
MIN_IMAGE_SIDE = 8


def check_frames(frames: Any, name: str, T: int) -> list[np.ndarray]:
    """-> list of ``T`` (the model's history length) contiguous uint8 (H, W, 3) arrays, oldest first."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    if isinstance(frames, np.ndarray):
        if frames.ndim == 3:
            frames = [frames] * T  # a single frame: a still history
        elif frames.ndim == 4:
            frames = list(frames)
        else:
            raise InputError(f"{name}: expected (H, W, 3) or ({T}, H, W, 3), got array of shape {frames.shape}")
    if not isinstance(frames, (list, tuple)):
        raise InputError(f"{name}: expected a list of {T} (H, W, 3) uint8 images or an array, "
                         f"got {type(frames).__name__}")
    if len(frames) == 1:
        frames = list(frames) * T
    if len(frames) != T:
        raise InputError(f"{name}: expected {T} frames (the model's history) or 1, got {len(frames)}")
    out = []
    for i, f in enumerate(frames):
        if isinstance(f, torch.Tensor):
            f = f.detach().cpu().numpy()
        if not isinstance(f, np.ndarray):
            raise InputError(f"{name}[{i}]: expected a numpy array, got {type(f).__name__}")
        if f.dtype != np.uint8:
            raise InputError(f"{name}[{i}]: expected dtype uint8 (RGB 0..255), got {f.dtype}")
        if f.ndim != 3 or f.shape[2] != 3:
            raise InputError(f"{name}[{i}]: expected shape (H, W, 3) RGB, got {f.shape}")
        if min(f.shape[:2]) < MIN_IMAGE_SIDE:
            raise InputError(f"{name}[{i}]: image of {f.shape[1]}x{f.shape[0]} is too small "
                             f"(at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE})")
        out.append(np.ascontiguousarray(f))
    return out


def check_command(instruction: Any) -> str:
    if not isinstance(instruction, str):
        raise InputError(f"instruction: expected a string, got {type(instruction).__name__}")
    text = " ".join(instruction.split())
    if not text:
        raise InputError("instruction: the command is empty; say what the robot should do")
    if len(text) > MAX_COMMAND_CHARS:
        raise InputError(f"instruction: the command has {len(text)} characters, more than "
                         f"{MAX_COMMAND_CHARS}; send a short command")
    return text


def check_odometry(odometry: Any, batch: int = 1) -> np.ndarray | None:
    """None, or (v m/s, omega rad/s) per row -> (batch, 2) float32 (None: unknown)."""
    if odometry is None:
        return None
    try:
        o = np.asarray(odometry, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"odometry: expected (v, omega) numbers or None, got {type(odometry).__name__}") from None
    if not (o.shape == (batch, 2) or (batch == 1 and o.shape == (2,))):
        raise InputError(f"odometry: expected shape (2,) = (v m/s, omega rad/s)"
                         f"{'' if batch == 1 else f' or ({batch}, 2)'} or None, got {o.shape}")
    o = o.reshape(-1, 2)
    if not np.isfinite(o).all():
        raise InputError(f"odometry: non-finite values {o.tolist()}; pass None when the velocity is unknown")
    if np.abs(o).max() > MAX_ODOMETRY:
        raise InputError(f"odometry: |value| {np.abs(o).max():.3g} exceeds {MAX_ODOMETRY} (m/s or rad/s); "
                         "is it in the right units (v m/s, omega rad/s, robot frame)?")
    return o.astype(np.float32)
