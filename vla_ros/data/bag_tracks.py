"""The first pass of ``vla data from-bag``: the conversion's settings (:class:`FromBagConfig`), the
bag's topics checked against them, and one bag's camera stamps, odometry and commands read into
tracks (:func:`read_tracks`) that :mod:`vla_ros.data.bag_timeline` puts on the grid."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from vla_ros.bag import schema
from vla_ros.bag.io import BagDamagedError, BagError, BagReader
from vla_ros.config import _require
from vla_ros.runtime.config import NodeConfig
from vla_ros.runtime.geometry import quaternion_to_yaw
from vla_ros.runtime.images import ImageError, decode_compressed, decode_image, downscale
from vla_ros.sim.config import WorldConfig

from .bag_timeline import NS, CommandTrack, PoseTrack, Timing, twist_from_poses

__all__ = ["FromBagConfig", "BagTracks", "check_topics", "decode_frame", "read_tracks"]

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
