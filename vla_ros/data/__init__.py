"""Datasets of the simulated world: generation, loading and a quick look.

torch is imported only by :mod:`vla_ros.data.dataset` (``EpisodeDataset``), lazily.
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
    "EpisodeDataset",
]


def __getattr__(name: str):
    if name == "EpisodeDataset":  # imports torch
        from .dataset import EpisodeDataset

        return EpisodeDataset
    raise AttributeError(f"module 'vla_ros.data' has no attribute {name!r}")
