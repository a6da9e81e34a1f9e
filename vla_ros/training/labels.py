"""Labels from the simulator's expert: relabelling a sample with another command's plan from the
same recorded state (``train.relabel_prob``) and recomputing stale labels (``train.refresh_labels``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from vla_ros.config import ConfigError, TrainConfig
from vla_ros.data.io import list_episodes, load_meta
from vla_ros.sim.commands import KINDS
from vla_ros.sim.layout import Layout
from vla_ros.training.bank import FrameBank
from vla_ros.training.cache import hash_files, save_atomic
from vla_ros.training.sources import DataSource


def _expert_version() -> str:
    """Hash of the expert's source: labels computed by another version of it are not reused."""
    from vla_ros.sim import expert

    return hashlib.sha1(Path(expert.__file__).read_bytes()).hexdigest()[:12]


def _no_layout(f: Path) -> ConfigError:
    return ConfigError(f"{f}: no layout (an episode recorded on a robot): the simulator's expert cannot relabel it; "
                       "train on it without relabel_prob / refresh_labels (--relabel-prob 0: "
                       "config/model_tokens.yaml relabels half the samples)")


def require_expert_layouts(sources: list[DataSource], cfg: TrainConfig) -> None:
    """The episodes the simulator's expert will label (every one with ``relabel_prob``, those of
    the ``refresh_labels`` kinds) must carry their layout: checked on the metadata before any
    frame is encoded, so that a robot's recording is refused at once, not after its encoding."""
    if cfg.relabel_prob <= 0 and not cfg.refresh_labels:
        return
    for source in sources:
        for f in list_episodes(source.path):
            meta = load_meta(f)
            if "layout" not in meta and (cfg.relabel_prob > 0 or meta.get("kind") in cfg.refresh_labels):
                raise _no_layout(f)


def _episode_steps(bank: FrameBank, e: int) -> np.ndarray:
    """The sample steps of episode ``e`` (ascending)."""
    return bank.samples[bank.samples[:, 0] == e, 1]


def _expert_labels(bank: FrameBank, episodes: list[int], kinds_of: Callable[[int], Sequence[str]],
                   cache: Path | None, desc: str, progress: bool) -> dict[tuple[int, str], torch.Tensor]:
    """``{(episode, kind): (steps, 16, 3)}``: the current expert's plan for each of ``kinds_of(e)``
    from the recorded state of every sample step of episode ``e``; cached per episode file, kind
    and expert version. Only simulated episodes: the expert needs the world's layout."""
    from vla_ros.sim.config import WorldConfig
    from vla_ros.sim.expert import expert_trajectory

    version = _expert_version()
    out = {}
    for e in tqdm(episodes, desc=desc, unit="ep", disable=not progress):
        f, steps = bank.files[e], _episode_steps(bank, e)
        h = hashlib.sha1()
        hash_files(h, [f])
        h.update(str(steps.tolist()).encode())
        h.update(version.encode())
        key = h.hexdigest()[:16]
        meta = None
        for kind in kinds_of(e):
            entry = cache / f"{f.stem}_{kind}_{key}.npy" if cache is not None else None
            if entry is not None and entry.exists():
                out[e, kind] = torch.from_numpy(np.load(entry))
                continue
            if meta is None:
                meta = load_meta(f)
                if "layout" not in meta:
                    raise _no_layout(f)
                config, layout = WorldConfig.from_dict(meta["config"]), Layout.from_dict(meta["layout"])
            labels = np.stack([expert_trajectory(kind, bank.states[r], layout, config)
                               for r in bank.rows(e, steps)]).astype(np.float32)  # (steps, 16, 3)
            out[e, kind] = torch.from_numpy(labels)
            if entry is not None:
                entry.parent.mkdir(parents=True, exist_ok=True)
                save_atomic(entry, lambda f: np.save(f, labels))
    return out


def relabel_trajectories(bank: FrameBank, kinds: tuple[str, ...] = KINDS, cache_dir: str | Path | None = None,
                         progress: bool = True) -> torch.Tensor:
    """(N, K, 16, 3): the expert's trajectory for each of ``kinds`` (K of them, in that order)
    from the recorded state of every sample step (zeros at steps that are not samples).

    Every simulated episode file keeps its world config, layout and states, so the expert can
    answer any command from any state it recorded; for the episode's own kind this is its stored
    label (unless the expert changed since). Cached per episode file and kind next to the frozen features.
    """
    out = torch.zeros(bank.traj.shape[0], len(kinds), *bank.traj.shape[1:])
    cache = Path(cache_dir) / "relabel" if cache_dir is not None else None
    labels = _expert_labels(bank, list(range(len(bank.files))), lambda e: kinds, cache,
                            "labelling every state for every command", progress)
    for (e, kind), lab in labels.items():
        out[bank.rows(e, _episode_steps(bank, e)), kinds.index(kind)] = lab
    return out


def refresh_labels(bank: FrameBank, kinds: tuple[str, ...], cache_dir: str | Path | None = None,
                   progress: bool = True) -> int:
    """Replace the recorded label of every sample of an episode of ``kinds`` with the current
    expert's plan from the same recorded state (data recorded before the expert changed, e.g.
    goto episodes from before it drove around obstacles). Returns how many labels changed."""
    episodes = [e for e, k in enumerate(bank.kinds) if k in kinds]
    cache = Path(cache_dir) / "relabel" if cache_dir is not None else None
    labels = _expert_labels(bank, episodes, lambda e: (bank.kinds[e],), cache,
                            "labels from the current expert", progress)
    changed = 0
    for (e, _), lab in labels.items():
        rows = torch.from_numpy(bank.rows(e, _episode_steps(bank, e)))
        changed += int(((bank.traj[rows] - lab).abs().amax(dim=(-1, -2)) > 1e-4).sum())
        bank.traj[rows] = lab
    return changed
