"""sim_node: the simulated world as a ROS 2 robot, for closed-loop runs of vla_node.

    ros2 run vla_ros sim_node --ros-args -p episodes:=8 -p split:=eval -p output_dir:=/tmp/sim
    python -m vla_ros.ros.sim_node --ros-args -p mode:=real_time -p kinds:=goto_red
    vla sim --episodes 8        # starts this node and vla_node together (see docs/closed_loop.md)

Topics (relative, so namespaces and remaps work):
  out: ego/image_raw, top/image_raw (sensor_msgs/Image rgb8, sensor-data QoS, stamped in sim time),
       /clock (rosgraph_msgs/Clock, when publish_clock), odom (nav_msgs/Odometry),
       pose (geometry_msgs/PoseStamped), scan (sensor_msgs/LaserScan, sensor-data QoS: a planar laser
       at the robot's centre that sees obstacles and cones, for vla_node's scan_guard), command (std_msgs/String, reliable + transient-local:
       the episode's command, latched)
  in:  cmd_vel (geometry_msgs/TwistStamped, or Twist; control_input cmd_vel, the default): the
       robot's velocity command, e.g. from trajectory_follower -- the simulator is a robot base;
       trajectory (vla_ros/Trajectory): lockstep waits for it; with control_input trajectory the
       node's own tracker follows it (stamps honoured; a non-OK status stops the robot, and so does
       no trajectory for trajectory_timeout seconds). The tracker runs in both modes for the record.

Modes: ``lockstep`` (default) -- the simulation waits, every lockstep_period, for a trajectory
stamped at (or after) its newest frames, and with cmd_vel for the command answering each odom
message, so results do not depend on CPU speed; ``real_time`` --
it runs on a wall-clock timer and the robot follows whatever arrives, late trajectories joined
in the middle.  This module is the thin rclpy adapter; the world and the closed loop
(:mod:`vla_ros.sim.loop`), the tracking controller (:mod:`vla_ros.control.tracker`), the scoring
(:mod:`vla_ros.sim.scoring`) and the parameters (:mod:`vla_ros.sim.node_config`) have no rclpy.
"""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
from nav_msgs.msg import Odometry
from nav_msgs.msg import Path as PathMsg
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, LaserScan
from std_msgs.msg import String

from vla_ros.control.tracker import TrackerConfig
from vla_ros.runtime.history import NS
from vla_ros.sim.loop import ClosedLoopSim
from vla_ros.sim.node_config import SimNodeConfig
from vla_ros.config import ConfigError
from vla_ros.bag.schema import stamp_of, trajectory_data
from vla_ros.msg import Trajectory
from vla_ros.ros.messages import to_time
from vla_ros.ros.parameters import declare_dataclass_parameters
from vla_ros.ros.process import NodeProcess, Spinner, config_error, run_node_main, stop_on_signals
from vla_ros.sim.config import WorldConfig
from vla_ros.sim.lidar import LidarSpec

__all__ = ["SimNode", "main", "NODE_NAME"]

NODE_NAME = "sim_node"
# Like vla_node's command subscription: reliable, and transient-local so that a VLA node started
# after this one still hears the current command.
COMMAND_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
SIM_START_NS = NS  # sim time of the first frame (a stamp of 0 means "unstamped" to vla_node)
MATCH_GRACE_S = 0.5  # wall seconds between finding the VLA node and the first frame (see wait_for_vla_node)


