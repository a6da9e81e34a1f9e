"""Small raster helpers of the cameras (numpy): convex polygon fill, box downsampling, separable
bilinear lookup; and the colours of the simulated world."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["fill_convex", "downsample", "bilinear"]

SKY_TOP = np.array([95, 150, 220], np.float32)
SKY_HORIZON = np.array([195, 215, 235], np.float32)
HAZE = np.array([180, 195, 200], np.float32)
GRASS = np.array([88, 128, 58], np.float32)
ROAD = np.array([92, 92, 98], np.float32)
EDGE = np.array([240, 240, 240], np.float32)
CENTRE = np.array([240, 200, 40], np.float32)
ROBOT = np.array([250, 250, 250], np.float32)
OUTLINE = np.array([20, 20, 20], np.float32)


# ---------------------------------------------------------------------------------------------
# small raster helpers
# ---------------------------------------------------------------------------------------------


def fill_convex(img: np.ndarray, pts, colour) -> None:
    """Fill a convex polygon into ``img`` (H, W, C) in place.

    ``pts`` (K, 2) are (column, row) coordinates where pixel (i, j) covers [j, j+1) x [i, i+1)
    (its centre is at j + 0.5, i + 0.5). ``colour`` has C (or 3, alpha kept) entries.
    """
    p = np.asarray(pts, dtype=np.float64).tolist()  # small: plain Python is faster than numpy here
    k = len(p)
    if k < 3:
        return
    xs = [q[0] for q in p]
    ys = [q[1] for q in p]
    lo_x, hi_x, lo_y, hi_y = min(xs), max(xs), min(ys), max(ys)
    if not all(map(math.isfinite, (lo_x, hi_x, lo_y, hi_y))):
        return
    h, w = img.shape[:2]
    j0 = max(int(lo_x - 0.5), 0)
    j1 = min(int(hi_x + 1.5), w)
    i0 = max(int(lo_y - 0.5), 0)
    i1 = min(int(hi_y + 1.5), h)
    if j0 >= j1 or i0 >= i1:
        return
    area = 0.0
    for m in range(k):
        n = (m + 1) % k
        area += xs[m] * ys[n] - xs[n] * ys[m]
    if abs(area) < 1e-9:
        return
    sgn = 1.0 if area > 0 else -1.0
    ex = [sgn * (xs[(m + 1) % k] - xs[m]) for m in range(k)]
    ey = [sgn * (ys[(m + 1) % k] - ys[m]) for m in range(k)]
    # inside <=> for every edge m: ex_m * (py - y_m) >= ey_m * (px - x_m)
    px = np.arange(j0 + 0.5, j1, 1.0)
    py = np.arange(i0 + 0.5, i1, 1.0)
    a_y = (py[None, :] - np.array(ys)[:, None]) * np.array(ex)[:, None]  # (k, h)
    a_x = (px[None, :] - np.array(xs)[:, None]) * np.array(ey)[:, None]  # (k, w)
    mask = (a_y[:, :, None] >= a_x[:, None, :]).all(0)
    col = [min(max(int(c), 0), 255) for c in colour]
    img[i0:i1, j0:j1][mask, : len(col)] = col


def downsample(img: np.ndarray, ss: int) -> np.ndarray:
    """(S, S, C) uint8 -> (S/ss, S/ss, 3) uint8 by box averaging (drops a 4th channel)."""
    if ss == 1:
        return np.array(img[..., :3], dtype=np.uint8, order="C")  # always a copy (img is a reused buffer)
    S, _, C = img.shape
    h = S // ss
    a = img.reshape(h, ss, S * C)
    rows = a[:, 0].astype(np.uint16)
    for k in range(1, ss):
        rows += a[:, k]
    b = rows.reshape(h, h, ss, C)
    acc = b[:, :, 0, :3].copy()
    for k in range(1, ss):
        acc += b[:, :, k, :3]
    acc += (ss * ss) // 2
    acc //= ss * ss
    return acc.astype(np.uint8)


def bilinear(grid: np.ndarray, fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``grid`` (H, W) at fractional indices (fy[:, None], fx[None, :]),
    separably (rows, then columns); float32 result."""
    h, w = grid.shape
    g = np.asarray(grid, dtype=np.float32)
    y0 = np.clip(np.floor(fy).astype(np.int64), 0, h - 2)
    x0 = np.clip(np.floor(fx).astype(np.int64), 0, w - 2)
    wy = np.clip(fy - y0, 0, 1).astype(np.float32)[:, None]
    wx = np.clip(fx - x0, 0, 1).astype(np.float32)[None, :]
    rows = g[y0]
    rows += (g[y0 + 1] - rows) * wy  # (len(fy), w)
    out = rows[:, x0]
    out += (rows[:, x0 + 1] - out) * wx
    return out
