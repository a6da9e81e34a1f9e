"""The record of one closed-loop episode (states, controls, plans, score) and its JSON round trip."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EpisodeRecord", "jsonable"]


def jsonable(x: Any) -> Any:
    """Numpy arrays and scalars (also inside dicts, lists, tuples) as plain Python for json."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x


@dataclass
class EpisodeRecord:
    """Everything about one closed-loop episode (JSON round-trip: ``to_dict`` / ``from_dict``).

    ``stamps_ns``/``states`` have one entry per simulation step plus the start; ``controls``,
    ``modes`` and ``plan_ids`` one per step (the command applied from that stamp, and the index
    into ``plans`` of the plan in use, -1 for none).  ``plans`` lists every trajectory accepted
    or that stopped the robot, with its world waypoints.
    """

    meta: dict
    stamps_ns: list[int]
    states: np.ndarray  # (N + 1, 5)
    controls: np.ndarray  # (N, 2)
    modes: list[str]
    plan_ids: list[int]
    plans: list[dict]
    received: dict  # counters: messages, per status, per outcome
    result: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return jsonable(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "EpisodeRecord":
        d = dict(d)
        d["states"] = np.asarray(d["states"], dtype=np.float64).reshape(-1, 5)
        d["controls"] = np.asarray(d["controls"], dtype=np.float64).reshape(-1, 2)
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict()))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "EpisodeRecord":
        return cls.from_dict(json.loads(Path(path).read_text()))
