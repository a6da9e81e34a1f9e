"""The trajectory follower's logic without ROS: trajectories and odometry in, (v, omega) out.

``trajectory_follower`` (vla_ros/ros/trajectory_follower.py) is the thin rclpy adapter around
:class:`FollowerCore`; the simulator's robot runs the same :class:`TrajectoryTracker`, so what a
robot does with the node's trajectories is what ``vla sim`` measured.

Per control step (:meth:`FollowerCore.command`):

1. disabled (``~/enable`` false, an e-stop) -> (0, 0) at once, whatever else holds;
2. no odometry, or none for ``odometry_timeout`` -> target (0, 0): the robot cannot be tracked;
3. else the tracker's command: the newest OK trajectory followed with its stamps honoured; a STOP
   status, no trajectory for ``watchdog_timeout`` (the watchdog) or a trajectory run out -> (0, 0);
4. the target is clipped to the velocity limits and reached from the measured velocity (or the last
   command, without odometry) at most at the acceleration limits over one control step, so a stop
   or a watchdog decelerates within ``max_linear_deceleration``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from vla_ros.config import _require
from vla_ros.control.tracker import NS, STATUS_OK, PoseHistory, TrackerConfig, TrackerLimits, TrajectoryTracker
from vla_ros.runtime.config import _opt
from vla_ros.sim.config import WorldConfig
from vla_ros.sim.geometry import approach, world_to_robot

__all__ = ["FollowerConfig", "FollowerCommand", "FollowerCore", "FOLLOWER_NODE_NAME"]

FOLLOWER_NODE_NAME = "trajectory_follower"


@dataclass
class FollowerConfig:
    """Settings of ``trajectory_follower`` (its ROS parameters). The limits default to the simulated
    robot's (WorldConfig), which the shipped models were trained to drive; lower them for a robot."""

    max_linear_velocity: float = _opt(WorldConfig.max_speed, "Largest |linear.x| commanded (m/s).")
    max_linear_acceleration: float = _opt(WorldConfig.max_accel, "Largest increase of |linear.x| (m/s^2).")
    max_linear_deceleration: float = _opt(WorldConfig.max_decel, "Largest decrease of |linear.x| (m/s^2): how "
                                                                  "hard a stop or the watchdog brakes.")
    max_yaw_rate: float = _opt(WorldConfig.max_yaw_rate, "Largest |angular.z| commanded (rad/s).")
    max_yaw_acceleration: float = _opt(WorldConfig.max_yaw_accel, "Largest change of angular.z (rad/s^2).")
    control_trigger: Literal["timer", "odom"] = _opt(
        "timer", "'timer': a command every 1/control_rate s of the node clock; 'odom': one command per odom "
                 "message, stamped with its stamp (the control loop runs at the odometry rate; sim_node's "
                 "lockstep uses this).")
    control_rate: float = _opt(20.0, "Commands per second with control_trigger 'timer' (node clock).")
    watchdog_timeout: float = _opt(1.0, "No trajectory for this many seconds -> brake to zero within the "
                                        "deceleration limit. A STOP status stops at once (same braking).")
    odometry_timeout: float = _opt(0.5, "Odometry older than this (s) cannot be tracked: brake to zero.")
    feedforward_horizon: float = _opt(
        TrackerConfig.feedforward_horizon, "Seconds of each trajectory the feed-forward velocity is averaged "
                                           "over (0 = the coming control step only); see docs/closed_loop.md.")
    stamped: bool = _opt(False, "Publish cmd_vel as geometry_msgs/TwistStamped instead of Twist.")
    frame_id: str = _opt("base_link", "header.frame_id of a TwistStamped cmd_vel (the robot frame).")
    enabled: bool = _opt(True, "Enabled at start; the ~/enable service (std_srvs/SetBool) switches it. "
                               "Disabled -> zero cmd_vel.")

    def __post_init__(self) -> None:
        for name in ("max_linear_velocity", "max_linear_acceleration", "max_linear_deceleration", "max_yaw_rate",
                     "max_yaw_acceleration", "control_rate", "watchdog_timeout", "odometry_timeout"):
            _require(getattr(self, name) > 0, f"{name}={getattr(self, name)}: must be > 0")
        _require(self.control_trigger in ("timer", "odom"),
                 f"control_trigger={self.control_trigger!r}: choose 'timer' or 'odom'")
        _require(self.control_rate <= 1000, f"control_rate={self.control_rate}: must be <= 1000 Hz")
        _require(0 <= self.feedforward_horizon <= 5.0,
                 f"feedforward_horizon={self.feedforward_horizon}: must be within [0, 5] seconds")

    @property
    def period(self) -> float:
        return 1.0 / self.control_rate


@dataclass
class FollowerCommand:
    """One output: velocity command and why (``mode``: track | disabled | no_odometry | idle | stop |
    timeout | expired, the tracker's modes)."""

    v: float
    omega: float
    mode: str
    reason: str = ""


