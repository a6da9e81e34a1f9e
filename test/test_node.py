"""vla_node with real rclpy, across processes, on loopback (conftest.py isolates the ROS domain).

Two nodes are started once for the module, through ``vla launch`` (subprocesses), on a tiny
real checkpoint:

* ``main``: default namespace, real time, top camera remapped to /overhead/image; its command is
  published on a transient-local publisher *before* the node starts;
* ``sim``: namespace /sim, use_sim_time with a /clock published by this test (a bag loop is a
  jump back of /clock and of the stamps); its command comes from a volatile publisher.

The tests then drive them from this process like cameras and an operator would.
"""

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from nav_msgs.msg import Path as PathMsg  # noqa: E402
from vla_ros.ros.compat import PublisherEventCallbacks  # noqa: E402
from ros_harness import SpinningNode  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from vla_ros.msg import Trajectory  # noqa: E402
from vla_ros.runtime.safety import Status  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NS = 1_000_000_000
H, W = 48, 64
STARTUP_TIMEOUT = 120.0
MAIN_COMMAND = "go to the red door"


def _stamp(msg_stamp) -> int:
    return msg_stamp.sec * NS + msg_stamp.nanosec


def _time_msg(ns: int):
    from builtin_interfaces.msg import Time

    return Time(sec=ns // NS, nanosec=ns % NS)


class Robot:
    """The test's side of one node: camera feed, command, and what the node publishes."""

    def __init__(self, harness, ns: str, top_topic: str = "top/image_raw", now_ns=None) -> None:
        node = harness.node
        p = f"{ns}/" if ns else ""
        self.harness = harness
        self.now_ns = now_ns or (lambda: node.get_clock().now().nanoseconds)
        self.cams = {"ego": node.create_publisher(Image, f"/{p}ego/image_raw", qos_profile_sensor_data),
                     "top": node.create_publisher(Image, top_topic if top_topic.startswith("/") else f"/{p}{top_topic}",
                                                  qos_profile_sensor_data)}
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        volatile = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
        self.cmd_latched = node.create_publisher(String, f"/{p}command", latched)
        # (the node's latched subscription cannot match this one; its volatile one does: no warning wanted)
        self.cmd_volatile = node.create_publisher(
            String, f"/{p}command", volatile, event_callbacks=PublisherEventCallbacks(incompatible_qos=lambda _e: None))
        self.lock = threading.Lock()
        self.trajs: list[tuple[float, Trajectory]] = []
        self.paths: list[PathMsg] = []
        node.create_subscription(Trajectory, f"/{p}trajectory", self._on_traj, 50)
        node.create_subscription(PathMsg, f"/{p}trajectory/path", self._on_path, 50)
        self.mode = {"ego": "good", "top": "good"}  # good | off | bad_size | bad_encoding | empty | hires
        self.repeat_command: str | None = None  # re-sent on the volatile publisher every second
        self.odom_pub = node.create_publisher(Odometry, f"/{p}odom", 10)
        self.odometry: tuple[float, float] | None = None  # (v, omega) published with every frame pair
        self.odom_pose = (0.0, 0.0, 0.0)  # (x, y, yaw) in the odom frame, published with the odometry
        self.published_stamps: list[int] = []

    def _on_traj(self, msg):
        with self.lock:
            self.trajs.append((time.monotonic(), msg))

    def _on_path(self, msg):
        with self.lock:
            self.paths.append(msg)

    def image(self, cam: str, stamp_ns: int) -> Image | None:
        mode = self.mode[cam]
        if mode == "off":
            return None
        h, w = (96, 128) if mode == "hires" else (H, W)
        msg = Image(height=h, width=w, encoding="rgb8", step=w * 3)
        msg.header.stamp = _time_msg(stamp_ns)
        msg.header.frame_id = cam
        data = np.random.default_rng(stamp_ns % 2**32).integers(0, 255, h * w * 3, dtype=np.uint8).tobytes()
        if mode == "bad_size":
            data = data[:-7]  # not step * height
        elif mode == "bad_encoding":
            msg.encoding = "yuv422"
        elif mode == "empty":
            msg.height = msg.width = msg.step = 0
            data = b""
        msg.data = data
        return msg

    def publish_frames(self) -> None:
        t = self.now_ns()
        if self.odometry is not None:
            odom = Odometry()
            odom.header.stamp = _time_msg(t)
            odom.header.frame_id, odom.child_frame_id = "odom", "base_link"
            odom.twist.twist.linear.x, odom.twist.twist.angular.z = self.odometry
            x, y, yaw = self.odom_pose
            odom.pose.pose.position.x, odom.pose.pose.position.y = x, y
            odom.pose.pose.orientation.z, odom.pose.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
            self.odom_pub.publish(odom)
        for cam, pub in self.cams.items():
            msg = self.image(cam, t)
            if msg is not None:
                pub.publish(msg)
        with self.lock:
            self.published_stamps.append(t)

    def mark(self) -> int:
        with self.lock:
            return len(self.trajs)

    def wait(self, pred, timeout: float = 10.0, since: int | None = None, what: str = "") -> Trajectory:
        """The first trajectory received after index ``since`` that satisfies ``pred``."""
        since = self.mark() if since is None else since
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for _, msg in self.trajs[since:]:
                    if pred(msg):
                        return msg
                since = len(self.trajs)
            time.sleep(0.02)
        with self.lock:
            last = [(m.status, m.status_reason) for _, m in self.trajs[-5:]]
        raise AssertionError(f"no trajectory {what} within {timeout} s; last: {last}")

    def wait_status(self, status: Status, timeout: float = 10.0, since: int | None = None) -> Trajectory:
        return self.wait(lambda m: m.status == int(status), timeout, since, what=status.name)


class Harness(SpinningNode):
    """rclpy in this process: a node spun on a background thread, a camera feed at 20 Hz, /clock."""

    def __init__(self) -> None:
        super().__init__("vla_test_harness")
        self.diags: list[DiagnosticArray] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diags.append, 50)
        self.clock_pub = self.node.create_publisher(Clock, "/clock", 10)
        self.sim_base_ns = 1000 * NS
        self.sim_mono0 = time.monotonic()
        self.robots: list[Robot] = []
        self.start(self._feed)

    def sim_now_ns(self) -> int:
        return self.sim_base_ns + int((time.monotonic() - self.sim_mono0) * NS)

    def loop_sim_clock(self, to_ns: int) -> None:
        """A bag loop: sim time jumps back to ``to_ns``."""
        self.sim_base_ns, self.sim_mono0 = to_ns, time.monotonic()

    def _feed(self):
        last_cmd = 0.0
        while self.running:
            t = time.monotonic()
            self.clock_pub.publish(Clock(clock=_time_msg(self.sim_now_ns())))
            for robot in list(self.robots):
                robot.publish_frames()
                if robot.repeat_command is not None and t - last_cmd > 1.0:
                    robot.cmd_volatile.publish(String(data=robot.repeat_command))
            if t - last_cmd > 1.0:
                last_cmd = t
            time.sleep(max(0.0, 0.05 - (time.monotonic() - t)))



