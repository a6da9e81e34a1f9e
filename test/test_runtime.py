"""The node's pure-Python core (vla_ros.runtime): no rclpy, no ROS messages, no processes."""

import logging
import math
import subprocess
import sys
import threading
import time
import typing
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import yaml

from vla_ros.config import ConfigError
from vla_ros.runtime.config import (NodeConfig, node_config_from_parameters, node_key_matches, parameter_table,
                                    read_params_file)
from vla_ros.runtime.core import ModelSpec, NodeCore
from vla_ros.runtime.geometry import split_stamp, waypoint_stamps_ns, yaw_to_quaternion
from vla_ros.runtime.history import NS, CameraHistory, Frame, align
from vla_ros.runtime.images import ImageError, decode_image
from vla_ros.runtime.safety import Status
from vla_ros.runtime.stats import LatencyWindow, RateMeter, Throttle
from vla_ros.runtime.worker import DecodeWorker, TickWorker

ROOT = Path(__file__).resolve().parents[1]
MS = 1_000_000


# ---------------------------------------------------------------------------------------------
# The core never imports ROS
# ---------------------------------------------------------------------------------------------


def test_runtime_and_launch_description_import_without_ros():
    code = (
        "import sys\n"
        "import vla_ros.runtime.core, vla_ros.runtime.model, vla_ros.runtime.worker, vla_ros.launch_description\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'launch', 'launch_ros') "
        "or m.split('.')[0].endswith('_msgs') or m.startswith('vla_ros.msg') or m.startswith('vla_ros.ros'))\n"
        "assert not bad, bad\n"
        "assert 'torch' not in sys.modules, 'runtime imports torch eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


# ---------------------------------------------------------------------------------------------
# NodeConfig and params files
# ---------------------------------------------------------------------------------------------


def test_node_config_defaults_are_valid_and_every_field_has_help():
    cfg = NodeConfig()
    assert cfg.rate_hz == 3.0 and cfg.history_spacing == 0.2 and cfg.frame_id == "base_link"
    assert cfg.on_stop == "publish_stop" and cfg.num_inference_steps == 0
    for f in fields(NodeConfig):
        assert len(f.metadata.get("help", "")) > 10, f.name
    table = parameter_table()
    for f in fields(NodeConfig):
        assert f"| `{f.name}` |" in table


@pytest.mark.parametrize("values, words", [
    ({"rate_hz": 0}, "rate_hz"),
    ({"rate_hz": "fast"}, "rate_hz"),
    ({"history_spacing": -0.2}, "history_spacing"),
    ({"history_tolerance": 0.15}, "history_spacing/2"),
    ({"max_age": 0.0}, "max_age"),
    ({"max_skew": -1.0}, "max_skew"),
    ({"on_stop": "hold"}, "publish_stop"),
    ({"noise": "random"}, "noise: got 'random'"),
    ({"device": "gpu"}, "cuda"),
    ({"frame_id": ""}, "frame_id"),
    ({"num_inference_steps": -1}, "num_inference_steps"),
    ({"max_command_bytes": 0}, "max_command_bytes"),
    ({"fast": 1}, "true or false"),
    ({"rate_hx": 3.0}, "unknown"),
])
def test_invalid_parameters_raise_config_error_naming_them(values, words):
    with pytest.raises(ConfigError, match=words.replace("/", ".")):
        node_config_from_parameters(values)


def test_parameters_accept_ints_for_doubles_and_ignore_standard_ros_parameters():
    cfg = node_config_from_parameters({"rate_hz": 5, "use_sim_time": True, "qos_overrides./x.depth": 3})
    assert cfg.rate_hz == 5.0 and isinstance(cfg.rate_hz, float)


def test_vla_yaml_keys_equal_node_config_fields_and_hold_the_defaults():
    doc = yaml.safe_load((ROOT / "config" / "vla.yaml").read_text())
    assert list(doc) == ["/**/vla_node"]
    params = doc["/**/vla_node"]["ros__parameters"]
    assert list(params) == [f.name for f in fields(NodeConfig)]
    assert node_config_from_parameters(params) == NodeConfig()


def test_docs_parameter_table_is_generated_from_the_dataclass():
    doc = (ROOT / "docs" / "node.md").read_text()
    table = doc.split("<!-- parameters:begin -->\n", 1)[1].split("<!-- parameters:end -->", 1)[0]
    assert table.strip() == parameter_table(), "regenerate with: python -m vla_ros.runtime.config"


@pytest.mark.parametrize("key, fqn, match", [
    ("vla_node", "/vla_node", True),
    ("/vla_node", "/vla_node", True),
    ("vla_node", "/robot1/vla_node", False),  # rcl: a key without '/' is from the root
    ("/**/vla_node", "/robot1/vla_node", True),
    ("/**/vla_node", "/vla_node", True),
    ("/**", "/a/b/vla_node", True),
    ("robot1/vla_node", "/robot1/vla_node", True),
    ("/*/vla_node", "/robot1/vla_node", True),
    ("/*/vla_node", "/vla_node", False),
    ("/**/other", "/vla_node", False),
])
def test_params_file_keys_match_nodes_like_rcl(key, fqn, match):
    assert node_key_matches(key, fqn) is match


def test_read_params_file(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("vla_node:\n  ros__parameters:\n    rate_hz: 5\n    nested:\n      x: 1\n"
                 "other_node:\n  ros__parameters:\n    rate_hz: 1\n")
    assert read_params_file(f, "/vla_node") == {"rate_hz": 5, "nested.x": 1}
    with pytest.raises(ConfigError, match=r"/\*\*/vla_node"):
        read_params_file(f, "/robot1/vla_node")
    f.write_text("vla_node:\n  rate_hz: 5\n")
    with pytest.raises(ConfigError, match="ros__parameters"):
        read_params_file(f)
    with pytest.raises(ConfigError, match="does not exist"):
        read_params_file(tmp_path / "missing.yaml")


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


def _rgb(h=4, w=5):
    return np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)


def test_decode_rgb_bgr_mono_rgba_with_row_padding():
    rgb = _rgb()
    h, w = rgb.shape[:2]
    out = decode_image("rgb8", h, w, w * 3, rgb.tobytes())
    assert out.dtype == np.uint8 and out.shape == (h, w, 3) and np.array_equal(out, rgb)
    assert np.array_equal(decode_image("bgr8", h, w, w * 3, rgb[:, :, ::-1].tobytes()), rgb)
    # rows padded to 32 bytes: the padding is dropped
    padded = np.zeros((h, 32), np.uint8)
    padded[:, : w * 3] = rgb.reshape(h, -1)
    assert np.array_equal(decode_image("rgb8", h, w, 32, padded.tobytes()), rgb)
    mono = rgb[:, :, 0]
    mono_padded = np.zeros((h, 8), np.uint8)
    mono_padded[:, :w] = mono
    assert np.array_equal(decode_image("mono8", h, w, 8, mono_padded.tobytes()), np.repeat(mono[:, :, None], 3, 2))
    rgba = np.concatenate([rgb[:, :, ::-1], np.full((h, w, 1), 255, np.uint8)], 2)  # bgra
    assert np.array_equal(decode_image("bgra8", h, w, w * 4, rgba.tobytes()), rgb)


def test_decoded_image_owns_its_memory():
    import array

    data = array.array("B", _rgb().tobytes())  # what rclpy hands over
    out = decode_image("rgb8", 4, 5, 15, data)
    data[0] = 99
    assert out[0, 0, 0] == 0


@pytest.mark.parametrize("args, reason", [
    (("rgb8", 4, 5, 15, bytes(59)), "bad_size"),  # one byte short of step * height
    (("rgb8", 4, 5, 15, bytes(61)), "bad_size"),
    (("yuv422", 4, 5, 10, bytes(40)), "bad_encoding"),
    (("32FC1", 4, 5, 20, bytes(80)), "bad_encoding"),
    (("rgb8", 0, 0, 0, b""), "empty_image"),
    (("rgb8", 4, 5, 10, bytes(40)), "bad_step"),  # step < width * 3
])
def test_malformed_images_raise_with_a_reason(args, reason):
    with pytest.raises(ImageError) as e:
        decode_image(*args)
    assert e.value.reason == reason and str(e.value)


# ---------------------------------------------------------------------------------------------
# Histories
# ---------------------------------------------------------------------------------------------


def _frame(t_ns, value=0, shape=(4, 5, 3)):
    return Frame(int(t_ns), np.full(shape, value, np.uint8))


def test_history_picks_frames_closest_to_the_spacing():
    h = CameraHistory(keep_ns=5 * NS)
    for i in range(60):  # 30 Hz for 2 s
        h.add(_frame(1000 * NS + i * NS // 30, value=i))
    newest = h.newest.stamp_ns
    picked = h.select(newest, 5, 200 * MS, 50 * MS)
    stamps = [f.stamp_ns for f in picked]
    assert stamps == sorted(stamps) and stamps[-1] == newest
    for k, s in enumerate(reversed(stamps)):
        assert abs(s - (newest - k * 200 * MS)) <= NS // 60 + 1  # within half a frame period


def test_history_missing_slot_and_each_frame_used_once():
    h = CameraHistory(keep_ns=5 * NS)
    for t in (0.0, 0.2, 0.6, 0.8):  # 0.4 missing
        h.add(_frame(1 * NS + t * NS))
    picked = h.select(int(1.8 * NS), 5, 200 * MS, 100 * MS)
    assert [p is None for p in picked] == [False, False, True, False, False]
    h2 = CameraHistory(keep_ns=5 * NS)
    h2.add(_frame(NS))
    # one frame within tolerance of two targets may be used for only one of them
    assert sum(p is not None for p in h2.select(NS + 100 * MS, 2, 200 * MS, 120 * MS)) == 1
    # a frame exactly `tolerance` off its target is not taken (training histories are exact)
    assert sum(p is not None for p in h2.select(NS + 100 * MS, 2, 200 * MS, 100 * MS)) == 0


def test_history_prunes_old_frames_and_rejects_older_adds():
    h = CameraHistory(keep_ns=NS, max_frames=10)
    for i in range(100):
        h.add(_frame(NS + i * 50 * MS))
    assert len(h) == 10
    with pytest.raises(ValueError):
        h.add(_frame(NS))


def test_align_measures_skew_between_cameras():
    ego, top = CameraHistory(5 * NS), CameraHistory(5 * NS)
    for i in range(10):
        ego.add(_frame(NS + i * 200 * MS))
        top.add(_frame(NS + i * 200 * MS + 30 * MS))
    al = align({"ego": ego, "top": top}, 5, 200 * MS, 100 * MS)
    assert al.complete and al.worst_skew_ns == 30 * MS
    assert al.stamp_ns == NS + 9 * 200 * MS + 30 * MS  # the newest frame used
    assert al.anchor_ns == NS + 9 * 200 * MS


def test_align_pairs_other_cameras_with_the_reference_frames_not_the_targets():
    # Both cameras stamp identically every 50 ms, but ego lost the frame at newest - 0.4 s:
    # ego's slot takes a frame 0.05 s off target, and top must take the same instant (skew 0).
    ego, top = CameraHistory(5 * NS), CameraHistory(5 * NS)
    t_end = 2 * NS
    for i in range(40):
        t = t_end - (39 - i) * 50 * MS
        if not (t_end - 440 * MS <= t <= t_end - 360 * MS):
            ego.add(_frame(t))
        top.add(_frame(t))
    al = align({"ego": ego, "top": top}, 5, 200 * MS, 100 * MS)
    assert al.complete and al.worst_skew_ns == 0
    assert [f.stamp_ns for f in al.frames["ego"]] == [f.stamp_ns for f in al.frames["top"]]


# ---------------------------------------------------------------------------------------------
# NodeCore (inputs -> decision -> result)
# ---------------------------------------------------------------------------------------------


class FakePrediction:
    def __init__(self, traj):
        self.trajectory = traj
        self.timing = {"total": 1.0}


class FakeModel:
    """The predictor contract: (frames per camera, command, odometry) -> .trajectory (16, 3)."""

    def __init__(self, traj=None, exc=None):
        self.traj = np.tile(np.float32([0.1, 0.0, 0.0]), (16, 1)) * np.arange(1, 17, dtype=np.float32)[:, None] \
            if traj is None else traj
        self.exc = exc
        self.calls = []
        self.odometry = []

    def __call__(self, cams, command, odometry=None):
        self.calls.append((cams, command))
        self.odometry.append(odometry)
        if self.exc is not None:
            raise self.exc
        return FakePrediction(self.traj)


class ListLog:
    def __init__(self):
        self.lines = []

    def info(self, m):
        self.lines.append(("info", m))

    def warning(self, m):
        self.lines.append(("warning", m))

    def error(self, m):
        self.lines.append(("error", m))


T0 = 1_700_000_000 * NS


def _core(**cfg):
    log = ListLog()
    return NodeCore(NodeConfig(**cfg), ModelSpec(), log), log


def _feed(core, t_end_ns, period_ns=50 * MS, duration_ns=NS, cams=("ego", "top"), shape=(6, 8), offset=None):
    offset = offset or {}
    t = t_end_ns - duration_ns
    while t <= t_end_ns:
        for cam in cams:
            img = np.full((*shape, 3), 7, np.uint8)
            core.on_image(cam, t + offset.get(cam, 0), "rgb8", shape[0], shape[1], shape[1] * 3, img.tobytes())
        t += period_ns


def test_ok_tick_runs_the_model_on_aligned_histories_and_stamps_with_the_newest_frame():
    core, log = _core()
    core.on_command("go to the door")
    _feed(core, T0)
    model = FakeModel()
    r = core.tick(T0 + 100 * MS, model)
    assert r.ok and r.status == Status.OK and r.reason == ""
    assert r.stamp_ns == T0 and r.trajectory.shape == (16, 3) and r.dt == 0.2 and r.command == "go to the door"
    cams, cmd = model.calls[0]
    assert len(cams) == 2 and all(len(c) == 5 for c in cams) and cmd == "go to the door"
    assert core.predictions == 1 and len(core.latency) == 1
    assert ("info", "inputs usable: publishing model trajectories") in log.lines


def test_stop_reasons_in_order():
    core, _ = _core()
    model = FakeModel()
    r = core.tick(T0, model)
    assert r.status == Status.STOP_STALE_CAMERA and "no ego image" in r.reason
    assert np.array_equal(r.trajectory, np.zeros((16, 3))) and r.stamp_ns == T0
    _feed(core, T0)
    r = core.tick(T0 + 10 * MS, model)
    assert r.status == Status.STOP_NO_COMMAND and "no command" in r.reason
    core.on_command("   ")
    assert core.tick(T0 + 10 * MS, model).status == Status.STOP_NO_COMMAND
    core.on_command("go")
    assert core.tick(T0 + 10 * MS, model).ok
    r = core.tick(T0 + 600 * MS, model)  # max_age 0.5
    assert r.status == Status.STOP_STALE_CAMERA and "ego image is 0.60 s old" in r.reason
    r = core.tick(T0 - 2 * NS, model)  # camera ahead of the node clock
    assert r.status == Status.STOP_STALE_CAMERA
    assert not model.calls[1:]  # only the one OK tick ran the model


def test_one_frozen_camera_stops_the_robot():
    core, _ = _core()
    core.on_command("go")
    _feed(core, T0, cams=("ego",))
    _feed(core, T0 - 700 * MS, cams=("top",))
    r = core.tick(T0 + 10 * MS, FakeModel())
    assert r.status == Status.STOP_STALE_CAMERA and r.reason.startswith("top image is")


def test_incomplete_history_and_camera_skew():
    core, _ = _core()
    core.on_command("go")
    _feed(core, T0, duration_ns=300 * MS)  # 0.3 s: history needs 0.8 s
    r = core.tick(T0, FakeModel())
    assert r.status == Status.STOP_INCOMPLETE_HISTORY and "of 5 history frames" in r.reason
    core2, _ = _core(max_skew=0.05)
    core2.on_command("go")
    _feed(core2, T0, period_ns=200 * MS, offset={"top": 80 * MS})
    r = core2.tick(T0 + 100 * MS, FakeModel())
    assert r.status == Status.STOP_CAMERA_SKEW and "0.080 s apart" in r.reason


def test_bad_image_stops_until_a_good_one_arrives():
    core, log = _core()
    core.on_command("go")
    _feed(core, T0)
    assert not core.on_image("ego", T0 + 10 * MS, "rgb8", 6, 8, 24, bytes(10))
    r = core.tick(T0 + 20 * MS, FakeModel())
    assert r.status == Status.STOP_BAD_INPUT and "ego image rejected" in r.reason
    assert core.rejected["bad_size"] == 1
    assert not core.on_image("ego", T0 + 15 * MS, "yuv422", 6, 8, 16, bytes(96))
    assert core.rejected["bad_encoding"] == 1
    _feed(core, T0 + 200 * MS, duration_ns=150 * MS)
    assert core.tick(T0 + 210 * MS, FakeModel()).ok


def test_zero_stamp_and_out_of_order_frames_are_rejected():
    core, _ = _core()
    img = bytes(6 * 8 * 3)
    assert not core.on_image("ego", 0, "rgb8", 6, 8, 24, img)
    assert core.rejected["zero_stamp"] == 1
    assert core.on_image("ego", T0, "rgb8", 6, 8, 24, img)
    assert not core.on_image("ego", T0, "rgb8", 6, 8, 24, img)  # repeated stamp
    assert not core.on_image("ego", T0 - 100 * MS, "rgb8", 6, 8, 24, img)
    assert core.rejected["out_of_order"] == 2 and len(core._histories["ego"]) == 1


def test_long_command_is_rejected_and_the_robot_stops_until_a_valid_one():
    core, _ = _core(max_command_bytes=100)
    _feed(core, T0)
    core.on_command("go")
    assert not core.on_command("x" * 101)
    r = core.tick(T0, FakeModel())
    assert r.status == Status.STOP_BAD_INPUT and "max_command_bytes=100" in r.reason
    assert not core.on_command("é" * 51)  # 102 bytes in UTF-8
    assert core.on_command("turn left")
    assert core.tick(T0, FakeModel()).ok


def test_resolution_change_restarts_that_cameras_history():
    core, log = _core()
    core.on_command("go")
    _feed(core, T0)
    _feed(core, T0 + 200 * MS, duration_ns=100 * MS, cams=("ego",), shape=(12, 16))
    assert core.events["resolution_change"] == 1 and len(core._histories["ego"]) == 3
    assert core.tick(T0 + 200 * MS, FakeModel()).status == Status.STOP_INCOMPLETE_HISTORY
    assert any("resolution changed from 8x6 to 16x12" in m for _, m in log.lines)


def test_stamps_jumping_back_clear_the_history_and_restart():
    restarts = []
    core = NodeCore(NodeConfig(), ModelSpec(), log := ListLog(), on_restart=lambda: restarts.append(core.ticks))
    core.on_command("go")
    _feed(core, T0)
    assert core.tick(T0, FakeModel()).ok
    assert restarts == []
    back = T0 - 30 * NS  # the bag loops
    _feed(core, back, duration_ns=0)
    assert core.events["time_jump"] == 1
    assert len(core._histories["ego"]) == 1 and len(core._histories["top"]) == 1
    assert any("jumped back by 30.00 s" in m for _, m in log.lines)
    _feed(core, back + NS, duration_ns=NS)
    r = core.tick(back + NS, FakeModel())  # the node clock jumped back too: cleared once more
    assert r.status == Status.STOP_STALE_CAMERA
    assert restarts == [2]  # the model API restarted (its noise sequence) once, in the tick's thread
    _feed(core, back + 2 * NS, duration_ns=NS)
    r = core.tick(back + 2 * NS, FakeModel())
    assert r.ok and r.stamp_ns == back + 2 * NS and restarts == [2]


def test_a_new_wording_is_logged_once_with_the_trained_command_it_is_read_as():
    asked = []

    def explain(command):
        asked.append(command)
        return {"freeze right there": ("pause", 0.93, 0.45), "stop": ("stop", 1.0, 1.0)}.get(command, ("halt", 0.5, 0.2))

    core = NodeCore(NodeConfig(), ModelSpec(), log := ListLog(), explain_command=explain)
    core.on_command("freeze right there")
    _feed(core, T0)
    for k in range(3):
        assert core.tick(T0 + k * MS, FakeModel()).ok
    assert asked == ["freeze right there"]  # once per command, from the tick
    assert ("info", "command 'freeze right there' is read as 'pause' (weight 0.93, similarity 0.45)") in log.lines
    assert dict(core.diagnostics(T0 + 3 * MS)[2])["command_read_as"] == "pause"
    core.on_command("stop")  # a trained command reads as itself: nothing to say
    assert core.tick(T0 + 4 * MS, FakeModel()).ok and not any("'stop' is read" in m for _, m in log.lines)
    core.on_command("sing a song")
    assert core.tick(T0 + 5 * MS, FakeModel()).ok
    assert any("'sing a song' is read as 'halt'" in m and "unlike any trained command" in m for _, m in log.lines)
    # a colour the model was not trained on, untrained_colour: warn: a warning instead, with the colours it knows
    untrained = lambda c: ((["orange"] if "orange" in c else []), ("red", "green", "blue"))  # noqa: E731
    core = NodeCore(NodeConfig(untrained_colour="warn"), ModelSpec(), log := ListLog(),
                    explain_command=lambda c: ("go to the green cone", 0.9, 0.9), untrained_colours=untrained)
    core.on_command("go to the orange cone")
    _feed(core, T0)
    assert core.tick(T0, FakeModel()).ok
    assert [line for line in log.lines if line[0] == "warning"] == [("warning", "command 'go to the orange cone' names a colour the model was not trained on "
                                     "('orange'; it knows red, green, blue): it is read as 'go to the green cone', "
                                     "which may not be what was meant")]
    # a model without a phrasebook: asked once, then never again
    core = NodeCore(NodeConfig(), ModelSpec(), ListLog(), explain_command=lambda c: asked.append(c))
    core.on_command("go")
    _feed(core, T0)
    core.tick(T0, FakeModel())
    core.on_command("go on")
    core.tick(T0 + MS, FakeModel())
    assert asked[-1:] == ["go"] and "command_read_as" not in dict(core.diagnostics(T0 + 2 * MS)[2])


def test_a_command_naming_a_colour_the_model_cannot_ground_is_refused_by_default():
    untrained = lambda c: ((["orange"] if "orange" in c else []), ("red", "green", "blue"))  # noqa: E731
    core = NodeCore(NodeConfig(), ModelSpec(), log := ListLog(), untrained_colours=untrained)
    assert not core.on_command("go to the orange cone")
    _feed(core, T0)
    res = core.tick(T0, FakeModel())
    assert res.status == Status.STOP_BAD_INPUT and "'orange'" in res.reason and "it knows red, green, blue" in res.reason
    assert core.rejected["untrained_colour"] == 1 and any("untrained_colour" in m for _, m in log.lines)
    assert core.on_command("go to the red cone") and core.tick(T0 + MS, FakeModel()).ok  # a good command drives again
    with pytest.raises(ConfigError, match="untrained_colour"):
        NodeConfig(untrained_colour="ignore")


def test_history_cleared_while_the_model_runs_discards_its_output():
    core, _ = _core()
    core.on_command("go")
    _feed(core, T0)

    def predict(cams, command, odometry=None):
        _feed(core, T0 - 30 * NS, duration_ns=0)  # a bag loop arrives meanwhile
        return FakePrediction(np.zeros((16, 3), np.float32))

    assert core.tick(T0, predict) is None


@pytest.mark.parametrize("model, status", [
    (FakeModel(traj=np.full((16, 3), np.nan, np.float32)), Status.STOP_NONFINITE_OUTPUT),
    (FakeModel(traj=np.full((16, 3), np.inf, np.float32)), Status.STOP_NONFINITE_OUTPUT),
    (FakeModel(traj=np.zeros((8, 3), np.float32)), Status.STOP_MODEL_ERROR),
    (FakeModel(exc=ValueError("instruction: the command is empty")), Status.STOP_BAD_INPUT),
    (FakeModel(exc=RuntimeError("CUDA out of memory")), Status.STOP_MODEL_ERROR),
])
def test_model_failures_never_publish_its_output(model, status):
    core, _ = _core()
    core.on_command("go")
    _feed(core, T0)
    r = core.tick(T0, model)
    assert r.status == status and r.reason
    assert np.array_equal(r.trajectory, np.zeros((16, 3))) and np.isfinite(r.trajectory).all()


def test_silent_mode_publishes_nothing_on_stop():
    core, _ = _core(on_stop="silent")
    assert core.tick(T0, FakeModel()) is None
    core.on_command("go")
    _feed(core, T0)
    assert core.tick(T0, FakeModel()).ok


def test_status_logged_once_per_change_and_rejections_throttled():
    core, log = _core()
    for i in range(20):
        core.tick(T0 + i * MS, FakeModel())
    stops = [m for lvl, m in log.lines if m.startswith("stop (")]
    assert len(stops) == 1
    for i in range(1000):
        core.on_image("ego", T0 + i, "rgb8", 6, 8, 24, b"")
    assert core.rejected["bad_size"] == 1000
    assert len([m for _, m in log.lines if m.startswith("rejected")]) == 1


def test_diagnostics_report_latency_rate_drops_ages_and_rejections():
    core, _ = _core()
    core.on_command("go")
    _feed(core, T0)
    core.on_image("top", T0 + 1, "weird", 1, 1, 1, b"x")
    core.tick(T0, FakeModel())
    core.on_image("top", T0 + 2, "rgb8", 6, 8, 24, bytes(144))
    core.tick(T0, FakeModel())
    core.count_dropped_tick()
    level, message, values = core.diagnostics(T0 + 250 * MS)
    d = dict(values)
    assert level == 0 and message == "OK"
    for key in ("latency_p50_ms", "latency_p95_ms", "rate_hz_achieved", "rate_hz_target", "dropped_ticks",
                "age_ego_s", "age_top_s", "status", "status_reason", "rejected_bad_encoding"):
        assert key in d, key
    assert d["dropped_ticks"] == "1" and d["rejected_bad_encoding"] == "1" and d["age_ego_s"] == "0.250"
    assert float(d["latency_p50_ms"]) >= 0


def test_diagnostics_count_frames_received_and_lost_in_transport_and_the_input_delay():
    core, log = _core()
    img = np.full((6, 8, 3), 7, np.uint8).tobytes()
    for i in range(10):  # frames taken 20 ms (ego) and 120 ms (top) after their stamp
        t = T0 + i * 33 * MS
        assert core.on_image("ego", t, "rgb8", 6, 8, 24, img, received_ns=t + 20 * MS)
        assert core.on_compressed_image("top", t, "png", _encoded(np.zeros((6, 8, 3), np.uint8), "PNG"),
                                        received_ns=t + 120 * MS)
    core.on_image("top", T0 + NS, "weird", 1, 1, 1, b"x")  # rejected, but it was received
    core.on_frames_lost("ego", 3)
    core.on_frames_lost("ego", 2)
    d = dict(core.diagnostics(T0 + NS)[2])
    assert (d["frames_received_ego"], d["frames_received_top"]) == ("10", "11")
    assert (d["frames_lost_ego"], d["frames_lost_top"]) == ("5", "0")
    assert (d["input_delay_p95_ms_ego"], d["input_delay_p95_ms_top"]) == ("20.0", "120.0")
    lost = [m for level, m in log.lines if "lost in transport" in m]
    assert len(lost) == 1 and lost[0].startswith("ego: 3 frames lost") and "docs/node.md" in lost[0]  # throttled


# ---------------------------------------------------------------------------------------------
# Stats, geometry, worker
# ---------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_latency_window_rate_meter_and_throttle():
    lw = LatencyWindow(10)
    assert math.isnan(lw.percentile(50))
    for v in range(1, 21):
        lw.add(v)
    assert lw.percentile(50) == pytest.approx(15.5) and len(lw) == 10
    clock = FakeClock()
    rm = RateMeter(window=10.0, clock=clock)
    for _ in range(11):
        rm.mark()
        clock.t += 0.5
    assert rm.rate() == pytest.approx(2.0)
    clock.t += 20
    assert rm.rate() == 0.0
    th = Throttle(5.0, clock=clock)
    assert th("a") == 0 and th("a") is None and th("a") is None and th("b") == 0
    clock.t += 5
    assert th("a") == 2


def test_geometry():
    q = yaw_to_quaternion(math.pi / 2)
    assert q == pytest.approx((0, 0, math.sqrt(0.5), math.sqrt(0.5)))
    assert yaw_to_quaternion(0.0) == (0.0, 0.0, 0.0, 1.0)
    stamps = waypoint_stamps_ns(5 * NS + 999_999_999, 0.2, 16)
    assert stamps[0] == 5 * NS + 999_999_999 + 200 * MS and stamps[-1] - stamps[0] == 15 * 200 * MS
    assert split_stamp(5 * NS + 7) == (5, 7)


def test_worker_drops_ticks_while_busy():
    release = threading.Event()
    runs = []

    def run():
        runs.append(1)
        release.wait(5)

    w = TickWorker(run).start()
    try:
        assert w.request()
        time.sleep(0.05)
        assert w.busy and not w.request() and not w.request()
        release.set()
        for _ in range(100):
            if not w.busy:
                break
            time.sleep(0.01)
        assert w.request()
        for _ in range(100):
            if len(runs) == 2:
                break
            time.sleep(0.01)
    finally:
        release.set()
        w.stop()
    assert len(runs) == 2


def test_worker_wait_idle_returns_when_the_running_tick_ends():
    release = threading.Event()
    w = TickWorker(lambda: release.wait(5)).start()
    try:
        assert w.wait_idle(0)  # nothing runs yet
        assert w.request()
        assert not w.wait_idle(0.1)  # the tick waits for release
        threading.Timer(0.1, release.set).start()
        assert w.wait_idle(5) and not w.busy
    finally:
        release.set()
        w.stop()


def test_clear_inputs_forgets_frames_and_odometry_but_keeps_the_command():
    core, log = _core()
    core.on_command("go")
    _feed(core, T0)
    core.on_odometry(T0, 0.3, 0.0)
    assert core.tick(T0, FakeModel()).ok
    core.clear_inputs()  # vla_node deactivated
    r = core.tick(T0 + 10 * MS, FakeModel())
    assert r.status == Status.STOP_STALE_CAMERA and "no ego image yet" in r.reason
    assert core.events["time_jump"] == 0 and not any("restarting" in m for _, m in log.lines)
    _feed(core, T0 + 2 * NS)  # activated again: fresh frames, the command of before
    model = FakeModel()
    assert core.tick(T0 + 2 * NS, model).ok and model.calls[-1][1] == "go" and model.odometry == [None]


def test_worker_survives_a_failing_tick():
    errors = []
    w = TickWorker(lambda: 1 / 0, on_error=errors.append).start()
    try:
        assert w.request()
        for _ in range(100):
            if errors and not w.busy:
                break
            time.sleep(0.01)
        assert isinstance(errors[0], ZeroDivisionError) and w.request()
    finally:
        w.stop()


def test_decode_worker_handles_the_newest_frame_and_counts_the_ones_it_dropped():
    started, release, handled = threading.Event(), threading.Event(), []

    def handle(item):
        handled.append(item)
        started.set()
        release.wait(5)

    w = DecodeWorker(handle).start()
    try:
        assert not w.put(1) and started.wait(5)  # 1 is being handled
        assert not w.put(2)  # waits in the mailbox
        assert w.put(3) and w.put(4)  # each replaced an undecoded frame: 2, then 3 dropped
        assert w.superseded == 2 and not w.wait_idle(0.05)
        release.set()
        assert w.wait_idle(5)
    finally:
        release.set()
        w.stop()
    assert handled == [1, 4] and w.handled == 2


def test_decode_worker_stores_like_the_callback_did_and_survives_a_failure():
    """vla_node's split: the callback notes the frame (count, input delay), the decode thread stores it; a
    malformed frame is rejected with the same reason and text as on_image, and a bug is reported, not fatal."""
    core, _ = _core()
    core.on_command("go")
    errors = []

    def decode(args):
        if args is None:
            raise RuntimeError("a bug")
        core.store_image(*args)

    w = DecodeWorker(decode, on_error=errors.append).start()
    try:
        img = np.full((6, 8, 3), 7, np.uint8).tobytes()
        for i in range(21):  # 1 s of frames at 20 Hz, handed over one at a time as they arrive
            t = T0 - NS + i * 50 * MS
            for cam in ("ego", "top"):
                core.note_received(cam, t, received_ns=t + 4 * MS)
                assert not w.put((cam, t, "rgb8", 6, 8, 24, img))
                assert w.wait_idle(5)
        assert core.tick(T0 + 10 * MS, FakeModel()).ok
        core.note_received("ego", T0 + 20 * MS, received_ns=T0 + 24 * MS)
        w.put(("ego", T0 + 20 * MS, "rgb8", 6, 8, 24, bytes(10)))  # malformed
        assert w.wait_idle(5) and core.rejected["bad_size"] == 1
        r = core.tick(T0 + 30 * MS, FakeModel())
        assert r.status == Status.STOP_BAD_INPUT
        assert r.reason == "ego image rejected: data has 10 bytes but step * height = 24 * 6 = 144 for a 8x6 rgb8 image"
        w.put(None)
        assert w.wait_idle(5) and isinstance(errors[0], RuntimeError) and w.alive
        assert not w.put(("ego", T0 + 40 * MS, "rgb8", 6, 8, 24, img)) and w.wait_idle(5)
        assert core.tick(T0 + 50 * MS, FakeModel()).ok  # the good frame after the bad one
    finally:
        w.stop()
    core.on_frames_superseded("top", 2)
    d = dict(core.diagnostics(T0 + 50 * MS)[2])
    assert (d["frames_received_ego"], d["frames_received_top"]) == ("22", "21")  # counted once, by note_received
    assert (d["input_delay_p95_ms_ego"], d["frames_superseded_ego"], d["frames_superseded_top"]) == ("4.0", "0", "2")


def test_decode_worker_stop_finishes_the_running_frame_drops_the_waiting_one_and_is_final():
    started, release, handled = threading.Event(), threading.Event(), []

    def handle(item):
        started.set()
        release.wait(5)
        handled.append(item)

    w = DecodeWorker(handle, name="vla-decode-test").start()
    assert w.alive and w.put("running") is False and started.wait(5)
    w.put("waiting")
    threading.Timer(0.1, release.set).start()
    w.stop()  # returns once the running frame is stored
    assert handled == ["running"] and not w.alive
    assert not w.put("late") and w.wait_idle(0)  # stopped: dropped, nothing to wait for
    w.stop()  # idempotent
    assert handled == ["running"]
    assert not any(t.name == "vla-decode-test" for t in threading.enumerate())


# ---------------------------------------------------------------------------------------------
# The real model API behind the core (tiny checkpoint, no ROS)
# ---------------------------------------------------------------------------------------------


def test_core_with_the_real_inference_api(tiny_checkpoint):
    from vla_ros.runtime.model import load_model, make_predictor

    cfg = NodeConfig(checkpoint=str(tiny_checkpoint), num_inference_steps=2, warmup=False)
    api, spec = load_model(cfg)
    assert spec == ModelSpec(("ego", "top"), 5, 16, 0.2, 64) and api.num_inference_steps == 2
    core = NodeCore(cfg, spec, logging.getLogger("test"))
    core.on_command("go to the red door")
    rng = np.random.default_rng(0)
    for i in range(20):
        t = T0 + i * 50 * MS
        for cam, (h, w) in (("ego", (48, 64)), ("top", (40, 40))):  # cameras may differ in size
            core.on_image(cam, t, "bgr8", h, w, w * 3, rng.integers(0, 255, h * w * 3, dtype=np.uint8).tobytes())
    r = core.tick(T0 + 19 * 50 * MS, make_predictor(api))
    assert r.ok, r.reason
    assert r.trajectory.dtype == np.float32 and r.trajectory.shape == (16, 3) and np.isfinite(r.trajectory).all()
    assert r.latency_s > 0 and "diffusion" in r.timing
    with pytest.raises(ConfigError, match="num_inference_steps"):
        load_model(NodeConfig(checkpoint=str(tiny_checkpoint), num_inference_steps=501, warmup=False))


def test_a_looping_bag_replays_the_same_varied_noise_trajectories(tiny_checkpoint):
    """noise=varied draws a new x_T every prediction; when time jumps back (a bag loops) the node
    restarts the API's noise sequence, so the second pass publishes what the first did."""
    from vla_ros.runtime.model import load_model, make_predictor

    cfg = NodeConfig(checkpoint=str(tiny_checkpoint), num_inference_steps=2, warmup=False, noise="varied")
    api, spec = load_model(cfg)
    core = NodeCore(cfg, spec, logging.getLogger("test"), on_restart=api.reset)
    core.on_command("go to the red door")
    predict = make_predictor(api)

    def one_pass():
        rng = np.random.default_rng(0)  # the same frames each pass
        out = []
        for i in range(30):
            t = T0 + i * 50 * MS
            r = core.tick(t, predict)  # the bag's /clock jumps back first (or the frames do: the same)
            if r.ok:
                out.append(r.trajectory)
            for cam in ("ego", "top"):
                core.on_image(cam, t, "rgb8", 32, 32, 96, rng.integers(0, 255, 32 * 32 * 3, dtype=np.uint8).tobytes())
        return np.stack(out)

    first, second = one_pass(), one_pass()
    assert core.events["time_jump"] >= 1 and len(first) >= 5
    assert not np.allclose(first[0], first[1])  # varied: a new sample each prediction ...
    np.testing.assert_allclose(first, second, atol=1e-6)  # ... and the same sequence again after the loop


def test_noise_parameter_choices_are_the_api_s():
    from vla_ros.config import NOISE_MODES

    assert typing.get_args(typing.get_type_hints(NodeConfig)["noise"]) == NOISE_MODES


# -- odometry ---------------------------------------------------------------------------------

def test_odometry_closest_to_the_newest_frame_reaches_the_model():
    core, _ = _core()
    core.on_command("go")
    _feed(core, T0)
    for k, v in enumerate([0.1, 0.2, 0.3, 0.4]):  # 10 Hz, the last one 30 ms after the newest frame
        assert core.on_odometry(T0 - 270 * MS + k * 100 * MS, v, -0.1 * v)
    model = FakeModel()
    assert core.tick(T0 + 10 * MS, model).ok
    assert model.odometry == [(0.4, pytest.approx(-0.04))]
    values = dict(core.diagnostics(T0 + 10 * MS)[2])
    assert values["odometry"] == "ok" and float(values["age_odom_s"]) == pytest.approx(-0.02)


def test_missing_or_stale_odometry_is_unknown_not_a_stop():
    core, _ = _core(odometry_tolerance=0.2)
    core.on_command("go")
    _feed(core, T0)
    model = FakeModel()
    assert core.tick(T0, model).ok and model.odometry == [None]  # none received yet
    assert dict(core.diagnostics(T0)[2])["odometry"] == "none"
    core.on_odometry(T0 - 500 * MS, 0.5, 0.0)  # 0.5 s before the newest frame: too old to describe it
    assert core.tick(T0, model).ok and model.odometry[-1] is None
    assert dict(core.diagnostics(T0)[2])["odometry"] == "stale"
    assert core.events["odometry_unmatched"] == 1


def test_bad_odometry_is_rejected_with_a_reason_and_use_odometry_false_ignores_it():
    core, _ = _core()
    assert not core.on_odometry(T0, float("nan"), 0.0)
    assert not core.on_odometry(T0, 300.0, 0.0)  # mm/s sent as m/s, say
    assert not core.on_odometry(0, 0.3, 0.0)
    assert core.rejected["bad_odometry"] == 2 and core.rejected["zero_stamp"] == 1
    off, _ = _core(use_odometry=False)
    off.on_command("go")
    _feed(off, T0)
    assert not off.on_odometry(T0, 0.3, 0.0)
    model = FakeModel()
    assert off.tick(T0, model).ok and model.odometry == [None]
    assert dict(off.diagnostics(T0)[2])["odometry"] == "off"


def test_odometry_is_forgotten_when_time_jumps_back():
    core, _ = _core()
    core.on_command("go")
    _feed(core, T0)
    core.on_odometry(T0, 0.5, 0.0)
    back = T0 - 30 * NS  # a bag loops: its frames and odometry start over
    _feed(core, back + 2 * NS, duration_ns=NS)  # the frames jumping back clear the odometry too ...
    assert core.events["time_jump"] == 1
    core.on_odometry(back + 2 * NS, 0.2, 0.0)  # ... and the loop's own odometry follows
    model = FakeModel()
    assert core.tick(back + 2 * NS, model).ok
    assert model.odometry == [(0.2, 0.0)]


def test_output_frame_odom_places_the_trajectory_with_the_odometry_pose_at_the_stamp():
    core, log = _core(output_frame="odom", use_odometry=False)
    core.on_command("go")
    _feed(core, T0)
    model = FakeModel()
    r = core.tick(T0, model)  # no odometry: no pose to place the trajectory with
    assert r.status == Status.STOP_NO_ODOMETRY and "within 0.2 s" in r.reason and not model.calls
    assert any("STOP_NO_ODOMETRY" in m for _, m in log.lines)
    # poses 100 ms either side of the newest frame (T0): the one at T0 is interpolated
    assert core.on_odometry(T0 - 100 * MS, 9.0, 0.0, (1.0, 2.0, math.pi / 2), "odom_test")
    assert core.on_odometry(T0 + 100 * MS, 9.0, 0.0, (1.0, 2.2, math.pi / 2), "odom_test")
    r = core.tick(T0 + 100 * MS, model)
    assert r.ok and r.stamp_ns == T0 and r.frame_id == "odom_test" and model.odometry == [None]
    expected = np.stack([np.full(16, 1.0), 2.1 + model.traj[:, 0], np.full(16, math.pi / 2)], 1)
    np.testing.assert_allclose(r.trajectory, expected, atol=1e-6)
    # odometry far from the stamp (a gap around it) is no pose either
    far, _ = _core(output_frame="odom")
    far.on_command("go")
    _feed(far, T0)
    far.on_odometry(T0 - 600 * MS, 0.0, 0.0, (0.0, 0.0, 0.0), "odom")
    far.on_odometry(T0 + 600 * MS, 0.0, 0.0, (1.0, 0.0, 0.0), "odom")
    assert far.tick(T0 + 100 * MS, FakeModel()).status == Status.STOP_NO_ODOMETRY
    base, _ = _core()  # the default: robot frame, frame_id left to the node
    base.on_command("go")
    _feed(base, T0)
    r = base.tick(T0, FakeModel())
    assert r.ok and r.frame_id == "" and np.allclose(r.trajectory, FakeModel().traj)


# -- compressed input, downscale on arrival ----------------------------------------------------

def _encoded(img: np.ndarray, fmt: str) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, fmt)
    return buf.getvalue()


def test_compressed_frames_decode_to_rgb_and_bad_ones_are_rejected_with_a_reason():
    from vla_ros.runtime.images import decode_compressed

    img = np.random.default_rng(1).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    png, size = decode_compressed("png", _encoded(img, "PNG"))
    assert np.array_equal(png, img) and size == (30, 40)  # lossless
    ramp = np.stack([*np.meshgrid(np.linspace(0, 255, 40), np.linspace(0, 255, 30)), np.full((30, 40), 60.0)], 2)
    smooth = ramp.astype(np.uint8)  # red grows to the right, green downwards
    jpeg, size = decode_compressed("rgb8; jpeg compressed bgr8", _encoded(smooth, "JPEG"))
    assert jpeg.shape == (30, 40, 3) and size == (30, 40)
    assert np.abs(jpeg.astype(int) - smooth).mean() < 5  # lossy, same picture, RGB
    for data, reason in ((b"", "empty_image"), (b"not an image at all", "bad_encoding")):
        with pytest.raises(ImageError) as err:
            decode_compressed("jpeg", data)
        assert err.value.reason == reason


def test_jpeg_for_a_small_model_decodes_at_a_reduced_scale_as_the_full_decode_downscaled():
    from vla_ros.ros.soak import soak_frames
    from vla_ros.runtime.images import decode_compressed, downscale

    for (w, h), reduced in (((640, 480), (240, 320)), ((1280, 720), (180, 320)), ((100, 90), (90, 100))):
        data = soak_frames(w, h, count=2, jpeg=True)[1]
        small, size = decode_compressed("jpeg", data, min_size=128)
        assert size == (h, w) and small.shape == (*reduced, 3)  # libjpeg's 1/2, 1/4 scales; never below 128
        full, _ = decode_compressed("jpeg", data)
        assert full.shape == (h, w, 3)
        diff = np.abs(downscale(small, 128).astype(int) - downscale(full, 128).astype(int))
        assert diff.mean() < 1.0 and diff.max() <= 16  # the picture the model sees, within a grey level


def test_frames_are_downscaled_to_the_model_size_on_arrival_and_a_resolution_change_still_restarts():
    core = NodeCore(NodeConfig(), ModelSpec(image_size=32), ListLog())
    core.on_command("go")
    big = np.full((480, 640, 3), 200, np.uint8)
    for i in range(10):
        t = T0 - NS + i * 100 * MS
        assert core.on_image("ego", t, "rgb8", 480, 640, 640 * 3, big.tobytes())
        assert core.on_compressed_image("top", t, "png", _encoded(big, "PNG"))
    model = FakeModel()
    assert core.tick(T0, model).ok
    cams = model.calls[-1][0]
    assert all(f.shape == (32, 32, 3) and int(f[0, 0, 0]) == 200 for frames in cams for f in frames)
    small = np.full((240, 320, 3), 10, np.uint8)  # the same 32x32 after the downscale, but a new camera mode
    assert core.on_image("ego", T0 + 100 * MS, "rgb8", 240, 320, 320 * 3, small.tobytes())
    assert core.events["resolution_change"] == 1 and len(core._histories["ego"]) == 1
    jpeg = _encoded(np.full((720, 1280, 3), 90, np.uint8), "JPEG")  # decoded at 1/4 scale: still a change
    assert core.on_compressed_image("top", T0 + 50 * MS, "jpeg", jpeg)
    assert core.events["resolution_change"] == 2 and core._source_shapes["top"] == (720, 1280)
    assert not core.on_compressed_image("top", T0 + 100 * MS, "jpeg", b"\xff\xd8 broken")
    assert core.rejected["bad_encoding"] == 1
    r = core.tick(T0 + 100 * MS, model)
    assert r.status == Status.STOP_BAD_INPUT and "top image rejected" in r.reason
