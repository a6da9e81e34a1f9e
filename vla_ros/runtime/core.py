"""NodeCore: everything ``vla_node`` does between its subscriptions and its publishers, without ROS.

(Over 500 lines on purpose: NodeCore's inputs, checks and tick share one lock and one state.)

Inputs (thread-safe; called from subscription callbacks and the node's decode threads)::

    on_image(camera, stamp_ns, encoding, height, width, step, data, received_ns=None)
    on_compressed_image(camera, stamp_ns, format, data, decoder=None, received_ns=None)   (image_transport compressed)
    on_frames_lost(camera, count)   (the middleware reports frames of a camera lost before delivery)
    on_command(text)
    on_odometry(stamp_ns, v, omega, pose, frame_id)   (the measured velocity; the pose for output_frame odom)
    on_scan(scan)   (scan_guard: a runtime.scan_guard.Scan, the newest laser scan)

``on_image`` / ``on_compressed_image`` are :meth:`~NodeCore.note_received` (count the frame, its input
delay) followed by :meth:`~NodeCore.store_image` / :meth:`~NodeCore.store_compressed_image` (decode,
downscale, store).  vla_node calls the two halves on different threads: ``note_received`` in the
subscription callback, the store on the camera's decode thread (``runtime.worker.DecodeWorker``),
which drops a frame that a newer one replaced before it was decoded (:meth:`~NodeCore.on_frames_superseded`).

Frames are downscaled to the model's image size on arrival (a JPEG is decoded at a reduced scale
already), so a history of 640x480 frames holds what the model sees (128x128) rather than the
camera's resolution.  ``received_ns`` (the node clock when the callback ran) gives each camera's
input delay, header.stamp to callback: the figure that shows frames waiting in a queue.

A tick (called from the inference worker, ``rate_hz`` times per second)::

    tick(now_ns, predict) -> TickResult | None

checks the inputs (:meth:`observe`), runs the model when they are usable (with the odometry
message stamped closest to the newest frame, or ``None`` = unknown), and returns what to
publish: the model's trajectory stamped with the newest observation used, or a stop trajectory
with the reason.  The model output is checked (shape, finite) before it is ever returned.

Times are integer nanoseconds of the node clock (ROS time; sim time under ``use_sim_time``).
Status changes are logged once per change; rejected messages are counted per reason and logged
at most once per ``LOG_THROTTLE_S`` per reason.
"""

from __future__ import annotations

import collections
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from vla_ros.config import MAX_ODOMETRY
from vla_ros.control.tracker import PoseHistory
from vla_ros.runtime.config import NodeConfig
from vla_ros.runtime.history import NS, Alignment, CameraHistory, Frame, align
from vla_ros.runtime.images import ImageError, decode_compressed, decode_image, downscale
from vla_ros.runtime.safety import Decision, Status, diagnostic_level, stop_trajectory
from vla_ros.runtime.scan_guard import Scan, ScanGuard
from vla_ros.runtime.stats import LatencyWindow, RateMeter, Throttle
from vla_ros.sim.geometry import robot_to_world

__all__ = ["ModelSpec", "NodeCore", "TickResult", "Logger", "Predictor"]

LOG_THROTTLE_S = 5.0  # seconds between two logs of the same rejection reason
# The node clock moving back by more than this clears the histories (a bag looping under --clock).
CLOCK_JUMP_BACK_NS = 10_000_000


class Logger(Protocol):  # rclpy's node logger and logging.Logger both fit
    def info(self, msg: str) -> Any: ...
    def warning(self, msg: str) -> Any: ...
    def error(self, msg: str) -> Any: ...


ODOMETRY_KEEP = 64  # odometry messages kept (odom often runs at 50-100 Hz; frames are matched within ~0.2 s)

# (per-camera frame lists in ModelSpec.cameras order, command, odometry (v, omega) or None)
#   -> object with .trajectory, .timing
Predictor = Callable[[Sequence[Sequence[np.ndarray]], str, "tuple[float, float] | None"], Any]


