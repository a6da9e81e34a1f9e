"""Replay a bag into the VLA node (through DDS, or offline through the same pure core) and score it.

Both ways read the bag the same way (:func:`iter_batches`): the messages of the chosen topics, in
bag (log) time order, grouped by equal log time.  A group with at least one image is an
*observation*; after each observation the node's inputs are checked and (when usable) the model
runs.  Frame selection is the node's own: :class:`vla_ros.runtime.core.NodeCore` (histories keyed
on ``header.stamp``, ``history_length`` frames ``history_spacing`` apart, ego/top paired by stamp).

* **offline** (:func:`replay_offline`): NodeCore runs in this process with the node's model loader,
  one tick per observation at the observation's bag time.  No DDS; deterministic.
* **through DDS** (:func:`replay_dds`): a ``vla_node`` (started from the launch description, the
  same one ``vla launch`` runs, with ``use_sim_time``) gets the bag's messages on its topics and
  ``/clock`` = bag time.  ``stepped``: after each observation, wait for the node's answer to it
  (the answer a NodeCore fed the same messages predicts: its stamp, status and command), so every
  observation is answered and the result matches offline replay.  Timed: messages at the bag's
  pace (``rate``), answers whenever the node ticks (``rate_hz``), as on a robot.

Everything the node publishes on ``trajectory`` (and ``trajectory/path``) is recorded into the
output bag; the ground truth and the commands of the input bag are copied next to them, so the
output bag scores by itself (``vla bag score``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from vla_ros.bag import schema
from vla_ros.bag.io import BagDamagedError, BagError, BagMessage, BagReader, BagWriter
from vla_ros.bag.score import Answer, Truth, format_report, score

__all__ = ["Roles", "resolve_topics", "Batch", "iter_batches", "feed", "Session", "make_answer", "replay_offline",
           "replay_dds", "NodeProcess", "DdsPlayer", "write_node_params", "REPLAY_KEY", "answers_from_bag",
           "truths_from_bag", "score_bag", "format_report"]

NS = 1_000_000_000
REPLAY_KEY = "vla_ros.replay"  # custom_data key of output bags (settings, publish->answer latencies)
CAMERAS = ("ego", "top")
# model-side failures are stamped with the tick time, not the observation's stamp
MODEL_FAILURES = (5, 6, 7)


# ---------------------------------------------------------------------------------------------
# topics
# ---------------------------------------------------------------------------------------------

@dataclass
class Roles:
    """Which bag topic plays which part."""

    ego: str
    top: str
    command: str | None
    truth: str | None
    types: dict[str, str] = field(default_factory=dict)
    odom: str | None = None  # nav_msgs/Odometry: the measured velocity for the model

    def role_of(self) -> dict[str, str]:
        out = {self.ego: "ego", self.top: "top"}
        if self.command:
            out[self.command] = "command"
        if self.truth:
            out[self.truth] = "truth"
        if self.odom:
            out[self.odom] = "odom"
        return out

    def to_dict(self) -> dict[str, str | None]:
        return {"ego": self.ego, "top": self.top, "command": self.command, "truth": self.truth, "odom": self.odom}


def _norm(topic: str) -> str:
    return topic if topic.startswith("/") else "/" + topic


def _listing(reader: BagReader, types: tuple[str, ...] | None = None) -> str:
    rows = [f"{t.name} [{t.msgtype}]" for t in sorted(reader.topics.values(), key=lambda t: t.name)
            if types is None or t.msgtype in types]
    return ", ".join(rows) or "none"


def resolve_topics(reader: BagReader, ego: str | None = None, top: str | None = None, command: str | None = None,
                   truth: str | None = None, odom: str | None = None) -> Roles:
    """Pick the topics: the given names, else the standard ones, else an unambiguous guess.
    ``odom="none"`` replays without odometry even when the bag has it."""
    topics = reader.topics

    def check(role: str, flag: str, name: str, types: tuple[str, ...]) -> str:
        name = _norm(name)
        if name not in topics:
            raise BagError(f"{flag} {name}: the bag has no such topic (topics: {_listing(reader)})")
        if topics[name].msgtype not in types:
            raise BagError(f"{flag} {name} is {topics[name].msgtype}, not {' or '.join(types)}")
        return name

    def pick(role: str, flag: str, given: str | None, default: str, types: tuple[str, ...], words: tuple[str, ...],
             required: bool) -> str | None:
        if given:
            return check(role, flag, given, types)
        if default in topics and topics[default].msgtype in types:
            return default
        cands = [t.name for t in topics.values() if t.msgtype in types]
        named = [n for n in cands if any(w in n.lower() for w in words)]
        if len(named) == 1:
            return named[0]
        if not required:
            return cands[0] if len(cands) == 1 and role == "command" else None
        raise BagError(f"which topic is the {role} camera? pass {flag} TOPIC "
                       f"(image topics in the bag: {_listing(reader, schema.IMAGE_TYPES)})")

    ego_t = pick("ego", "--ego", ego, schema.TOPIC_EGO, schema.IMAGE_TYPES, ("ego", "front"), True)
    top_t = pick("top", "--top", top, schema.TOPIC_TOP, schema.IMAGE_TYPES, ("top", "overhead", "bird"), True)
    if ego_t == top_t:
        raise BagError(f"ego and top are both {ego_t}: pass --ego and --top with two different image topics")
    cmd_t = pick("command", "--command", command, schema.TOPIC_COMMAND, (schema.STRING,), ("command", "instruction"),
                 False)
    truth_t = pick("truth", "--truth-topic", truth, schema.TOPIC_TRUTH, (schema.TRAJECTORY,), ("truth", "gt", "expert"),
                   False)
    odom_t = None if odom == "none" else pick("odom", "--odom", odom, schema.TOPIC_ODOM, (schema.ODOMETRY,),
                                               ("odom",), False)
    roles = Roles(ego_t, top_t, cmd_t, truth_t, odom=odom_t)
    roles.types = {t: topics[t].msgtype for t in roles.role_of()}
    return roles


# ---------------------------------------------------------------------------------------------
# reading the bag as observations
# ---------------------------------------------------------------------------------------------

@dataclass
class Item:
    role: str  # ego | top | command | truth | odom
    msg: BagMessage
    value: Any  # ImageFields | str | TrajectoryData


@dataclass
class Batch:
    """The bag's messages of one log time."""

    log_ns: int
    items: list[Item] = field(default_factory=list)

    @property
    def has_images(self) -> bool:
        return any(i.role in CAMERAS for i in self.items)


