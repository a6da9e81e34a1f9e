"""``vla data from-bag``: a robot's rosbag2 recordings (cameras, odometry, a command) -> a dataset
that ``vla train`` and ``vla eval`` read (FORMAT.md, version 2).

Each bag is read twice with ``rosbags`` (no ROS install needed): the first pass collects the
stamps of every camera frame, the odometry and the commands; :mod:`vla_ros.data.bag_timeline`
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vla_ros.bag import schema
from vla_ros.bag.io import BagDamagedError, BagError, BagReader
from vla_ros.config import ConfigError, _require
from vla_ros.runtime.config import NodeConfig
from vla_ros.runtime.geometry import quaternion_to_yaw
from vla_ros.runtime.images import ImageError, decode_compressed, decode_image, downscale
from vla_ros.sim.commands import kind_of_phrasing
from vla_ros.sim.config import WorldConfig

from .bag_timeline import (BAD_IMAGE, NO_FULL_HISTORY, NS, CommandTrack, PoseTrack, StepPlan, Timing, plan_steps,
                           split_episodes, twist_from_poses)
from .io import DATASET_FILE, LATEST_FORMAT_VERSION, save_episode

__all__ = ["FORMAT_VERSION", "SUMMARY_FILE", "FromBagConfig", "BagTracks", "convert_bags", "format_summary",
           "decode_frame", "read_tracks"]

FORMAT_VERSION = LATEST_FORMAT_VERSION  # FORMAT.md: recorded episodes (source, any length, kind may be null)
SUMMARY_FILE = "from_bag.json"
_NODE = NodeConfig()  # the node's defaults: the converter picks frames as the node does


@dataclass
class FromBagConfig:
    """Topics, image size and tolerances of a conversion (``vla data from-bag`` flags)."""

    ego: str  # camera topic, sensor_msgs/Image or CompressedImage
    top: str | None = None  # second camera (the default model uses two); None: ego only
    command: str | None = None  # std_msgs/String topic; its log time says when a command starts
    command_text: str | None = None  # or: one command for the whole of every bag
    odom: str | None = None  # nav_msgs/Odometry topic (pose and twist)
    tf: str | None = None  # or: "PARENT:CHILD" transforms (e.g. odom:base_link) from tf_topic
    tf_topic: str = "/tf"
    image_size: int = 128  # frames are centre-cropped and resized to this square
    frame_tolerance: float = _NODE.history_tolerance  # s: a frame is at most this old at its step
    max_skew: float = _NODE.max_skew  # s: the cameras' frames of a step at most this far apart
    max_odometry_gap: float = 0.2  # s: odometry messages further apart are a gap (never interpolated)

    def __post_init__(self) -> None:
        _require(bool(self.ego), "--ego: give the camera topic")
        _require((self.command is None) != (self.command_text is None),
                 "give exactly one of --command TOPIC (std_msgs/String) and --command-text TEXT")
        _require(self.command_text is None or bool(self.command_text.strip()), "--command-text: the text is empty")
        _require((self.odom is None) != (self.tf is None),
                 "no odometry: give exactly one of --odom TOPIC (nav_msgs/Odometry) and --tf PARENT:CHILD")
        if self.tf is not None:
            parts = self.tf.split(":")
            _require(len(parts) == 2 and all(p.strip("/") for p in parts),
                     f"--tf {self.tf!r}: give the two frames as PARENT:CHILD, e.g. odom:base_link")
        WorldConfig(image_size=self.image_size)  # validates the size
        step = WorldConfig().sim_dt
        _require(0 < self.frame_tolerance <= step,
                 f"--frame-tolerance {self.frame_tolerance}: must be in (0, {step:g}] s (the grid step), "
                 "so that no frame serves two steps")
        _require(self.max_skew >= 0, f"--max-skew {self.max_skew}: must be >= 0 s")
        _require(self.max_odometry_gap > 0, f"--max-odometry-gap {self.max_odometry_gap}: must be > 0 s")

    @property
    def cameras(self) -> dict[str, str]:
        """camera name (the dataset's array) -> topic; the first is the node's reference camera."""
        return {"ego": self.ego, **({"top": self.top} if self.top else {})}

    @property
    def tf_frames(self) -> tuple[str, str]:
        parent, child = (self.tf or ":").split(":")
        return parent.strip("/"), child.strip("/")

    def world(self) -> WorldConfig:
        """The dataset's world config: the model's grid (sim_dt, stride, horizon) at this image size."""
        return WorldConfig(image_size=self.image_size)

    def timing(self) -> Timing:
        w = self.world()
        return Timing(step_ns=round(w.sim_dt * NS), traj_dt_ns=round(w.traj_dt * NS), horizon=w.horizon,
                      span=w.history_span, frame_tolerance_ns=round(self.frame_tolerance * NS),
                      max_skew_ns=round(self.max_skew * NS), max_gap_ns=round(self.max_odometry_gap * NS))

    def odometry_source(self) -> str:
        return self.odom if self.odom else f"{self.tf_topic} ({self.tf_frames[0]} -> {self.tf_frames[1]})"


# -- topics ----------------------------------------------------------------------------------------

def _expected_types(cfg: FromBagConfig) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """role -> (flag, topic, accepted message types)."""
    roles = {cam: (f"--{cam}", topic, schema.IMAGE_TYPES) for cam, topic in cfg.cameras.items()}
    if cfg.command:
        roles["command"] = ("--command", cfg.command, (schema.STRING,))
    if cfg.odom:
        roles["odom"] = ("--odom", cfg.odom, (schema.ODOMETRY,))
    else:
        roles["tf"] = ("--tf-topic", cfg.tf_topic, (schema.TF_MESSAGE,))
    return roles


def check_topics(reader: BagReader, cfg: FromBagConfig) -> dict[str, str]:
    """role -> topic of this bag; :class:`BagError` for a missing topic (listing the bag's topics
    and their types) or one of the wrong type."""
    out = {}
    for role, (flag, topic, types) in _expected_types(cfg).items():
        info = reader.topics.get(topic)
        if info is None:
            raise BagError(f"{reader.path}: {flag} {topic} is not in the bag; its topics are:\n  "
                           + reader.describe().replace("\n", "\n  "))
        if info.msgtype not in types:
            raise BagError(f"{reader.path}: {flag} {topic} carries {info.msgtype}, not {' or '.join(types)}")
        out[role] = topic
    return out


# -- pass 1: stamps, odometry, commands ------------------------------------------------------------

@dataclass
class BagTracks:
    """What the first pass read from one bag."""

    cams: dict[str, list[int]]  # camera -> ascending unique frame stamps (ns)
    odom: PoseTrack
    commands: CommandTrack
    ignored: Counter = field(default_factory=Counter)  # messages left out, by reason
    truncated: dict | None = None  # where a damaged bag stopped (None: read to the end)


def decode_frame(msgtype: str, msg: Any, size: int) -> np.ndarray:
    """A sensor_msgs/Image (rgb8, bgr8, mono8, rgba8, bgra8) or CompressedImage (JPEG, PNG) ->
    (size, size, 3) uint8 RGB, centre-cropped and downscaled as the node does; ImageError if bad."""
    if msgtype == schema.IMAGE:
        image = decode_image(str(msg.encoding), int(msg.height), int(msg.width), int(msg.step), msg.data)
    else:
        image, _ = decode_compressed(str(msg.format), msg.data, size)  # the node decodes JPEGs at this scale too
    return np.ascontiguousarray(downscale(image, size))


class _Pass1:
    """Collects one bag's stamps, odometry and commands message by message."""

    def __init__(self, reader: BagReader, topics: dict[str, str], cfg: FromBagConfig) -> None:
        self.reader, self.cfg = reader, cfg
        self.role = {topic: role for role, topic in topics.items()}
        self.stamps: dict[str, list[int]] = {cam: [] for cam in cfg.cameras}
        self.odom_ns: list[int] = []  # header stamps (kept as integers: float64 would round them)
        self.odom: list[tuple[float, float, float, float, float]] = []  # x, y, yaw, v, omega
        self.commands: list[tuple[int, str]] = []
        self.ignored: Counter = Counter()
        self.tf_pairs: Counter = Counter()

    def add(self, m: Any) -> None:
        role, msg = self.role[m.topic], m.decode()
        if role in self.stamps:
            self._frame(role, m.msgtype, msg)
        elif role == "command":
            self.commands.append((m.log_ns, str(msg.data)))
        elif role == "odom":
            p, t = msg.pose.pose, msg.twist.twist
            q = p.orientation
            self._pose(schema.stamp_of(msg), p.position.x, p.position.y, quaternion_to_yaw(q.x, q.y, q.z, q.w),
                       t.linear.x, t.angular.z)
        else:
            self._transforms(msg)

    def _frame(self, cam: str, msgtype: str, msg: Any) -> None:
        stamp = schema.stamp_of(msg)
        if stamp <= 0:
            self.ignored[f"zero_stamp:{cam}"] += 1
            return
        if not self.stamps[cam]:  # the first frame says whether the camera can be used at all
            try:
                decode_frame(msgtype, msg, self.cfg.image_size)
            except ImageError as exc:
                raise BagError(f"{self.reader.path}: --{cam} {self.cfg.cameras[cam]}: its first frame cannot be "
                               f"used: {exc}") from None
        self.stamps[cam].append(stamp)

    def _pose(self, stamp: int, x: float, y: float, yaw: float, v: float, omega: float) -> None:
        if stamp <= 0:
            self.ignored["zero_stamp:odometry"] += 1
            return
        self.odom_ns.append(stamp)
        self.odom.append((x, y, yaw, v, omega))

    def _transforms(self, msg: Any) -> None:
        parent, child = self.cfg.tf_frames
        for tr in msg.transforms:
            pair = (str(tr.header.frame_id).strip("/"), str(tr.child_frame_id).strip("/"))
            self.tf_pairs[pair] += 1
            if pair == (parent, child):
                q, p = tr.transform.rotation, tr.transform.translation
                self._pose(schema.stamp_of(tr), p.x, p.y, quaternion_to_yaw(q.x, q.y, q.z, q.w), np.nan, np.nan)


def _tracks(p: _Pass1, truncated: dict | None) -> BagTracks:
    """The collected messages -> tracks; BagError for a camera or odometry without messages."""
    cfg, path = p.cfg, p.reader.path
    cams = {}
    for cam, stamps in p.stamps.items():
        if not stamps:
            zero = p.ignored[f"zero_stamp:{cam}"]
            raise BagError(f"{path}: --{cam} {cfg.cameras[cam]} has no frames with a header stamp ({zero} stamped 0: "
                           "the camera driver must stamp its frames)")
        unique = sorted(set(stamps))
        p.ignored[f"duplicate_stamp:{cam}"] += len(stamps) - len(unique)
        cams[cam] = unique
    if len(p.odom) < 2:
        seen = ", ".join(f"{a}->{b} ({n})" for (a, b), n in p.tf_pairs.most_common(12)) or "none"
        extra = f"; transforms seen: {seen}" if cfg.tf else ""
        raise BagError(f"{path}: no odometry: {len(p.odom)} message(s) from {cfg.odometry_source()}, need at "
                       f"least 2{extra}")
    if cfg.command and not p.commands:
        raise BagError(f"{path}: --command {cfg.command} has no messages; give --command-text TEXT to name "
                       "the bag's command instead")
    rows = np.array(p.odom, np.float64)
    odom = PoseTrack.build(np.array(p.odom_ns, np.int64), rows[:, :3], rows[:, 3:5], round(cfg.max_odometry_gap * NS))
    if cfg.tf:  # /tf has no twist: differentiate the poses
        odom.twist = twist_from_poses(odom.stamp_ns, odom.pose, odom.segment)
    commands = sorted(p.commands, key=lambda c: c[0]) if cfg.command else [(0, str(cfg.command_text))]
    track = CommandTrack(np.array([c[0] for c in commands], np.int64), [c[1] for c in commands])
    return BagTracks(cams, odom, track, +p.ignored, truncated)


def read_tracks(reader: BagReader, topics: dict[str, str], cfg: FromBagConfig,
                bar: Callable[[int], None] | None = None, warn: Callable[[str], None] = print) -> BagTracks:
    """First pass over one bag. A damaged or truncated bag: what was readable, and where it stopped."""
    p = _Pass1(reader, topics, cfg)
    truncated = None
    try:
        for m in reader.messages(topics.values()):
            p.add(m)
            if bar is not None:
                bar(1)
    except BagDamagedError as exc:
        last = f" (log time {exc.last_log_ns / NS:.3f} s)" if exc.last_log_ns else ""
        truncated = {"reason": str(exc), "messages_read": exc.messages_read, "last_log_ns": exc.last_log_ns}
        warn(f"warning: {exc}; converting the {exc.messages_read} messages read, up to the last one{last}")
    return _tracks(p, truncated)


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
