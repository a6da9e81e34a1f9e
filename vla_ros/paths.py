"""Where the package's data files live, in a source checkout and when installed.

Source checkout: ``<repo>/config``, ``<repo>/checkpoints``.  Installed by colcon / CMake:
``<prefix>/share/vla_ros/...``.  ``VLA_ROS_SHARE`` overrides both.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def share_dir() -> Path:
    env = os.environ.get("VLA_ROS_SHARE")
    if env:
        return Path(env)
    repo = _PKG.parent
    if (repo / "package.xml").is_file() and (repo / "config").is_dir():
        return repo  # source checkout (editable install)
    for prefix in [*os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep), sys.prefix]:
        cand = Path(prefix) / "share" / "vla_ros"
        if prefix and (cand / "config").is_dir():
            return cand
    return repo


def config_dir() -> Path:
    return share_dir() / "config"


def default_checkpoint() -> Path:
    return share_dir() / "checkpoints" / "default.pth"
