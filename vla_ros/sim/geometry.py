"""Poses, frames, unicycle kinematics and the lane centre-line (numpy only).

Conventions (used everywhere in ``vla_ros.sim`` and ``vla_ros.data``):

* world frame: x east, y north (metres), yaw counter-clockwise from +x (radians);
* robot frame: x forward, y left, yaw relative to the robot's heading;
* a robot state is ``[x, y, yaw, v, omega]`` (world frame, m/s, rad/s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import WorldConfig

__all__ = [
    "wrap_angle",
    "unicycle_step",
    "world_to_robot",
    "robot_to_world",
    "Lane",
    "make_lane",
]


def wrap_angle(a):
    """Wrap angle(s) to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def approach(cur: float, target: float, up: float, down: float) -> float:
    """Move ``cur`` toward ``target`` by at most ``up`` (growing |cur|) / ``down`` (shrinking |cur|)."""
    diff = target - cur
    step = up if (abs(target) > abs(cur) and target * cur >= 0) else down
    if diff > step:
        return cur + step
    if diff < -step:
        return cur - step
    return target


def step_tuple(state, v_cmd: float, omega_cmd: float, config: WorldConfig, dt: float | None = None) -> tuple:
    """:func:`unicycle_step` on plain floats (fast path for rollouts); returns a 5-tuple."""
    dt = config.sim_dt if dt is None else dt
    x, y, yaw, v, w = state[0], state[1], state[2], state[3], state[4]
    vmax, wmax = config.max_speed, config.max_yaw_rate
    v_cmd = vmax if v_cmd > vmax else (-vmax if v_cmd < -vmax else v_cmd)
    omega_cmd = wmax if omega_cmd > wmax else (-wmax if omega_cmd < -wmax else omega_cmd)
    v_new = approach(v, v_cmd, config.max_accel * dt, config.max_decel * dt)
    w_new = approach(w, omega_cmd, config.max_yaw_accel * dt, config.max_yaw_accel * dt)
    yaw_mid = yaw + 0.5 * w_new * dt
    x += v_new * math.cos(yaw_mid) * dt
    y += v_new * math.sin(yaw_mid) * dt
    yaw = (yaw + w_new * dt + math.pi) % (2 * math.pi) - math.pi
    return (x, y, yaw, v_new, w_new)


def unicycle_step(state, v_cmd: float, omega_cmd: float, config: WorldConfig, dt: float | None = None):
    """One step of the unicycle with command and acceleration limits.

    The commands are clipped to ``max_speed``/``max_yaw_rate``; v follows its command at
    ``max_accel`` (speeding up) / ``max_decel`` (slowing down), omega at ``max_yaw_accel``;
    the pose integrates with the new (v, omega) at the mid-step heading.
    Returns a new ``float64`` state ``[x, y, yaw, v, omega]``.
    """
    st = [float(state[i]) for i in range(5)]
    return np.array(step_tuple(st, float(v_cmd), float(omega_cmd), config, dt), dtype=np.float64)


def world_to_robot(poses, state) -> np.ndarray:
    """World-frame points ``(..., 2)`` or poses ``(..., 3)`` into the frame of robot ``state``."""
    poses = np.asarray(poses, dtype=np.float64)
    x0, y0, yaw0 = float(state[0]), float(state[1]), float(state[2])
    c, s = math.cos(yaw0), math.sin(yaw0)
    dx, dy = poses[..., 0] - x0, poses[..., 1] - y0
    out = np.empty_like(poses)
    out[..., 0] = c * dx + s * dy
    out[..., 1] = -s * dx + c * dy
    if poses.shape[-1] >= 3:
        out[..., 2] = wrap_angle(poses[..., 2] - yaw0)
        out[..., 3:] = poses[..., 3:]
    return out