@dataclass(frozen=True)
class ModelSpec:
    """What the node needs to know about the model (from ``VLAInferenceAPI.config``)."""

    cameras: tuple[str, ...] = ("ego", "top")
    history_length: int = 5
    trajectory_length: int = 16
    traj_dt: float = 0.2
    image_size: int | None = None  # frames are downscaled to image_size x image_size on arrival (None: kept)

    @classmethod
    def from_config(cls, cfg: Any) -> "ModelSpec":
        size = getattr(cfg, "image_size", None)
        return cls(tuple(cfg.cameras), int(cfg.history_length), int(cfg.trajectory_length), float(cfg.traj_dt),
                   None if size is None else int(size))


@dataclass
class TickResult:
    """What one tick publishes (``publish`` False: nothing, the ``on_stop: silent`` case)."""

    status: Status
    reason: str
    stamp_ns: int  # newest observation used; the tick's time for a stop
    trajectory: np.ndarray  # (trajectory_length, 3) x, y, heading (float32 robot frame; float64 odom frame)
    dt: float
    command: str
    latency_s: float = 0.0  # wall time of the model call
    publish: bool = True
    timing: dict[str, float] = field(default_factory=dict)
    frame_id: str = ""  # '' = the node's frame_id (robot frame); else the odometry frame (output_frame odom)

    @property
    def ok(self) -> bool:
        return self.status == Status.OK