class SimNode(Node):
    def __init__(self, stop_event: threading.Event | None = None, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        try:
            self._set_up(stop_event)
        except BaseException:
            self.destroy_node()  # now, not by the garbage collector after rclpy shut down
            raise

    def _set_up(self, stop_event: threading.Event | None) -> None:
        self._stop_event = stop_event or threading.Event()
        self.cfg = cfg = declare_dataclass_parameters(self, SimNodeConfig)
        tracker = TrackerConfig(timeout=cfg.trajectory_timeout, feedforward_horizon=cfg.tracker_horizon)
        self.sim = ClosedLoopSim(WorldConfig(image_size=cfg.image_size), tracker,
                                 warmup=cfg.warmup, duration=cfg.duration)
        self.lock = threading.Condition()
        self._answer_ns = -1  # newest header.stamp received (any status)
        self._ok_ns = -1  # newest header.stamp of an OK trajectory
        self._waiting_enabled = True  # lockstep waits; off after lockstep_timeout until trajectories return
        self._active = False  # an episode is running
        self._out = Path(cfg.output_dir) if cfg.output_dir else None
        if self._out is not None:
            self._out.mkdir(parents=True, exist_ok=True)

        self._ego_pub = self.create_publisher(Image, "ego/image_raw", qos_profile_sensor_data)
        self._top_pub = self.create_publisher(Image, "top/image_raw", qos_profile_sensor_data)
        self._scan_pub = self.create_publisher(LaserScan, "scan", qos_profile_sensor_data)
        self._clock_pub = self.create_publisher(Clock, "/clock", 10) if cfg.publish_clock else None
        self._odom_pub = self.create_publisher(Odometry, "odom", 10)
        self._pose_pub = self.create_publisher(PoseStamped, "pose", 10)
        self._cmd_pub = self.create_publisher(String, "command", COMMAND_QOS)
        self.create_subscription(Trajectory, "trajectory", self._on_trajectory, 10)
        self._cmd_input = cfg.control_input == "cmd_vel"
        self._cmd_by_stamp: dict[int, tuple[float, float]] = {}  # newest cmd_vel answering each odom stamp
        self._cmd_count: dict[int, int] = {}  # cmd_vel messages received per odom stamp
        self._odom_count: dict[int, int] = {}  # odom messages published per stamp (lockstep waits for as many)
        self._newest_cmd: tuple[int, float, float] | None = None  # (sim stamp received, v, omega)
        self._cmd_waiting_enabled = True  # lockstep waits for cmd_vel; off after lockstep_timeout until it returns
        self._ack_ns = self._ack_ok_ns = -1  # newest trajectory stamp the driver took (any / with a plan)
        if self._cmd_input:
            self.create_subscription(TwistStamped if cfg.cmd_vel_stamped else Twist, "cmd_vel", self._on_cmd_vel, 10)
            self.create_subscription(PathMsg, cfg.follower_plan, self._on_follower_plan, 10)
        self.get_logger().info(
            f"{cfg.mode} simulation, {cfg.image_size}px cameras, {cfg.episodes or 'endless'} episode(s) of "
            f"{cfg.warmup:g} s warm-up + {cfg.duration:g} s, seed {cfg.seed}, split {cfg.split}")

    @property
    def running(self) -> bool:
        return self.context.ok() and not self._stop_event.is_set()

    # -- input --------------------------------------------------------------------------
    def _on_trajectory(self, msg: Trajectory) -> None:
        t = trajectory_data(msg)
        stamp = t.stamp_ns
        with self.lock:
            if not self._active:  # before the first episode or between two: nothing to follow
                return
            try:
                self.sim.receive(stamp, t.trajectory if len(t.trajectory) else [[0.0, 0.0, 0.0]], t.dt, t.status,
                                 t.status_reason, t.inference_latency)
            except Exception as exc:  # noqa: BLE001 - a malformed message must not stop the simulation
                self.get_logger().warning(f"trajectory rejected: {type(exc).__name__}: {exc}")
            self._answer_ns = max(self._answer_ns, stamp)
            if int(msg.status) == Trajectory.STATUS_OK:
                self._ok_ns = max(self._ok_ns, stamp)
            self._waiting_enabled = True
            self.lock.notify_all()

    def _on_cmd_vel(self, msg: TwistStamped | Twist) -> None:
        twist = msg.twist if self.cfg.cmd_vel_stamped else msg
        cmd = (float(twist.linear.x), float(twist.angular.z))
        with self.lock:
            if not self._active:
                return
            self._newest_cmd = (self.sim.stamp_ns, *cmd)
            self._cmd_waiting_enabled = True
            if self.cfg.cmd_vel_stamped:
                stamp = stamp_of(msg)
                self._cmd_by_stamp[stamp] = cmd
                self._cmd_count[stamp] = self._cmd_count.get(stamp, 0) + 1
            self.lock.notify_all()

    def _on_follower_plan(self, msg: PathMsg) -> None:
        stamp = stamp_of(msg)
        with self.lock:
            self._ack_ns = max(self._ack_ns, stamp)
            if msg.poses:
                self._ack_ok_ns = max(self._ack_ok_ns, stamp)
            self.lock.notify_all()

    def _base_command(self) -> tuple[float, float]:
        """cmd_vel input: what the base applies this step (lock held). Lockstep: the command answering
        this step's odometry; real time: the newest one. None for cmd_vel_timeout -> stop."""
        k = self.sim.stamp_ns
        if self.cfg.mode == "lockstep" and self._cmd_waiting_enabled and k in self._cmd_by_stamp:
            return self._cmd_by_stamp[k]
        new = self._newest_cmd
        if new is None or (k - new[0]) / NS > self.cfg.cmd_vel_timeout:
            return 0.0, 0.0
        return new[1], new[2]

    # -- output -------------------------------------------------------------------------
    def _image(self, img, stamp: Time, frame_id: str) -> Image:
        msg = Image(height=int(img.shape[0]), width=int(img.shape[1]), encoding="rgb8", is_bigendian=0,
                    step=int(img.shape[1]) * 3)
        msg.header.stamp = stamp
        msg.header.frame_id = frame_id
        msg.data = img.tobytes()
        return msg

    def _scan(self, ranges, stamp: Time) -> LaserScan:
        spec = LidarSpec()
        msg = LaserScan(angle_min=spec.angle_min, angle_max=spec.angle_min + spec.angle_increment * (spec.beams - 1),
                        angle_increment=spec.angle_increment, range_min=spec.range_min, range_max=spec.range_max)
        msg.header.stamp, msg.header.frame_id = stamp, self.cfg.base_frame_id
        msg.ranges = ranges.tolist()
        return msg

    def publish_observation(self) -> None:
        """The laser scan, both cameras, then /clock, at the current sim stamp.

        The clock goes last: vla_node stamps a stop with its clock, and in lockstep an answer
        stamped at (or after) a frame's stamp releases the simulation. A clock that overtook the
        frames let a tick answer STOP_INCOMPLETE_HISTORY for frames it had not received yet.
        """
        cfg = self.cfg
        with self.lock:
            stamp_ns = self.sim.stamp_ns
            ego, top = self.sim.render()
            ranges = self.sim.world.scan()
        stamp = to_time(stamp_ns)
        self._scan_pub.publish(self._scan(ranges, stamp))  # before the frames that release a lockstep tick
        self._ego_pub.publish(self._image(ego, stamp, cfg.ego_frame_id))
        self._top_pub.publish(self._image(top, stamp, cfg.top_frame_id))
        if self._clock_pub is not None:
            self._clock_pub.publish(Clock(clock=stamp))

    def publish_state(self) -> None:
        """odom and pose at the current sim stamp."""
        cfg = self.cfg
        with self.lock:
            stamp_ns = self.sim.stamp_ns
            x, y, yaw, v, w = (float(s) for s in self.sim.state)
        odom = Odometry()
        odom.header.stamp, odom.header.frame_id, odom.child_frame_id = to_time(stamp_ns), cfg.odom_frame_id, \
            cfg.base_frame_id
        odom.pose.pose.position.x, odom.pose.pose.position.y = x, y
        q = odom.pose.pose.orientation
        q.z, q.w = math.sin(yaw / 2), math.cos(yaw / 2)
        odom.twist.twist.linear.x, odom.twist.twist.angular.z = v, w
        self._odom_pub.publish(odom)
        with self.lock:
            self._odom_count[stamp_ns] = self._odom_count.get(stamp_ns, 0) + 1
        pose = PoseStamped()
        pose.header = odom.header
        pose.pose = odom.pose.pose
        self._pose_pub.publish(pose)

    def _event(self, **event) -> None:
        if self._out is not None:
            with open(self._out / "progress.jsonl", "a") as f:
                f.write(json.dumps(event) + "\n")

    # -- the loop (main thread; the executor spins on another) ---------------------------
    def wait_for_vla_node(self) -> bool:
        timeout = self.cfg.startup_timeout
        if timeout <= 0:
            return True
        t0 = time.monotonic()
        last_log = t0
        while self.running:
            found = self.count_subscribers("ego/image_raw") > 0 and self.count_publishers("trajectory") > 0
            if self._cmd_input:  # ... and the robot's driver: it hears odom and commands cmd_vel
                found = found and self.count_publishers("cmd_vel") > 0 and self._odom_pub.get_subscription_count() > 0
            # ... and both cameras matched (not only discovered): a frame sent before its reader matched
            # is lost, and a lost first frame turns the first tick of episode 1 into a stop
            if found and self._ego_pub.get_subscription_count() > 0 and self._top_pub.get_subscription_count() > 0:
                time.sleep(MATCH_GRACE_S)  # DDS matches the two ends asynchronously: let the reader side catch up
                self.get_logger().info(f"VLA node found after {time.monotonic() - t0:.1f} s")
                self._event(event="ready", wait_s=time.monotonic() - t0)
                return True
            now = time.monotonic()
            if now - t0 > timeout:
                driver = (f", or nothing subscribes to {self.resolve_topic_name('odom')} and publishes "
                          f"{self.resolve_topic_name('cmd_vel')}") if self._cmd_input else ""
                self.get_logger().error(f"no VLA node after {timeout:g} s (nothing subscribes to "
                                        f"{self.resolve_topic_name('ego/image_raw')} and publishes "
                                        f"{self.resolve_topic_name('trajectory')}{driver}); start them, e.g. `vla "
                                        "launch --use-sim-time follower:=true`, or set startup_timeout:=0")
                return False
            if now - last_log > 10.0:
                self.get_logger().info("waiting for the VLA node (loading its model?) ...")
                last_log = now
            time.sleep(0.1)
        return False

    def run(self) -> int:
        cfg = self.cfg
        if not self.wait_for_vla_node():
            return 1 if self.running else 0
        start_ns = SIM_START_NS
        i = 0
        while self.running and (cfg.episodes == 0 or i < cfg.episodes):
            seed, kind, text = cfg.episode(i)
            if not cfg.publish_clock:  # stamps from this node's clock (real_time mode)
                start_ns = self.get_clock().now().nanoseconds
            with self.lock:
                self.sim.reset(seed=seed, kind=kind, split=cfg.split, text=text, start_ns=start_ns, episode=i)
                self._answer_ns = self._ok_ns = -1
                for d in (self._cmd_by_stamp, self._cmd_count, self._odom_count):
                    d.clear()
                self._ack_ns = self._ack_ok_ns = -1
                self._newest_cmd = None
                self._active = True
            self._cmd_pub.publish(String(data=self.sim.text))
            self.get_logger().info(f"episode {i + 1}/{cfg.episodes or '-'} (seed {seed}): "
                                   f"'{self.sim.text}' ({self.sim.kind})")
            self._event(event="start", episode=i, seed=seed, kind=self.sim.kind, text=self.sim.text)
            wall0 = time.perf_counter()
            finished = self._run_episode(i)
            if not finished:
                break
            with self.lock:
                self._active = False
                record = self.sim.finish(wall_s=time.perf_counter() - wall0,
                                         extra={"mode": cfg.mode, "node": self.get_fully_qualified_name()})
            res = record.result
            path = None
            if self._out is not None:
                path = record.save(self._out / f"episode_{i:03d}.json")
            self.get_logger().info(
                f"episode {i + 1}: {'SUCCESS' if res['success'] else 'FAILED'} -- {res['reason']}; "
                f"{res['trajectories']} trajectories ({res['trajectories_per_wall_s']:.2f}/s wall), "
                f"{res['wall_s']:.1f} s wall")
            self._event(event="end", episode=i, success=res["success"], reason=res["reason"],
                        time_to_goal=res.get("time_to_goal"), trajectories=res["trajectories"],
                        status=record.received.get("status", {}), wall_s=res["wall_s"],
                        file=str(path) if path else None)
            start_ns = self.sim.stamp_ns + int(round(cfg.episode_gap * NS))
            i += 1
        return 0

    def _wait_for_answer(self, stamp_ns: int) -> None:
        """lockstep: block until the frames stamped ``stamp_ns`` are answered (or give up).

        An OK trajectory stamped >= stamp_ns answers them at once. A stop stamped >= stamp_ns does
        during the warm-up (the node's history is still filling, and the robot ignores answers);
        after it, only when no OK trajectory followed within stop_grace wall seconds: vla_node stamps
        a stop with its clock, so a tick between the new /clock and the frames' arrival answers
        frames it has not seen, and its next tick (a few tens of ms later) answers them.
        """
        if not self._waiting_enabled:
            return
        deadline = time.monotonic() + self.cfg.lockstep_timeout
        next_graph_check = time.monotonic() + 1.0
        grace = 0.0 if self.sim.in_warmup else self.cfg.stop_grace
        stop_since = None  # wall time the first stop answering these frames arrived
        with self.lock:
            while self._ok_ns < stamp_ns and self.running:
                now = time.monotonic()
                if self._answer_ns >= stamp_ns:  # answered with a stop
                    if stop_since is None:
                        stop_since = now
                    if now - stop_since >= grace:
                        return
                if now >= next_graph_check:  # the VLA node left: do not wait for it
                    next_graph_check = now + 1.0
                    if self.count_publishers("trajectory") == 0:
                        self._give_up_waiting("no publisher of trajectory any more")
                        return
                if now >= deadline:
                    self._give_up_waiting(f"no answer for {self.cfg.lockstep_timeout:g} s")
                    return
                wait = min(0.1, deadline - now)
                if stop_since is not None:
                    wait = min(wait, max(0.0, stop_since + grace - now))
                self.lock.wait(timeout=wait)

    def _wait_for_driver(self, stamp_ns: int) -> None:
        """lockstep, cmd_vel input: block until the driver took the trajectory that answered the frames
        stamped ``stamp_ns`` (its ~/plan message stamped at or after them; with poses if the answer was
        OK). Trajectory and odometry reach it from different publishers, in no guaranteed order; its
        plan message is published after it took the trajectory, so odometry sent after it arrives after."""
        if not self._cmd_waiting_enabled:
            return
        deadline = time.monotonic() + self.cfg.lockstep_timeout
        with self.lock:
            if self._answer_ns < stamp_ns:  # no answer (lockstep gave up on vla_node): nothing to wait for
                return
            ok = self._ok_ns >= stamp_ns
            next_graph_check = time.monotonic() + 1.0
            while (self._ack_ok_ns if ok else self._ack_ns) < stamp_ns and self.running:
                now = time.monotonic()
                if now >= next_graph_check:
                    next_graph_check = now + 1.0
                    if self.count_publishers(self.cfg.follower_plan) == 0:
                        self._give_up_waiting(f"no publisher of {self.cfg.follower_plan} any more", cmd_vel=True)
                        return
                if now >= deadline:
                    self._give_up_waiting(f"no {self.cfg.follower_plan} for {self.cfg.lockstep_timeout:g} s",
                                          cmd_vel=True)
                    return
                self.lock.wait(timeout=min(0.1, deadline - now))

    def _wait_for_cmd_vel(self, stamp_ns: int) -> None:
        """lockstep, cmd_vel input: block until every odom message stamped ``stamp_ns`` has its cmd_vel.

        The driver (trajectory_follower, control_trigger odom) answers each odom message once, in
        order, stamped with its stamp. In the steps with frames the odometry goes out twice: before
        the wait for the trajectory (vla_node's measured velocity) and after it, so the command that
        moves the robot answers the newest trajectory, as the in-node tracker does.
        """
        if not self._cmd_waiting_enabled:
            return
        deadline = time.monotonic() + self.cfg.lockstep_timeout
        next_graph_check = time.monotonic() + 1.0
        with self.lock:
            while self._cmd_count.get(stamp_ns, 0) < self._odom_count.get(stamp_ns, 0) and self.running:
                now = time.monotonic()
                if now >= next_graph_check:
                    next_graph_check = now + 1.0
                    if self.count_publishers("cmd_vel") == 0:
                        self._give_up_waiting("no publisher of cmd_vel any more", cmd_vel=True)
                        return
                if now >= deadline:
                    self._give_up_waiting(f"no cmd_vel for {self.cfg.lockstep_timeout:g} s", cmd_vel=True)
                    return
                self.lock.wait(timeout=min(0.1, deadline - now))

    def _give_up_waiting(self, why: str, cmd_vel: bool = False) -> None:
        if cmd_vel:
            self._cmd_waiting_enabled = False
        else:
            self._waiting_enabled = False
        stops = (f"cmd_vel_timeout={self.cfg.cmd_vel_timeout:g} s without cmd_vel, or the driver's watchdog"
                 if self._cmd_input else f"trajectory_timeout={self.cfg.trajectory_timeout:g} s")
        self.get_logger().warning(f"lockstep: {why}; running on in real time until answers arrive "
                                  f"(the robot stops after {stops})")

    def _exchange(self, observe: bool) -> None:
        """One step's messages: frames (``observe``), odometry, and in lockstep the answers."""
        lockstep = self.cfg.mode == "lockstep"
        if observe:
            self.publish_observation()
        # odometry after the frames: published first, its callback (in vla_node's input group)
        # delayed the frames behind the new /clock, and a tick in that gap answered the frame
        # with STOP_INCOMPLETE_HISTORY; the node matches odometry within odometry_tolerance anyway
        self.publish_state()
        if lockstep and observe:
            self._wait_for_answer(self.sim.stamp_ns)
            if self._cmd_input:  # the driver's step for these frames: odometry again, once it took the answer
                self._wait_for_driver(self.sim.stamp_ns)
                self.publish_state()
        if lockstep and self._cmd_input:
            self._wait_for_cmd_vel(self.sim.stamp_ns)

    def _run_episode(self, episode: int) -> bool:
        """Run the current episode to its end; False when interrupted (shutdown)."""
        cfg = self.cfg
        sim = self.sim
        dt = sim.config.sim_dt
        every = max(1, int(round(cfg.lockstep_period / dt)))
        period = dt / cfg.real_time_factor if cfg.mode == "real_time" else dt
        next_wall = time.monotonic()
        lag_warned = False
        last_mode = None
        while not sim.done:
            if not self.running:
                return False
            # lockstep: frames only where the simulation waits for their answer, so that every
            # prediction answers a frame the simulation waited for (deterministic); real time: every step
            self._exchange(observe=cfg.mode == "real_time" or sim.k % every == 0)
            if cfg.mode == "real_time" or not self._waiting_enabled or not self._cmd_waiting_enabled:
                next_wall += period
                delay = next_wall - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -0.2:
                    if not lag_warned and cfg.mode == "real_time":
                        self.get_logger().warning(f"simulation {-delay:.2f} s behind the wall clock (rendering "
                                                  "too slow for real_time_factor); simulated time runs slower")
                        lag_warned = True
                    next_wall = time.monotonic()
            else:
                next_wall = time.monotonic()
            with self.lock:
                t = (sim.stamp_ns - sim.start_ns) / NS - sim.warmup_steps * dt
                ctl = sim.step(self._base_command() if self._cmd_input else None)
            if ctl.mode != last_mode:
                reason = f": {ctl.reason}" if ctl.reason else ""
                if ctl.mode == "track":
                    self.get_logger().info(f"t={t:+.1f} s: following the trajectories")
                elif ctl.mode != "warmup":  # (rclpy wants one severity per call site)
                    self.get_logger().warning(f"t={t:+.1f} s: {ctl.mode}{reason}")
                self._event(event="mode", episode=episode, t=round(t, 3), mode=ctl.mode, reason=ctl.reason)
                last_mode = ctl.mode
        return True


def main(args: list[str] | None = None) -> None:
    """Entry point (``ros2 run vla_ros sim_node``, ``sim_node``, ``python -m vla_ros.ros.sim_node``).

    Exits 0 after the last episode (or on SIGINT / SIGTERM: the episode under way is dropped),
    1 when no VLA node showed up, 2 for an invalid parameter.
    """
    def body(proc: NodeProcess) -> int:
        # A signal only asks the loop to end (checked every step and while waiting): ros/process.py
        stop = stop_on_signals()
        try:
            try:
                proc.node = SimNode(stop_event=stop)
            except (ConfigError, ValueError) as exc:
                return config_error(NODE_NAME, exc)
            executor = SingleThreadedExecutor()
            executor.add_node(proc.node)
            proc.spinner = Spinner(executor, name="sim-executor")
            return proc.node.run()
        finally:
            stop.set()

    run_node_main(args, body, lambda node: node.destroy_node(), spinner_timeout_s=1.0, quiet=())


if __name__ == "__main__":
    main()
