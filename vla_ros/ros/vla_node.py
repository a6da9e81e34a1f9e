"""vla_node: camera histories + a language command in, a vla_ros/Trajectory out.

    ros2 run vla_ros vla_node --ros-args --params-file config/vla.yaml
    python -m vla_ros.ros.vla_node --ros-args -p checkpoint:=/path/model.pth -p rate_hz:=5.0

Topics (relative, so namespaces and remaps work):
  in:  <camera>/image_raw (sensor_msgs/Image, sensor-data QoS) for each model camera (ego, top), or
       with image_transport compressed <camera>/image_raw/compressed (sensor_msgs/CompressedImage);
       command (std_msgs/String; heard from transient-local *and* volatile publishers);
       odom (nav_msgs/Odometry, best effort; with use_odometry) for the measured velocity, and with
       output_frame odom the pose that places each trajectory in the odometry frame;
       scan (sensor_msgs/LaserScan, sensor-data QoS; with scan_guard) for the scan guard
  out: trajectory (vla_ros/Trajectory), trajectory/path (nav_msgs/Path), /diagnostics (1 Hz)

A managed (lifecycle) node: configure loads the model, activate subscribes and drives,
deactivate stops driving and keeps the model (docs/node.md, "Lifecycle"); with the ``autostart``
parameter (default) it configures and activates itself at start-up.

This module is the thin rclpy adapter: parameters, QoS, timers and message conversion.  What
the node decides lives in :mod:`vla_ros.runtime` (NodeCore), which never imports rclpy.
A camera's subscription callback only notes the frame's arrival (count, input delay) and hands the
message to that camera's decode thread (DecodeWorker: a one-slot mailbox, the newest frame wins;
one replaced before it was decoded is counted in diagnostics as frames_superseded_<camera>), which
decodes, downscales and stores it; the other callbacks only validate and store the newest data.
Inference runs on its own thread (TickWorker), triggered by a timer in its own callback group, so
subscriptions never block.  The decode threads run from activate to deactivate / cleanup.  The
node shortens CPython's GIL switch interval so that these threads cannot hold up the executor's
threads for 5 ms at every hand-off (see GIL_SWITCH_INTERVAL_S).
"""

from __future__ import annotations

import functools
import signal
import sys
import time
import traceback

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNodeMixin, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry, Path
from sensor_msgs.msg import CompressedImage, Image, LaserScan
from std_msgs.msg import String

from vla_ros.config import ConfigError
from vla_ros.msg import Trajectory
from vla_ros.ros.compat import SubscriptionEventCallbacks, UnsupportedEventTypeError
from vla_ros.ros.messages import diagnostics_msg, path_msg, stamp_ns, trajectory_msg
from vla_ros.ros.parameters import declare_dataclass_parameters
from vla_ros.ros.process import STOP_SIGNALS, NodeProcess, Spinner, config_error, run_node_main, stop_on_signals
from vla_ros.runtime.config import NODE_NAME, NodeConfig, parameter_type_name
from vla_ros.runtime.core import NodeCore
from vla_ros.runtime.geometry import quaternion_to_yaw
from vla_ros.runtime.images import ImageError
from vla_ros.runtime.scan_guard import Scan
from vla_ros.runtime.model import load_model, make_predictor
from vla_ros.runtime.worker import DecodeWorker, TickWorker

__all__ = ["VLANode", "declare_node_config", "main"]


