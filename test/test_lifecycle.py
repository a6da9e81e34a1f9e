"""vla_node as a managed (lifecycle) node, across processes with real rclpy and a tiny checkpoint.

The node starts with ``autostart:=false`` (unconfigured, no model); this process drives its
transitions through the standard lifecycle services, as ``ros2 lifecycle set`` or a lifecycle
manager would, while it publishes both cameras and a latched command:

configure (the model loads; parameter services answer meanwhile) -> inactive (nothing published)
-> activate (trajectories) -> deactivate (none) -> activate (trajectories again, no model reload)
-> ten quick deactivate/activate pairs -> deactivate -> cleanup (model released) -> shutdown
(finalized); then SIGINT ends the process.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rcl_interfaces.srv import GetParameters  # noqa: E402
from ros_harness import SpinningNode, call_service  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from vla_ros.msg import Trajectory  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NS = 1_000_000_000
H, W = 48, 64
NODE = "/lc/vla_node"


class Client(SpinningNode):
    """This process: cameras at 20 Hz, a latched command, the lifecycle and parameter clients."""

    def __init__(self) -> None:
        super().__init__("vla_lifecycle_test")
        self.cams = [self.node.create_publisher(Image, f"/lc/{c}/image_raw", qos_profile_sensor_data)
                     for c in ("ego", "top")]
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_publisher(String, "/lc/command", latched).publish(String(data="go forward"))
        self.lock = threading.Lock()
        self.trajs: list[tuple[float, Trajectory]] = []
        self.diags: list[dict] = []
        self.node.create_subscription(Trajectory, "/lc/trajectory", self._on_traj, 50)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)
        self.change = self.node.create_client(ChangeState, f"{NODE}/change_state")
        self.get_state_client = self.node.create_client(GetState, f"{NODE}/get_state")
        self.get_params = self.node.create_client(GetParameters, f"{NODE}/get_parameters")
        self.start(self._feed)

    def _feed(self):
        data = np.random.default_rng(0).integers(0, 255, H * W * 3, dtype=np.uint8).tobytes()
        while self.running:
            stamp = self.node.get_clock().now().to_msg()
            for pub in self.cams:
                msg = Image(height=H, width=W, encoding="rgb8", step=W * 3, data=data)
                msg.header.stamp = stamp
                pub.publish(msg)
            time.sleep(0.05)

    def _on_traj(self, msg):
        with self.lock:
            self.trajs.append((time.monotonic(), msg))

    def _on_diag(self, msg):
        for st in msg.status:
            if st.name == f"{NODE}: inference":
                with self.lock:
                    self.diags.append({kv.key: kv.value for kv in st.values} | {"_message": st.message})

    def call(self, client, request, timeout: float = 120.0, resend_every: float | None = None):
        return call_service(client, request, timeout, resend_every)

    def transition(self, transition_id: int, timeout: float = 120.0) -> bool:
        return self.call(self.change, ChangeState.Request(transition=Transition(id=transition_id)), timeout).success

    def state(self) -> int:
        return self.call(self.get_state_client, GetState.Request(), resend_every=5.0).current_state.id

    def count(self) -> int:
        with self.lock:
            return len(self.trajs)

    def wait_ok(self, timeout: float = 30.0) -> None:
        since, deadline = self.count(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if any(m.status == Trajectory.STATUS_OK for _, m in self.trajs[since:]):
                    return
            time.sleep(0.05)
        raise AssertionError(f"no OK trajectory within {timeout} s")



def _start_node(args: list[str], log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
    with open(log_path, "w") as log:  # autostart:=false unless args say otherwise (the later -p wins)
        return subprocess.Popen([sys.executable, "-m", "vla_ros.ros.vla_node", "--ros-args", "-r", "__ns:=/lc",
                                 "-p", "autostart:=false", *args], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)


def _threads(proc: subprocess.Popen) -> int:
    """The node process's thread count (decode threads run while active: one per camera)."""
    return len(os.listdir(f"/proc/{proc.pid}/task"))


def _stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(40)
    except subprocess.TimeoutExpired:
        proc.kill()
        return -9


