"""Replay through DDS: a ``vla_node`` gets the bag's messages on its topics and ``/clock`` = bag time.

The node is started from the launch description (the same one ``vla launch`` runs, with
``use_sim_time``) unless it already runs.  ``stepped``: after each observation, wait for the node's
answer to it (the answer a NodeCore fed the same messages predicts: its stamp, status and
command), so every observation is answered and the result matches offline replay.  Timed:
messages at the bag's pace (``rate``), answers whenever the node ticks (``rate_hz``), as on a robot.
"""

from __future__ import annotations

import itertools
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from vla_ros.bag import schema
from vla_ros.bag.batches import CAMERAS, Batch, feed, iter_batches, quiet_logger
from vla_ros.bag.dds import DdsPlayer, NodeProcess, write_node_params
from vla_ros.bag.io import BagDamagedError, BagError, BagReader
from vla_ros.bag.score import Answer
from vla_ros.bag.session import Session, make_answer
from vla_ros.bag.topics import Roles
from vla_ros.runtime.history import NS
from vla_ros.runtime.safety import Status

__all__ = ["replay_dds"]

# model-side failures are stamped with the tick time, not the observation's stamp
MODEL_FAILURES = (Status.STOP_NONFINITE_OUTPUT, Status.STOP_BAD_INPUT, Status.STOP_MODEL_ERROR)


def replay_dds(reader: BagReader, roles: Roles, cfg: Any, spec: Any, session: Session, *, stepped: bool,
               rate: float = 1.0, namespace: str = "", launch: bool = True, command_text: str | None = None,
               step_timeout: float = 10.0, startup_timeout: float = 180.0, linger: float | None = None,
               node_log: str | Path | None = None, verbose: bool = False,
               status: Callable[[str], None] = lambda s: None) -> None:
    """Play the bag into vla_node (started here unless ``launch`` is False) and record its answers.

    Raises BagDamagedError after playing everything before the damage (``session`` holds it),
    BagError when the node does not start or never answers.
    """
    if rate <= 0:
        raise BagError(f"--rate {rate}: must be > 0")
    run = _DdsReplay(session, cfg, stepped, status)
    tmp = tempfile.TemporaryDirectory(prefix="vla_bag_")
    batches = iter_batches(reader, roles, command_text)
    try:
        first = next(batches, None)
        if first is None:
            raise BagError(f"{reader.path}: no messages on {', '.join(roles.role_of())}")
        run.start(namespace, launch, Path(tmp.name), node_log, first.log_ns, startup_timeout)
        status("vla_node is ready; playing " + ("stepped" if stepped else f"at {rate:g}x"))
        run.play_all(itertools.chain([first], batches), first.log_ns, spec, rate, step_timeout)
        if not stepped:
            end = time.monotonic() + (linger if linger is not None else 2.0 * cfg.period + 1.0)
            while time.monotonic() < end:
                time.sleep(0.05)
    except BagDamagedError as exc:
        session.damaged = {"error": str(exc), "messages_read": exc.messages_read}
        raise
    finally:
        run.close(verbose)
        tmp.cleanup()


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
        return self.status == Status.OK and a.stamp_ns == self.now_ns and a.status in MODEL_FAILURES


