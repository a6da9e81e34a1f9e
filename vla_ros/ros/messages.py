"""Runtime results <-> ROS messages (vla_ros/Trajectory, nav_msgs/Path, diagnostic_msgs)."""

from __future__ import annotations

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Pose, PoseStamped
from nav_msgs.msg import Path
from std_msgs.msg import Header

from vla_ros.msg import Trajectory
from vla_ros.runtime.core import TickResult
from vla_ros.runtime.geometry import join_stamp, split_stamp, waypoint_stamps_ns, yaw_to_quaternion

__all__ = ["stamp_ns", "to_time", "pose_from_xy_yaw", "trajectory_msg", "path_msg", "diagnostics_msg"]


def stamp_ns(stamp: Time) -> int:
    return join_stamp(stamp.sec, stamp.nanosec)


def to_time(ns: int) -> Time:
    sec, nanosec = split_stamp(ns)
    return Time(sec=sec, nanosec=nanosec)


def pose_from_xy_yaw(x: float, y: float, yaw: float) -> Pose:
    pose = Pose()
    pose.position.x, pose.position.y = float(x), float(y)
    q = pose.orientation
    q.x, q.y, q.z, q.w = yaw_to_quaternion(yaw)
    return pose


def trajectory_msg(result: TickResult, frame_id: str) -> Trajectory:
    msg = Trajectory()
    msg.header = Header(stamp=to_time(result.stamp_ns), frame_id=frame_id)
    msg.command = result.command
    msg.poses = [pose_from_xy_yaw(*row) for row in result.trajectory.tolist()]
    msg.dt = float(result.dt)
    msg.status = int(result.status)
    msg.status_reason = result.reason
    msg.inference_latency = float(result.latency_s)
    return msg


def path_msg(result: TickResult, frame_id: str) -> Path:
    """nav_msgs/Path of the same waypoints; pose k stamped at stamp + (k + 1) * dt."""
    msg = Path()
    msg.header = Header(stamp=to_time(result.stamp_ns), frame_id=frame_id)
    stamps = waypoint_stamps_ns(result.stamp_ns, result.dt, len(result.trajectory))
    msg.poses = [PoseStamped(header=Header(stamp=to_time(int(t)), frame_id=frame_id), pose=pose_from_xy_yaw(*row))
                 for t, row in zip(stamps.tolist(), result.trajectory.tolist())]
    return msg


def diagnostics_msg(now_ns: int, name: str, hardware_id: str, level: int, message: str,
                    values: list[tuple[str, str]]) -> DiagnosticArray:
    status = DiagnosticStatus(level=bytes([level]), name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=v) for k, v in values])
    return DiagnosticArray(header=Header(stamp=to_time(now_ns)), status=[status])
