"""Trajectory geometry for the ROS messages: (x, y, heading) -> poses, and waypoint stamps."""

from __future__ import annotations

import math

import numpy as np

from vla_ros.runtime.history import NS

__all__ = ["yaw_to_quaternion", "quaternion_to_yaw", "waypoint_stamps_ns", "split_stamp", "join_stamp"]


def yaw_to_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """Rotation by ``yaw`` radians about z as a unit quaternion (x, y, z, w)."""
    half = 0.5 * float(yaw)
    return 0.0, 0.0, math.sin(half), math.cos(half)


def quaternion_to_yaw(x: float, y: float, z: float, w: float) -> float:
    """Heading (rotation about z, radians) of a unit quaternion; any roll and pitch are ignored."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def waypoint_stamps_ns(stamp_ns: int, dt: float, length: int) -> np.ndarray:
    """Stamps of the waypoints: waypoint k (0-based) is meant for stamp + (k + 1) * dt."""
    return stamp_ns + np.round((np.arange(length) + 1) * dt * NS).astype(np.int64)


def split_stamp(ns: int) -> tuple[int, int]:
    """Nanoseconds -> (sec, nanosec) of builtin_interfaces/Time (nanosec in [0, 1e9))."""
    sec, nanosec = divmod(int(ns), NS)
    return sec, nanosec


def join_stamp(sec: int, nanosec: int) -> int:
    """(sec, nanosec) of builtin_interfaces/Time -> nanoseconds."""
    return int(sec) * NS + int(nanosec)