class FollowerCore:
    """What trajectory_follower decides. Not thread-safe: the node calls it from one callback group."""

    def __init__(self, config: FollowerConfig | None = None) -> None:
        self.config = cfg = config or FollowerConfig()
        limits = TrackerLimits(cfg.max_linear_velocity, cfg.max_yaw_rate, cfg.period)
        self.tracker = TrajectoryTracker(limits, TrackerConfig(timeout=cfg.watchdog_timeout,
                                                               feedforward_horizon=cfg.feedforward_horizon))
        self.history = PoseHistory(keep=10.0)
        self.enabled = bool(cfg.enabled)
        self._disabled_why = "disabled by ~/enable"  # or the enabled parameter; set_enabled says
        self.odometry: tuple[int, float, float] | None = None  # newest (stamp, v, omega) measured
        self.odometry_step_s: float | None = None  # interval between the two newest odometry stamps
        self.odom_frame_id = ""  # header.frame_id of the odometry (the frame odom-frame trajectories are in)
        self.last: FollowerCommand = FollowerCommand(0.0, 0.0, "idle", "nothing commanded yet")

    # -- inputs ----------------------------------------------------------------------------
    def on_trajectory(self, stamp_ns: int, poses, dt: float, status: int, reason: str, now_ns: int,
                      frame_id: str = "") -> str:
        """A vla_ros/Trajectory arrived at ``now_ns``; returns the tracker's outcome (accepted, stop, ...).

        ``poses`` are in the robot frame at ``stamp_ns``, or in the odometry frame when ``frame_id`` is the
        odometry's frame (vla_node's output_frame odom): then they go back into the robot frame with the
        odometry pose at the stamp, the pose the tracker places them with again.
        """
        if frame_id and frame_id == self.odom_frame_id and int(status) == STATUS_OK:
            anchor = self.history.at(int(stamp_ns), int(self.tracker.config.pose_tolerance * NS))
            if anchor is None:
                return "no_pose"
            poses = world_to_robot(np.asarray(poses, dtype=np.float64).reshape(-1, 3), anchor)
        return self.tracker.receive(int(stamp_ns), poses, dt, int(status), reason, int(now_ns), self.history)

    def on_odometry(self, stamp_ns: int, pose, v: float, omega: float, frame_id: str = "") -> None:
        """Robot pose (x, y, yaw) in the odometry frame ``frame_id`` and measured (v, omega) in the robot frame."""
        stamp_ns = int(stamp_ns)
        if self.odometry is not None and stamp_ns > self.odometry[0]:
            self.odometry_step_s = (stamp_ns - self.odometry[0]) / NS
        self.history.add(stamp_ns, pose)
        self.odometry = (stamp_ns, float(v), float(omega))
        self.odom_frame_id = frame_id or self.odom_frame_id

    def set_enabled(self, enabled: bool, why: str = "disabled by ~/enable") -> str:
        """``why``: the reason the zero commands report while disabled (logs, ~/plan's mode)."""
        self.enabled = bool(enabled)
        self._disabled_why = why
        return "enabled: following trajectories" if self.enabled else "disabled: cmd_vel is zero"

    # -- output ----------------------------------------------------------------------------
    def command(self, now_ns: int, step_s: float | None = None) -> FollowerCommand:
        """The command to apply from ``now_ns`` for ``step_s`` seconds (default: the control period)."""
        cfg = self.config
        step = cfg.period if step_s is None else float(step_s)
        if not self.enabled:
            self.last = FollowerCommand(0.0, 0.0, "disabled", self._disabled_why)
            return self.last
        fresh = self.odometry is not None and (now_ns - self.odometry[0]) / NS <= cfg.odometry_timeout
        if fresh:
            ctl = self.tracker.command(int(now_ns), self.history.at(self.odometry[0]), step)
            target, base = (ctl.v, ctl.omega), self.odometry[1:]
            mode, reason = ctl.mode, ctl.reason
        else:
            target, base = (0.0, 0.0), (self.last.v, self.last.omega)
            mode, reason = "no_odometry", ("no odometry yet" if self.odometry is None else
                                           f"odometry older than {cfg.odometry_timeout:g} s")
        v = min(max(target[0], -cfg.max_linear_velocity), cfg.max_linear_velocity)
        w = min(max(target[1], -cfg.max_yaw_rate), cfg.max_yaw_rate)
        v = approach(base[0], v, cfg.max_linear_acceleration * step, cfg.max_linear_deceleration * step)
        w = approach(base[1], w, cfg.max_yaw_acceleration * step, cfg.max_yaw_acceleration * step)
        self.last = FollowerCommand(float(v), float(w), mode, reason)
        return self.last

    def command_on_odometry(self) -> FollowerCommand:
        """control_trigger 'odom': the command for the newest odometry stamp, over the odometry interval."""
        assert self.odometry is not None, "command_on_odometry needs an odometry message first"
        return self.command(self.odometry[0], self.odometry_step_s)
