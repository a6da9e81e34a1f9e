"""A simulated 2-D laser scanner: what a planar lidar at the robot's centre sees of the world.

Rays from the robot's pose hit the obstacles (barrels as circles, boxes as squares) and the cones
(circles of their base radius); the lane is paint on the ground, invisible to a laser.  The scan
follows ``sensor_msgs/LaserScan``: beam i at ``angle_min + i * angle_increment`` in the robot frame
(counter-clockwise from straight ahead), range in metres, ``inf`` where nothing is within range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..runtime.scan_guard import Scan
from .layout import Layout

__all__ = ["LidarSpec", "lidar_ranges", "world_scan"]


@dataclass(frozen=True)
class LidarSpec:
    beams: int = 360  # over the full circle: one beam per degree
    range_min: float = 0.05  # m
    range_max: float = 8.0  # m

    @property
    def angle_min(self) -> float:
        return -math.pi

    @property
    def angle_increment(self) -> float:
        return 2.0 * math.pi / self.beams


def _hit_circles(origin: np.ndarray, dirs: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """(N,) nearest positive hit distance of unit rays ``dirs`` (N, 2) with circles (C, 2), (C,)."""
    oc = centres[None, :, :] - origin[None, None, :]  # (1, C, 2)
    along = (dirs[:, None, :] * oc).sum(-1)  # (N, C) projection of the centre on the ray
    perp2 = (oc ** 2).sum(-1) - along ** 2
    half = np.sqrt(np.maximum(radii[None, :] ** 2 - perp2, 0.0))
    near = np.where(along - half > 0, along - half, along + half)  # inside a circle: its far side
    hit = (perp2 <= radii[None, :] ** 2) & (near > 0)
    return np.where(hit, near, np.inf).min(axis=1, initial=np.inf)


def _hit_segments(origin: np.ndarray, dirs: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) nearest positive hit distance of unit rays (N, 2) with segments a -> b, each (S, 2)."""
    e = b - a  # (S, 2)
    w = a[None, :, :] - origin[None, None, :]  # (1, S, 2)
    cross = lambda p, q: p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]  # noqa: E731
    den = cross(dirs[:, None, :], e[None, :, :])  # (N, S)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = cross(w, e[None, :, :]) / den  # distance along the ray
        s = cross(w, dirs[:, None, :]) / den  # position along the segment
    hit = (np.abs(den) > 1e-12) & (t > 0) & (s >= 0) & (s <= 1)
    return np.where(hit, t, np.inf).min(axis=1, initial=np.inf)


def lidar_ranges(layout: Layout, state, spec: LidarSpec = LidarSpec()) -> np.ndarray:
    """(beams,) float32 ranges seen from the robot's ``state`` (x, y, yaw, ...) in ``layout``."""
    origin = np.asarray(state[:2], dtype=np.float64)
    angles = float(state[2]) + spec.angle_min + spec.angle_increment * np.arange(spec.beams)
    dirs = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    circles = [(o.x, o.y, o.size) for o in layout.obstacles if o.shape != "box"]
    circles += [(c.x, c.y, c.radius) for c in layout.cones]
    best = np.full(spec.beams, np.inf)
    if circles:
        c = np.asarray(circles, dtype=np.float64)
        best = np.minimum(best, _hit_circles(origin, dirs, c[:, :2], c[:, 2]))
    boxes = [o.corners() for o in layout.obstacles if o.shape == "box"]
    if boxes:
        corners = np.concatenate(boxes)  # (4B, 2), each box counter-clockwise
        nxt = np.concatenate([np.roll(bx, -1, axis=0) for bx in boxes])
        best = np.minimum(best, _hit_segments(origin, dirs, corners, nxt))
    best[(best < spec.range_min) | (best > spec.range_max)] = np.inf
    return best.astype(np.float32)


def world_scan(world, stamp_ns: int, spec: LidarSpec = LidarSpec()) -> Scan:
    """The scan a ``World`` gives at its robot's state now, stamped ``stamp_ns`` (what sim_node publishes)."""
    return Scan(int(stamp_ns), spec.angle_min, spec.angle_increment, spec.range_min, spec.range_max,
                lidar_ranges(world.layout, world.state, spec))
