"""``generate_dataset``: render episodes of the simulated world to a directory (see FORMAT.md)."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from ..sim.commands import KINDS, SPLITS
from ..config import GUIDANCE_MODES, NOISE_MODES, ConfigError
from ..sim.config import WorldConfig
from ..sim.episode import FORMAT_VERSION, run_episode
from ..sim.world import World
from .io import DATASET_FILE, episode_stem, save_episode

__all__ = ["generate_dataset", "episode_seed", "episode_kind", "checked_kinds"]


def episode_seed(seed: int, index: int) -> int:
    """The world seed of episode ``index`` of a dataset generated with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def episode_kind(seed: int, index: int, kinds: Sequence[str] | None = None) -> str:
    """Command kinds cycle through ``kinds`` (default: all of ``KINDS``; balanced), starting at a
    seed-dependent offset."""
    kinds = tuple(kinds or KINDS)
    return kinds[(index + int(seed)) % len(kinds)]


def checked_kinds(kinds: Sequence[str] | None) -> tuple[str, ...] | None:
    """``kinds`` as a tuple (None: all kinds); ConfigError for an empty list or an unknown kind."""
    if kinds is None:
        return None
    kinds = tuple(kinds)
    if not kinds or any(k not in KINDS for k in kinds):
        raise ConfigError(f"kinds={list(kinds)}: choose one or more of {', '.join(KINDS)}")
    return kinds


_WORLD: World | None = None
_DRIVER: tuple[tuple, object] | None = None  # (policy settings, LearnerDriver) of this process


def _driver(policy: dict | None, config: WorldConfig):
    """The on-policy driver for ``policy`` (built once per process: loading a model takes seconds)."""
    global _DRIVER
    if policy is None:
        return None
    key = (json.dumps(policy, sort_keys=True), json.dumps(config.to_dict(), sort_keys=True))
    if _DRIVER is None or _DRIVER[0] != key:
        from .dagger import LearnerDriver, checkpoint_predictor

        predictor = checkpoint_predictor(policy["checkpoint"], noise=policy["noise"],
                                         guidance=policy.get("guidance", "none"))
        _DRIVER = (key, LearnerDriver(predictor, config, history_length=policy["history_length"],
                                      history_spacing=policy["history_spacing"],
                                      replan_period=policy["replan_period"], name=f"learner:{policy['checkpoint']}",
                                      noise=policy["noise"], scan_guard=policy.get("scan_guard", False)))
    return _DRIVER[1]


def _make_one(args) -> dict:
    out_dir, index, seed, split, config_dict, compress, policy, kinds = args
    global _WORLD
    config = WorldConfig.from_dict(config_dict)
    if _WORLD is None or _WORLD.config != config:
        _WORLD = World(config)
    ep = run_episode(seed=episode_seed(seed, index), kind=episode_kind(seed, index, kinds), split=split,
                     config=config, world=_WORLD, episode_index=index, driver=_driver(policy, config))
    ep.meta["dataset_seed"] = int(seed)
    save_episode(out_dir, index, ep.arrays, ep.meta, compress=compress)
    return {"index": index, "kind": ep.meta["kind"], "command": ep.meta["command"],
            "seed": ep.meta["seed"], "collisions": ep.meta["collisions"]}


