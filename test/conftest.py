"""Shared pytest setup.

Session-wide ROS 2 environment, set at import time (before any test or fixture calls rclpy.init()):
DDS discovery stays on this machine, each test run gets its own random domain so parallel runs do
not see each other, and ROS logs go to a temporary folder instead of ~/.ros/log.
"""
import atexit
import os
import random
import shutil
import tempfile

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(1, 101))
os.environ['ROS_LOG_DIR'] = tempfile.mkdtemp(prefix='vla_ros_test_roslog_')
atexit.register(shutil.rmtree, os.environ['ROS_LOG_DIR'], ignore_errors=True)


# --- vla_node fixtures (test_runtime.py, test_node.py, test_launch.py) ---------------------------
import pytest  # noqa: E402


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory):
    """A real checkpoint of a tiny SimpleVLA (random weights): plumbing tests, not quality."""
    from vla_ros.checkpoint import save_checkpoint
    from vla_ros.model.vla import SimpleVLA

    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pth'
    save_checkpoint(SimpleVLA(backbone='tiny', image_size=64, cond_dim=64), path)
    return path