class NodeCore:
    def __init__(self, cfg: NodeConfig, model: ModelSpec, log: Logger,
                 on_restart: Callable[[], None] | None = None,
                 explain_command: Callable[[str], tuple[str, float, float] | None] | None = None,
                 untrained_colours: Callable[[str], tuple[list[str], tuple[str, ...]]] | None = None) -> None:
        """``on_restart`` (e.g. the inference API's ``reset``) is called from ``tick`` -- the
        thread that runs the model -- before the first prediction after the histories were
        cleared (time jumped back: a bag looped), so a replayed pass repeats the first one.
        ``explain_command`` (the API's ``understood_as``): the known command a new one is read as,
        logged once per command from ``tick`` and reported in diagnostics. ``untrained_colours``
        (the API's): colour words the model cannot ground, warned about with that log line."""
        self.cfg = cfg
        self._untrained_colours = untrained_colours
        self._on_restart = on_restart
        self._explain_command = explain_command
        self._explained: tuple[str, str] | None = None  # (command, what it is read as)
        self._restarted_generation = 0
        self.model = model
        self.log = log
        n = model.history_length
        self._spacing_ns = int(round(cfg.history_spacing * NS))
        self._tolerance_ns = int(round(cfg.history_tolerance * NS))
        self._max_age_ns = int(round(cfg.max_age * NS))
        self._max_skew_ns = int(round(cfg.max_skew * NS))
        # keep enough for the history behind the oldest camera's newest frame (at most max_age back)
        keep_ns = (n - 1) * self._spacing_ns + self._tolerance_ns + self._max_age_ns + NS // 2
        self._histories = {cam: CameraHistory(keep_ns) for cam in model.cameras}
        self._source_shapes: dict[str, tuple[int, int]] = {}  # camera -> (height, width) of its newest frame as sent
        self._bad_image: dict[str, str] = {}  # camera -> why its newest message was rejected
        self._command: str | None = None  # None: none received yet
        self._bad_command: str | None = None
        self._lock = threading.Lock()
        self._generation = 0  # bumped when the histories are cleared (time jumped back)
        self._last_now_ns: int | None = None
        self._last_key: str | None = None
        self._throttle = Throttle(LOG_THROTTLE_S)
        self._command_throttle = Throttle(1.0)  # the current command is always in diagnostics
        self._odometry: collections.deque[tuple[int, float, float]] = collections.deque(maxlen=ODOMETRY_KEEP)
        self._odometry_tol_ns = int(round(cfg.odometry_tolerance * NS))
        self._odometry_seen = False
        self.odometry_state = "off" if not cfg.use_odometry else "none"  # off | none | ok | stale
        # output_frame odom: odometry poses keyed on stamps, to place each trajectory with the pose at its stamp
        self._odom_poses = PoseHistory(keep=10.0) if cfg.output_frame == "odom" else None
        self._odom_frame = "odom"  # frame_id of the newest odom message
        self.scan_guard = ScanGuard.from_config(cfg) if cfg.scan_guard else None  # cuts plans at what the laser sees
        # statistics
        self.rejected: collections.Counter[str] = collections.Counter()
        self.events: collections.Counter[str] = collections.Counter()
        self.latency = LatencyWindow(100)
        self.frames_received: collections.Counter[str] = collections.Counter()  # camera -> messages taken
        self.frames_lost: collections.Counter[str] = collections.Counter()  # camera -> lost before delivery
        self.frames_superseded: collections.Counter[str] = collections.Counter()  # camera -> replaced undecoded
        self.input_delay = {cam: LatencyWindow(100) for cam in model.cameras}  # header.stamp -> callback, s
        self.tick_rate = RateMeter(10.0)
        self.prediction_rate = RateMeter(10.0)
        self.ticks = 0
        self.dropped_ticks = 0
        self.predictions = 0
        self.stops = 0
        self.last_status = Decision(Status.STOP_STALE_CAMERA, "no tick yet", "start")

    # -- inputs ----------------------------------------------------------------------------
    def _reject(self, key: str, message: str) -> None:
        self.rejected[key] += 1
        self._warn_throttled("reject:" + key, f"rejected: {message}")

    def reject_unexpected(self, topic: str, exc: BaseException) -> None:
        """A message that made a callback raise (a bug, not a known bad input): count, log, go on."""
        with self._lock:
            self._reject("unexpected", f"{topic}: {type(exc).__name__}: {exc}")

    def _warn_throttled(self, key: str, message: str) -> None:
        skipped = self._throttle(key)
        if skipped is not None:
            more = f" ({skipped} more since the last report)" if skipped else ""
            self.log.warning(message + more)

    def on_image(self, camera: str, stamp_ns: int, encoding: str, height: int, width: int, step: int,
                 data: Any, received_ns: int | None = None) -> bool:
        """Count, validate, decode and store one camera frame; False when it was rejected."""
        self.note_received(camera, stamp_ns, received_ns)
        return self.store_image(camera, stamp_ns, encoding, height, width, step, data)

    def on_compressed_image(self, camera: str, stamp_ns: int, format: str, data: Any,  # noqa: A002
                            decoder: Callable[[], np.ndarray] | None = None, received_ns: int | None = None) -> bool:
        """A sensor_msgs/CompressedImage frame: ``decoder()`` (e.g. cv_bridge's, full size) or Pillow decodes it."""
        self.note_received(camera, stamp_ns, received_ns)
        return self.store_compressed_image(camera, stamp_ns, format, data, decoder)

    def note_received(self, camera: str, stamp_ns: int, received_ns: int | None = None) -> None:
        """A frame of ``camera`` was taken from the middleware at ``received_ns`` (node clock; None: not
        timed): counted, and its input delay (header.stamp to now) recorded. Cheap: the callback's part."""
        with self._lock:  # diagnostics read these from another thread
            self.frames_received[camera] += 1
            if received_ns is not None and stamp_ns > 0:
                self.input_delay[camera].add((received_ns - stamp_ns) / NS)

    def on_frames_superseded(self, camera: str, count: int = 1) -> None:
        """``count`` frames of ``camera`` were received but replaced by a newer one before they were decoded
        (the decode thread fell behind): counted for diagnostics, never stored."""
        with self._lock:
            self.frames_superseded[camera] += int(count)

    def store_image(self, camera: str, stamp_ns: int, encoding: str, height: int, width: int, step: int,
                    data: Any) -> bool:
        """Validate, decode, downscale and store a sensor_msgs/Image frame (not counted: see
        :meth:`note_received`); False when it was rejected."""
        def decode():
            return decode_image(encoding, height, width, step, data), (height, width)

        return self._store(camera, stamp_ns, decode)

    def store_compressed_image(self, camera: str, stamp_ns: int, format: str, data: Any,  # noqa: A002
                               decoder: Callable[[], np.ndarray] | None = None) -> bool:
        """:meth:`store_image` for a CompressedImage: ``decoder()`` (e.g. cv_bridge's, full size) or Pillow
        decodes it."""
        def decode():
            if decoder is None:
                return decode_compressed(format, data, self.model.image_size)
            image = decoder()
            return image, image.shape[:2]

        return self._store(camera, stamp_ns, decode)

    def on_frames_lost(self, camera: str, count: int) -> None:
        """The middleware lost ``count`` frames of ``camera`` before delivering them (e.g. DDS fragments
        of large frames dropped): counted for diagnostics and logged, throttled, with the likely cause."""
        with self._lock:
            self.frames_lost[camera] += int(count)
            self._warn_throttled(f"lost:{camera}", f"{camera}: {self.frames_lost[camera]} frames lost in transport "
                                 "so far (reported by the middleware). Raw frames larger than the publisher's DDS "
                                 "shared-memory segment lose fragments: see 'Raw frames and DDS' in docs/node.md")

    def _store(self, camera: str, stamp_ns: int, decode: Callable[[], tuple[np.ndarray, tuple[int, int]]]) -> bool:
        """Decode (outside the lock), downscale to the model's size, store; False when rejected.
        ``decode()`` -> (RGB image, (height, width) as sent)."""
        try:
            image, source_shape = decode()
            if self.model.image_size:
                image = downscale(image, self.model.image_size)
        except ImageError as exc:
            with self._lock:
                self._bad_image[camera] = f"{camera} image rejected: {exc}"
                self._reject(exc.reason, f"{camera}: {exc}")
            return False
        with self._lock:
            if stamp_ns <= 0:
                self._bad_image[camera] = f"{camera} image has no header.stamp (0): the driver must stamp frames"
                self._reject("zero_stamp", f"{camera}: header.stamp is 0; the camera driver must stamp frames")
                return False
            hist = self._histories[camera]
            newest = hist.newest
            if newest is not None and stamp_ns <= newest.stamp_ns:
                back = newest.stamp_ns - stamp_ns
                if back <= self._max_age_ns:  # reordered or repeated frame: skip it quietly
                    self._reject("out_of_order", f"{camera}: frame stamped {back / NS:.3f} s before the newest")
                    return False
                self._clear(f"{camera} stamps jumped back by {back / NS:.2f} s (a bag looping?)")
            elif hist.shape is not None and self._source_shapes.get(camera) != tuple(source_shape):
                was = self._source_shapes[camera]
                hist.clear()
                self.events["resolution_change"] += 1
                self._warn_throttled("resolution_change", f"{camera}: resolution changed from {was[1]}x{was[0]} "
                                                          f"to {source_shape[1]}x{source_shape[0]}; its history restarts")
            self._source_shapes[camera] = tuple(source_shape)
            hist.add(Frame(int(stamp_ns), image))
            self._bad_image.pop(camera, None)
            return True

    def on_command(self, text: str) -> bool:
        """Store the newest command; an over-long one is rejected and the robot stops."""
        size = len(text.encode("utf-8", "surrogatepass"))
        with self._lock:
            if size > self.cfg.max_command_bytes:
                self._command = None
                self._bad_command = (f"command of {size} bytes is longer than max_command_bytes="
                                     f"{self.cfg.max_command_bytes}")
                self._reject("command_too_long", self._bad_command)
                return False
            self._bad_command = None
            new = " ".join(text.split())
            if new != self._command:  # throttled: a flood of changing commands must not flood the log
                skipped = self._command_throttle("command")
                if skipped is not None:
                    more = f" ({skipped} more changes since the last report)" if skipped else ""
                    self.log.info((f"command: {new[:200]!r}" if new else "command: '' (empty: the robot stops)") + more)
            self._command = new
            problem = self._colour_problem(new) if self.cfg.untrained_colour == "stop" else None
            if problem:
                self._bad_command = f"{problem}; untrained_colour: warn drives with what the model reads it as"
                self._reject("untrained_colour", self._bad_command)
                return False
            return True

    def _colour_problem(self, command: str) -> str | None:
        """What is wrong with ``command`` if it names a colour the model cannot ground; None if nothing."""
        if not command or self._untrained_colours is None:
            return None
        try:
            colours, known = self._untrained_colours(command)
        except ValueError:  # the API's input checks: the tick reports the command as bad input
            return None
        if not colours:
            return None
        return (f"command {command[:200]!r} names a colour the model was not trained on "
                f"({', '.join(repr(c) for c in colours[:5])}; it knows {', '.join(known) or 'none'})")

    def on_odometry(self, stamp_ns: int, v: float, omega: float, pose=None, frame_id: str = "") -> bool:
        """Store one odometry message (robot-frame forward speed m/s, yaw rate rad/s; with output_frame
        odom also the pose (x, y, yaw) in the odometry frame ``frame_id``); False when rejected."""
        if not (self.cfg.use_odometry or self._odom_poses is not None):
            return False
        with self._lock:
            if not (np.isfinite(v) and np.isfinite(omega)):
                self._reject("bad_odometry", f"odom: non-finite twist (v={v}, omega={omega})")
                return False
            if abs(v) > MAX_ODOMETRY or abs(omega) > MAX_ODOMETRY:
                self._reject("bad_odometry", f"odom: twist v={v:.3g} m/s, omega={omega:.3g} rad/s is beyond "
                                             f"{MAX_ODOMETRY:g}; wrong units or frame?")
                return False
            if stamp_ns <= 0:
                self._reject("zero_stamp", "odom: header.stamp is 0; odometry must be stamped")
                return False
            if self._odometry and stamp_ns < self._odometry[-1][0]:
                if self._odometry[-1][0] - stamp_ns <= self._max_age_ns:
                    self._reject("out_of_order", "odom: message older than the newest one")
                    return False
                self._odometry.clear()  # time went back (a bag looping)
            if not self._odometry_seen:
                self._odometry_seen = True
                self.log.info("odometry: receiving odom; the model gets the measured velocity")
            self._odometry.append((int(stamp_ns), float(v), float(omega)))
            if self._odom_poses is not None and pose is not None:
                self._odom_poses.add(int(stamp_ns), pose)
                self._odom_frame = frame_id or self._odom_frame
            return True

    def on_scan(self, scan: Scan) -> bool:
        """Store the newest laser scan (scan_guard); False when rejected (the previous one is kept)."""
        if self.scan_guard is None:
            return False
        why = self.scan_guard.on_scan(scan)
        if why is not None:
            with self._lock:
                self._reject("bad_scan", why)
        return why is None

    def _odometry_at(self, stamp_ns: int) -> tuple[float, float] | None:
        """(v, omega) of the odometry message closest to ``stamp_ns`` within the tolerance (lock held)."""
        if not self.cfg.use_odometry:
            self.odometry_state = "off"
            return None
        if not self._odometry:
            self.odometry_state = "none"
            return None
        best = min(self._odometry, key=lambda m: abs(m[0] - stamp_ns))
        if abs(best[0] - stamp_ns) > self._odometry_tol_ns:
            self.odometry_state = "stale"
            self.events["odometry_unmatched"] += 1
            return None
        self.odometry_state = "ok"
        return best[1], best[2]

    def clear_inputs(self) -> None:
        """Forget every camera's frames and the odometry, keep the command (the node was deactivated:
        when it is activated again it starts from fresh frames, not from frames of before)."""
        with self._lock:
            self._forget_inputs()

    def _forget_inputs(self) -> None:
        """(the caller holds the lock) A tick running across this publishes nothing (generation)."""
        self._odometry.clear()
        if self._odom_poses is not None:
            self._odom_poses.clear()
        for h in self._histories.values():
            h.clear()
        self._bad_image.clear()
        self._generation += 1

    def _clear(self, why: str) -> None:
        """Time jumped back: forget every camera's frames and odometry (the caller holds the lock)."""
        self._forget_inputs()
        self.events["time_jump"] += 1
        self.log.warning(f"{why}: history cleared, restarting")

    # -- decisions -------------------------------------------------------------------------
    def observe(self, now_ns: int) -> tuple[Decision, Alignment | None, str, int]:
        """Check the inputs at ``now_ns`` -> (decision, aligned frames when OK, command, generation)."""
        decision, al, command, generation, _, _ = self._observe(now_ns)
        return decision, al, command, generation

    def _observe(self, now_ns: int):
        with self._lock:
            if self._last_now_ns is not None and now_ns < self._last_now_ns - CLOCK_JUMP_BACK_NS:
                self._clear(f"node clock jumped back by {(self._last_now_ns - now_ns) / NS:.2f} s")
            self._last_now_ns = now_ns
            command = self._command or ""
            decision, al = self._decide(now_ns, command)
            odometry = self._odometry_at(al.stamp_ns) if al is not None else None
            anchor = None
            if al is not None and self._odom_poses is not None:
                anchor = self._odom_poses.at(al.stamp_ns, self._odometry_tol_ns, self._odometry_tol_ns)
                if anchor is None:
                    decision = Decision(Status.STOP_NO_ODOMETRY,
                                        f"output_frame odom: no odometry pose within {self.cfg.odometry_tolerance:g} s "
                                        f"of the frames' stamp (topic odom)", "no_odometry")
                    al = None
                else:
                    anchor = (anchor, self._odom_frame)
            return decision, al, command, self._generation, odometry, anchor

    def _decide(self, now_ns: int, command: str) -> tuple[Decision, Alignment | None]:
        stop = self._stop_reason(now_ns, command)
        if stop is not None:
            return stop, None
        al = align(self._histories, self.model.history_length, self._spacing_ns, self._tolerance_ns)
        if not al.complete:
            cam, missing = next(iter(al.missing.items()))
            n = self.model.history_length
            return Decision(Status.STOP_INCOMPLETE_HISTORY,
                            f"{cam} has {n - missing} of {n} history frames {self.cfg.history_spacing:g} s apart "
                            f"(within {self.cfg.history_tolerance:g} s)", "incomplete_history"), None
        if al.worst_skew_ns > self._max_skew_ns:
            return Decision(Status.STOP_CAMERA_SKEW,
                            f"{' and '.join(self.model.cameras)} frames are {al.worst_skew_ns / NS:.3f} s apart "
                            f"(max_skew {self.cfg.max_skew:g} s)", "camera_skew"), None
        return Decision(Status.OK), al

    def _stop_reason(self, now_ns: int, command: str) -> Decision | None:
        """The first reason, in order of priority, why the inputs cannot be used; None if none."""
        cams = self.model.cameras
        for cam in cams:
            if cam in self._bad_image:
                return Decision(Status.STOP_BAD_INPUT, self._bad_image[cam], f"bad_input:{cam}")
        if self._bad_command:
            return Decision(Status.STOP_BAD_INPUT, self._bad_command, "bad_command")
        max_age = self.cfg.max_age
        for cam in cams:
            newest = self._histories[cam].newest
            if newest is None:
                return Decision(Status.STOP_STALE_CAMERA, f"no {cam} image yet (topic {cam}/image_raw)",
                                f"stale:{cam}:none")
            age = (now_ns - newest.stamp_ns) / NS
            if age > max_age:
                return Decision(Status.STOP_STALE_CAMERA, f"{cam} image is {age:.2f} s old (max_age {max_age:g} s)",
                                f"stale:{cam}")
            if age < -max_age:
                return Decision(Status.STOP_STALE_CAMERA,
                                f"{cam} image is stamped {-age:.2f} s ahead of the node clock: camera and "
                                "node clocks disagree (use_sim_time? clock sync?)", f"future:{cam}")
        if self._command is None:
            return Decision(Status.STOP_NO_COMMAND, "no command yet (topic command)", "no_command")
        if not command:
            return Decision(Status.STOP_NO_COMMAND, "the command is empty", "empty_command")
        scan = self.scan_guard.problem(now_ns) if self.scan_guard is not None else None
        return Decision(Status.STOP_NO_SCAN, *scan) if scan is not None else None

    def _explain(self, command: str) -> None:
        """Log once per command which known command the model reads it as (a phrasebook model)."""
        if self._explain_command is None or (self._explained and self._explained[0] == command):
            return
        read = self._explain_command(command)
        if read is None:
            self._explain_command = None  # the model has no phrasebook
            return
        phrase, weight, cosine = read
        self._explained = (command, phrase)
        problem = self._colour_problem(command)
        if problem:
            self.log.warning(f"{problem}: it is read as {phrase!r}, which may not be what was meant")
        elif phrase != command:
            self.log.info(f"command {command[:200]!r} is read as {phrase!r} (weight {weight:.2f}, "
                          f"similarity {cosine:.2f}{'; unlike any trained command' if cosine < 0.4 else ''})")

    # -- one tick --------------------------------------------------------------------------
    def tick(self, now_ns: int, predict: Predictor) -> TickResult | None:
        """Check inputs, run the model if they are usable; None when there is nothing to publish."""
        self.ticks += 1
        decision, al, command, generation, odometry, anchor = self._observe(now_ns)
        if generation != self._restarted_generation:
            self._restarted_generation = generation
            if self._on_restart is not None:
                self._on_restart()
        spec = self.model
        result = None
        if decision.ok:
            assert al is not None
            self._explain(command)
            t0 = time.perf_counter()
            try:
                pred = predict([al.images(cam) for cam in spec.cameras], command, odometry)
                traj = np.asarray(pred.trajectory, dtype=np.float32)
                timing = dict(getattr(pred, "timing", {}) or {})
            except ValueError as exc:  # the API's InputError
                decision = Decision(Status.STOP_BAD_INPUT, f"model input rejected: {exc}", "model_input")
            except Exception as exc:  # noqa: BLE001 - the node must survive any model failure
                decision = Decision(Status.STOP_MODEL_ERROR, f"inference failed: {type(exc).__name__}: {exc}",
                                    "model_error:" + type(exc).__name__)
                if self._throttle("traceback:" + type(exc).__name__) is not None:
                    self.log.error(traceback.format_exc())
            else:
                latency = time.perf_counter() - t0
                self.latency.add(latency)
                if traj.shape != (spec.trajectory_length, 3):
                    decision = Decision(Status.STOP_MODEL_ERROR,
                                        f"model returned shape {traj.shape}, expected ({spec.trajectory_length}, 3)",
                                        "model_shape")
                elif not np.isfinite(traj).all():
                    decision = Decision(Status.STOP_NONFINITE_OUTPUT,
                                        f"model output has {int((~np.isfinite(traj)).sum())} non-finite values",
                                        "nonfinite")
                else:
                    if self.scan_guard is not None:  # robot frame, before any transform
                        traj = self._guard(traj)
                    result = TickResult(Status.OK, "", al.stamp_ns, traj, spec.traj_dt, command, latency,
                                        True, timing)
                    if anchor is not None:  # output_frame odom: the robot frame at the stamp -> odometry frame
                        result.trajectory, result.frame_id = robot_to_world(traj.astype(np.float64), anchor[0]), \
                            anchor[1]
            if generation != self._generation:  # time jumped back while the model ran
                self.tick_rate.mark()
                return None
        if result is None:
            result = TickResult(decision.status, decision.reason, now_ns, stop_trajectory(spec.trajectory_length),
                                spec.traj_dt, command, publish=self.cfg.on_stop == "publish_stop")
            self.stops += 1
        else:
            self.predictions += 1
            self.prediction_rate.mark()
        self.tick_rate.mark()
        self._note_status(decision)
        return result if result.publish else None

    def _guard(self, traj: np.ndarray) -> np.ndarray:
        cut = self.scan_guard.apply(traj)
        if cut.kept < len(traj):
            self._warn_throttled("scan_cut", f"scan guard: plan cut after {cut.kept} of {len(traj)} waypoints "
                                             f"(it would leave {cut.blocked_at:.2f} m between robot and scan)")
        return cut.trajectory

    def count_dropped_tick(self) -> None:
        self.dropped_ticks += 1

    def _note_status(self, decision: Decision) -> None:
        self.last_status = decision
        if decision.key == self._last_key:
            return
        self._last_key = decision.key
        if decision.ok:
            self.log.info("inputs usable: publishing model trajectories")
        elif diagnostic_level(decision.status) >= 2:
            self.log.error(f"stop ({decision.status.name}): {decision.reason}")
        else:
            self.log.warning(f"stop ({decision.status.name}): {decision.reason}")

    # -- diagnostics -----------------------------------------------------------------------
    def diagnostics(self, now_ns: int) -> tuple[int, str, list[tuple[str, str]]]:
        """(level, message, key/value pairs) for diagnostic_msgs/DiagnosticStatus."""
        st = self.last_status
        ms = lambda s: "nan" if s != s else f"{s * 1e3:.1f}"  # noqa: E731 - NaN when no sample yet
        values = [
            ("status", st.status.name),
            ("status_code", str(int(st.status))),
            ("status_reason", st.reason),
            ("latency_p50_ms", ms(self.latency.percentile(50))),
            ("latency_p95_ms", ms(self.latency.percentile(95))),
            ("rate_hz_target", f"{self.cfg.rate_hz:g}"),
            ("rate_hz_achieved", f"{self.tick_rate.rate():.2f}"),
            ("prediction_rate_hz", f"{self.prediction_rate.rate():.2f}"),
            ("ticks", str(self.ticks)),
            ("dropped_ticks", str(self.dropped_ticks)),
            ("predictions", str(self.predictions)),
            ("stops", str(self.stops)),
        ]
        with self._lock:
            for cam in self.model.cameras:
                newest = self._histories[cam].newest
                values.append((f"age_{cam}_s", "none" if newest is None else f"{(now_ns - newest.stamp_ns) / NS:.3f}"))
                values.append((f"frames_{cam}", str(len(self._histories[cam]))))
                values.append((f"frames_received_{cam}", str(self.frames_received[cam])))
                values.append((f"frames_lost_{cam}", str(self.frames_lost[cam])))
                values.append((f"frames_superseded_{cam}", str(self.frames_superseded[cam])))
                values.append((f"input_delay_p95_ms_{cam}", ms(self.input_delay[cam].percentile(95))))
            command = self._command
            newest_odom = self._odometry[-1] if self._odometry else None
        values.append(("command", "none" if command is None else command[:80]))
        if self._explained is not None and self._explained[0] == command:
            values.append(("command_read_as", self._explained[1][:80]))
        values.append(("odometry", self.odometry_state))
        values.append(("age_odom_s", "none" if newest_odom is None else f"{(now_ns - newest_odom[0]) / NS:.3f}"))
        if self.scan_guard is not None:
            values += self.scan_guard.diagnostics(now_ns)
        for key in sorted(self.rejected):
            values.append((f"rejected_{key}", str(self.rejected[key])))
        for key in sorted(self.events):
            values.append((f"events_{key}", str(self.events[key])))
        message = "OK" if st.ok else f"{st.status.name}: {st.reason}"
        return diagnostic_level(st.status), message, values
