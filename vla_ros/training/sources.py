"""Where training data comes from: the dataset directories of ``vla train --data`` with the
share of each batch drawn from each, the held-out validation episodes, and how likely each
training sample is drawn."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from vla_ros.config import ConfigError

if TYPE_CHECKING:
    from vla_ros.training.bank import FrameBank


@dataclass(frozen=True)
class DataSource:
    """One dataset directory of ``vla train --data`` and the share of each training batch drawn
    from it (``None``: in proportion to its samples, as when it is the only one)."""

    path: Path
    weight: float | None = None


def parse_data(data: str | Path | DataSource | Sequence[str | Path | DataSource]) -> list[DataSource]:
    """``DIR``, ``DIR1,DIR2`` or ``DIR1:W1,DIR2:W2`` (weights: shares of each batch, normalised;
    give all or none) or a list of paths / :class:`DataSource` -> sources."""
    if isinstance(data, DataSource):
        return [data]
    items = str(data).split(",") if isinstance(data, (str, Path)) else list(data)
    out = []
    for item in items:
        if isinstance(item, DataSource):
            out.append(item)
            continue
        text, weight = str(item).strip(), None
        if not text:
            raise ConfigError(f"--data {data!r}: an empty directory name; e.g. sim,bags or sim:0.5,bags:0.5")
        path, sep, tail = text.rpartition(":")
        try:
            weight = float(tail) if sep else None
        except ValueError:
            path = text  # a ':' in the path itself, no weight
        out.append(DataSource(Path(path if sep and weight is not None else text), weight))
    weights = [s.weight for s in out]
    if not out:
        raise ConfigError(f"--data {data!r}: give one or more dataset directories, e.g. sim,bags or sim:0.5,bags:0.5")
    if any(w is None for w in weights) and any(w is not None for w in weights):
        raise ConfigError(f"--data {data!r}: give a weight to every directory or to none")
    if any(w is not None and not (w > 0 and math.isfinite(w)) for w in weights):
        raise ConfigError(f"--data {data!r}: weights must be positive numbers")
    return out


def validation_episodes(files: list[Path], n: int) -> set[int]:
    """Indices of the ``n`` validation episodes among ``files``: those whose file name hashes
    lowest. Appending episodes (a DAgger round joined to the data so far) keeps most of the
    earlier choice and draws from every source in proportion; taking the last ``n`` files would
    hold out mostly the newest round, the data the round was run for."""
    order = sorted(range(len(files)), key=lambda e: hashlib.sha1(files[e].name.encode()).hexdigest())
    return set(order[:n])


def split_samples(bank: FrameBank, n_sources: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(training sample indices, validation sample indices, validation episodes): each source
    holds out ``val_fraction`` of its episodes (:func:`validation_episodes`, at least one of two
    or more), so every source is validated; with one episode in all, it trains and validates."""
    val_eps: set[int] = set()
    for i in range(n_sources):
        mine = np.flatnonzero(bank.source == i)
        n = max(1, int(round(len(mine) * val_fraction))) if len(mine) > 1 else 0
        val_eps |= {int(mine[j]) for j in validation_episodes([bank.files[e] for e in mine], n)}
    is_val = np.array([e in val_eps for e in bank.samples[:, 0]], dtype=bool)
    train_idx = np.flatnonzero(~is_val) if val_eps else np.arange(len(bank.samples))
    val_idx = np.flatnonzero(is_val) if val_eps else train_idx
    return train_idx, val_idx, len(val_eps)


def sample_probabilities(bank: FrameBank, train_idx: np.ndarray, sources: list[DataSource]) -> np.ndarray | None:
    """How likely each training sample is drawn: source weight / that source's training samples
    (None without weights: every sample alike)."""
    if sources[0].weight is None:
        return None
    src = bank.source[bank.samples[train_idx, 0]]
    p = np.zeros(len(train_idx))
    for i, s in enumerate(sources):
        mine = src == i
        if not mine.any():
            raise ConfigError(f"--data {s.path}:{s.weight:g}: this source has no training samples")
        p[mine] = s.weight / mine.sum()
    return p / p.sum()