def _decode(role: str, m: BagMessage) -> Any:
    msg = m.decode()
    if role in CAMERAS:
        return schema.image_fields(m.msgtype, msg)
    if role == "command":
        return str(msg.data)
    if role == "odom":
        return schema.odometry_data(msg)
    return schema.trajectory_data(msg)


def iter_batches(reader: BagReader, roles: Roles, command_text: str | None = None) -> Iterator[Batch]:
    """Batches in log time order; on damage, the batch read so far comes out, then BagDamagedError.

    ``command_text``: a command to give before the bag's first message (for bags without one).
    """
    role_of = roles.role_of()
    cur: Batch | None = None
    first = True
    try:
        for m in reader.messages(role_of):
            role = role_of[m.topic]
            try:
                value = _decode(role, m)
            except Exception as exc:  # noqa: BLE001 - corrupt CDR = a damaged bag
                raise BagDamagedError(f"bag {reader.path}: message on {m.topic} at {m.log_ns / NS:.3f} s cannot be "
                                      f"decoded as {m.msgtype} ({type(exc).__name__}: {str(exc)[:120]}): "
                                      "the bag is damaged", -1, m.log_ns) from None
            if first and command_text is not None:
                raw = schema.serialize(schema.typestore().types[schema.STRING](data=command_text), schema.STRING)
                cur = Batch(m.log_ns - 1, [Item("command", BagMessage(roles.command or schema.TOPIC_COMMAND,
                                                                      schema.STRING, m.log_ns - 1, raw), command_text)])
            first = False
            if cur is not None and m.log_ns != cur.log_ns:
                yield cur
                cur = None
            if cur is None:
                cur = Batch(m.log_ns)
            cur.items.append(Item(role, m, value))
    except BagDamagedError:
        if cur is not None:
            yield cur
        raise
    if cur is not None:
        yield cur


