"""``EpisodeDataset``: a torch Dataset over a generated dataset directory (the only module of
``vla_ros.data`` that imports torch).

One sample per (episode, t) with a full history ``t - (L-1) s, ..., t - s, t``
(L = history_length, s = history_stride, from the dataset's WorldConfig unless overridden):

==============  =====================  ========================================================
key             type / shape           meaning
==============  =====================  ========================================================
ego, top        uint8 (L, H, W, 3)     camera frames, oldest first, newest (time t) last
command         str                    the language command
kind            str                    command kind (``vla_ros.sim.commands.KINDS``); "" for a robot's
                                       command that is no known phrasing (``vla data from-bag``)
kind_id         int                    ``KINDS.index(kind)``, -1 without a kind
traj            float32 (16, 3)        ground truth: (x, y, yaw) in the robot frame at t
past_poses      float32 (L, 3)         robot poses of the history frames in the robot frame at t
                                       (last row is (0, 0, 0)); for a constant-velocity baseline
state           float32 (5,)           world-frame [x, y, yaw, v, omega] at t
episode, t      int                    episode index and step
stamp           float                  seconds since the episode start
==============  =====================  ========================================================

Frames are read from memory-mapped ``.npz`` members (uncompressed files), so the dataset holds
almost no memory of its own and works with ``DataLoader(num_workers > 0)`` (files are opened
lazily in each process).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..sim.commands import KINDS, phrasings
from ..sim.config import WorldConfig
from ..sim.geometry import world_to_robot
from .io import list_episodes, load_meta, open_npz, read_dataset_info

__all__ = ["EpisodeDataset"]


class EpisodeDataset(Dataset):
    """Samples of the episodes in ``data_dir`` (see the module docstring for the sample keys).

    ``episodes``: restrict to these episode indices (e.g. a train/val split by episode).
    ``phrasing``: "episode" (the episode's own command text) or "vary" (a train phrasing of
    the same kind chosen deterministically per sample: more language variety).
    ``as_numpy``: return numpy arrays instead of torch tensors.
    ``max_open``: episodes kept memory-mapped at once per process (each holds one file descriptor).
    """

    def __init__(self, data_dir, history_length: int | None = None, history_stride: int | None = None,
                 episodes: Sequence[int] | None = None, phrasing: str = "episode", as_numpy: bool = False,
                 max_open: int = 64):
        self.data_dir = Path(data_dir)
        info = read_dataset_info(self.data_dir)
        self.info = info
        self.config = WorldConfig.from_dict(info["config"]) if info.get("config") else WorldConfig()
        self.history_length = int(history_length or self.config.history_length)
        self.history_stride = int(history_stride or self.config.history_stride)
        if self.history_length < 1 or self.history_stride < 1:
            raise ValueError("history_length and history_stride must be >= 1")
        if phrasing not in ("episode", "vary"):
            raise ValueError(f"phrasing={phrasing!r}: choose 'episode' or 'vary'")
        self.phrasing = phrasing
        self.as_numpy = as_numpy
        self.max_open = max(1, int(max_open))
        files = list_episodes(self.data_dir)
        self.files: list[Path] = []
        self.metas: list[dict] = []
        for f in files:
            meta = load_meta(f)
            idx = meta.get("episode")
            idx = int(f.stem.split("_")[-1]) if idx is None else int(idx)
            meta["episode"] = idx
            if episodes is not None and idx not in set(episodes):
                continue
            self.files.append(f)
            self.metas.append(meta)
        span = (self.history_length - 1) * self.history_stride
        self.span = span
        index = []
        for e, meta in enumerate(self.metas):
            T = int(meta["num_steps"])
            index.extend((e, t) for t in range(span, T))
        self.index = np.asarray(index, dtype=np.int64).reshape(-1, 2)
        self._arrays: dict[int, dict] = {}
        self._pid = None

    # ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.index)

    @property
    def episode_ids(self) -> list[int]:
        return [m["episode"] for m in self.metas]

    def _episode_arrays(self, e: int) -> dict:
        if self._pid != os.getpid():  # new worker process: reopen the memory maps
            self._arrays = {}
            self._pid = os.getpid()
        arr = self._arrays.pop(e, None)
        if arr is None:
            arr = open_npz(self.files[e], mmap=True)
            while len(self._arrays) >= self.max_open:  # bound open files: drop the least recently used
                self._arrays.pop(next(iter(self._arrays)))
        self._arrays[e] = arr  # (re)insert as most recently used
        return arr

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_arrays"] = {}
        state["_pid"] = None
        return state

    def frame_indices(self, t: int) -> np.ndarray:
        """History frame steps for step ``t`` (oldest first)."""
        return t - self.history_stride * np.arange(self.history_length - 1, -1, -1)

    def command_text(self, e: int, t: int) -> str:
        meta = self.metas[e]
        if self.phrasing == "episode" or not meta.get("kind"):  # a robot's own command: verbatim
            return meta["command"]
        options = phrasings(meta["kind"], "train" if meta.get("split", "train") == "train" else "eval")
        rng = np.random.default_rng([int(meta.get("seed", 0)), int(t)])
        return options[int(rng.integers(len(options)))]

    def __getitem__(self, i: int) -> dict:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"sample {i} out of range for {len(self)} samples")
        e, t = (int(v) for v in self.index[i])
        arr = self._episode_arrays(e)
        meta = self.metas[e]
        ts = self.frame_indices(t)
        ego = np.ascontiguousarray(arr["ego"][ts])
        top = np.ascontiguousarray(arr["top"][ts])
        state = np.asarray(arr["state"][ts], dtype=np.float64)
        past = world_to_robot(state[:, :3], state[-1]).astype(np.float32)
        traj = np.array(arr["traj"][t], dtype=np.float32)
        sample = {
            "ego": ego,
            "top": top,
            "command": self.command_text(e, t),
            "kind": meta.get("kind") or "",
            "kind_id": KINDS.index(meta["kind"]) if meta.get("kind") else -1,
            "traj": traj,
            "past_poses": past,
            "state": state[-1].astype(np.float32),
            "episode": int(meta["episode"]),
            "t": t,
            "stamp": float(arr["stamp"][t]),
        }
        if not self.as_numpy:
            for k in ("ego", "top", "traj", "past_poses", "state"):
                sample[k] = torch.from_numpy(sample[k])
        return sample
