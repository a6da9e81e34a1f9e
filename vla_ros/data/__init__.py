"""Datasets: generated in the simulated world or converted from a robot's bags, their on-disk
format (FORMAT.md), loading and a quick look. Training reads them through the frame bank
(:mod:`vla_ros.training.bank`). No module here imports torch at import time.
"""

from __future__ import annotations

from .generate import episode_kind, episode_seed, generate_dataset
from .io import list_episodes, load_episode, load_meta, open_npz, read_dataset_info
from .show import draw_trajectory_top, show_dataset
from ..sim.render import robot_to_ego_pixel, trajectory_to_top_pixels, world_to_top_pixel

__all__ = [
    "generate_dataset",
    "episode_seed",
    "episode_kind",
    "load_episode",
    "load_meta",
    "list_episodes",
    "open_npz",
    "read_dataset_info",
    "show_dataset",
    "draw_trajectory_top",
    "world_to_top_pixel",
    "trajectory_to_top_pixels",
    "robot_to_ego_pixel",
]