def feed(core: Any, batch: Batch) -> None:
    """Give a batch's commands, images and odometry to a NodeCore (what the node's callbacks do)."""
    for it in batch.items:
        if it.role == "command":
            core.on_command(it.value)
        elif it.role == "odom":
            o = it.value
            core.on_odometry(o.stamp_ns, o.v, o.omega)
        elif it.role in CAMERAS:
            f = it.value
            core.on_image(it.role, f.stamp_ns, f.encoding, f.height, f.width, f.step, f.data)


# ---------------------------------------------------------------------------------------------
# collecting answers; output bag; report
# ---------------------------------------------------------------------------------------------

def make_answer(raw: bytes, log_ns: int, wall_latency: float | None = None) -> Answer:
    d = schema.trajectory_data(schema.deserialize(raw, schema.TRAJECTORY))
    return Answer(d.stamp_ns, d.status, d.command, d.trajectory, d.dt, d.inference_latency, log_ns, wall_latency,
                  d.status_reason)


class Session:
    """What a replay produces: answers, the ground truth read, the output bag and the report."""

    def __init__(self, record: str | Path | None, overwrite: bool = False, meta: dict | None = None) -> None:
        self.meta = dict(meta or {})
        self.answers: list[Answer] = []
        self.truths: list[Truth] = []
        self.observations = 0
        self.unanswered = 0
        self.damaged: dict | None = None
        self.interrupted = False
        self._lock = threading.Lock()
        self.writer: BagWriter | None = None
        if record:
            self.writer = BagWriter(record, overwrite=overwrite)
            self.writer.add_topic(schema.TOPIC_TRAJECTORY, schema.TRAJECTORY, schema.RELIABLE_QOS())

    # input copies (the output bag scores by itself)
    def add_inputs(self, batch: Batch) -> None:
        for it in batch.items:
            if it.role == "truth":
                self.truths.append(Truth(it.value.stamp_ns, it.value.command, it.value.trajectory, it.value.dt))
                self._copy(schema.TOPIC_TRUTH, schema.TRAJECTORY, schema.RELIABLE_QOS(), it.msg)
            elif it.role == "command":
                self._copy(schema.TOPIC_COMMAND, schema.STRING, schema.LATCHED_QOS(), it.msg)

    def _copy(self, topic: str, msgtype: str, qos, m: BagMessage) -> None:
        if self.writer is not None:
            self.writer.add_topic(topic, msgtype, qos)
            self.writer.write(topic, m.log_ns, m.raw)

    def add_answer(self, raw: bytes, log_ns: int, wall_latency: float | None = None) -> Answer:
        return self.keep(make_answer(raw, log_ns, wall_latency), raw)

    def keep(self, a: Answer, raw: bytes) -> Answer:
        """Record an answer (its serialized message goes to the output bag at ``a.log_ns``)."""
        with self._lock:
            self.answers.append(a)
        if self.writer is not None:
            self.writer.write(schema.TOPIC_TRAJECTORY, a.log_ns, raw)
        return a

    def add_path(self, raw: bytes, log_ns: int) -> None:
        if self.writer is not None:
            self.writer.add_topic(schema.TOPIC_PATH, schema.PATH, schema.RELIABLE_QOS())
            self.writer.write(schema.TOPIC_PATH, log_ns, raw)

    def finish(self, report_path: str | Path | None = None) -> dict:
        """Close the output bag and compute (and write) the report."""
        with self._lock:
            answers = list(self.answers)
        extra = {"observations": self.observations}
        if self.meta.get("mode") == "stepped":
            extra["unanswered"] = self.unanswered
        if self.damaged:
            extra["damaged"] = self.damaged
        if self.interrupted:
            extra["interrupted"] = True
        report = score(answers, self.truths, **self.meta, **extra)
        if self.writer is not None:
            lat = [[a.stamp_ns, a.wall_latency] for a in answers if a.wall_latency is not None]
            self.writer.set_custom_data(REPLAY_KEY, {**{k: v for k, v in self.meta.items() if k != "output"},
                                                    **extra, "publish_to_answer_s": lat})
            self.writer.close()
        if report_path:
            Path(report_path).parent.mkdir(parents=True, exist_ok=True)
            Path(report_path).write_text(json.dumps(report, indent=2) + "\n")
        return report

    def close_on_error(self) -> None:
        if self.writer is not None and not self.writer.closed:
            self.writer.close()


