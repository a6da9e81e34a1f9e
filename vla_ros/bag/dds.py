"""The two ends of a replay through DDS: the ``vla_node`` subprocess and this process's player.

Nothing else in ``vla_ros.bag`` imports rclpy; :class:`DdsPlayer` does, when it is built.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from vla_ros.bag import schema
from vla_ros.bag.batches import CAMERAS, Item
from vla_ros.runtime.history import NS

__all__ = ["DdsPlayer", "NodeProcess", "write_node_params"]


def write_node_params(cfg: Any, path: Path) -> Path:
    """A ROS params file holding every NodeConfig field of ``cfg`` (what the launched node gets)."""
    from vla_ros.config import to_dict

    path.write_text(yaml.safe_dump({"/**/vla_node": {"ros__parameters": to_dict(cfg)}}, sort_keys=False))
    return path


class NodeProcess:
    """vla_node started from the launch description (``vla launch``'s bring-up), use_sim_time on."""

    def __init__(self, params_file: Path, namespace: str, log_path: Path) -> None:
        from vla_ros.ros.orchestration import child_setup
        from vla_ros.launch_description import describe, process_command

        (desc,) = describe(params_file=params_file, namespace=namespace, use_sim_time=True)
        self.command = process_command(desc)
        self.log_path = log_path
        self._log = open(log_path, "w")
        env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
        self.proc = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, preexec_fn=child_setup)

    def exited(self) -> int | None:
        return self.proc.poll()

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text()[-n:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


class DdsPlayer:
    """This process's side: publishers of /clock, the cameras and the command; the answers."""

    def __init__(self, namespace: str, on_answer: Callable[[bytes, float], None],
                 on_path: Callable[[bytes], None] | None = None) -> None:
        import rclpy
        from nav_msgs.msg import Odometry
        from nav_msgs.msg import Path as PathMsg
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from rclpy.signals import SignalHandlerOptions
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from vla_ros.msg import Trajectory

        self._Clock = Clock
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node("vla_bag_replay", context=self.ctx, start_parameter_services=False)
        p = "/" + namespace.strip("/") if namespace.strip("/") else ""
        self.traj_topic = f"{p}/trajectory"
        self.clock_pub = self.node.create_publisher(Clock, "/clock", 10)
        self.cam_pubs = {cam: self.node.create_publisher(Image, f"{p}/{cam}/image_raw", qos_profile_sensor_data)
                         for cam in CAMERAS}
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.cmd_pub = self.node.create_publisher(String, f"{p}/command", latched)
        self.odom_pub = self.node.create_publisher(Odometry, f"{p}/odom", 10)
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=200, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(Trajectory, self.traj_topic, lambda raw: on_answer(raw, time.monotonic()),
                                      reliable, raw=True)
        if on_path is not None:
            self.node.create_subscription(PathMsg, f"{p}/trajectory/path", on_path, reliable, raw=True)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self._running = True
        self._thread = threading.Thread(target=self._spin, name="vla-bag-replay-spin", daemon=True)
        self._thread.start()
        self.clock_ns = 0

    def _spin(self) -> None:
        while self._running and self.ctx.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - shutting down
                break

    def set_clock(self, ns: int) -> None:
        self.clock_ns = int(ns)
        self.clock_pub.publish(self._Clock(clock=_builtin_time(ns)))

    def publish_image(self, cam: str, item: Item) -> None:
        if item.msg.msgtype == schema.IMAGE:
            raw = item.msg.raw
        else:  # a CompressedImage: the node takes sensor_msgs/Image; send the decoded one
            raw = schema.serialize(schema.image_fields_msg(item.value), schema.IMAGE)
        self.cam_pubs[cam].publish(raw)

    def publish_command(self, item: Item) -> None:
        self.cmd_pub.publish(item.msg.raw)

    def publish_odometry(self, item: Item) -> None:
        self.odom_pub.publish(item.msg.raw)

    def connected(self, with_clock: bool = True) -> bool:
        pubs = [*self.cam_pubs.values(), self.cmd_pub] + ([self.clock_pub] if with_clock else [])
        return all(p.get_subscription_count() > 0 for p in pubs) and self.node.count_publishers(self.traj_topic) > 0

    def close(self) -> None:
        import rclpy

        self._running = False
        self._thread.join(5)
        try:
            self.executor.shutdown()
            self.node.destroy_node()
        finally:
            rclpy.try_shutdown(context=self.ctx)


def _builtin_time(ns: int):
    from builtin_interfaces.msg import Time

    sec, nanosec = divmod(int(ns), NS)
    return Time(sec=sec, nanosec=nanosec)
