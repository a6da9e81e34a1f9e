"""One launch description, two launchers: launch/vla.launch.py (ROS launch) and `vla launch`.

ROS ``launch`` / ``launch_ros`` cannot be installed here, so the launch file runs against small
fake modules injected into sys.modules; what it starts must equal the description that
``vla launch`` runs.  ``vla launch`` itself is started for real in test_node.py (the nodes there
run under it); here: its command lines, exit status and signal forwarding.
"""

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

from vla_ros.config import ConfigError
from vla_ros.launch_description import (LAUNCH_ARGUMENTS, NodeDescription, default_params_file, describe,
                                        describe_from_launch_arguments, process_command, ros_arguments)

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / "launch" / "vla.launch.py"


def _load_launch_file():
    spec = importlib.util.spec_from_file_location("vla_launch_file", LAUNCH_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------------------------------------
# The description
# ---------------------------------------------------------------------------------------------


def test_default_description():
    (d,) = describe()
    assert (d.package, d.executable, d.name, d.module) == ("vla_ros", "vla_node", "vla_node", "vla_ros.ros.vla_node")
    assert d.params_files == [str(default_params_file())] and Path(d.params_files[0]).is_file()
    assert d.namespace == "" and d.parameters == {} and d.remappings == []


def test_description_with_every_argument(tmp_path):
    (d,) = describe(checkpoint="/models/m.pth", device="cuda:0", namespace="robot1/", rate_hz=5,
                    use_sim_time=True, scan_guard=True,
                    remappings=["ego/image_raw:=/cam_front/image_raw", ("top/image_raw", "/cam_top")])
    assert d.namespace == "/robot1"
    assert d.parameters == {"checkpoint": "/models/m.pth", "device": "cuda:0", "rate_hz": 5.0, "use_sim_time": True,
                            "scan_guard": True}
    assert d.remappings == [("ego/image_raw", "/cam_front/image_raw"), ("top/image_raw", "/cam_top")]
    assert ros_arguments(d) == [
        "--ros-args", "-r", "__node:=vla_node", "-r", "__ns:=/robot1", "--params-file", str(default_params_file()),
        "-p", "checkpoint:=/models/m.pth", "-p", "device:=cuda:0", "-p", "rate_hz:=5.0", "-p", "use_sim_time:=true",
        "-p", "scan_guard:=true",
        "-r", "ego/image_raw:=/cam_front/image_raw", "-r", "top/image_raw:=/cam_top",
    ]
    assert process_command(d, python="py")[:3] == ["py", "-m", "vla_ros.ros.vla_node"]


@pytest.mark.parametrize("kwargs, words", [
    ({"rate_hz": -1}, "rate_hz"),
    ({"device": "tpu"}, "device"),
    ({"namespace": "1robot"}, "namespace"),
    ({"remappings": ["ego/image_raw=/x"]}, "from:=to"),
    ({"params_file": "/does/not/exist.yaml"}, "does not exist"),
])
def test_description_checks_before_anything_starts(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        describe(**kwargs)


def test_params_file_must_apply_to_the_namespaced_node(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("vla_node:\n  ros__parameters:\n    rate_hz: 4.0\n")
    assert describe(params_file=f)[0].params_files == [str(f)]
    with pytest.raises(ConfigError, match=r"/\*\*/vla_node"):
        describe(params_file=f, namespace="robot1")
    f.write_text("/**/vla_node:\n  ros__parameters:\n    rate_hx: 4.0\n")
    with pytest.raises(ConfigError, match="rate_hx"):
        describe(params_file=f)


def test_string_parameters_survive_ros_argument_parsing():
    """-p values are YAML to rcl: '123', 'true' and '' must arrive as strings."""
    rclpy = pytest.importorskip("rclpy")
    d = NodeDescription("vla_ros", "vla_node", "vla_node", "m", parameters={
        "checkpoint": "123", "device": "true", "frame_id": "", "rate_hz": 5.0, "fast": False})
    ctx = rclpy.Context()
    rclpy.init(args=["x", *ros_arguments(d)], context=ctx)
    try:
        node = rclpy.create_node("vla_node", context=ctx)
        values = {k: v.value for k, v in node._parameter_overrides.items()}
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
    assert values == {"checkpoint": "123", "device": "true", "frame_id": "", "rate_hz": 5.0, "fast": False}


# ---------------------------------------------------------------------------------------------
# The ROS launch file builds its nodes from the same description
# ---------------------------------------------------------------------------------------------


def test_launch_file_helper_matches_the_description():
    mod = _load_launch_file()
    assert "launch" not in sys.modules and "launch_ros" not in sys.modules  # imported only when launching
    args = {"namespace": "robot1", "rate_hz": "4", "use_sim_time": "true", "checkpoint": "/m.pth",
            "remappings": "ego/image_raw:=/a, top/image_raw:=/b"}
    (kw,) = mod.nodes_for(args)
    (d,) = describe_from_launch_arguments(args)
    assert kw["package"] == d.package and kw["executable"] == d.executable and kw["name"] == d.name
    assert kw["namespace"] == "/robot1" == d.namespace
    assert kw["parameters"] == [*d.params_files, {"checkpoint": "/m.pth", "rate_hz": 4.0, "use_sim_time": True}]
    assert kw["remappings"] == [("ego/image_raw", "/a"), ("top/image_raw", "/b")] == d.remappings
    # and `vla launch` passes the same things on the command line
    ros_args = ros_arguments(d)
    for f in d.params_files:
        assert ["--params-file", f] == ros_args[ros_args.index("--params-file"):][:2]
    assert "rate_hz:=4.0" in ros_args and "use_sim_time:=true" in ros_args and "ego/image_raw:=/a" in ros_args


def test_launch_file_with_fake_launch_modules(monkeypatch):
    created = {}

    class Action:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    class Node(Action):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            created.setdefault("nodes", []).append(kwargs)

    launch = types.ModuleType("launch")
    launch.LaunchDescription = lambda entities: ("LaunchDescription", entities)
    launch.actions = types.ModuleType("launch.actions")
    launch.actions.DeclareLaunchArgument = type("DeclareLaunchArgument", (Action,), {})
    launch.actions.OpaqueFunction = type("OpaqueFunction", (Action,), {})
    launch.substitutions = types.ModuleType("launch.substitutions")
    launch.substitutions.LaunchConfiguration = LaunchConfiguration
    launch_ros = types.ModuleType("launch_ros")
    launch_ros.actions = types.ModuleType("launch_ros.actions")
    launch_ros.actions.Node = Node
    for name, m in {"launch": launch, "launch.actions": launch.actions, "launch.substitutions": launch.substitutions,
                    "launch_ros": launch_ros, "launch_ros.actions": launch_ros.actions}.items():
        monkeypatch.setitem(sys.modules, name, m)

    kind, entities = _load_launch_file().generate_launch_description()
    assert kind == "LaunchDescription"
    declared = [e for e in entities if type(e).__name__ == "DeclareLaunchArgument"]
    assert [e.args[0] for e in declared] == list(LAUNCH_ARGUMENTS)
    defaults = {e.args[0]: e.kwargs["default_value"] for e in declared}
    assert all(e.kwargs["description"] for e in declared)
    (opaque,) = [e for e in entities if type(e).__name__ == "OpaqueFunction"]
    context = {**defaults, "namespace": "robot2", "device": "cuda", "remappings": "top/image_raw:=/overhead"}
    nodes = opaque.kwargs["function"](context)
    assert len(nodes) == 1 and created["nodes"][0]["namespace"] == "/robot2"
    (d,) = describe(namespace="robot2", device="cuda", use_sim_time=False, remappings=["top/image_raw:=/overhead"])
    assert created["nodes"][0]["parameters"] == [*d.params_files, d.parameters]
    assert created["nodes"][0]["remappings"] == d.remappings


# ---------------------------------------------------------------------------------------------
# `vla launch`
# ---------------------------------------------------------------------------------------------


def _vla_launch(*argv):
    """`vla launch ARGS` in this process (the CLI's own start-up imports torch: seconds per call)."""
    import argparse

    from vla_ros.commands.launch import register

    parser = argparse.ArgumentParser(prog="vla")
    register(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["launch", *argv])
    return args.func(args)


def test_vla_launch_dry_run_prints_the_description_commands(capsys):
    import shlex

    assert _vla_launch("--dry-run", "--namespace", "robot1", "--rate-hz", "4", "--use-sim-time",
                       "--remap", "ego/image_raw:=/cam_front/image_raw") == 0
    (d,) = describe(namespace="robot1", rate_hz=4, use_sim_time=True,
                    remappings=["ego/image_raw:=/cam_front/image_raw"])
    assert shlex.split(capsys.readouterr().out.strip()) == process_command(d)


def test_vla_launch_reports_invalid_arguments_without_starting_anything(capsys):
    with pytest.raises(ConfigError, match=r"rate_hz=0.0"):  # the CLI prints it and exits 2
        _vla_launch("--rate-hz", "0")
    assert "started" not in capsys.readouterr().err


def test_vla_launch_exits_with_the_node_status(tmp_path):
    """A real node that cannot start (missing checkpoint): its exit status 2 becomes vla launch's."""
    # (`vla launch` without the `vla` CLI's own start-up, which imports torch)
    code = ("import sys; from vla_ros.cli import build_parser; args = build_parser().parse_args(sys.argv[1:]); "
            "sys.exit(args.func(args))")
    out = subprocess.run([sys.executable, "-c", code, "launch", "--checkpoint", str(tmp_path / "missing.pth")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "vla_node: error:" in out.stderr and "missing.pth does not exist" in out.stderr
    assert "Traceback" not in out.stderr and "exited with 2" in out.stderr


CHILD = textwrap.dedent("""
    import os, signal, sys, time
    got = []
    signal.signal(signal.SIGINT, lambda s, f: got.append(s))
    signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
    os.write(1, b"ready\\n")  # one write(2) each: the two children share the pipe
    code = int(sys.argv[1])
    deadline = time.time() + (float(sys.argv[2]) if len(sys.argv) > 2 else 60)
    while not got and time.time() < deadline:
        time.sleep(0.02)
    os.write(1, f"child got {got}\\n".encode())
    sys.exit(code)
""")


def _launcher(tmp_path, commands):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    cmds = [[sys.executable, str(script), *c] for c in commands]
    code = f"import sys; from vla_ros.ros.orchestration import run_processes; sys.exit(run_processes({cmds!r}))"
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_run_processes_forwards_signals_and_exits_when_the_nodes_exit(tmp_path, sig):
    p = _launcher(tmp_path, [["0"], ["0"]])
    deadline = time.time() + 30
    while time.time() < deadline:  # both children started
        time.sleep(0.1)
        if p.poll() is not None:
            break
        pids = [int(x) for x in os.popen(f"pgrep -P {p.pid}").read().split()]
        if len(pids) == 2:
            break
    time.sleep(0.5)
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert out.count(f"child got [{int(sig)}]") == 2, out


def test_run_processes_stops_the_others_when_one_exits(tmp_path):
    p = _launcher(tmp_path, [["3", "0.5"], ["0"]])
    out, err = p.communicate(timeout=30)
    assert p.returncode == 3, err
    assert f"child got [{int(signal.SIGINT)}]" in out and "exited with 3" in err


def test_follower_beside_vla_node_in_both_launchers(capsys, tmp_path):
    """follower:=true starts trajectory_follower beside vla_node (same namespace, remaps, sim time)."""
    import shlex

    mod = _load_launch_file()
    args = {"namespace": "robot1", "use_sim_time": "true", "follower": "true", "remappings": "odom:=/base/odom"}
    kws = mod.nodes_for(args)
    descs = describe_from_launch_arguments(args)
    assert [k["executable"] for k in kws] == ["vla_node", "trajectory_follower"] == [d.executable for d in descs]
    f = descs[1]
    assert (f.name, f.namespace, f.module) == ("trajectory_follower", "/robot1", "vla_ros.ros.trajectory_follower")
    assert f.parameters == {"use_sim_time": True} and f.remappings == [("odom", "/base/odom")]
    assert len(describe_from_launch_arguments({})) == 1  # off by default
    assert _vla_launch("--dry-run", "--namespace", "robot1", "--use-sim-time", "--remap", "odom:=/base/odom",
                       "follower:=true") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [shlex.split(line) for line in lines] == [process_command(d) for d in descs]
    # a follower section of the params file is checked before anything starts
    bad = tmp_path / "p.yaml"
    bad.write_text(default_params_file().read_text() + "\n/**/trajectory_follower:\n  ros__parameters:\n"
                   "    max_linear_velocity: -2.0\n")
    with pytest.raises(ConfigError, match="max_linear_velocity=-2.0"):
        describe(params_file=bad, follower=True)
    with pytest.raises(ConfigError, match="launch argument 'folower:=true'"):
        _vla_launch("--dry-run", "folower:=true")