# ---------------------------------------------------------------------------------------------
# offline
# ---------------------------------------------------------------------------------------------

def _quiet_logger(name: str, verbose: bool) -> logging.Logger:
    log = logging.getLogger(name)
    if not log.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter(f"[{name}] %(levelname)s %(message)s"))
        log.addHandler(h)
    log.setLevel(logging.INFO if verbose else logging.ERROR)
    log.propagate = False
    return log


def replay_offline(reader: BagReader, roles: Roles, cfg: Any, session: Session, *, command_text: str | None = None,
                   verbose: bool = False, model: tuple[Any, Any] | None = None,
                   progress: Callable[[int], None] | None = None) -> None:
    """Every observation of the bag through NodeCore + the node's model, in this process.

    ``model``: an already loaded ``(api, ModelSpec)`` (else :func:`vla_ros.runtime.model.load_model`
    loads it as the node would, without the warm-up, which changes no output).
    Raises BagDamagedError after processing everything before the damage (``session`` holds it).
    """
    from vla_ros.runtime.model import load_model

    threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    try:
        api, spec = model or load_model(dataclasses.replace(cfg, warmup=False))
        if hasattr(api, "reset"):
            api.reset()
        _run_offline(reader, roles, cfg, session, api, spec, command_text, verbose, progress)
    finally:
        if threads is not None:  # load_model applies cpu_threads process-wide: undo it for library callers
            sys.modules["torch"].set_num_threads(threads)


def _run_offline(reader, roles, cfg, session, api, spec, command_text, verbose, progress) -> None:
    from vla_ros.runtime.core import NodeCore
    from vla_ros.runtime.model import make_predictor

    predict = make_predictor(api)
    core = NodeCore(cfg, spec, _quiet_logger("vla bag offline", verbose))
    for batch in iter_batches(reader, roles, command_text):
        t0 = time.perf_counter()
        session.add_inputs(batch)
        feed(core, batch)
        if not batch.has_images:
            continue
        session.observations += 1
        res = core.tick(batch.log_ns, predict)
        if res is None:
            continue
        msg = schema.trajectory_msg(res.stamp_ns, res.trajectory, res.dt, res.command, int(res.status), res.reason,
                                    res.latency_s, cfg.frame_id)
        session.add_answer(schema.serialize(msg, schema.TRAJECTORY), batch.log_ns, time.perf_counter() - t0)
        if progress:
            progress(session.observations)


# ---------------------------------------------------------------------------------------------
# through DDS
# ---------------------------------------------------------------------------------------------

def write_node_params(cfg: Any, path: Path) -> Path:
    """A ROS params file holding every NodeConfig field of ``cfg`` (what the launched node gets)."""
    from vla_ros.config import to_dict

    path.write_text(yaml.safe_dump({"/**/vla_node": {"ros__parameters": to_dict(cfg)}}, sort_keys=False))
    return path


