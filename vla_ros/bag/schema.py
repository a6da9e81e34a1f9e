"""Message types, topic names, QoS profiles and conversions for rosbag2 files (via ``rosbags``).

Messages are built and read with ``rosbags``' pure-Python type store (ROS 2 Kilted definitions),
so writing and reading bags needs neither rclpy nor a ROS install.  The project's own
``vla_ros/msg/Trajectory`` is registered from ``msg/Trajectory.msg``; its RIHS01 type hash is the
one rosidl generates (a test checks it), so ``ros2 bag`` and Foxglove accept the recorded
definition.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vla_ros.runtime.geometry import quaternion_to_yaw
from vla_ros.runtime.history import NS

__all__ = [
    "IMAGE", "COMPRESSED_IMAGE", "STRING", "TRAJECTORY", "CLOCK", "PATH", "ODOMETRY", "TF_MESSAGE", "IMAGE_TYPES",
    "TOPIC_EGO", "TOPIC_TOP", "TOPIC_COMMAND", "TOPIC_TRUTH", "TOPIC_CLOCK", "TOPIC_TRAJECTORY", "TOPIC_PATH",
    "TOPIC_ODOM", "odometry_msg", "OdometryData", "odometry_data",
    "SENSOR_QOS", "LATCHED_QOS", "RELIABLE_QOS", "CLOCK_QOS",
    "typestore", "trajectory_msg_file", "time_msg", "header_msg", "image_msg", "trajectory_msg",
    "stamp_of", "ImageFields", "image_fields", "image_fields_msg", "TrajectoryData", "trajectory_data",
    "serialize", "deserialize",
]


# message types (rosbag2 / MCAP names)
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
STRING = "std_msgs/msg/String"
TRAJECTORY = "vla_ros/msg/Trajectory"
CLOCK = "rosgraph_msgs/msg/Clock"
PATH = "nav_msgs/msg/Path"
ODOMETRY = "nav_msgs/msg/Odometry"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)

# topics of the bags `vla bag record-sim` writes (the node's topics with an empty namespace)
TOPIC_EGO = "/ego/image_raw"
TOPIC_TOP = "/top/image_raw"
TOPIC_COMMAND = "/command"
TOPIC_TRUTH = "/ground_truth/trajectory"
TOPIC_CLOCK = "/clock"
TOPIC_TRAJECTORY = "/trajectory"  # what the node publishes, as recorded by `vla bag replay`
TOPIC_PATH = "/trajectory/path"
TOPIC_ODOM = "/odom"


def _qos(reliability: str, durability: str, depth: int):
    """A rosbag2 offered-QoS entry; durations 'infinite' as rosbag2 itself records them."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    infinite = QosTime(9223372036, 854775807)
    return Qos(QosHistory.KEEP_LAST, depth, QosReliability[reliability], QosDurability[durability],
               infinite, infinite, QosLiveliness.AUTOMATIC, infinite, False)


# Offered QoS profiles recorded with each topic (what `ros2 bag play` then offers again).
SENSOR_QOS = functools.partial(_qos, "BEST_EFFORT", "VOLATILE", 5)  # rclpy's qos_profile_sensor_data
LATCHED_QOS = functools.partial(_qos, "RELIABLE", "TRANSIENT_LOCAL", 1)  # the command: latched
RELIABLE_QOS = functools.partial(_qos, "RELIABLE", "VOLATILE", 10)  # trajectories
CLOCK_QOS = functools.partial(_qos, "BEST_EFFORT", "VOLATILE", 1)  # like rclcpp::ClockQoS


def trajectory_msg_file() -> Path:
    """``Trajectory.msg``: in the source checkout, or in share/vla_ros/msg of an install."""
    from vla_ros import paths

    candidates = [paths.share_dir() / "msg", Path(__file__).resolve().parents[2] / "msg"]
    for prefix in [*os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep), sys.prefix]:
        if prefix:
            candidates.append(Path(prefix) / "share" / "vla_ros" / "msg")
    for folder in candidates:
        if (folder / "Trajectory.msg").is_file():
            return folder / "Trajectory.msg"
    raise FileNotFoundError("vla_ros/msg/Trajectory.msg not found (looked in "
                            f"{', '.join(str(c) for c in candidates)}); reinstall vla_ros")