# Commands are rare and must not be lost: reliable; transient-local so that the last command
# published before this node started (a latched publisher) is delivered on connection.
COMMAND_LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
# A transient-local subscription does not match a volatile publisher (DDS rule), so a second,
# volatile subscription on the same topic hears those.  The newest command wins either way.
COMMAND_VOLATILE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                                  durability=DurabilityPolicy.VOLATILE)
DIAGNOSTICS_PERIOD_S = 1.0
# The inference thread runs Python between torch ops for 100+ ms per tick. rclpy's executor needs
# the GIL many times to take one message (wait set, take, dispatch to a pool thread), and with
# CPython's default switch interval (5 ms) each of those waits up to 5 ms while inference runs:
# 640x480 frames reached the callbacks up to 170 ms late (the keep-last-5 queue full, newer frames
# overwriting older ones), which made gaps in the histories (STOP_INCOMPLETE_HISTORY) and stale
# newest frames (STOP_STALE_CAMERA). At 0.5 ms the p95 delay was 33 ms (docs/node.md, "Input delay").
GIL_SWITCH_INTERVAL_S = 0.0005
WORKER_IDLE_TIMEOUT_S = 10.0  # deactivate waits this long for a running tick (a CPU prediction: < 1 s)
DECODE_STOP_TIMEOUT_S = 5.0  # and this long for a frame being decoded (milliseconds)


def declare_node_config(node: Node) -> NodeConfig:
    """One read-only parameter per NodeConfig field (its type named in the constraints), then the
    validated config; ConfigError for a wrong type, an invalid value or an unknown parameter."""
    return declare_dataclass_parameters(node, NodeConfig, constraints=lambda name: f"type: {parameter_type_name(name)}")