def generate_dataset(out_dir, episodes: int, seed: int, config: WorldConfig | None = None, split: str = "train",
                     progress: bool = True, workers: int = 1, compress: bool = False,
                     overwrite: bool = False, first_index: int = 0, policy: str | None = None,
                     replan_period: float = 0.2, history_spacing: float = 0.2,
                     policy_noise: str = "fixed", kinds: Sequence[str] | None = None,
                     policy_guidance: str = "none", policy_scan_guard: bool = False) -> Path:
    """Generate ``episodes`` episodes into ``out_dir`` and return its path.

    Writes ``episode_NNNN.npz`` + ``episode_NNNN.json`` per episode and ``dataset.json``.
    Episode ``i`` uses world seed ``episode_seed(seed, i)`` and command kind
    ``episode_kind(seed, i)`` (kinds are balanced); ``split`` picks the phrasing set
    ("train" phrasings or the held-out "eval" phrasings). ``workers > 1`` uses processes
    (same output). ``compress=True`` writes smaller files that cannot be memory-mapped.
    ``first_index``: number the episodes from here (datasets to be joined in one directory).
    ``policy``: a checkpoint that drives after each episode's prelude, replanning every
    ``replan_period`` s from frames ``history_spacing`` s apart, while the expert still labels
    every step (on-policy data, see :mod:`vla_ros.data.dagger`); ``policy_noise``: "fixed" (one
    noise draw, like the node), "varied" (a new draw per prediction, see :class:`LearnerDriver`) or
    "zero" (x_T = 0); ``policy_guidance``: "target" / "scene" drives the policy with that guidance, as
    ``vla sim --guidance target|scene`` runs it (a model with the locator, and for "scene" the scene map);
    ``policy_scan_guard``: its plans are cut by the scan guard, as ``vla sim --scan-guard``. ``kinds``: only these
    command kinds (cycled, balanced), e.g. more on-policy data for one weak command; default all.
    """
    config = config or WorldConfig()
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: choose 'train' or 'eval'")
    if int(episodes) < 1:
        raise ValueError(f"episodes={episodes}: must be >= 1")
    pol = _policy_settings(policy, policy_noise, policy_guidance, replan_period, history_spacing, policy_scan_guard)
    kinds = checked_kinds(kinds)
    if int(first_index) < 0:
        raise ValueError(f"first_index={first_index}: must be >= 0")
    out = _empty_output(out_dir, overwrite)
    jobs = [(str(out), i, int(seed), split, config.to_dict(), compress, pol, kinds)
            for i in range(int(first_index), int(first_index) + int(episodes))]
    t0 = time.perf_counter()
    results = _run_jobs(jobs, workers, progress, f"generating {split} episodes")
    info = {
        "format_version": FORMAT_VERSION,
        "generator": "vla_ros.data.generate_dataset",
        "split": split,
        "seed": int(seed),
        "episodes": len(results),
        "steps_per_episode": config.episode_steps,
        "samples": len(results) * (config.episode_steps - config.history_span),
        "compressed": bool(compress),
        "kinds": dict(sorted(Counter(r["kind"] for r in results).items())),
        "files": [episode_stem(r["index"]) for r in results],
        "collisions": int(sum(r["collisions"] for r in results)),
        "policy": pol,  # None: the expert drove; else the checkpoint that drove (DAgger data)
        "seconds": round(time.perf_counter() - t0, 2),
        "config": config.to_dict(),
    }
    (out / DATASET_FILE).write_text(json.dumps(info, indent=1))
    return out


def _policy_settings(policy: str | None, noise: str, guidance: str, replan_period: float,
                     history_spacing: float, scan_guard: bool = False) -> dict | None:
    """The on-policy driver's settings as the workers and ``dataset.json`` record them (None: the expert drives)."""
    if noise not in NOISE_MODES:
        raise ValueError(f"policy_noise={noise!r}: choose one of {NOISE_MODES}")
    if guidance not in GUIDANCE_MODES:
        raise ValueError(f"policy_guidance={guidance!r}: choose one of {GUIDANCE_MODES}")
    if policy is None:
        return None
    from ..checkpoint import checkpoint_config, read_checkpoint

    if not Path(policy).is_file():
        raise FileNotFoundError(f"policy checkpoint {policy} does not exist")
    hist = checkpoint_config(read_checkpoint(policy), policy).history_length
    pol = {"checkpoint": str(policy), "history_length": int(hist), "history_spacing": float(history_spacing),
           "replan_period": float(replan_period), "noise": noise}
    if guidance != "none":  # recorded only when used: a record without it means no guidance
        pol["guidance"] = guidance
    if scan_guard:
        pol["scan_guard"] = True
    return pol


def _empty_output(out_dir, overwrite: bool) -> Path:
    """The output directory, created; a dataset already in it is an error, or removed with ``overwrite``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    existing = sorted(out.glob("episode_*.npz")) + ([out / DATASET_FILE] if (out / DATASET_FILE).exists() else [])
    if existing and not overwrite:
        raise FileExistsError(f"{out} already holds a dataset ({len(existing)} files); choose an empty "
                              "directory or pass overwrite=True")
    for p in existing:
        p.unlink()
        p.with_suffix(".json").unlink(missing_ok=True)
    return out


def _run_jobs(jobs: list[tuple], workers: int, progress: bool, desc: str) -> list[dict]:
    """``_make_one`` of every job, in order: in this process, or in ``workers`` spawned processes."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc=desc, unit="ep")
    results = []
    try:
        if workers and workers > 1:
            import multiprocessing as mp

            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
                for r in pool.map(_make_one, jobs, chunksize=1):
                    results.append(r)
                    if bar is not None:
                        bar.update(1)
        else:
            for job in jobs:
                results.append(_make_one(job))
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return results