def _start_launch(args: list[str], log_path: Path) -> tuple[subprocess.Popen, object]:
    log = open(log_path, "w")
    env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
    proc = subprocess.Popen([sys.executable, "-m", "vla_ros.cli", "launch", *args], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    return proc, log


def _child_pid(log_path: Path) -> int | None:
    m = re.search(r"started vla_node \(pid (\d+)\)", log_path.read_text())
    return int(m.group(1)) if m else None


@pytest.fixture(scope="module")
def system(tiny_checkpoint, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("node")
    params = tmp / "vla_test.yaml"
    params.write_text(yaml.safe_dump({"/**/vla_node": {"ros__parameters": {
        "checkpoint": str(tiny_checkpoint), "num_inference_steps": 2, "cpu_threads": 1, "rate_hz": 5.0,
        "max_age": 0.5, "max_skew": 0.1, "frame_id": "base_link", "max_command_bytes": 2000,
    }}}))
    odom_params = tmp / "vla_odom.yaml"  # a third node: trajectories in the odometry frame
    odom_params.write_text(yaml.safe_dump({"/**/vla_node": {"ros__parameters": {
        **yaml.safe_load(params.read_text())["/**/vla_node"]["ros__parameters"], "output_frame": "odom"}}}))
    h = Harness()
    # The operator's command, latched, before any node runs: the node must still hear it.
    h.robots.append(Robot(h, "", top_topic="/overhead/image"))
    h.robots.append(Robot(h, "sim", now_ns=h.sim_now_ns))
    h.robots.append(Robot(h, "odomframe"))
    main, sim, odomframe = h.robots
    main.cmd_latched.publish(String(data=MAIN_COMMAND))
    odomframe.cmd_latched.publish(String(data=MAIN_COMMAND))
    logs = {"main": tmp / "main.log", "sim": tmp / "sim.log", "odomframe": tmp / "odomframe.log"}
    procs = {
        "main": _start_launch(["--params-file", str(params), "--remap", "top/image_raw:=/overhead/image"],
                              logs["main"]),
        "sim": _start_launch(["--params-file", str(params), "--namespace", "sim", "--use-sim-time",
                              "--checkpoint", str(tiny_checkpoint)], logs["sim"]),
        "odomframe": _start_launch(["--params-file", str(odom_params), "--namespace", "odomframe"], logs["odomframe"]),
    }
    try:
        for name, robot in (("main", main), ("sim", sim), ("odomframe", odomframe)):
            try:
                robot.wait(lambda m: True, timeout=STARTUP_TIMEOUT, since=0, what="(node start-up)")
            except AssertionError:
                pytest.fail(f"{name} node did not start:\n{logs[name].read_text()[-3000:]}")
        yield {"harness": h, "main": main, "sim": sim, "odomframe": odomframe, "logs": logs, "procs": procs}
    finally:
        codes = {}
        # the third node first, on its own: in one of four Jazzy runs on the busy 2-core machine, with all three
        # torch processes stopping at once, vla launch killed main after its 15 s stop timeout (exit 137); the
        # cause was not pinned down, stopping them one after the other lowers the load at that moment
        for name, sig in (("odomframe", signal.SIGINT), ("main", signal.SIGINT), ("sim", signal.SIGTERM)):
            proc, _ = procs[name]
            if proc.poll() is None:
                proc.send_signal(sig)
            if name == "odomframe":
                try:
                    proc.wait(40)
                except subprocess.TimeoutExpired:
                    pass  # killed and reported below
        for name, (proc, log) in procs.items():
            try:
                codes[name] = proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = "timeout"
            log.close()
        h.close()
    # vla launch forwarded SIGINT / SIGTERM, the nodes shut down cleanly, nothing is left running
    for name in procs:
        assert codes[name] == 0, f"{name}: exit {codes[name]}\n{logs[name].read_text()[-3000:]}"
        pid = _child_pid(logs[name])
        assert pid is not None and not Path(f"/proc/{pid}").exists(), f"{name} node {pid} still running"


# ---------------------------------------------------------------------------------------------


def test_trajectory_from_both_cameras_and_a_command_latched_before_start(system):
    main = system["main"]
    t_start = time.monotonic()
    msg = main.wait_status(Status.OK, timeout=15, since=0)
    assert msg.command == MAIN_COMMAND  # published once, before the node existed
    assert len(msg.poses) == 16 and msg.dt == pytest.approx(0.2) and msg.header.frame_id == "base_link"
    assert msg.status_reason == "" and msg.inference_latency > 0
    stamp = _stamp(msg.header.stamp)
    with main.lock:
        assert stamp in main.published_stamps  # the stamp of an observation we sent
    assert all(math.isfinite(v) for p in msg.poses for v in (p.position.x, p.position.y, p.orientation.z))
    for p in msg.poses:
        q = p.orientation
        assert q.x == 0 and q.y == 0 and q.z ** 2 + q.w ** 2 == pytest.approx(1.0, abs=1e-6)
    # a fresh one arrives within a few seconds: record the end-to-end delay (observation -> received)
    since = main.mark()
    msg = main.wait_status(Status.OK, timeout=5, since=since)
    with main.lock:
        rx = [t for t, m in main.trajs[since:] if m is msg][0]
    age = (system["harness"].node.get_clock().now().nanoseconds - _stamp(msg.header.stamp)) / NS
    print(f"\nfirst OK after {rx - t_start:.2f} s; observation age at receipt {age * 1e3:.0f} ms, "
          f"inference {msg.inference_latency * 1e3:.0f} ms")
    assert age < 2.0


def test_path_has_the_same_waypoints_stamped_at_t_plus_k_dt(system):
    main = system["main"]
    traj = main.wait_status(Status.OK, timeout=10)
    deadline = time.monotonic() + 5
    path = None
    while time.monotonic() < deadline and path is None:
        with main.lock:
            path = next((p for p in main.paths if _stamp(p.header.stamp) == _stamp(traj.header.stamp)), None)
        time.sleep(0.02)
    assert path is not None and path.header.frame_id == "base_link" and len(path.poses) == 16
    t0 = _stamp(traj.header.stamp)
    for k, (ps, pose) in enumerate(zip(path.poses, traj.poses)):
        assert _stamp(ps.header.stamp) == t0 + round((k + 1) * 0.2 * NS)
        assert ps.pose.position.x == pose.position.x and ps.pose.orientation.w == pose.orientation.w


def test_diagnostics_at_1hz(system):
    h = system["harness"]
    deadline = time.monotonic() + 8
    while True:  # they have been arriving since the node started
        ours = [d for d in list(h.diags) if d.status and d.status[0].name == "/vla_node: inference"]
        if len(ours) >= 5 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(ours) >= 5
    # A callback that runs late (two nodes and this test share CI's two cores) is stamped late and the
    # next one on schedule, so one interval can read 1.2 s and the next 0.8 s: check the mean period.
    period = (_stamp(ours[-1].header.stamp) - _stamp(ours[0].header.stamp)) / NS / (len(ours) - 1)
    assert 0.6 < period < 1.5, period  # 1 Hz
    values = {kv.key: kv.value for kv in ours[-1].status[0].values}
    for key in ("latency_p50_ms", "latency_p95_ms", "rate_hz_achieved", "dropped_ticks", "age_ego_s", "age_top_s",
                "status", "status_reason", "ticks"):
        assert key in values, key
    assert float(values["latency_p95_ms"]) >= float(values["latency_p50_ms"]) > 0
    print(f"\ndiagnostics: p50 {values['latency_p50_ms']} ms, p95 {values['latency_p95_ms']} ms, "
          f"rate {values['rate_hz_achieved']} Hz (target 5), dropped {values['dropped_ticks']}")
    assert float(values["rate_hz_achieved"]) > 2.0


def _diagnostic_values(h, name: str, pred, timeout: float) -> dict:
    """Key/values of the first /diagnostics status ``name`` arriving from now on that satisfies ``pred``."""
    since, deadline = len(h.diags), time.monotonic() + timeout
    while time.monotonic() < deadline:
        for d in list(h.diags)[since:]:
            if d.status and d.status[0].name == name:
                values = {kv.key: kv.value for kv in d.status[0].values}
                if pred(values):
                    return values
        time.sleep(0.1)
    raise AssertionError(f"no {name} diagnostics satisfying the condition within {timeout} s")


def test_odometry_reaches_the_node_and_its_absence_is_unknown_not_a_stop(system):
    h, main = system["harness"], system["main"]
    main.wait_status(Status.OK)
    main.odometry = (0.4, 0.1)
    try:
        values = _diagnostic_values(h, "/vla_node: inference", lambda v: v.get("odometry") == "ok", 8)
        assert abs(float(values["age_odom_s"])) < 1.0
    finally:
        main.odometry = None
    # odom stops: the velocity becomes unknown (stale), and the node keeps serving trajectories
    _diagnostic_values(h, "/vla_node: inference", lambda v: v.get("odometry") == "stale", 8)
    main.wait_status(Status.OK)


def test_output_frame_odom_places_trajectories_with_the_odometry_pose(system):
    robot = system["odomframe"]
    robot.wait_status(Status.STOP_NO_ODOMETRY, timeout=20)  # no odometry: no pose to place them with
    robot.odom_pose, robot.odometry = (100.0, -50.0, math.pi / 2), (0.0, 0.0)
    try:
        since = robot.mark()
        msg = robot.wait_status(Status.OK, timeout=20, since=since)
        assert msg.header.frame_id == "odom"
        xy = np.array([(p.position.x, p.position.y) for p in msg.poses])
        assert np.all(np.hypot(xy[:, 0] - 100.0, xy[:, 1] + 50.0) < 10.0), xy  # around the robot, not the origin
        deadline, paths = time.monotonic() + 5.0, []
        while not paths and time.monotonic() < deadline:  # the path follows its trajectory
            with robot.lock:
                paths = [p for p in robot.paths if p.header.stamp == msg.header.stamp]
            time.sleep(0.02)
        assert paths and paths[0].header.frame_id == "odom"
        assert [(q.pose.position.x, q.pose.position.y) for q in paths[0].poses] == [tuple(r) for r in xy.tolist()]
    finally:
        robot.odometry = None


def test_stale_camera_stops_the_robot_then_recovers(system):
    main = system["main"]
    main.wait_status(Status.OK)
    main.mode["ego"] = "off"
    stop = main.wait_status(Status.STOP_STALE_CAMERA, timeout=5)
    assert "ego image is" in stop.status_reason
    assert all(p.position.x == 0 and p.position.y == 0 and p.orientation.w == 1 for p in stop.poses)
    assert len(stop.poses) == 16
    main.mode["ego"] = "good"
    main.wait_status(Status.OK, timeout=10)


@pytest.mark.parametrize("mode, words", [
    ("bad_size", "bytes but step * height"),
    ("bad_encoding", "unsupported encoding 'yuv422'"),
    ("empty", "has no pixels"),
])
def test_bad_images_stop_and_good_input_is_served_again(system, mode, words):
    main = system["main"]
    main.wait_status(Status.OK, timeout=10)
    main.mode["ego"] = mode
    stop = main.wait_status(Status.STOP_BAD_INPUT, timeout=5)
    assert words in stop.status_reason
    main.mode["ego"] = "good"
    main.wait_status(Status.OK, timeout=10)


def test_resolution_change_restarts_the_history(system):
    main = system["main"]
    main.wait_status(Status.OK, timeout=10)
    since = main.mark()
    main.mode["ego"] = "hires"
    main.wait_status(Status.STOP_INCOMPLETE_HISTORY, timeout=5, since=since)
    main.wait_status(Status.OK, timeout=10)  # with the new resolution
    main.mode["ego"] = "good"
    main.wait_status(Status.OK, timeout=10)


def test_ten_megabyte_command_is_rejected_and_the_next_command_is_served(system):
    main = system["main"]
    main.wait_status(Status.OK, timeout=10)
    main.cmd_latched.publish(String(data="x" * 10_000_000))
    stop = main.wait_status(Status.STOP_BAD_INPUT, timeout=10)
    assert "max_command_bytes=2000" in stop.status_reason
    main.cmd_latched.publish(String(data=MAIN_COMMAND))
    ok = main.wait_status(Status.OK, timeout=10)
    assert ok.command == MAIN_COMMAND


def test_burst_of_a_thousand_messages(system):
    main, h = system["main"], system["harness"]
    main.wait_status(Status.OK, timeout=10)
    for i in range(1000):
        main.cams["ego"].publish(main.image("ego", h.node.get_clock().now().nanoseconds))
        main.cmd_volatile.publish(String(data=f"{MAIN_COMMAND} {i % 3}"))
    main.cmd_latched.publish(String(data=MAIN_COMMAND))
    ok = main.wait(lambda m: m.status == 0 and m.command == MAIN_COMMAND, timeout=10, what="OK after burst")
    assert len(ok.poses) == 16
    assert system["procs"]["main"][0].poll() is None


def test_sim_time_volatile_command_and_bag_loop(system):
    sim, h = system["sim"], system["harness"]
    sim.repeat_command = "follow the corridor"  # volatile publisher, re-sent every second
    ok = sim.wait_status(Status.OK, timeout=15)
    assert ok.command == "follow the corridor"
    s1 = _stamp(ok.header.stamp)
    assert s1 < 10_000 * NS  # stamped in sim time (~1000 s), not wall time: ages use the /clock
    assert sim.wait_status(Status.OK, timeout=5).header.frame_id == "base_link"
    # the bag loops: /clock and the stamps jump back ~2+ s; the node clears its history and restarts
    h.loop_sim_clock(1000 * NS)
    since = sim.mark()
    again = sim.wait(lambda m: m.status == 0 and _stamp(m.header.stamp) < s1, timeout=15, since=since,
                     what="OK in the looped timeline")
    assert len(again.poses) == 16
    assert "history cleared" in system["logs"]["sim"].read_text()


def test_status_constants_match_the_message():
    for status in Status:
        assert getattr(Trajectory, f"STATUS_{status.name}") == int(status)
    names = {n for n in dir(Trajectory) if n.startswith("STATUS_")}
    assert names == {f"STATUS_{s.name}" for s in Status}


def test_message_conversion():
    from vla_ros.ros.messages import path_msg, trajectory_msg
    from vla_ros.runtime.core import TickResult

    traj = np.zeros((16, 3), np.float32)
    traj[:, 0] = np.arange(16)
    traj[:, 2] = np.pi / 2
    r = TickResult(Status.OK, "", 5 * NS + 900_000_000, traj, 0.2, "go", 0.05)
    m = trajectory_msg(r, "base_link")
    assert (m.header.stamp.sec, m.header.stamp.nanosec) == (5, 900_000_000) and m.status == 0
    assert m.poses[3].position.x == 3.0 and m.poses[3].orientation.z == pytest.approx(math.sqrt(0.5))
    p = path_msg(r, "odom")
    assert (p.poses[0].header.stamp.sec, p.poses[0].header.stamp.nanosec) == (6, 100_000_000)
    assert p.poses[15].header.stamp.sec == 9 and p.poses[15].header.stamp.nanosec == 100_000_000


def test_invalid_parameter_stops_start_up_with_a_clear_message():
    cases = {"rate_hz=-2.0: must be in (0, 100]": ["-p", "rate_hz:=-2.0"],
             "unknown parameter(s) ['rate_hx']": ["-p", "rate_hx:=2.0"],
             "choose one of ['publish_stop', 'silent']": ["-p", "on_stop:=hold"]}
    procs = {words: subprocess.Popen([sys.executable, "-m", "vla_ros.ros.vla_node", "--ros-args", *args], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for words, args in cases.items()}
    for words, proc in procs.items():
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, err
        assert words in err and "Traceback" not in err, err