class _DdsReplay:
    """One replay through DDS: the node, this process's player, and the answers as they arrive."""

    def __init__(self, session: Session, cfg: Any, stepped: bool, status: Callable[[str], None]) -> None:
        self.session = session
        self.cfg = cfg
        self.stepped = stepped
        self.status = status
        self.lock = threading.Condition()
        self.received: list[tuple[Answer, bytes]] = []
        self.published_at: dict[int, float] = {}  # image stamp -> monotonic time its last camera frame was published
        self.recording = threading.Event()
        self.paths: dict[int, bytes] = {}  # stepped: the first path of each stamp
        self.accepted: list[tuple[int, int]] = []  # stepped: (answer stamp, observation bag time)
        self.player: DdsPlayer | None = None
        self.node: NodeProcess | None = None

    # -- the player's callbacks (its spin thread) -------------------------------------------------
    def on_answer(self, raw: bytes, t_rx: float) -> None:
        if not self.recording.is_set():
            return
        a = make_answer(raw, self.player.clock_ns)
        pub = self.published_at.get(a.stamp_ns) if a.status == Status.OK else None
        a.wall_latency = (t_rx - pub) if pub is not None else None
        if not self.stepped:  # timed: everything the node publishes; stepped: the answers the loop accepts
            self.session.keep(a, raw)
        with self.lock:
            self.received.append((a, raw))
            self.lock.notify_all()

    def on_path(self, raw: bytes) -> None:
        if not self.recording.is_set():
            return
        if self.stepped:
            stamp = schema.stamp_of(schema.deserialize(raw, schema.PATH))
            with self.lock:
                self.paths.setdefault(stamp, raw)
        else:
            self.session.add_path(raw, self.player.clock_ns)

    # -- the replay ---------------------------------------------------------------------------
    def start(self, namespace: str, launch: bool, tmp: Path, node_log: str | Path | None, clock_ns: int,
              timeout: float) -> None:
        """The player, the node (when ``launch``), and both connected and ticking."""
        try:
            self.player = DdsPlayer(namespace, self.on_answer, self.on_path)
        except ImportError as exc:
            raise BagError(f"replay through the node needs rclpy and the built vla_ros messages ({exc}); "
                           "--offline needs neither") from None
        if launch:
            params = write_node_params(self.cfg, tmp / "vla_bag_node.yaml")
            log_path = Path(node_log) if node_log else tmp / "vla_node.log"
            self.node = NodeProcess(params, namespace, log_path)
            self.status(f"started vla_node (pid {self.node.proc.pid}), log {log_path}; waiting for it to be ready ...")
        _wait_ready(self.player, self.node, clock_ns, timeout)

    def play_all(self, batches: Iterable[Batch], log0: int, spec: Any, rate: float, step_timeout: float) -> None:
        """Every batch to the node: timed at ``rate`` x from bag time ``log0``, or stepped."""
        from vla_ros.runtime.core import NodeCore

        shadow = NodeCore(self.cfg, spec, quiet_logger("vla bag shadow", False)) if self.stepped else None
        prev: tuple | None = None
        wall0 = time.monotonic()
        for batch in batches:
            if not self.stepped:
                self._pace(batch.log_ns, log0, wall0, rate)
            if batch.has_images:
                self.recording.set()  # answers count from the first observation on (not the node's idle stops)
            with self.lock:
                since = len(self.received)
            self.play(batch)
            if shadow is not None:
                feed(shadow, batch)
            if not batch.has_images:
                continue
            self.session.observations += 1
            if self.stepped:
                prev = self.step(shadow, batch, since, prev, step_timeout)

    def _pace(self, log_ns: int, log0: int, wall0: float, rate: float) -> None:
        """Timed: wait until the batch is due at ``rate`` x, moving /clock along meanwhile."""
        target = wall0 + (log_ns - log0) / NS / rate
        while (now := time.monotonic()) < target:
            self.player.set_clock(min(log_ns, log0 + int((now - wall0) * rate * NS)))
            time.sleep(min(0.025, target - now))

    def play(self, batch: Batch) -> None:
        """Publish a batch: /clock, then commands and odometry, then the camera frames."""
        player = self.player
        player.set_clock(batch.log_ns)
        self.session.add_inputs(batch)
        for it in batch.items:
            if it.role == "command":
                player.publish_command(it)
            elif it.role == "odom":  # before the frames, so a tick on them finds it
                player.publish_odometry(it)
        for it in batch.items:
            if it.role in CAMERAS:
                player.publish_image(it.role, it)
                self.published_at[it.value.stamp_ns] = time.monotonic()

    def step(self, shadow: Any, batch: Batch, since: int, prev: tuple | None, timeout: float) -> tuple:
        """Stepped: wait for the node's answer to this observation, the one the shadow NodeCore
        predicts; returns its key (an answer equal to the previous one is not waited for)."""
        decision, al, command, _ = shadow.observe(batch.log_ns)
        exp = _Expect(al.stamp_ns if decision.ok else batch.log_ns, int(decision.status), command, batch.log_ns)
        key = (exp.stamp_ns, exp.status, exp.command)
        if key == prev:
            return key  # the node's answer to this observation is the one it already gave
        if not decision.ok and self.cfg.on_stop == "silent":
            return key
        got = self._wait_answer(batch, exp, since, timeout)
        if got is not None:
            answer, raw = got
            answer.log_ns = batch.log_ns
            self.session.keep(answer, raw)
            self.accepted.append((answer.stamp_ns, batch.log_ns))
        else:
            self._unanswered(batch, exp, timeout)
        return key

    def _unanswered(self, batch: Batch, exp: _Expect, timeout: float) -> None:
        s = self.session
        s.unanswered += 1
        self.status(f"no answer to the observation at {batch.log_ns / NS:.3f} s within {timeout:g} s "
                    f"(expected {exp})")
        if s.unanswered >= 3 and s.unanswered == s.observations:
            raise BagError("vla_node answers none of the observations: is it running with "
                           "use_sim_time:=true and the same parameters (--params-file)? "
                           + (f"its log:\n{self.node.log_tail()}" if self.node else ""))

    def _wait_answer(self, batch: Batch, exp: _Expect, since: int, timeout: float) -> tuple[Answer, bytes] | None:
        """The answer ``exp`` (received after index ``since``), or None after ``timeout``.

        Halfway through, the batch's images are sent again (the camera topics are best effort).
        """
        t0 = time.monotonic()
        resent = False
        idx = since
        while True:
            with self.lock:
                while idx < len(self.received):
                    if exp.matches(self.received[idx][0]):
                        return self.received[idx]
                    idx += 1
                self.lock.wait(0.1)
            elapsed = time.monotonic() - t0
            if elapsed > timeout:
                return None
            node = self.node
            if node is not None and node.exited() is not None:
                raise BagError(f"vla_node exited with status {node.exited()} during the replay; its log:\n"
                               f"{node.log_tail()}")
            self.player.set_clock(batch.log_ns)  # /clock is best effort: repeat it
            if not resent and elapsed > timeout / 2:  # an image lost on the best-effort camera topics
                resent = True
                for it in batch.items:
                    if it.role in CAMERAS:
                        self.player.publish_image(it.role, it)

    def close(self, verbose: bool) -> None:
        """Take the answers in flight, file the stepped paths, stop the node and the player."""
        time.sleep(0.2)  # answers in flight
        self.recording.clear()
        if self.stepped:
            with self.lock:
                for stamp, log_ns in self.accepted:
                    if stamp in self.paths:
                        self.session.add_path(self.paths.pop(stamp), log_ns)
        if self.node is not None:
            code = self.node.stop()
            if verbose or (code not in (0, None, -signal.SIGINT)):
                self.status(f"vla_node exited with {code}; log tail:\n{self.node.log_tail(1500)}")
        if self.player is not None:
            self.player.close()


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
