"""The scan guard: a model-agnostic safety layer that never drives a plan into what a laser sees.

What it needs: a 2-D laser scan (``sensor_msgs/LaserScan`` on ``scan``) from a scanner whose pose in
the robot frame is known (``scan_x``, ``scan_y``, ``scan_yaw``), fresh (``scan_max_age``), and the
robot's footprint as a disc (``robot_radius``).  What it does to each trajectory (robot frame at the
observation; the scan is taken to be in that frame too, so the robot's motion between the scan and
the observation, ``scan_max_age`` at most, is an error the margin must absorb):

* the path from the robot (the origin) through the waypoints is walked in steps of ``STEP_M``;
* the robot's clearance at a point is its distance to the nearest scan point minus ``robot_radius``;
* the plan may not bring the clearance below ``min(margin, clearance now)``: from a safe pose it keeps
  ``margin`` to every scan point, and from a pose already closer than that it may turn, back away or
  slide along, never get closer;
* from the first point that breaks this rule, every remaining waypoint holds the last point that did
  not (its heading interpolated), so the robot stops there; a plan blocked from its start holds the
  origin (stay where you are).

It knows nothing of the model: the plan of any policy, learned or not, goes through the same cut.
No scan, or a stale one, stops the robot (the node reports ``STATUS_STOP_NO_SCAN``).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from vla_ros.runtime.history import NS

__all__ = ["STEP_M", "Scan", "GuardResult", "ScanGuard", "scan_points", "guard_trajectory"]

STEP_M = 0.05  # path sampling step (m): far below the robot's radius, so no obstacle slips between samples


@dataclass(frozen=True)
class Scan:
    """One laser scan as ``sensor_msgs/LaserScan`` carries it (ranges in metres, angles in radians)."""

    stamp_ns: int
    angle_min: float
    angle_increment: float
    range_min: float
    range_max: float
    ranges: np.ndarray  # (N,) float32; out-of-range / no-return beams are inf, NaN or outside [min, max]


def scan_points(scan: Scan, pose: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """(M, 2) float64 robot-frame points of the beams with a valid return; ``pose`` = the scanner's
    (x, y, yaw) in the robot frame."""
    r = np.asarray(scan.ranges, dtype=np.float64).reshape(-1)
    a = scan.angle_min + scan.angle_increment * np.arange(r.size) + pose[2]
    ok = np.isfinite(r) & (r >= scan.range_min) & (r <= scan.range_max)
    r, a = r[ok], a[ok]
    return np.stack([pose[0] + r * np.cos(a), pose[1] + r * np.sin(a)], axis=1)


def _path_samples(traj: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points every ``STEP_M`` along origin -> traj[0] -> traj[1] ... -> (points (S, 2), waypoint index
    of each point's segment (S,), fraction along that segment (S,)).  The origin is sample 0."""
    xy = np.concatenate([np.zeros((1, 2)), traj[:, :2]], axis=0)
    pts, seg, frac = [np.zeros((1, 2))], [np.array([-1])], [np.array([1.0])]
    for k in range(len(traj)):
        n = max(1, int(math.ceil(float(np.hypot(*(xy[k + 1] - xy[k]))) / STEP_M)))
        u = np.arange(1, n + 1) / n
        pts.append(xy[k] + u[:, None] * (xy[k + 1] - xy[k]))
        seg.append(np.full(n, k))
        frac.append(u)
    return np.concatenate(pts), np.concatenate(seg), np.concatenate(frac)


def _clearances(points: np.ndarray, obstacles: np.ndarray, robot_radius: float) -> np.ndarray:
    """(S,) distance from each path point to the nearest obstacle point minus the robot's radius."""
    if len(obstacles) == 0:
        return np.full(len(points), np.inf)
    d = np.hypot(points[:, None, 0] - obstacles[None, :, 0], points[:, None, 1] - obstacles[None, :, 1])
    return d.min(axis=1) - robot_radius


@dataclass(frozen=True)
class GuardResult:
    trajectory: np.ndarray  # (T, 3) the plan, cut where it would come too close (same dtype as given)
    kept: int  # waypoints left as planned; T = untouched, 0 = the robot holds where it is
    clearance: float  # the robot's clearance now (m; inf: nothing seen)
    blocked_at: float  # clearance at the first point that broke the rule (m; nan when untouched)