class VLANode(LifecycleNodeMixin, Node):
    """vla_node as a managed (lifecycle) node; rclpy.lifecycle's states and services::

        unconfigured --configure: load the model, publishers, worker--> inactive
        inactive --activate: subscribe, tick, publish--> active --deactivate--> inactive (model kept)
        inactive --cleanup: drop the model--> unconfigured;   any --shutdown--> finalized

    Constructing it only declares the parameters (an invalid one raises ConfigError). With
    ``autostart`` :func:`main` configures and activates it while the executor already spins.
    """

    def __init__(self, **kwargs) -> None:
        Node.__init__(self, NODE_NAME, **kwargs)
        try:
            # Transitions run in their own group: while configure loads the model (seconds), the
            # parameter services (the default group) are served by the executor's other threads.
            LifecycleNodeMixin.__init__(self, callback_group=MutuallyExclusiveCallbackGroup())
            self._refuse_invalid_transitions()
            self.cfg = declare_node_config(self)
        except BaseException:
            # destroyed now, not by the garbage collector after rclpy has shut down (which
            # crashed the process at exit now and then: SIGSEGV instead of exit code 2)
            self.destroy_node()
            raise
        self.core: NodeCore | None = None  # set while configured
        self.api = self._predict = self._worker = None
        self._traj_pub = self._path_pub = self._diag_pub = self._tick_timer = self._diag_timer = None
        self._inputs: list = []  # subscriptions, while active
        self._decoders: dict[str, DecodeWorker] = {}  # camera -> its decode thread, while active
        self._active = False
        self.configure_error: BaseException | None = None  # why the last configure failed
        if sys.getswitchinterval() > GIL_SWITCH_INTERVAL_S:
            sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)

    def _refuse_invalid_transitions(self) -> None:
        """Jazzy's and Humble's rclpy raise RCLError from the change_state service for a transition the
        current state does not have (activate while unconfigured): the error ended spinning and the
        node. Answer success=False instead, as rclcpp and Kilted's rclpy do."""
        service = self._service_change_state
        change_state = service.callback

        def refusing(request, response):
            try:
                return change_state(request, response)
            except _rclpy.RCLError as exc:
                self.get_logger().warning(f"transition {request.transition.id} {request.transition.label!r} "
                                          f"refused: {str(exc).splitlines()[0]}")
                response.success = False
                return response

        service.callback = refusing

    # -- lifecycle transitions -------------------------------------------------------------
    def on_configure(self, state) -> TransitionCallbackReturn:
        """Load the model; publishers, the inference thread and the timers (the tick timer paused)."""
        self.configure_error = None
        try:
            self._configure()
        except Exception as exc:  # noqa: BLE001 - rclpy would swallow it silently
            self.configure_error = exc
            self._release()
            if _is_user_error(exc) or isinstance(exc, ExternalShutdownException):
                self.get_logger().error(f"configure failed: {exc}")
                return TransitionCallbackReturn.FAILURE  # stays unconfigured
            self.get_logger().error(f"configure failed:\n{traceback.format_exc()}")
            return TransitionCallbackReturn.ERROR
        return super().on_configure(state)

    def _configure(self) -> None:
        cfg, log = self.cfg, self.get_logger()
        t0 = time.perf_counter()
        log.info(f"loading model {cfg.checkpoint or '(packaged default)'} on {cfg.device} ...")
        self.api, spec = load_model(cfg)
        if not self.context.ok():  # Ctrl-C while the model loaded
            raise ExternalShutdownException()
        self._predict = make_predictor(self.api)
        self.core = NodeCore(cfg, spec, log, on_restart=getattr(self.api, "reset", None),
                             explain_command=getattr(self.api, "understood_as", None),
                             untrained_colours=getattr(self.api, "untrained_colours", None))
        steps = getattr(self.api, "num_inference_steps", "?")
        log.info(f"model ready in {time.perf_counter() - t0:.1f} s: cameras {list(spec.cameras)}, history "
                 f"{spec.history_length} x {cfg.history_spacing:g} s, {spec.trajectory_length} waypoints x "
                 f"{spec.traj_dt:g} s, {steps} denoising steps, {cfg.rate_hz:g} Hz")
        # lifecycle publishers: they publish only while the node is active
        self._traj_pub = self.create_lifecycle_publisher(Trajectory, "trajectory", 10)
        self._path_pub = self.create_lifecycle_publisher(Path, "trajectory/path", 10)
        # Absolute, like diagnostic_updater: the aggregator listens on /diagnostics in every namespace.
        # A plain publisher: an inactive node reports that it is inactive.
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # Timers run on the steady clock: rate_hz is a compute budget, and the node keeps reporting
        # (stop status, diagnostics) even while a simulator's /clock is paused or absent.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._worker = TickWorker(self._run_tick, on_error=self._on_worker_error).start()
        self._tick_timer = self.create_timer(cfg.period, self._on_tick, MutuallyExclusiveCallbackGroup(), clock=steady)
        self._tick_timer.cancel()  # until activated
        self._diag_timer = self.create_timer(DIAGNOSTICS_PERIOD_S, self._on_diagnostics,
                                             MutuallyExclusiveCallbackGroup(), clock=steady)

    def on_activate(self, state) -> TransitionCallbackReturn:
        """Subscribe to the inputs and start ticking: trajectories are published from now on."""
        ret = super().on_activate(state)  # enables the lifecycle publishers
        if ret != TransitionCallbackReturn.SUCCESS:
            return ret
        self._start_decoders(self.cfg, self.core.model.cameras)
        self._create_inputs(self.cfg, self.core.model.cameras)
        self._active = True
        self._tick_timer.reset()
        self.get_logger().info("active: subscribed to the inputs, publishing trajectories")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        """Stop ticking and unsubscribe; the model stays loaded (activate again: no reload)."""
        self._stop_driving()
        self.get_logger().info("inactive: model loaded, no trajectories (activate to drive again)")
        return super().on_deactivate(state)

    def _stop_driving(self) -> None:
        self._active = False
        if self._tick_timer is not None:
            self._tick_timer.cancel()
        if self._worker is not None and not self._worker.wait_idle(WORKER_IDLE_TIMEOUT_S):
            self.get_logger().warning(f"a tick still runs after {WORKER_IDLE_TIMEOUT_S:g} s; its trajectory "
                                      "will not be published")
        for sub in self._inputs:
            self.destroy_subscription(sub)
        self._inputs = []
        self._stop_decoders()  # after the subscriptions: a frame decoded later would outlive clear_inputs
        if self.core is not None:
            self.core.clear_inputs()  # activated again, the node starts from fresh frames

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        """Drop the model, publishers, timers and the inference thread (back to unconfigured)."""
        self._release()
        self.get_logger().info("unconfigured: model released")
        return super().on_cleanup(state)

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self._release()
        return super().on_shutdown(state)

    def on_error(self, state) -> TransitionCallbackReturn:
        """A transition raised: release what was created; the node goes back to unconfigured."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        """Whatever configure and activate created, in any state (idempotent)."""
        self._stop_driving()
        if self._worker is not None:
            self._worker.stop()
        for timer in (self._tick_timer, self._diag_timer):
            if timer is not None:
                self.destroy_timer(timer)
        for pub in (self._traj_pub, self._path_pub):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
        self._traj_pub = self._path_pub = self._diag_pub = self._tick_timer = self._diag_timer = None
        self.core = self.api = self._predict = self._worker = None

    def autostart(self) -> BaseException | None:
        """configure + activate (``autostart``; main calls it while the executor spins in another
        thread). Returns the user error that stopped configure (the caller exits 2), else None;
        raises anything else that did."""
        self.trigger_configure()
        if self.core is None:
            exc = self.configure_error or RuntimeError("configure failed (see the log)")
            if _is_user_error(exc):
                return exc
            raise exc
        self.trigger_activate()
        return None

    def _start_decoders(self, cfg: NodeConfig, cameras) -> None:
        """A decode thread per camera (self._decoders), before the subscriptions that feed them."""
        compressed = cfg.image_transport == "compressed"
        self._cv_bridge = _cv_bridge() if compressed else None
        if compressed:
            self.get_logger().info("compressed cameras, decoded with " +
                                   ("cv_bridge" if self._cv_bridge else "Pillow (no cv_bridge)"))
        decode, topic = (self._decode_compressed, "image_raw/compressed") if compressed else (self._decode_image,
                                                                                               "image_raw")
        self._decoders = {cam: DecodeWorker(functools.partial(decode, cam), name=f"vla-decode-{cam}",
                                            on_error=functools.partial(self._on_decode_error, f"{cam}/{topic}")).start()
                          for cam in cameras}

    def _stop_decoders(self) -> None:
        """End the decode threads: a waiting frame is dropped, one being decoded is stored first."""
        decoders, self._decoders = self._decoders, {}
        for decoder in decoders.values():
            decoder.stop(DECODE_STOP_TIMEOUT_S)

    def _create_inputs(self, cfg: NodeConfig, cameras) -> None:
        """The subscriptions, kept in self._inputs (callbacks only note and hand over frames, or validate
        and store; NodeCore's lock makes them thread-safe)."""
        inputs = MutuallyExclusiveCallbackGroup()
        subs = self._inputs
        compressed = cfg.image_transport == "compressed"
        for cam in cameras:  # a group per camera: one camera's frame never waits for the other's callback
            group = MutuallyExclusiveCallbackGroup()
            if compressed:
                subs.append(self._camera_subscription(CompressedImage, f"{cam}/image_raw/compressed",
                                                      functools.partial(self._on_compressed, cam), cam, group))
            else:
                subs.append(self._camera_subscription(Image, f"{cam}/image_raw", functools.partial(self._on_image, cam),
                                                      cam, group))
        # The latched subscription cannot match volatile publishers; the volatile one hears them, so
        # rclpy's "incompatible QoS" warning for the latched one is expected and silenced. Activated
        # again, the latched one hears the operator's last command again.
        subs.append(self.create_subscription(
            String, "command", self._on_command, COMMAND_LATCHED_QOS, callback_group=inputs,
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=lambda _event: None)))
        subs.append(self.create_subscription(String, "command", self._on_command, COMMAND_VOLATILE_QOS,
                                             callback_group=inputs))
        if cfg.use_odometry or cfg.output_frame == "odom":  # best effort hears reliable publishers too
            subs.append(self.create_subscription(Odometry, "odom", self._on_odometry, qos_profile_sensor_data,
                                                 callback_group=inputs))
        if cfg.scan_guard:
            subs.append(self.create_subscription(LaserScan, "scan", self._on_scan, qos_profile_sensor_data,
                                                 callback_group=inputs))

    def _camera_subscription(self, msg_type, topic: str, callback, camera: str, group):
        """A sensor-data subscription that also counts the frames the middleware reports lost (DDS drops
        large frames whose fragments it could not deliver); without that event in the RMW, none are counted."""
        def lost(info) -> None:
            core = self.core
            if core is not None:
                core.on_frames_lost(camera, info.total_count_change)

        try:
            return self.create_subscription(msg_type, topic, callback, qos_profile_sensor_data, callback_group=group,
                                            event_callbacks=SubscriptionEventCallbacks(message_lost=lost))
        except UnsupportedEventTypeError:
            return self.create_subscription(msg_type, topic, callback, qos_profile_sensor_data, callback_group=group)

    # -- callbacks (cheap: note and hand over a frame; validate and store the rest) ---------
    def _on_image(self, camera: str, msg: Image) -> None:
        self._hand_over(camera, "image_raw", msg, self.get_clock().now().nanoseconds)

    def _on_compressed(self, camera: str, msg: CompressedImage) -> None:
        self._hand_over(camera, "image_raw/compressed", msg, self.get_clock().now().nanoseconds)

    def _hand_over(self, camera: str, topic: str, msg, received: int) -> None:
        """The callback's part of a frame: count it and its input delay (so the delay is the wait for
        this callback, not for the decoding), then leave it in the camera's decode mailbox."""
        core, decoder = self.core, self._decoders.get(camera)
        if core is None or decoder is None:  # a callback that was already running at deactivate/cleanup
            return
        try:
            core.note_received(camera, stamp_ns(msg.header.stamp), received)
            if decoder.put(msg):  # the previous frame was not decoded yet: dropped
                core.on_frames_superseded(camera)
        except Exception as exc:  # noqa: BLE001 - no message may stop the node
            core.reject_unexpected(f"{camera}/{topic}", exc)

    # -- the decode threads (one per camera; DecodeWorker calls these) -----------------------
    def _decode_image(self, camera: str, msg: Image) -> None:
        core = self.core
        if core is not None:
            core.store_image(camera, stamp_ns(msg.header.stamp), msg.encoding, msg.height, msg.width, msg.step,
                             msg.data)

    def _decode_compressed(self, camera: str, msg: CompressedImage) -> None:
        core = self.core
        if core is None:
            return
        decoder = None
        if self._cv_bridge is not None:
            def decoder():
                try:
                    return np.asarray(self._cv_bridge.compressed_imgmsg_to_cv2(msg, desired_encoding="rgb8"))
                except Exception as exc:  # noqa: BLE001 - cv_bridge raises cv2.error / CvBridgeError
                    raise ImageError("bad_encoding", f"cv_bridge cannot decode it ({msg.format!r}): {exc}") from None
        core.store_compressed_image(camera, stamp_ns(msg.header.stamp), msg.format, msg.data, decoder)

    def _on_decode_error(self, topic: str, exc: BaseException) -> None:
        core = self.core
        if core is not None:  # no message may stop the node: counted and logged as 'unexpected'
            core.reject_unexpected(topic, exc)

    def _on_command(self, msg: String) -> None:
        core = self.core
        if core is None:
            return
        try:
            core.on_command(msg.data)
        except Exception as exc:  # noqa: BLE001
            core.reject_unexpected("command", exc)

    def _on_odometry(self, msg: Odometry) -> None:
        core = self.core
        if core is None:
            return
        try:  # twist is in the child frame (the robot): linear.x forward speed, angular.z yaw rate
            t, p = msg.twist.twist, msg.pose.pose
            q = p.orientation
            core.on_odometry(stamp_ns(msg.header.stamp), t.linear.x, t.angular.z,
                             (p.position.x, p.position.y, quaternion_to_yaw(q.x, q.y, q.z, q.w)),
                             msg.header.frame_id)
        except Exception as exc:  # noqa: BLE001
            core.reject_unexpected("odom", exc)

    def _on_scan(self, msg: LaserScan) -> None:
        core = self.core
        if core is None:
            return
        try:
            core.on_scan(Scan(stamp_ns(msg.header.stamp), msg.angle_min, msg.angle_increment, msg.range_min,
                              msg.range_max, np.asarray(msg.ranges, dtype=np.float32)))
        except Exception as exc:  # noqa: BLE001
            core.reject_unexpected("scan", exc)

    def _on_tick(self) -> None:
        worker, core = self._worker, self.core  # None after cleanup
        if worker is not None and core is not None and not worker.request():
            core.count_dropped_tick()

    def _on_diagnostics(self) -> None:
        core = self.core
        if core is None:
            return
        now = self.get_clock().now().nanoseconds
        level, message, values = core.diagnostics(now)
        if not self._active:  # deactivated on purpose (e.g. teleop): not a fault
            level, message = 0, "inactive (lifecycle): model loaded, no trajectories"
        values.insert(0, ("lifecycle", "active" if self._active else "inactive"))
        msg = diagnostics_msg(now, f"{self.get_fully_qualified_name()}: inference", self.cfg.device, level,
                              message, values)
        try:
            self._diag_pub.publish(msg)
        except Exception:  # noqa: BLE001 - Ctrl-C may shut the context down between two lines
            if self.context.ok():
                raise

    # -- the inference thread -------------------------------------------------------------
    def _run_tick(self) -> None:
        core, predict, traj_pub, path_pub = self.core, self._predict, self._traj_pub, self._path_pub
        if core is None:
            return
        result = core.tick(self.get_clock().now().nanoseconds, predict)
        # not after deactivate, nor after Ctrl-C shut the context down
        if result is not None and self._active and self.context.ok():
            frame_id = result.frame_id or self.cfg.frame_id
            traj_pub.publish(trajectory_msg(result, frame_id))
            path_pub.publish(path_msg(result, frame_id))

    def _on_worker_error(self, exc: BaseException) -> None:
        if self.context.ok():  # a publish racing with shutdown is not an error worth reporting
            self.get_logger().error(f"tick failed: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        """At exit: stop the inference thread, then destroy the node with everything on it (the
        context may be shut down already: no entity is destroyed on its own, as before lifecycle)."""
        self._active = False
        self._stop_decoders()
        if self._worker is not None:
            self._worker.stop()
        self.destroy_node()


def _cv_bridge():
    """cv_bridge's CvBridge where it imports and works (a ROS install), else None (Pillow decodes)."""
    try:
        from cv_bridge import CvBridge

        return CvBridge()
    except Exception:  # noqa: BLE001 - missing, or the broken PyPI port (OpenCV / numpy 2)
        return None


def _is_user_error(exc: BaseException) -> bool:
    """Invalid parameters, an unusable checkpoint, or input the model API refuses (InputError)."""
    ckpt = sys.modules.get("vla_ros.checkpoint")  # not imported when the parameters were invalid
    return isinstance(exc, (ConfigError, ValueError)) or (ckpt is not None and isinstance(exc, ckpt.CheckpointError))


def main(args: list[str] | None = None) -> None:
    """Entry point (``ros2 run vla_ros vla_node``, ``vla_node``, ``python -m vla_ros.ros.vla_node``).

    Exits non-zero with one clear line on stderr for an invalid parameter or, with ``autostart``,
    an unusable checkpoint. The executor spins (another thread) before the model loads, so the
    parameter and lifecycle services answer meanwhile.
    """
    # While the model loads (seconds, in this thread), SIGINT / SIGTERM end the process at once (the
    # default action, like a C++ node before rclcpp's handlers): a KeyboardInterrupt raised inside
    # `import torch` or a C++ initializer left the process to exit 130 or abort at exit ("terminate
    # called without an active exception"). Then a signal asks for a clean shutdown (ros/process.py).
    def body(proc: NodeProcess) -> int:
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_DFL)
        try:
            proc.node = VLANode()
            executor = MultiThreadedExecutor(num_threads=3)
            executor.add_node(proc.node)
            proc.spinner = Spinner(executor, name="vla-executor")
            error = proc.node.autostart() if proc.node.cfg.autostart else None
        except ExternalShutdownException:
            raise
        except Exception as exc:
            if not _is_user_error(exc):
                raise
            error = exc
        if error is not None:
            return config_error(NODE_NAME, error)
        proc.spinner.wait(stop_on_signals())
        return 0

    run_node_main(args, body, lambda node: node.close())  # running callbacks finish before the node goes


if __name__ == "__main__":
    main()