def robot_to_world(poses, state) -> np.ndarray:
    """Robot-frame points ``(..., 2)`` or poses ``(..., 3)`` (e.g. a trajectory) into the world frame."""
    poses = np.asarray(poses, dtype=np.float64)
    x0, y0, yaw0 = float(state[0]), float(state[1]), float(state[2])
    c, s = math.cos(yaw0), math.sin(yaw0)
    px, py = poses[..., 0], poses[..., 1]
    out = np.empty_like(poses)
    out[..., 0] = x0 + c * px - s * py
    out[..., 1] = y0 + s * px + c * py
    if poses.shape[-1] >= 3:
        out[..., 2] = wrap_angle(poses[..., 2] + yaw0)
        out[..., 3:] = poses[..., 3:]
    return out


@dataclass
class Lane:
    """A road: a dense centre-line polyline (``points`` every ``ds`` metres) and a width."""

    points: np.ndarray  # (N, 2) world frame
    width: float
    params: dict  # how it was generated (for the metadata)

    _STRIDE = 5

    def __post_init__(self) -> None:
        self.points = np.ascontiguousarray(self.points, dtype=np.float64)
        d = np.diff(self.points, axis=0)
        seg = np.hypot(d[:, 0], d[:, 1])
        self.s = np.concatenate([[0.0], np.cumsum(seg)])  # arc length at each vertex
        t = np.gradient(self.points, axis=0)
        self.tangents = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
        self.headings = np.arctan2(self.tangents[:, 1], self.tangents[:, 0])

    @property
    def half_width(self) -> float:
        return 0.5 * self.width

    def nearest(self, xy) -> tuple[np.ndarray, np.ndarray]:
        """Index of the nearest centre-line vertex and the signed lateral offset (+ = left of the
        lane direction) for points ``xy`` ``(..., 2)``.

        Two-level search: the nearest of every ``_STRIDE``-th vertex, then the exact nearest
        within two strides of it (exact for points within a few metres of the smooth road).
        """
        xy = np.asarray(xy, dtype=np.float64)
        flat = xy.reshape(-1, 2)
        pts = self.points
        k = self._STRIDE
        coarse = pts[::k]
        # plain broadcasting, no BLAS (its threads oversubscribe small machines)
        d2 = (flat[:, 0:1] - coarse[None, :, 0]) ** 2 + (flat[:, 1:2] - coarse[None, :, 1]) ** 2
        ci = np.argmin(d2, axis=1) * k
        win = np.arange(-2 * k, 2 * k + 1)
        cand = np.clip(ci[:, None] + win[None, :], 0, len(pts) - 1)
        diff = pts[cand] - flat[:, None, :]
        j = np.argmin((diff ** 2).sum(-1), axis=1)
        idx = cand[np.arange(len(flat)), j]
        rel = flat - pts[idx]
        tan = self.tangents[idx]
        lateral = tan[:, 0] * rel[:, 1] - tan[:, 1] * rel[:, 0]
        along = tan[:, 0] * rel[:, 0] + tan[:, 1] * rel[:, 1]
        # at the two ends the nearest vertex is the end point: the offset is the plain distance
        end = (idx == 0) & (along < 0) | (idx == len(pts) - 1) & (along > 0)
        dist = np.hypot(rel[:, 0], rel[:, 1])
        lateral = np.where(end, np.sign(lateral + 1e-12) * dist, lateral)
        return idx.reshape(xy.shape[:-1]), lateral.reshape(xy.shape[:-1])

    def index_grid(self, extent: float, res: float = 0.2) -> np.ndarray:
        """Nearest-vertex index for the nodes of a grid over ``[-extent, extent]^2`` (row 0 = north,
        node (i, j) at x = -extent + j res, y = extent - i res); cached."""
        key = (round(extent, 6), round(res, 6))
        cache = self.__dict__.setdefault("_grids", {})
        if key not in cache:
            nc = int(math.ceil(2 * extent / res)) + 1
            gx, gy = np.meshgrid(-extent + np.arange(nc) * res, extent - np.arange(nc) * res)
            cache[key] = self.nearest(np.stack([gx.ravel(), gy.ravel()], 1))[0].reshape(nc, nc)
        return cache[key]

    def nearest_index(self, x: float, y: float) -> int:
        """Index of the nearest centre-line vertex to one point (fast: grid guess + local search)."""
        ext = float(self.params.get("grid_extent", 10.0))
        res = 0.2
        j = int(round((x + ext) / res))
        i = int(round((ext - y) / res))
        grid = self.index_grid(ext, res)
        if not (0 <= i < grid.shape[0] and 0 <= j < grid.shape[1]):
            return int(self.nearest(np.array([x, y]))[0])
        k = int(grid[i, j])
        pts = self.points
        last = len(pts) - 1

        def d2(m: int) -> float:
            p = pts[m]
            return (p[0] - x) ** 2 + (p[1] - y) ** 2

        best = d2(k)
        for step in (1, -1):  # hill-climb along the polyline
            while 0 <= k + step <= last:
                d = d2(k + step)
                if d >= best:
                    break
                k, best = k + step, d
        return k

    def distance(self, xy) -> np.ndarray:
        """Unsigned distance of points ``(..., 2)`` to the centre-line."""
        return np.abs(self.nearest(xy)[1])

    def contains(self, xy) -> np.ndarray:
        """True where a point lies on the road (distance to the centre-line <= half width)."""
        return self.distance(xy) <= self.half_width

    def to_dict(self) -> dict:
        return {"width": float(self.width), "points": self.points.tolist(), "params": self.params}

    @classmethod
    def from_dict(cls, d: dict) -> "Lane":
        return cls(points=np.asarray(d["points"], dtype=np.float64), width=float(d["width"]),
                   params=dict(d.get("params", {})))


