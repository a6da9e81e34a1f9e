"""Trajectory tracking without ROS: the one controller that sim_node, ``vla sim --no-ros`` and
``trajectory_follower`` all run (no rclpy, no torch).

* :class:`PoseHistory` -- the robot's recent poses keyed on stamps, so that a trajectory predicted
  from the observation at ``header.stamp`` is placed in the world with the pose *at that stamp*
  (not the pose when it arrived);
* :class:`Plan` / :class:`TrajectoryTracker` -- a tracking controller that honours the stamps:
  waypoint k is the pose wanted at ``stamp + (k + 1) * dt``; the reference at time t is
  interpolated between the waypoints around t, so waypoints already in the past are skipped;
  a non-OK status stops the robot, and so does silence longer than ``timeout``.

Times are integer nanoseconds (ROS stamps), like ``vla_ros.runtime``.  Poses are ``(x, y, yaw)``
in a fixed (odometry / world) frame.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from vla_ros.config import _require
from vla_ros.runtime.history import NS
from vla_ros.runtime.safety import Status
from vla_ros.sim.config import WorldConfig
from vla_ros.sim.geometry import robot_to_world, wrap_angle

__all__ = ["NS", "STATUS_OK", "STATUS_NAMES", "PoseHistory", "Plan", "Control", "TrackerConfig", "TrackerLimits",
           "TrajectoryTracker"]

STATUS_OK = int(Status.OK)
#: Trajectory.STATUS_* code -> name (vla_ros.runtime.safety.Status mirrors the message; a test checks it).
STATUS_NAMES = {int(s): s.name for s in Status}


def _s(ns: int | float) -> float:
    return float(ns) / NS


def _ns(seconds: float) -> int:
    return int(round(float(seconds) * NS))


# =============================================================================================
# Pose history
# =============================================================================================


class PoseHistory:
    """The robot's poses of the last ``keep`` seconds, oldest first, keyed on integer stamps.

    ``at(stamp)`` interpolates between the two poses around ``stamp`` (yaw on the short way
    round); a stamp older than the history, or newer than the newest pose by more than
    ``tolerance``, has no pose (``None``): the caller rejects that trajectory.
    """

    def __init__(self, keep: float = 10.0) -> None:
        self.keep_ns = _ns(keep)
        self._stamps: list[int] = []
        self._poses: list[tuple[float, float, float]] = []

    def __len__(self) -> int:
        return len(self._stamps)

    def clear(self) -> None:
        self._stamps.clear()
        self._poses.clear()

    @property
    def newest_stamp(self) -> int | None:
        return self._stamps[-1] if self._stamps else None

    def add(self, stamp_ns: int, pose) -> None:
        stamp_ns = int(stamp_ns)
        if self._stamps and stamp_ns <= self._stamps[-1]:
            if stamp_ns == self._stamps[-1]:  # the same instant again: keep the newest pose
                self._poses[-1] = (float(pose[0]), float(pose[1]), float(pose[2]))
                return
            self.clear()  # time went back (a new run of the clock): start over
        self._stamps.append(stamp_ns)
        self._poses.append((float(pose[0]), float(pose[1]), float(pose[2])))
        # keep one pose older than the window, so that a stamp exactly ``keep`` ago interpolates
        cut = bisect.bisect_left(self._stamps, stamp_ns - self.keep_ns) - 1
        if cut > 0:
            del self._stamps[:cut]
            del self._poses[:cut]

    def at(self, stamp_ns: int, tolerance_ns: int = 0, max_gap_ns: int | None = None) -> np.ndarray | None:
        """The pose ``(3,)`` at ``stamp_ns`` (interpolated), or None when outside the history, or
        (``max_gap_ns``) when no stored pose is within ``max_gap_ns`` of the stamp."""
        if not self._stamps:
            return None
        s = self._stamps
        if stamp_ns < s[0]:
            return None
        if stamp_ns >= s[-1]:
            return np.array(self._poses[-1]) if stamp_ns - s[-1] <= tolerance_ns else None
        j = bisect.bisect_right(s, stamp_ns)  # s[j-1] <= stamp < s[j]
        if max_gap_ns is not None and min(stamp_ns - s[j - 1], s[j] - stamp_ns) > max_gap_ns:
            return None
        a, b = self._poses[j - 1], self._poses[j]
        u = (stamp_ns - s[j - 1]) / (s[j] - s[j - 1])
        dyaw = float(wrap_angle(b[2] - a[2]))
        return np.array([a[0] + u * (b[0] - a[0]), a[1] + u * (b[1] - a[1]),
                         float(wrap_angle(a[2] + u * dyaw))])


# =============================================================================================
# Tracking controller
# =============================================================================================


@dataclass
class Plan:
    """A received trajectory placed in the world.

    ``times_ns[0]`` is the trajectory's stamp and ``poses[0]`` the robot's pose then (the
    origin of the robot frame the waypoints were predicted in); ``times_ns[k + 1]`` and
    ``poses[k + 1]`` are waypoint k at ``stamp + (k + 1) * dt``.  Yaw is unwrapped along the
    plan so that it interpolates linearly.
    """

    stamp_ns: int
    dt: float
    times_ns: np.ndarray  # (K + 1,) int64
    poses: np.ndarray  # (K + 1, 3) world x, y, unwrapped yaw

    @classmethod
    def from_robot_frame(cls, stamp_ns: int, robot_poses, dt: float, anchor) -> "Plan":
        robot_poses = np.asarray(robot_poses, dtype=np.float64).reshape(-1, 3)
        world = robot_to_world(robot_poses, anchor)
        poses = np.concatenate([np.asarray(anchor, dtype=np.float64)[None, :3], world], 0)
        poses[:, 2] = np.unwrap(poses[:, 2])
        times = int(stamp_ns) + np.round(np.arange(len(poses)) * float(dt) * NS).astype(np.int64)
        return cls(int(stamp_ns), float(dt), times, poses)

    @property
    def end_ns(self) -> int:
        return int(self.times_ns[-1])

    def world_waypoints(self) -> np.ndarray:
        """(K, 3) waypoints in the world (yaw wrapped)."""
        out = self.poses[1:].copy()
        out[:, 2] = wrap_angle(out[:, 2])
        return out

    def _segment(self, t_ns: int) -> tuple[int, float]:
        """Index j and fraction u of ``t`` in segment [times[j], times[j+1]] (clamped to the plan)."""
        k = len(self.times_ns) - 1
        x = (t_ns - self.stamp_ns) / (self.dt * NS)
        j = int(min(max(math.floor(x), 0), k - 1))
        return j, float(min(max(x - j, 0.0), 1.0))

    def pose_at(self, t_ns: int) -> np.ndarray:
        """Reference pose (3,) at ``t`` (linear between the waypoints around ``t``)."""
        j, u = self._segment(t_ns)
        return self.poses[j] + u * (self.poses[j + 1] - self.poses[j])

    def velocity_at(self, t_ns: int) -> tuple[float, float]:
        """Reference (v, omega) of the segment holding ``t``: signed speed along the segment's
        mean heading and yaw rate; (0, 0) past the last waypoint."""
        if t_ns >= self.end_ns:
            return 0.0, 0.0
        j, _ = self._segment(t_ns)
        a, b = self.poses[j], self.poses[j + 1]
        h = 0.5 * (a[2] + b[2])
        v = ((b[0] - a[0]) * math.cos(h) + (b[1] - a[1]) * math.sin(h)) / self.dt
        return float(v), float((b[2] - a[2]) / self.dt)

    def mean_velocity(self, t0_ns: int, t1_ns: int) -> tuple[float, float]:
        """Mean reference (v, omega) over [t0, t1]: each segment's velocity weighted by its
        overlap with the window. The window is cut at the plan's end (a plan is followed to its
        last waypoint as planned; past it the tracker stops the robot); (0, 0) from the end on."""
        if t0_ns < self.stamp_ns:  # a plan stamped a little ahead of the clock: from its start
            t0_ns, t1_ns = self.stamp_ns, t1_ns + (self.stamp_ns - t0_ns)
        t1_ns = min(t1_ns, self.end_ns)
        if t1_ns <= t0_ns:
            return self.velocity_at(t0_ns)
        v = w = 0.0
        for j in range(len(self.times_ns) - 1):
            lo, hi = max(t0_ns, int(self.times_ns[j])), min(t1_ns, int(self.times_ns[j + 1]))
            if hi > lo:
                vj, wj = self.velocity_at((lo + hi) // 2)
                v += vj * (hi - lo)
                w += wj * (hi - lo)
        span = float(t1_ns - t0_ns)
        return v / span, w / span


@dataclass
class Control:
    """One controller output: the command and why (``mode``)."""

    v: float
    omega: float
    mode: str  # track | idle (nothing received yet) | stop (non-OK status) | timeout | expired | warmup
    reason: str = ""


@dataclass
class TrackerConfig:
    """Gains and limits of :class:`TrajectoryTracker` (Kanayama et al. 1990 tracking law)."""

    k_x: float = 1.5  # 1/s: along-track error -> speed
    k_y: float = 6.0  # 1/m^2: cross-track error -> yaw rate (scaled by the reference speed)
    k_theta: float = 3.0  # 1/m: heading error -> yaw rate (scaled by the reference speed)
    timeout: float = 1.0  # s (stamp clock) without any trajectory -> stop
    # s of plan the feed-forward (v_r, w_r) is averaged over. A model that sees the robot's
    # speed plans from that speed and accelerates later; following only the first segment of
    # each plan, replanned every 0.2 s, repeats the current speed (and each plan's small bias)
    # forever: the robot never speeds up. 0 = the plan's velocity in the coming step alone.
    feedforward_horizon: float = 0.6
    pose_tolerance: float = 0.15  # s a stamp may be newer than the newest pose (clocks a tick apart)
    allow_reverse: bool = False  # reverse only when the reference itself drives backwards

    def __post_init__(self) -> None:
        for name in ("k_x", "k_y", "k_theta"):
            _require(getattr(self, name) >= 0, f"tracker.{name}={getattr(self, name)}: must be >= 0")
        _require(self.timeout > 0, f"tracker.timeout={self.timeout}: must be > 0 seconds")
        _require(0 <= self.feedforward_horizon <= 5.0,
                 f"tracker.feedforward_horizon={self.feedforward_horizon}: must be within [0, 5] seconds "
                 "(0 = the coming step only)")


@dataclass(frozen=True)
class TrackerLimits:
    """What the tracker's output is clipped to, and the control step its feed-forward assumes."""

    max_speed: float = 1.0  # m/s, |v|
    max_yaw_rate: float = 1.0  # rad/s, |omega|
    step_s: float = 0.1  # s between two commands (the simulation step)

    def __post_init__(self) -> None:
        _require(self.max_speed > 0, f"max_speed={self.max_speed}: must be > 0 m/s")
        _require(self.max_yaw_rate > 0, f"max_yaw_rate={self.max_yaw_rate}: must be > 0 rad/s")
        _require(self.step_s > 0, f"step_s={self.step_s}: must be > 0 s")

    @classmethod
    def of(cls, limits: "TrackerLimits | WorldConfig | None") -> "TrackerLimits":
        """The limits themselves, or those of a simulated robot (WorldConfig; None = the default world)."""
        if isinstance(limits, TrackerLimits):
            return limits
        wc = limits or WorldConfig()
        return cls(max_speed=wc.max_speed, max_yaw_rate=wc.max_yaw_rate, step_s=wc.sim_dt)