class NodeProcess:
    """vla_node started from the launch description (``vla launch``'s bring-up), use_sim_time on."""

    def __init__(self, params_file: Path, namespace: str, log_path: Path) -> None:
        from vla_ros.commands.launch import _child_setup
        from vla_ros.launch_description import describe, process_command

        (desc,) = describe(params_file=params_file, namespace=namespace, use_sim_time=True)
        self.command = process_command(desc)
        self.log_path = log_path
        self._log = open(log_path, "w")
        env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
        self.proc = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, preexec_fn=_child_setup)

    def exited(self) -> int | None:
        return self.proc.poll()

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text()[-n:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


class DdsPlayer:
    """This process's side: publishers of /clock, the cameras and the command; the answers."""

    def __init__(self, namespace: str, on_answer: Callable[[bytes, float], None],
                 on_path: Callable[[bytes], None] | None = None) -> None:
        import rclpy
        from nav_msgs.msg import Odometry
        from nav_msgs.msg import Path as PathMsg
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from rclpy.signals import SignalHandlerOptions
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from vla_ros.msg import Trajectory

        self._Clock = Clock
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node("vla_bag_replay", context=self.ctx, start_parameter_services=False)
        p = "/" + namespace.strip("/") if namespace.strip("/") else ""
        self.traj_topic = f"{p}/trajectory"
        self.clock_pub = self.node.create_publisher(Clock, "/clock", 10)
        self.cam_pubs = {cam: self.node.create_publisher(Image, f"{p}/{cam}/image_raw", qos_profile_sensor_data)
                         for cam in CAMERAS}
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.cmd_pub = self.node.create_publisher(String, f"{p}/command", latched)
        self.odom_pub = self.node.create_publisher(Odometry, f"{p}/odom", 10)
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=200, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(Trajectory, self.traj_topic, lambda raw: on_answer(raw, time.monotonic()),
                                      reliable, raw=True)
        if on_path is not None:
            self.node.create_subscription(PathMsg, f"{p}/trajectory/path", on_path, reliable, raw=True)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self._running = True
        self._thread = threading.Thread(target=self._spin, name="vla-bag-replay-spin", daemon=True)
        self._thread.start()
        self.clock_ns = 0

    def _spin(self) -> None:
        while self._running and self.ctx.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - shutting down
                break

    def set_clock(self, ns: int) -> None:
        self.clock_ns = int(ns)
        self.clock_pub.publish(self._Clock(clock=_builtin_time(ns)))

    def publish_image(self, cam: str, item: Item) -> None:
        if item.msg.msgtype == schema.IMAGE:
            raw = item.msg.raw
        else:  # a CompressedImage: the node takes sensor_msgs/Image; send the decoded one
            raw = schema.serialize(schema.image_fields_msg(item.value), schema.IMAGE)
        self.cam_pubs[cam].publish(raw)

    def publish_command(self, item: Item) -> None:
        self.cmd_pub.publish(item.msg.raw)

    def publish_odometry(self, item: Item) -> None:
        self.odom_pub.publish(item.msg.raw)

    def connected(self, with_clock: bool = True) -> bool:
        pubs = [*self.cam_pubs.values(), self.cmd_pub] + ([self.clock_pub] if with_clock else [])
        return all(p.get_subscription_count() > 0 for p in pubs) and self.node.count_publishers(self.traj_topic) > 0

    def close(self) -> None:
        import rclpy

        self._running = False
        self._thread.join(5)
        try:
            self.executor.shutdown()
            self.node.destroy_node()
        finally:
            rclpy.try_shutdown(context=self.ctx)


def _builtin_time(ns: int):
    from builtin_interfaces.msg import Time

    sec, nanosec = divmod(int(ns), NS)
    return Time(sec=sec, nanosec=nanosec)


@dataclass
class _Expect:
    stamp_ns: int
    status: int
    command: str
    now_ns: int

    def matches(self, a: Answer) -> bool:
        if a.command != self.command:
            return False
        if a.stamp_ns == self.stamp_ns and a.status == self.status:
            return True
        return self.status == 0 and a.stamp_ns == self.now_ns and a.status in MODEL_FAILURES


def replay_dds(reader: BagReader, roles: Roles, cfg: Any, spec: Any, session: Session, *, stepped: bool,
               rate: float = 1.0, namespace: str = "", launch: bool = True, command_text: str | None = None,
               step_timeout: float = 10.0, startup_timeout: float = 180.0, linger: float | None = None,
               node_log: str | Path | None = None, verbose: bool = False,
               status: Callable[[str], None] = lambda s: None) -> None:
    """Play the bag into vla_node (started here unless ``launch`` is False) and record its answers.

    Raises BagDamagedError after playing everything before the damage (``session`` holds it),
    BagError when the node does not start or never answers.
    """
    from vla_ros.runtime.core import NodeCore

    if rate <= 0:
        raise BagError(f"--rate {rate}: must be > 0")
    lock = threading.Condition()
    received: list[tuple[Answer, bytes]] = []
    published_at: dict[int, float] = {}  # image stamp -> monotonic time its last camera frame was published
    recording = threading.Event()
    player_box: dict[str, DdsPlayer] = {}
    paths: dict[int, bytes] = {}  # stepped: the first path of each stamp
    accepted: list[tuple[int, int]] = []  # stepped: (answer stamp, observation bag time)

    def on_answer(raw: bytes, t_rx: float) -> None:
        if not recording.is_set():
            return
        a = make_answer(raw, player_box["p"].clock_ns)
        pub = published_at.get(a.stamp_ns) if a.status == 0 else None
        a.wall_latency = (t_rx - pub) if pub is not None else None
        if not stepped:  # timed: everything the node publishes; stepped: the answers the loop accepts
            session.keep(a, raw)
        with lock:
            received.append((a, raw))
            lock.notify_all()

    def on_path(raw: bytes) -> None:
        if not recording.is_set():
            return
        if stepped:
            stamp = schema.stamp_of(schema.deserialize(raw, schema.PATH))
            with lock:
                paths.setdefault(stamp, raw)
        else:
            session.add_path(raw, player_box["p"].clock_ns)

    tmp = tempfile.TemporaryDirectory(prefix="vla_bag_")
    node = None
    player = None
    batches = iter_batches(reader, roles, command_text)
    try:
        first = next(batches, None)
        if first is None:
            raise BagError(f"{reader.path}: no messages on {', '.join(roles.role_of())}")
        try:
            player = DdsPlayer(namespace, on_answer, on_path)
        except ImportError as exc:
            raise BagError(f"replay through the node needs rclpy and the built vla_ros messages ({exc}); "
                           "--offline needs neither") from None
        player_box["p"] = player
        if launch:
            params = write_node_params(cfg, Path(tmp.name) / "vla_bag_node.yaml")
            log_path = Path(node_log) if node_log else Path(tmp.name) / "vla_node.log"
            node = NodeProcess(params, namespace, log_path)
            status(f"started vla_node (pid {node.proc.pid}), log {log_path}; waiting for it to be ready ...")
        _wait_ready(player, node, first.log_ns, startup_timeout)
        status("vla_node is ready; playing " + ("stepped" if stepped else f"at {rate:g}x"))

        shadow = NodeCore(cfg, spec, _quiet_logger("vla bag shadow", False)) if stepped else None
        prev: tuple | None = None
        wall0 = time.monotonic()
        log0 = first.log_ns

        def play(batch: Batch) -> None:
            player.set_clock(batch.log_ns)
            session.add_inputs(batch)
            for it in batch.items:
                if it.role == "command":
                    player.publish_command(it)
                elif it.role == "odom":  # before the frames, so a tick on them finds it
                    player.publish_odometry(it)
            for it in batch.items:
                if it.role in CAMERAS:
                    player.publish_image(it.role, it)
                    published_at[it.value.stamp_ns] = time.monotonic()

        def all_batches() -> Iterator[Batch]:
            yield first
            yield from batches

        for batch in all_batches():
            if not stepped:
                target = wall0 + (batch.log_ns - log0) / NS / rate
                while (now := time.monotonic()) < target:
                    player.set_clock(min(batch.log_ns, log0 + int((now - wall0) * rate * NS)))
                    time.sleep(min(0.025, target - now))
            if batch.has_images:
                recording.set()  # answers count from the first observation on (not the node's idle stops)
            with lock:
                since = len(received)
            play(batch)
            if shadow is not None:
                feed(shadow, batch)
            if not batch.has_images:
                continue
            session.observations += 1
            if not stepped:
                continue
            decision, al, command, _ = shadow.observe(batch.log_ns)
            exp = _Expect(al.stamp_ns if decision.ok else batch.log_ns, int(decision.status), command, batch.log_ns)
            key = (exp.stamp_ns, exp.status, exp.command)
            if key == prev:
                continue  # the node's answer to this observation is the one it already gave
            prev = key
            if not decision.ok and cfg.on_stop == "silent":
                continue
            got = _wait_answer(player, batch, exp, since, step_timeout, lock, received, node)
            if got is not None:
                answer, raw = got
                answer.log_ns = batch.log_ns
                session.keep(answer, raw)
                accepted.append((answer.stamp_ns, batch.log_ns))
            else:
                session.unanswered += 1
                status(f"no answer to the observation at {batch.log_ns / NS:.3f} s within {step_timeout:g} s "
                       f"(expected {exp})")
                if session.unanswered >= 3 and session.unanswered == session.observations:
                    raise BagError("vla_node answers none of the observations: is it running with "
                                   "use_sim_time:=true and the same parameters (--params-file)? "
                                   + (f"its log:\n{node.log_tail()}" if node else ""))
        if not stepped:
            end = time.monotonic() + (linger if linger is not None else 2.0 * cfg.period + 1.0)
            while time.monotonic() < end:
                time.sleep(0.05)
    except BagDamagedError as exc:
        session.damaged = {"error": str(exc), "messages_read": exc.messages_read}
        raise
    finally:
        time.sleep(0.2)  # answers in flight
        recording.clear()
        if stepped:
            with lock:
                for stamp, log_ns in accepted:
                    if stamp in paths:
                        session.add_path(paths.pop(stamp), log_ns)
        if node is not None:
            code = node.stop()
            if verbose or (code not in (0, None, -signal.SIGINT)):
                status(f"vla_node exited with {code}; log tail:\n{node.log_tail(1500)}")
        if player is not None:
            player.close()
        tmp.cleanup()


def _wait_ready(player: DdsPlayer, node: NodeProcess | None, clock_ns: int, timeout: float) -> None:
    """Until the node is connected and ticking: subscriptions matched and one trajectory heard."""
    from vla_ros.msg import Trajectory

    heard = threading.Event()
    deadline = time.monotonic() + timeout
    # (the recording callback ignores answers until the first observation: listen here directly)
    sub = player.node.create_subscription(Trajectory, player.traj_topic, lambda _m: heard.set(), 10)
    try:
        while True:
            if node is not None and node.exited() is not None:
                raise BagError(f"vla_node exited with status {node.exited()} before it was ready; its log:\n"
                               f"{node.log_tail()}")
            player.set_clock(clock_ns)
            if player.connected() and heard.is_set():
                return
            if time.monotonic() > deadline:
                what = "did not connect" if not player.connected() else "published no trajectory"
                tail = f"; its log:\n{node.log_tail()}" if node is not None else \
                    " (--no-launch: is vla_node running, with use_sim_time:=true and this --namespace?)"
                raise BagError(f"vla_node {what} within {timeout:g} s{tail}")
            time.sleep(0.05)
    finally:
        player.node.destroy_subscription(sub)


def _wait_answer(player: DdsPlayer, batch: Batch, exp: _Expect, since: int, timeout: float,
                 lock: threading.Condition, received: list[tuple[Answer, bytes]],
                 node: NodeProcess | None) -> tuple[Answer, bytes] | None:
    """The answer ``exp`` (received after index ``since``), or None after ``timeout``.

    Halfway through, the batch's images are sent again (the camera topics are best effort).
    """
    t0 = time.monotonic()
    resent = False
    idx = since
    while True:
        with lock:
            while idx < len(received):
                if exp.matches(received[idx][0]):
                    return received[idx]
                idx += 1
            lock.wait(0.1)
        elapsed = time.monotonic() - t0
        if elapsed > timeout:
            return None
        if node is not None and node.exited() is not None:
            raise BagError(f"vla_node exited with status {node.exited()} during the replay; its log:\n"
                           f"{node.log_tail()}")
        player.set_clock(batch.log_ns)  # /clock is best effort: repeat it
        if not resent and elapsed > timeout / 2:  # an image lost on the best-effort camera topics
            resent = True
            for it in batch.items:
                if it.role in CAMERAS:
                    player.publish_image(it.role, it)


# ---------------------------------------------------------------------------------------------
# scoring an output bag
# ---------------------------------------------------------------------------------------------

def _trajectory_topic(reader: BagReader, given: str | None, default: str, exclude: str | None) -> str | None:
    if given:
        name = _norm(given)
        if name not in reader.topics or reader.topics[name].msgtype != schema.TRAJECTORY:
            raise BagError(f"{name}: not a {schema.TRAJECTORY} topic of {reader.path} "
                           f"(topics: {_listing(reader)})")
        return name
    if default in reader.topics and reader.topics[default].msgtype == schema.TRAJECTORY:
        return default
    cands = [t.name for t in reader.topics.values() if t.msgtype == schema.TRAJECTORY and t.name != exclude]
    return cands[0] if len(cands) == 1 else None


def answers_from_bag(reader: BagReader, topic: str) -> tuple[list[Answer], BagDamagedError | None]:
    lat: dict[int, float] = {}
    try:
        from vla_ros.bag.io import read_custom_data

        info = json.loads(read_custom_data(reader.path).get(REPLAY_KEY, "{}"))
        for s, v in info.get("publish_to_answer_s", []):
            lat.setdefault(int(s), float(v))  # the first answer to each stamp
    except (ValueError, TypeError):
        pass
    out: list[Answer] = []
    used: set[int] = set()
    try:
        for m in reader.messages([topic]):
            d = schema.trajectory_data(m.decode())
            wall = lat.get(d.stamp_ns) if d.status == 0 and d.stamp_ns not in used else None
            if wall is not None:
                used.add(d.stamp_ns)
            out.append(Answer(d.stamp_ns, d.status, d.command, d.trajectory, d.dt, d.inference_latency, m.log_ns, wall,
                              d.status_reason))
    except BagDamagedError as exc:
        return out, exc
    return out, None


def truths_from_bag(reader: BagReader, topic: str) -> tuple[list[Truth], BagDamagedError | None]:
    out: list[Truth] = []
    try:
        for m in reader.messages([topic]):
            d = schema.trajectory_data(m.decode())
            out.append(Truth(d.stamp_ns, d.command, d.trajectory, d.dt))
    except BagDamagedError as exc:
        return out, exc
    return out, None


def score_bag(out_bag: str | Path, truth_bag: str | Path | None = None, pred_topic: str | None = None,
              truth_topic: str | None = None) -> dict:
    """The report of a bag of answers (``vla bag score``); ground truth from ``truth_bag`` or the bag itself."""
    damaged = []
    with BagReader(out_bag) as reader:
        ptopic = _trajectory_topic(reader, pred_topic, schema.TOPIC_TRAJECTORY, schema.TOPIC_TRUTH)
        if ptopic is None:
            raise BagError(f"{out_bag}: which topic holds the answers? pass --pred-topic "
                           f"(topics: {_listing(reader)})")
        answers, dmg = answers_from_bag(reader, ptopic)
        if dmg:
            damaged.append(str(dmg))
        truths: list[Truth] = []
        src = None
        if truth_bag is None:
            ttopic = _trajectory_topic(reader, truth_topic, schema.TOPIC_TRUTH, ptopic)
            if ttopic is not None and ttopic != ptopic:
                truths, dmg = truths_from_bag(reader, ttopic)
                src = f"{out_bag}:{ttopic}"
                if dmg:
                    damaged.append(str(dmg))
        info = {}
        try:
            from vla_ros.bag.io import read_custom_data

            info = json.loads(read_custom_data(reader.path).get(REPLAY_KEY, "{}"))
        except ValueError:
            pass
    if truth_bag is not None:
        with BagReader(truth_bag) as treader:
            ttopic = _trajectory_topic(treader, truth_topic, schema.TOPIC_TRUTH, None)
            if ttopic is None:
                raise BagError(f"{truth_bag}: no ground truth topic; pass --truth-topic (topics: {_listing(treader)})")
            truths, dmg = truths_from_bag(treader, ttopic)
            src = f"{truth_bag}:{ttopic}"
            if dmg:
                damaged.append(str(dmg))
    meta = {"mode": "score", "bag": str(out_bag), "answers_topic": ptopic, "truth_source": src,
            "replay": {k: info[k] for k in ("mode", "bag", "checkpoint") if k in info} or None}
    if info.get("observations") is not None:
        meta["observations"] = info["observations"]
    report = score(answers, truths, **meta)
    if damaged:
        report["damaged"] = {"error": "; ".join(damaged)}
    return report