def guard_trajectory(traj: np.ndarray, obstacles: np.ndarray, robot_radius: float, margin: float) -> GuardResult:
    """Cut ``traj`` (T, 3) x, y, heading in the robot frame before it brings the robot's disc closer
    than ``min(margin, clearance now)`` to any of ``obstacles`` (M, 2) (see the module's docstring)."""
    traj = np.asarray(traj)
    reach = float(np.hypot(traj[:, 0], traj[:, 1]).max(initial=0.0)) + robot_radius + margin + STEP_M
    obstacles = np.asarray(obstacles, dtype=np.float64).reshape(-1, 2)
    dist = np.hypot(obstacles[:, 0], obstacles[:, 1])
    now = float(dist.min(initial=np.inf)) - robot_radius  # the robot's clearance where it stands
    pts, seg, frac = _path_samples(traj.astype(np.float64))
    clear = _clearances(pts, obstacles[dist <= reach], robot_radius)
    bad = np.flatnonzero(clear[1:] < min(margin, now) - 1e-9)
    if bad.size == 0:
        return GuardResult(traj, len(traj), now, float("nan"))
    first = int(bad[0]) + 1  # index into the samples (sample 0, the origin, always passes)
    k = int(seg[first])
    prev_yaw = float(traj[k - 1, 2]) if k > 0 else 0.0
    u = float(frac[first - 1]) if seg[first - 1] == k else 0.0
    hold = np.array([*pts[first - 1], prev_yaw + u * (float(traj[k, 2]) - prev_yaw)])
    out = np.array(traj, copy=True)
    out[k:] = hold.astype(out.dtype)
    return GuardResult(out, k, now, float(clear[first]))


class ScanGuard:
    """The newest scan (thread-safe) and the cut of every plan against it.

    ``on_scan`` is called from the scan subscription, ``problem`` and ``apply`` from the tick."""

    def __init__(self, robot_radius: float, margin: float, max_age: float,
                 pose: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
        self.robot_radius, self.margin, self.pose = float(robot_radius), float(margin), tuple(map(float, pose))
        self._max_age_ns = int(round(max_age * NS))
        self._lock = threading.Lock()
        self._scan: Scan | None = None
        self._points: np.ndarray | None = None
        self.scans = 0
        self.cut = 0  # plans cut short
        self.held = 0  # plans cut to nothing (the robot held where it was)
        self.last: GuardResult | None = None

    @classmethod
    def from_config(cls, cfg) -> "ScanGuard":
        """From a NodeConfig (``robot_radius``, ``scan_margin``, ``scan_max_age``, ``scan_x/y/yaw``)."""
        return cls(cfg.robot_radius, cfg.scan_margin, cfg.scan_max_age, (cfg.scan_x, cfg.scan_y, cfg.scan_yaw))

    def on_scan(self, scan: Scan) -> str | None:
        """Store ``scan``; returns why it was rejected (kept the previous one), None when taken."""
        r = np.asarray(scan.ranges)
        if r.ndim != 1 or r.size == 0:
            return "scan: no ranges"
        if not (math.isfinite(scan.angle_min) and math.isfinite(scan.angle_increment) and scan.angle_increment != 0):
            return f"scan: angle_min={scan.angle_min}, angle_increment={scan.angle_increment} are not usable"
        if scan.stamp_ns <= 0:
            return "scan: header.stamp is 0; scans must be stamped"
        points = scan_points(scan, self.pose)
        with self._lock:
            self._scan, self._points = scan, points
            self.scans += 1
        return None

    def problem(self, now_ns: int) -> tuple[str, str] | None:
        """(reason, key) when the scan cannot be used at ``now_ns``; None when it can."""
        with self._lock:
            scan = self._scan
        if scan is None:
            return "scan guard: no laser scan yet (topic scan)", "no_scan"
        age = (now_ns - scan.stamp_ns) / NS
        if abs(age) > self._max_age_ns / NS:
            when = f"{age:.2f} s old" if age > 0 else f"stamped {-age:.2f} s ahead of the node clock"
            return f"scan guard: the laser scan is {when} (scan_max_age {self._max_age_ns / NS:g} s)", "stale_scan"
        return None

    def diagnostics(self, now_ns: int) -> list[tuple[str, str]]:
        """Key/value pairs for the node's diagnostics."""
        with self._lock:
            scan = self._scan
        last = self.last
        return [("scan_age_s", "none" if scan is None else f"{(now_ns - scan.stamp_ns) / NS:.3f}"),
                ("scans", str(self.scans)), ("scan_guard_cut", str(self.cut)), ("scan_guard_held", str(self.held)),
                ("scan_clearance_m", "none" if last is None else f"{last.clearance:.2f}")]

    def apply(self, traj: np.ndarray) -> GuardResult:
        """``traj`` (T, 3) robot frame, cut against the newest scan (call after ``problem`` said None)."""
        with self._lock:
            points = self._points
        result = guard_trajectory(traj, points if points is not None else np.zeros((0, 2)),
                                  self.robot_radius, self.margin)
        self.last = result
        if result.kept < len(traj):
            self.cut += 1
            self.held += result.kept == 0
        return result
