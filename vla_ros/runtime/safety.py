"""Status codes and stop decisions: when the node must not publish a trajectory from the model.

``Status`` mirrors the ``STATUS_*`` constants of ``vla_ros/msg/Trajectory`` (a test checks that
they are equal).  A stop trajectory holds every waypoint at the identity pose (x = y = heading = 0
in the robot frame: stay where you are), never an old or non-finite prediction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

__all__ = ["Status", "Decision", "stop_trajectory", "diagnostic_level"]


class Status(enum.IntEnum):
    OK = 0
    STOP_STALE_CAMERA = 1  # a camera is older than max_age (or missing, or ahead of the clock)
    STOP_INCOMPLETE_HISTORY = 2  # fewer frames than the model's history length
    STOP_NO_COMMAND = 3  # no (or an empty) language command
    STOP_CAMERA_SKEW = 4  # ego and top frames too far apart in time
    STOP_NONFINITE_OUTPUT = 5  # the model produced NaN or Inf
    STOP_BAD_INPUT = 6  # malformed image or command
    STOP_MODEL_ERROR = 7  # inference raised an error
    STOP_NO_ODOMETRY = 8  # output_frame odom: no odometry pose near the observation's stamp
    STOP_NO_SCAN = 9  # scan_guard: no laser scan, or one older than scan_max_age


@dataclass(frozen=True)
class Decision:
    """What a tick found: ``status``, a readable ``reason`` and a stable ``key`` for log-on-change.

    ``reason`` may carry numbers that change every tick ("1.23 s old"); ``key`` does not
    ("stale:ego"), so the node logs once per change of ``key``.
    """

    status: Status
    reason: str = ""
    key: str = "ok"

    @property
    def ok(self) -> bool:
        return self.status == Status.OK


def stop_trajectory(length: int) -> np.ndarray:
    """(length, 3) float32 of identity poses: the robot stays where it is."""
    return np.zeros((length, 3), dtype=np.float32)


def diagnostic_level(status: Status) -> int:
    """diagnostic_msgs/DiagnosticStatus level: 0 OK, 1 WARN (inputs not usable), 2 ERROR (model)."""
    if status == Status.OK:
        return 0
    if status in (Status.STOP_NONFINITE_OUTPUT, Status.STOP_MODEL_ERROR):
        return 2
    return 1