class TrajectoryTracker:
    """Follows the newest trajectory with a time-indexed tracking law.

    ``receive`` places each trajectory in the world with the robot's pose at its stamp (from a
    :class:`PoseHistory`); ``command(now, state)`` returns the (v, omega) to apply from ``now``
    for one simulation step:

        reference pose q_r = plan at now;  (v_r, w_r) = plan's mean velocity over
        [now, now + max(step, feedforward_horizon)] (cut at the plan's end)
        errors in the robot frame: e_x, e_y, e_th = R(-yaw) (q_r - q)
        v = v_r cos(e_th) + k_x e_x,    w = w_r + v_r (k_y e_y + k_theta sin(e_th))

    so the robot is where the trajectory wanted it *at that time* (a late trajectory is joined
    in the middle: its past waypoints are skipped); (v, w) are clipped to ``limits`` (a
    :class:`TrackerLimits`, or a simulated robot's WorldConfig).  No plan, a non-OK status, a plan run out, or
    no trajectory for ``timeout`` seconds -> (0, 0): the robot brakes to a stop.
    """

    def __init__(self, limits: TrackerLimits | WorldConfig | None = None, config: TrackerConfig | None = None) -> None:
        self.limits = TrackerLimits.of(limits)
        self.config = config or TrackerConfig()
        self.reset()

    def reset(self) -> None:
        self.plan: Plan | None = None
        self.plan_id = -1  # index of the accepted trajectory the plan came from (EpisodeRecord.plans)
        self.stop_reason: str | None = None
        self.last_received_ns: int | None = None
        self.last_ok_stamp_ns: int | None = None
        self.received = 0

    def receive(self, stamp_ns: int, robot_poses, dt: float, status: int, reason: str, now_ns: int,
                history: PoseHistory, plan_id: int = -1) -> str:
        """Take one trajectory message; returns what was done with it:

        ``accepted`` (new plan), ``stop`` (non-OK status: the robot stops), ``duplicate`` (an OK
        trajectory not newer than the last one used -- the first one for a stamp is kept),
        ``no_pose`` (its stamp is outside the pose history), ``bad`` (empty / non-finite / dt <= 0).
        Any message counts as a sign of life for the timeout.
        """
        self.received += 1
        self.last_received_ns = int(now_ns)
        if int(status) != STATUS_OK:
            self.plan, self.plan_id = None, plan_id
            self.stop_reason = f"{STATUS_NAMES.get(int(status), status)}: {reason}" if reason else \
                STATUS_NAMES.get(int(status), str(status))
            return "stop"
        poses = np.asarray(robot_poses, dtype=np.float64).reshape(-1, 3)
        if len(poses) == 0 or not np.isfinite(poses).all() or not dt > 0:
            return "bad"
        if self.last_ok_stamp_ns is not None and stamp_ns <= self.last_ok_stamp_ns:
            return "duplicate"
        anchor = history.at(int(stamp_ns), _ns(self.config.pose_tolerance))
        if anchor is None:
            return "no_pose"
        self.plan = Plan.from_robot_frame(int(stamp_ns), poses, dt, anchor)
        self.plan_id = plan_id
        self.stop_reason = None
        self.last_ok_stamp_ns = int(stamp_ns)
        return "accepted"

    def command(self, now_ns: int, state, step_s: float | None = None) -> Control:
        lim, cfg = self.limits, self.config
        if self.last_received_ns is None:
            return Control(0.0, 0.0, "idle", "no trajectory yet")
        silent = _s(now_ns - self.last_received_ns)
        if silent > cfg.timeout:
            return Control(0.0, 0.0, "timeout", f"no trajectory for {silent:.2f} s (timeout {cfg.timeout:g} s)")
        if self.plan is None:
            return Control(0.0, 0.0, "stop", self.stop_reason or "stopped")
        plan = self.plan
        if now_ns >= plan.end_ns:
            return Control(0.0, 0.0, "expired", f"trajectory stamped {_s(plan.stamp_ns):.2f} s has run out")
        step = lim.step_s if step_s is None else step_s
        ref = plan.pose_at(now_ns)
        if cfg.feedforward_horizon > 0:  # feed-forward: where the plan goes over the horizon
            v_r, w_r = plan.mean_velocity(now_ns, now_ns + _ns(max(step, cfg.feedforward_horizon)))
        else:  # ... or over the coming step alone
            v_r, w_r = plan.velocity_at(now_ns + _ns(step / 2))
        x, y, yaw = float(state[0]), float(state[1]), float(state[2])
        c, s = math.cos(yaw), math.sin(yaw)
        dx, dy = ref[0] - x, ref[1] - y
        e_x, e_y = c * dx + s * dy, -s * dx + c * dy
        e_th = float(wrap_angle(ref[2] - yaw))
        v = v_r * math.cos(e_th) + cfg.k_x * e_x
        w = w_r + v_r * (cfg.k_y * e_y + cfg.k_theta * math.sin(e_th))
        if not cfg.allow_reverse and v_r >= -1e-3:
            v = max(v, 0.0)  # overshooting a stop point: brake, do not back up
        v = float(np.clip(v, -lim.max_speed, lim.max_speed))
        w = float(np.clip(w, -lim.max_yaw_rate, lim.max_yaw_rate))
        return Control(v, w, "track")