@functools.lru_cache(maxsize=1)
def typestore():
    """rosbags type store: ROS 2 Kilted's standard messages plus vla_ros/msg/Trajectory."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg(trajectory_msg_file().read_text(), TRAJECTORY))
    return store


# -- building messages ------------------------------------------------------------------------

def time_msg(ns: int):
    sec, nanosec = divmod(int(ns), NS)
    return typestore().types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)


def header_msg(stamp_ns: int, frame_id: str):
    return typestore().types["std_msgs/msg/Header"](stamp=time_msg(stamp_ns), frame_id=frame_id)


def stamp_of(msg: Any) -> int:
    """header.stamp (or a builtin_interfaces/Time) of a rosbags message, in nanoseconds."""
    stamp = getattr(msg, "header", msg)
    stamp = getattr(stamp, "stamp", stamp)
    return int(stamp.sec) * NS + int(stamp.nanosec)


_CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}


def image_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = "rgb8"):
    """sensor_msgs/Image from an (H, W, 3) uint8 RGB array, converted to ``encoding``."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    if encoding == "rgb8":
        pix = rgb
    elif encoding == "bgr8":
        pix = rgb[:, :, ::-1]
    elif encoding == "mono8":
        pix = np.round(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
    else:
        raise ValueError(f"encoding {encoding!r}: use rgb8, bgr8 or mono8")
    pix = np.ascontiguousarray(pix)
    h, w = rgb.shape[:2]
    return typestore().types[IMAGE](header=header_msg(stamp_ns, frame_id), height=h, width=w, encoding=encoding,
                                    is_bigendian=0, step=w * _CHANNELS[encoding], data=pix.reshape(-1))


def _pose(x: float, y: float, yaw: float):
    t = typestore().types
    half = 0.5 * float(yaw)
    return t["geometry_msgs/msg/Pose"](position=t["geometry_msgs/msg/Point"](x=float(x), y=float(y), z=0.0),
                                      orientation=t["geometry_msgs/msg/Quaternion"](
                                          x=0.0, y=0.0, z=math.sin(half), w=math.cos(half)))


def trajectory_msg(stamp_ns: int, traj: np.ndarray, dt: float, command: str = "", status: int = 0,
                   status_reason: str = "", inference_latency: float = 0.0, frame_id: str = "base_link"):
    """vla_ros/msg/Trajectory (same layout as the node's: poses x, y and yaw about z)."""
    return typestore().types[TRAJECTORY](
        header=header_msg(stamp_ns, frame_id), command=command,
        poses=[_pose(*row) for row in np.asarray(traj, dtype=np.float64).tolist()],
        dt=float(dt), status=int(status), status_reason=status_reason, inference_latency=float(inference_latency))


def odometry_msg(stamp_ns: int, x: float, y: float, yaw: float, v: float, omega: float,
                 frame_id: str = "odom", child_frame_id: str = "base_link"):
    """nav_msgs/msg/Odometry: pose in ``frame_id``, twist (v forward, omega about z) in the robot frame."""
    t = typestore().types
    twist = t["geometry_msgs/msg/Twist"](linear=t["geometry_msgs/msg/Vector3"](x=float(v), y=0.0, z=0.0),
                                        angular=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=float(omega)))
    return t[ODOMETRY](header=header_msg(stamp_ns, frame_id), child_frame_id=child_frame_id,
                       pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=_pose(x, y, yaw),
                                                                      covariance=np.zeros(36, np.float64)),
                       twist=t["geometry_msgs/msg/TwistWithCovariance"](twist=twist,
                                                                        covariance=np.zeros(36, np.float64)))


# -- reading messages ---------------------------------------------------------------------------


@dataclass
class OdometryData:
    """What NodeCore.on_odometry takes from a nav_msgs/Odometry."""

    stamp_ns: int
    v: float
    omega: float


def odometry_data(msg: Any) -> OdometryData:
    tw = msg.twist.twist
    return OdometryData(stamp_of(msg), float(tw.linear.x), float(tw.angular.z))

@dataclass
class ImageFields:
    """What NodeCore.on_image takes, from a sensor_msgs/Image or a decoded CompressedImage."""

    stamp_ns: int
    frame_id: str
    encoding: str
    height: int
    width: int
    step: int
    data: Any  # bytes-like


def image_fields(msgtype: str, msg: Any) -> ImageFields:
    """Image fields of an Image, or of a CompressedImage decoded to rgb8 (PIL: jpeg, png, ...).

    A CompressedImage that cannot be decoded becomes an image with encoding
    ``'compressed:<format>'`` and no data, which the node's decoder rejects (bad input),
    just as the node would reject an unusable frame.
    """
    stamp = stamp_of(msg)
    frame_id = str(msg.header.frame_id)
    if msgtype == IMAGE:
        return ImageFields(stamp, frame_id, str(msg.encoding), int(msg.height), int(msg.width), int(msg.step),
                           msg.data)
    if msgtype == COMPRESSED_IMAGE:
        import io

        try:
            from PIL import Image as PILImage

            with PILImage.open(io.BytesIO(bytes(msg.data))) as im:
                rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
        except Exception:  # noqa: BLE001 - undecodable: let the node's checks reject it
            return ImageFields(stamp, frame_id, f"compressed:{msg.format}", 0, 0, 0, b"")
        h, w = rgb.shape[:2]
        return ImageFields(stamp, frame_id, "rgb8", h, w, w * 3, np.ascontiguousarray(rgb).reshape(-1))
    raise ValueError(f"{msgtype} is not an image type ({', '.join(IMAGE_TYPES)})")


def image_fields_msg(f: ImageFields):
    """A sensor_msgs/Image with these fields (to publish a decoded CompressedImage)."""
    return typestore().types[IMAGE](header=header_msg(f.stamp_ns, f.frame_id), height=f.height, width=f.width,
                                    encoding=f.encoding, is_bigendian=0, step=f.step,
                                    data=np.frombuffer(bytes(f.data), dtype=np.uint8))


@dataclass
class TrajectoryData:
    stamp_ns: int
    command: str
    trajectory: np.ndarray  # (N, 3) float64 x, y, yaw
    dt: float
    status: int
    status_reason: str
    inference_latency: float


def _yaw(q: Any) -> float:
    # the node writes (0, 0, sin(yaw/2), cos(yaw/2)); the general formula covers any quaternion
    return quaternion_to_yaw(q.x, q.y, q.z, q.w)


def trajectory_data(msg: Any) -> TrajectoryData:
    traj = np.array([[p.position.x, p.position.y, _yaw(p.orientation)] for p in msg.poses],
                    dtype=np.float64).reshape(-1, 3)
    return TrajectoryData(stamp_of(msg), str(msg.command), traj, float(msg.dt), int(msg.status),
                          str(msg.status_reason), float(msg.inference_latency))


def deserialize(raw: Any, msgtype: str) -> Any:
    return typestore().deserialize_cdr(raw, msgtype)


def serialize(msg: Any, msgtype: str) -> bytes:
    return bytes(typestore().serialize_cdr(msg, msgtype))