def make_lane(rng: np.random.Generator, config: WorldConfig, ds: float = 0.1) -> Lane:
    """A smooth random road through the middle of the arena.

    Curvature along the arc length is ``a + b * sin(2 pi s / period + phase)`` clipped to
    ``lane_max_curvature``; the centre-line passes through ``origin`` (near the arena centre)
    with heading ``heading`` and runs ``arena_size`` metres to either side.
    """
    kmax = config.lane_max_curvature
    origin = rng.uniform(-1.5, 1.5, size=2)
    heading = float(rng.uniform(-np.pi, np.pi))
    a = float(rng.uniform(-0.6, 0.6) * kmax)
    b = float(rng.uniform(0.0, 0.6) * kmax)
    period = float(rng.uniform(8.0, 16.0))
    phase = float(rng.uniform(0, 2 * np.pi))
    half_len = config.arena_size
    n = int(round(half_len / ds))
    s = np.arange(-n, n + 1) * ds
    kappa = np.clip(a + b * np.sin(2 * np.pi * s / period + phase), -kmax, kmax)
    # integrate heading and position outward from s = 0 in both directions (midpoint rule)
    theta = np.empty_like(s)
    theta[n] = heading
    k_mid = 0.5 * (kappa[1:] + kappa[:-1])
    theta[n + 1:] = heading + np.cumsum(k_mid[n:] * ds)
    theta[:n] = heading - np.cumsum(k_mid[:n][::-1] * ds)[::-1]
    pts = np.empty((len(s), 2))
    pts[n] = origin
    th_mid = 0.5 * (theta[1:] + theta[:-1])
    step = np.stack([np.cos(th_mid), np.sin(th_mid)], axis=1) * ds
    pts[n + 1:] = origin + np.cumsum(step[n:], axis=0)
    pts[:n] = origin - np.cumsum(step[:n][::-1], axis=0)[::-1]
    params = {"origin": [float(origin[0]), float(origin[1])], "heading": heading, "curvature_mean": a,
              "curvature_amplitude": b, "curvature_period": period, "curvature_phase": phase,
              "half_length": half_len, "ds": ds, "grid_extent": config.arena_size / 2 + 4.0}
    return Lane(points=pts, width=config.lane_width, params=params)
