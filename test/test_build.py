"""Build checks: the generated message imports, carries its constants and goes through rclpy."""
import os
import subprocess
import sys
import time

import pytest
import rclpy
from geometry_msgs.msg import Pose
from rclpy.serialization import deserialize_message, serialize_message

import vla_ros
from vla_ros.msg import Trajectory

STATUS = {
    'STATUS_OK': 0,
    'STATUS_STOP_STALE_CAMERA': 1,
    'STATUS_STOP_INCOMPLETE_HISTORY': 2,
    'STATUS_STOP_NO_COMMAND': 3,
    'STATUS_STOP_CAMERA_SKEW': 4,
    'STATUS_STOP_NONFINITE_OUTPUT': 5,
    'STATUS_STOP_BAD_INPUT': 6,
    'STATUS_STOP_MODEL_ERROR': 7,
}


def make_trajectory():
    msg = Trajectory()
    msg.header.stamp.sec = 12
    msg.header.stamp.nanosec = 345
    msg.header.frame_id = 'base_link'
    msg.command = 'go to the red cube'
    for k in range(3):
        pose = Pose()
        pose.position.x = 0.1 * (k + 1)
        pose.position.y = -0.05 * k
        pose.orientation.z = 0.2 * k
        pose.orientation.w = 1.0
        msg.poses.append(pose)
    msg.dt = 0.25
    msg.status = Trajectory.STATUS_STOP_CAMERA_SKEW
    msg.status_reason = 'ego and top frames 0.3 s apart'
    msg.inference_latency = 0.046875  # float32 fields: use values float32 holds exactly
    return msg


def test_package_is_the_project_code():
    assert vla_ros.__version__ == '0.1.0'
    # vla_ros.msg is found through vla_ros.__path__ (the generated half may be another folder).
    assert any(os.path.isfile(os.path.join(p, 'msg', '__init__.py')) for p in vla_ros.__path__)


def test_import_vla_ros_is_light():
    code = 'import sys, vla_ros, vla_ros.msg; sys.exit("torch" in sys.modules)'
    assert subprocess.run([sys.executable, '-c', code], timeout=60).returncode == 0


def test_status_constants():
    for name, value in STATUS.items():
        assert getattr(Trajectory, name) == value, name


def test_serialization_round_trip():
    msg = make_trajectory()
    data = serialize_message(msg)
    assert isinstance(data, bytes) and len(data) > 0
    back = deserialize_message(data, Trajectory)
    assert back == msg
    assert back.poses[2].position.x == pytest.approx(0.3)
    assert back.status == Trajectory.STATUS_STOP_CAMERA_SKEW


def test_publish_subscribe_in_one_process():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        pub_node = rclpy.create_node('test_traj_pub', context=context)
        sub_node = rclpy.create_node('test_traj_sub', context=context)
        received = []
        sub_node.create_subscription(Trajectory, 'trajectory', received.append, 10)
        pub = pub_node.create_publisher(Trajectory, 'trajectory', 10)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(pub_node)
        executor.add_node(sub_node)
        sent = make_trajectory()
        deadline = time.monotonic() + 10.0
        while not received and time.monotonic() < deadline:
            pub.publish(sent)
            executor.spin_once(timeout_sec=0.1)
        assert received, 'no Trajectory received within 10 s'
        assert received[0] == sent
        executor.shutdown()
        pub_node.destroy_node()
        sub_node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