def test_configure_activate_deactivate_cleanup_shutdown(tiny_checkpoint, tmp_path):
    log = tmp_path / "vla_node.log"
    proc = _start_node(["-p", f"checkpoint:={tiny_checkpoint}", "-p", "num_inference_steps:=2", "-p", "cpu_threads:=1",
                        "-p", "rate_hz:=5.0"], log)
    client = Client()
    try:
        assert client.state() == State.PRIMARY_STATE_UNCONFIGURED
        time.sleep(1.0)
        assert client.count() == 0 and "loading model" not in log.read_text()  # autostart:=false: no model

        # configure loads the model (torch import + load: seconds); the parameter service answers meanwhile
        configure = client.change.call_async(ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE)))
        while "loading model" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            time.sleep(0.01)
        params = client.call(client.get_params, GetParameters.Request(names=["rate_hz", "autostart"]), timeout=30)
        answered_while_loading = not configure.done()
        assert [v.double_value for v in params.values[:1]] == [5.0] and params.values[1].bool_value is False
        deadline = time.monotonic() + 120
        while not configure.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert configure.done() and configure.result().success, log.read_text()[-3000:]
        assert answered_while_loading, "get_parameters waited for the model to load"
        assert client.state() == State.PRIMARY_STATE_INACTIVE

        # inactive: diagnostics say so, no trajectory
        time.sleep(2.0)
        assert client.count() == 0
        with client.lock:
            assert client.diags and client.diags[-1]["lifecycle"] == "inactive"
            assert client.diags[-1]["_message"].startswith("inactive")

        assert client.transition(Transition.TRANSITION_ACTIVATE)
        client.wait_ok()  # the latched command, published before activation, is heard
        active_threads = _threads(proc)
        assert client.transition(Transition.TRANSITION_DEACTIVATE)
        time.sleep(0.3)  # a message in flight when the node deactivated
        quiet = client.count()
        time.sleep(1.5)
        assert client.count() == quiet, "trajectories after deactivate"
        inactive_threads = _threads(proc)
        assert inactive_threads <= active_threads - 2, f"decode threads outlived deactivate: {active_threads} -> " \
                                                       f"{inactive_threads} threads"

        t0 = time.monotonic()
        assert client.transition(Transition.TRANSITION_ACTIVATE)
        client.wait_ok()
        assert log.read_text().count("loading model") == 1  # activate again: no model reload
        assert time.monotonic() - t0 < 15
        # switched back and forth while frames arrive: deactivate destroys subscriptions the executor
        # thread may be adding to its wait set (rclpy raised InvalidHandle there, which stopped spinning)
        for _ in range(10):
            assert client.transition(Transition.TRANSITION_DEACTIVATE)
            assert client.transition(Transition.TRANSITION_ACTIVATE)
        client.wait_ok()
        threads = _threads(proc)  # 24, 22, 24 here
        assert threads <= active_threads + 1, f"threads pile up across activations: {active_threads} -> {threads}"

        assert client.transition(Transition.TRANSITION_DEACTIVATE)
        assert client.transition(Transition.TRANSITION_CLEANUP)
        assert client.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert "unconfigured: model released" in log.read_text()
        assert not client.transition(Transition.TRANSITION_ACTIVATE)  # no model: activate is not a transition
        assert client.transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        assert client.state() == State.PRIMARY_STATE_FINALIZED
        assert proc.poll() is None  # finalized, still answering; ends on SIGINT like any node
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nnode exit {proc.poll()}; its log ends:\n{log.read_text()[-3000:]}") from None
    finally:
        client.close()
        code = _stop(proc)
    assert code == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()


def _wait_for(log: Path, words: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while words not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, f"no {words!r}:\n{log.read_text()[-3000:]}"
        time.sleep(0.01)


def test_autostart_answers_parameters_while_the_model_loads_and_ctrl_c_interrupts_the_load(tiny_checkpoint,
                                                                                           tmp_path):
    args = ["-p", f"checkpoint:={tiny_checkpoint}", "-p", "autostart:=true", "-p", "cpu_threads:=1"]
    log = tmp_path / "vla_node.log"
    proc = _start_node(args, log)
    client = Client()
    try:
        _wait_for(log, "loading model", proc)
        params = client.call(client.get_params, GetParameters.Request(names=["autostart"]), timeout=30,
                             resend_every=5.0)
        assert params.values[0].bool_value is True
        assert "model ready" not in log.read_text(), "get_parameters waited for the model to load"
        _wait_for(log, "active: subscribed", proc)
        assert client.state() == State.PRIMARY_STATE_ACTIVE
    finally:
        client.close()
        code = _stop(proc)
    assert code == 0 and "Traceback" not in log.read_text(), log.read_text()[-3000:]
    # SIGINT while the model loads: the process ends at once by the signal (nothing to clean up yet)
    log = tmp_path / "interrupted.log"
    proc = _start_node(args, log)
    _wait_for(log, "loading model", proc)
    t0 = time.monotonic()
    code = _stop(proc)
    assert code == -signal.SIGINT and time.monotonic() - t0 < 5, log.read_text()[-3000:]
    assert "model ready" not in log.read_text() and "Traceback" not in log.read_text()


def test_a_failed_configure_leaves_the_node_unconfigured_and_running(tmp_path):
    log = tmp_path / "vla_node.log"
    proc = _start_node(["-p", f"checkpoint:={tmp_path / 'missing.pth'}"], log)
    client = Client()
    try:
        assert client.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert not client.transition(Transition.TRANSITION_CONFIGURE)
        assert client.state() == State.PRIMARY_STATE_UNCONFIGURED and proc.poll() is None
        assert "configure failed: checkpoint=" in log.read_text() and "missing.pth does not exist" in log.read_text()
    finally:
        client.close()
        code = _stop(proc)
    assert code == 0 and "Traceback" not in log.read_text(), log.read_text()[-3000:]


class _Executor:
    """spin() raises what it is given, one per call, then returns (a context that stays ok)."""

    def __init__(self, *errors):
        self.errors, self.spins = list(errors), 0
        self.context = type("Context", (), {"ok": staticmethod(lambda: True)})()

    def spin(self):
        self.spins += 1
        if self.errors:
            raise self.errors.pop(0)


def test_spinning_goes_on_after_a_handler_destroyed_while_the_wait_set_was_built():
    from vla_ros.ros.process import InvalidHandle, spin as _spin

    ex = _Executor(InvalidHandle("cannot use Destroyable because destruction was requested"))
    _spin(ex)
    assert ex.spins == 2  # the caught one, then the next wait set
    failures = []
    ex = _Executor(RuntimeError("a bug"))
    _spin(ex, failures)
    assert ex.spins == 1 and [str(f) for f in failures] == ["a bug"]  # main exits non-zero with it
