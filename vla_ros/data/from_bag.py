"""``vla data from-bag``: a robot's rosbag2 recordings (cameras, odometry, a command) -> a dataset
that ``vla train`` and ``vla eval`` read (FORMAT.md, version 2).

Each bag is read twice with ``rosbags`` (no ROS install needed): the first pass
(:mod:`vla_ros.data.bag_tracks`) collects the stamps of every camera frame, the odometry and the
commands; :mod:`vla_ros.data.bag_timeline`
resamples them onto the grid and cuts episodes; the second pass decodes only the frames the
episodes use (centre-cropped and downscaled exactly as the node does on arrival) and writes each
episode as soon as its frames are in, so a long bag never sits in memory.  Everything goes to a
temporary directory that is renamed to the output at the end: an error leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vla_ros.bag import schema
from vla_ros.bag.io import BagDamagedError, BagError, BagReader
from vla_ros.config import ConfigError
from vla_ros.runtime.images import ImageError
from vla_ros.sim.commands import kind_of_phrasing

from .bag_timeline import BAD_IMAGE, NO_FULL_HISTORY, NS, StepPlan, plan_steps, split_episodes
from .bag_tracks import BagTracks, FromBagConfig, check_topics, decode_frame, read_tracks
from .io import DATASET_FILE, LATEST_FORMAT_VERSION, save_episode

__all__ = ["FORMAT_VERSION", "SUMMARY_FILE", "FromBagConfig", "BagTracks", "convert_bags", "format_summary",
           "decode_frame", "read_tracks"]

FORMAT_VERSION = LATEST_FORMAT_VERSION  # FORMAT.md: recorded episodes (source, any length, kind may be null)
SUMMARY_FILE = "from_bag.json"


# -- pass 2: frames, episodes ----------------------------------------------------------------------

class _Sink:
    """Numbers the episodes of all bags, writes them to the (temporary) output directory and keeps
    what the summary needs."""

    def __init__(self, out: Path, cfg: FromBagConfig) -> None:
        self.out, self.cfg = out, cfg
        self.world = cfg.world()
        self.span = self.world.history_span
        self.episodes: list[dict] = []  # one record per written episode
        self.sample_states: list[np.ndarray] = []  # (samples, 5) per episode, for the speed statistics
        self.labels: list[tuple[np.ndarray, np.ndarray, str]] = []  # (stamps (T,), labels (T, 16, 3), command)

    def write(self, plan: StepPlan, a: int, b: int, frames: dict[str, np.ndarray], text: str,
              source: dict) -> None:
        """Write grid steps [a, b) of ``plan`` as the next episode (``frames``: camera -> (b-a, S, S, 3))."""
        index = len(self.episodes)
        obs = plan.obs_ns[a:b]
        arrays = {**frames, "state": plan.state[a:b].astype(np.float32), "traj": plan.traj[a:b].astype(np.float32),
                  "stamp": (obs - obs[0]) / NS, "stamp_ns": obs.astype(np.int64)}
        kind = kind_of_phrasing(text)
        meta = {"format_version": FORMAT_VERSION, "episode": index, "kind": kind, "command": text,
                "num_steps": b - a, "split": None,
                "start_state": [float(x) for x in plan.state[a]], "final_state": [float(x) for x in plan.state[b - 1]],
                "source": {**source, "start_ns": int(obs[0]), "end_ns": int(obs[-1]),
                           "label_end_ns": int(obs[-1]) + round(self.world.traj_dt * NS) * self.world.horizon},
                "config": self.world.to_dict()}
        save_episode(self.out, index, arrays, meta)
        self.sample_states.append(plan.state[a + self.span:b])
        self.labels.append((obs.astype(np.int64), plan.traj[a:b], text))
        self.episodes.append({"index": index, "command": text, "kind": kind, "steps": b - a,
                              "samples": b - a - self.span, "seconds": (obs[-1] - obs[0]) / NS,
                              "bag": source["bag"]})


def _finish_episode(plan: StepPlan, a: int, b: int, frames: dict[str, np.ndarray], bad: dict[int, str],
                    sink: _Sink, text: str, source: dict) -> None:
    """Write steps [a, b), split where a frame did not decode (``bad``: position -> camera): each
    part starts a new history, as after any other gap."""
    span = sink.span
    cuts = sorted(bad)
    for pos in cuts:
        plan.reason[a + pos] = BAD_IMAGE.format(camera=bad[pos])
    starts = [0] + [p + 1 for p in cuts]
    stops = cuts + [b - a]
    for x, y in zip(starts, stops):
        if y <= x:
            continue
        head = plan.reason[a + x:a + min(y, x + span)]
        head[head == ""] = NO_FULL_HISTORY
        if y - x > span:
            sink.write(plan, a + x, a + y, {cam: f[x:y] for cam, f in frames.items()}, text, source)


def _wanted_frames(plan: StepPlan, episodes: list[tuple[int, int]], tracks: BagTracks
                   ) -> dict[str, dict[int, list[tuple[int, int]]]]:
    """camera -> {frame stamp: [(episode, position in it)]}: where each selected frame goes."""
    wanted: dict[str, dict[int, list[tuple[int, int]]]] = {cam: {} for cam in tracks.cams}
    for e, (a, b) in enumerate(episodes):
        for cam, stamps in tracks.cams.items():
            for pos, k in enumerate(plan.frames[cam][a:b].tolist()):
                wanted[cam].setdefault(stamps[k], []).append((e, pos))
    return wanted


def _write_frames(reader: BagReader, topics: dict[str, str], tracks: BagTracks, plan: StepPlan,
                  episodes: list[tuple[int, int]], sink: _Sink, source: dict, bar: Callable[[int], None]) -> None:
    """Second pass: decode the selected frames, write each episode once all its frames are in."""
    size = sink.cfg.image_size
    wanted = _wanted_frames(plan, episodes, tracks)
    cam_of = {topics[cam]: cam for cam in tracks.cams}
    pending = {e: (b - a) * len(cam_of) for e, (a, b) in enumerate(episodes)}
    frames: dict[int, dict[str, np.ndarray]] = {}
    bad: dict[int, dict[int, str]] = {e: {} for e in pending}

    def finish(e: int) -> None:
        a, b = episodes[e]
        got = frames.pop(e, None) or {cam: np.zeros((b - a, size, size, 3), np.uint8) for cam in cam_of.values()}
        _finish_episode(plan, a, b, got, bad[e], sink, tracks.commands.texts[plan.command[a]], source)
        del pending[e]

    try:
        for m in reader.messages(cam_of):
            bar(1)
            cam, msg = cam_of[m.topic], m.decode()
            targets = wanted[cam].pop(schema.stamp_of(msg), None)  # the first message of a stamp only
            if targets is None:
                continue
            try:
                image = decode_frame(m.msgtype, msg, size)
            except ImageError:
                image = None
            for e, pos in targets:
                a, b = episodes[e]
                if image is None:
                    bad[e].setdefault(pos, cam)
                else:
                    frames.setdefault(e, {c: np.zeros((b - a, size, size, 3), np.uint8) for c in cam_of.values()})
                    frames[e][cam][pos] = image
                pending[e] -= 1
                if pending[e] == 0:
                    finish(e)
    except BagDamagedError:
        pass  # the first pass already said where the bag ends
    for cam, left in wanted.items():  # frames the second pass did not find (cannot happen for an intact bag)
        for e, pos in (t for targets in left.values() for t in targets):
            bad[e].setdefault(pos, cam)
    for e in list(pending):
        finish(e)


# -- the conversion -------------------------------------------------------------------------------

def _bar(total: int, desc: str, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="msg", disable=not progress, leave=False)


def _warn_clocks(path: Path, tracks: BagTracks, log: Callable[[str], None]) -> None:
    """Say so when the cameras and the odometry were stamped at times that never meet (two clocks:
    a driver stamping with its sensor's time, a bag of sim time beside wall time)."""
    cam_lo = max(s[0] for s in tracks.cams.values())
    cam_hi = min(s[-1] for s in tracks.cams.values())
    odo_lo, odo_hi = int(tracks.odom.stamp_ns[0]), int(tracks.odom.stamp_ns[-1])
    if cam_hi < odo_lo or odo_hi < cam_lo:
        log(f"warning: {path}: the cameras' header stamps ({cam_lo / NS:.3f} .. {cam_hi / NS:.3f} s) and the "
            f"odometry's ({odo_lo / NS:.3f} .. {odo_hi / NS:.3f} s) never overlap: are they stamped by "
            "different clocks? Every step needs both")


def _convert_one(reader: BagReader, topics: dict[str, str], sink: _Sink, progress: bool,
                 log: Callable[[str], None]) -> dict:
    """Both passes over one bag; returns its row of the summary."""
    cfg, timing = sink.cfg, sink.cfg.timing()
    counts = {role: reader.topics[t].count for role, t in topics.items()}
    with _bar(sum(counts.values()), f"{reader.path.name}: pass 1/2, stamps", progress) as bar:
        tracks = read_tracks(reader, topics, cfg, bar.update, warn=log)
    _warn_clocks(reader.path, tracks, log)
    plan = plan_steps(tracks.cams, tracks.odom, tracks.commands, timing)
    episodes = split_episodes(plan, tracks.commands, timing.span)
    source = {"type": "rosbag2", "bag": str(reader.path.resolve()), "storage": reader.storage,
              "topics": {"odometry" if role in ("odom", "tf") else role: (cfg.odometry_source() if role == "tf" else t)
                         for role, t in topics.items()},
              **({"command_text": cfg.command_text} if cfg.command_text else {})}
    first = len(sink.episodes)
    with _bar(sum(counts[c] for c in tracks.cams), f"{reader.path.name}: pass 2/2, frames", progress) as bar:
        _write_frames(reader, topics, tracks, plan, episodes, sink, source, bar.update)
    mine = sink.episodes[first:]
    span_ns = (int(plan.grid_ns[-1]) - int(plan.grid_ns[0])) if len(plan.grid_ns) else 0
    return {"bag": source["bag"], "storage": reader.storage, "topics": source["topics"],
            "start_ns": int(plan.grid_ns[0]) if len(plan.grid_ns) else None,
            "end_ns": int(plan.grid_ns[-1]) if len(plan.grid_ns) else None, "seconds": span_ns / NS,
            "grid_steps": len(plan.grid_ns), "episodes": len(mine), "samples": sum(e["samples"] for e in mine),
            "dropped": dict(sorted(Counter(r for r in plan.reason.tolist() if r).items())),
            "ignored_messages": dict(sorted(tracks.ignored.items())), "truncated": tracks.truncated}


def _stats(x: np.ndarray) -> dict[str, float]:
    if not len(x):
        return {}
    return {"mean": float(np.mean(x)), "p50": float(np.median(x)), "p95": float(np.percentile(x, 95)),
            "max": float(np.max(x))}


def _summary(sink: _Sink, rows: list[dict], out: Path, seconds: float) -> dict[str, Any]:
    """Episodes, samples, drops by reason, speed and duration statistics of the conversion."""
    states = np.concatenate(sink.sample_states) if sink.sample_states else np.zeros((0, 5))
    dropped: Counter = Counter()
    for r in rows:
        dropped.update(r["dropped"])
    lengths = np.array([e["seconds"] for e in sink.episodes])
    return {
        "out": str(out), "format_version": FORMAT_VERSION, "bags": rows,
        "episodes": len(sink.episodes), "samples": int(sum(e["samples"] for e in sink.episodes)),
        "grid_steps": int(sum(r["grid_steps"] for r in rows)), "dropped": dict(sorted(dropped.items())),
        "commands": dict(Counter(e["command"] for e in sink.episodes).most_common()),
        "speed_m_s": _stats(np.abs(states[:, 3])), "yaw_rate_rad_s": _stats(np.abs(states[:, 4])),
        "duration_s": {"recorded": float(sum(r["seconds"] for r in rows)), "episodes": float(lengths.sum()),
                       **{f"episode_{k}": v for k, v in _stats(lengths).items()}},
        "truncated": [r["bag"] for r in rows if r["truncated"]],
        "settings": asdict(sink.cfg), "seconds": round(seconds, 2),
    }


def _write_truth_bag(path: Path, sink: _Sink) -> None:
    """The labels as ground truth for ``vla bag score --truth``: /ground_truth/trajectory
    (vla_ros/msg/Trajectory) stamped with each step's observation stamp, as the node stamps its answers."""
    from vla_ros.bag.io import BagWriter

    with BagWriter(path, storage="mcap") as bag:
        bag.add_topic(schema.TOPIC_TRUTH, schema.TRAJECTORY, schema.RELIABLE_QOS())
        for stamps, labels, text in sink.labels:
            for stamp, traj in zip(stamps.tolist(), labels):
                bag.write_msg(schema.TOPIC_TRUTH, stamp,
                              schema.trajectory_msg(stamp, traj, sink.world.traj_dt, command=text))


def _prepare_out(out: Path, overwrite: bool) -> Path:
    """A fresh temporary directory beside ``out`` (renamed to it at the end)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; choose another --out or pass --overwrite")
    tmp = out.parent / f".{out.name}.from-bag-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _commit(tmp: Path, out: Path) -> None:
    """Put the finished dataset in place (replacing what --overwrite allowed to replace)."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    if old.exists():
        shutil.rmtree(old) if old.is_dir() else old.unlink()


def _dataset_info(sink: _Sink, summary: dict) -> dict[str, Any]:
    kinds = Counter(e["kind"] for e in sink.episodes if e["kind"])
    return {"format_version": FORMAT_VERSION, "generator": "vla_ros.data.from_bag", "split": None,
            "episodes": len(sink.episodes), "samples": summary["samples"], "steps_per_episode": None,
            "compressed": False, "kinds": dict(sorted(kinds.items())),
            "files": [f"episode_{e['index']:04d}" for e in sink.episodes], "sources": summary["bags"],
            # what the node must use to see the frames as they were sampled here
            "node": {"history_spacing": sink.world.history_stride * sink.world.sim_dt,
                     "history_tolerance": sink.cfg.frame_tolerance, "max_skew": sink.cfg.max_skew,
                     "image_size": sink.cfg.image_size},
            "seconds": summary["seconds"], "config": sink.world.to_dict()}


def convert_bags(bags: Sequence[str | Path], out: str | Path, cfg: FromBagConfig, overwrite: bool = False,
                 progress: bool = True, log: Callable[[str], None] = print,
                 truth_bag: str | Path | None = None) -> dict[str, Any]:
    """Convert ``bags`` into the dataset directory ``out`` and return the summary (also written
    to ``out/from_bag.json`` and into ``dataset.json``). ``truth_bag``: also write the labels as
    a ground-truth bag there (:func:`_write_truth_bag`). Every bag is checked before anything is
    written; on any error the outputs are left as they were."""
    if not bags:
        raise ConfigError("give at least one bag")
    t0 = time.perf_counter()
    out = Path(out)
    truth = Path(truth_bag) if truth_bag is not None else None
    if truth is not None and truth.exists() and not overwrite:
        raise FileExistsError(f"{truth} exists; choose another --truth-bag or pass --overwrite")
    if truth is not None and (truth.resolve() == out.resolve() or out.resolve() in truth.resolve().parents):
        raise ConfigError(f"--truth-bag {truth}: put it outside --out {out} (the dataset directory is replaced whole)")
    for bag in bags:  # fail early: a wrong topic in the last bag should not cost the first ones' time
        with BagReader(bag) as reader:
            check_topics(reader, cfg)
    tmp = _prepare_out(out, overwrite)
    try:
        sink = _Sink(tmp, cfg)
        rows = []
        for bag in bags:
            with BagReader(bag) as reader:
                rows.append(_convert_one(reader, check_topics(reader, cfg), sink, progress, log))
        summary = _summary(sink, rows, out, time.perf_counter() - t0)
        if not sink.episodes:
            drops = ", ".join(f"{k} {v}" for k, v in summary["dropped"].items()) or "no grid steps"
            raise BagError(f"no episode with a full history and horizon in {len(bags)} bag(s) "
                           f"({summary['grid_steps']} grid steps: {drops}); nothing written")
        (tmp / DATASET_FILE).write_text(json.dumps(_dataset_info(sink, summary), indent=1))
        (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
        if truth is not None:
            _write_truth_bag(tmp / "truth_bag", sink)
            _commit(tmp / "truth_bag", truth)
            summary["truth_bag"] = str(truth)
        _commit(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


def format_summary(s: dict[str, Any]) -> str:
    """The summary as a few lines for the terminal."""
    lines = [f"wrote {s['episodes']} episodes, {s['samples']} samples from {len(s['bags'])} bag(s) to {s['out']} "
             f"(format version {s['format_version']}, {s['seconds']:.1f} s)"]
    d = s["duration_s"]
    lines.append(f"  time: {d['recorded']:.1f} s recorded, {d['episodes']:.1f} s in episodes"
                 + (f" (each {d['episode_p50']:.1f} s median, {d['episode_max']:.1f} s longest)" if s["episodes"] else ""))
    if s["speed_m_s"]:
        v, w = s["speed_m_s"], s["yaw_rate_rad_s"]
        lines.append(f"  speed |v|: mean {v['mean']:.2f}, p95 {v['p95']:.2f}, max {v['max']:.2f} m/s; "
                     f"|omega|: mean {w['mean']:.2f}, max {w['max']:.2f} rad/s")
    steps = max(1, s["grid_steps"])
    lines.append(f"  grid steps: {s['grid_steps']}; not samples:" + ("" if s["dropped"] else " none"))
    for reason, n in s["dropped"].items():
        lines.append(f"    {reason:<22} {n:>7}  ({100 * n / steps:.1f}%)")
    for text, n in list(s["commands"].items())[:10]:
        lines.append(f"  command {text!r}: {n} episode(s)")
    for r in s["bags"]:
        if r["truncated"]:
            lines.append(f"  TRUNCATED {r['bag']}: {r['truncated']['reason']}")
        if r["ignored_messages"]:
            lines.append(f"  {Path(r['bag']).name}: messages left out: {r['ignored_messages']}")
    return "\n".join(lines)
