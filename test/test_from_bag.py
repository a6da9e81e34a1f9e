"""``vla data from-bag``: a robot's bag (written here with ``rosbags`` alone, with its own topic
names, rates, resolutions and encodings) -> a dataset whose labels equal known trajectories."""

from __future__ import annotations

import io
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from vla_ros.bag.io import BagError
from vla_ros.data.bag_timeline import NS
from vla_ros.data.from_bag import FromBagConfig, convert_bags
from vla_ros.data.io import list_episodes, load_episode, read_dataset_info

T0 = 1_700_000_000 * NS  # a robot's wall-clock stamps
PHASE2 = 7.0  # s: the command changes; the robot stops turning and drives straight
V1, W1, V2 = 0.5, 0.5, 0.8  # arc (radius 1 m, yaw crosses +-pi at 6.28 s), then straight
GAP = (14.0, 14.6)  # s: no odometry in this interval
LATENCY = 0.03  # s: messages are logged this long after their header stamp


def pose_at(t: float) -> np.ndarray:
    """Analytic pose [x, y, yaw (wrapped)] and twist [v, omega] of the robot at t seconds."""
    if t <= PHASE2:
        r = V1 / W1
        return np.array([r * math.sin(W1 * t), r * (1 - math.cos(W1 * t)), math.remainder(W1 * t, 2 * math.pi),
                         V1, W1])
    x, y, yaw = pose_at(PHASE2)[:3]
    d = V2 * (t - PHASE2)
    return np.array([x + d * math.cos(yaw), y + d * math.sin(yaw), yaw, V2, 0.0])


def analytic_label(t: float, horizon: int = 16, dt: float = 0.2) -> np.ndarray:
    """(16, 3) the closed-form poses at t + (k + 1) dt in the robot frame at t (written out here,
    independently of the converter's interpolation and of vla_ros' frame helpers)."""
    x0, y0, yaw0 = pose_at(t)[:3]
    c, s = math.cos(yaw0), math.sin(yaw0)
    out = []
    for k in range(1, horizon + 1):
        x, y, yaw = pose_at(t + k * dt)[:3]
        out.append([c * (x - x0) + s * (y - y0), -s * (x - x0) + c * (y - y0), math.remainder(yaw - yaw0, 2 * math.pi)])
    return np.array(out)


def _quat(yaw: float) -> tuple[float, float, float, float]:
    return 0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)


@dataclass
class Cam:
    topic: str
    rate: float
    size: tuple[int, int]  # (height, width)
    encoding: str  # rgb8 | bgr8 | mono8 | jpeg | png


def frame_pixels(index: int, size: tuple[int, int]) -> np.ndarray:
    """A frame whose centre square holds its index as grey level; outside it (cropped away), red."""
    h, w = size
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 255
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img[top:top + side, left:left + side] = (index * 7) % 200 + 20
    return img


def _image_msg(store, cam: Cam, index: int, stamp: int):
    t = store.types
    sec, nsec = divmod(stamp, NS)
    header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec),
                                      frame_id="cam")
    rgb = frame_pixels(index, cam.size)
    if cam.encoding in ("jpeg", "png"):
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, cam.encoding.upper(), quality=95) if cam.encoding == "jpeg" else \
            Image.fromarray(rgb).save(buf, "PNG")
        return "sensor_msgs/msg/CompressedImage", t["sensor_msgs/msg/CompressedImage"](
            header=header, format=cam.encoding, data=np.frombuffer(buf.getvalue(), np.uint8))
    pix = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "mono8": rgb[..., 1:2]}[cam.encoding]
    h, w = cam.size
    return "sensor_msgs/msg/Image", t["sensor_msgs/msg/Image"](
        header=header, height=h, width=w, encoding=cam.encoding, is_bigendian=0, step=w * pix.shape[2],
        data=np.ascontiguousarray(pix).reshape(-1))


def _odom_msg(store, t_s: float, stamp: int):
    t = store.types
    x, y, yaw, v, w = pose_at(t_s)
    sec, nsec = divmod(stamp, NS)
    qx, qy, qz, qw = _quat(yaw)
    cov = np.zeros(36)
    return t["nav_msgs/msg/Odometry"](
        header=t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec),
                                        frame_id="odom"),
        child_frame_id="base_link",
        pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=t["geometry_msgs/msg/Pose"](
            position=t["geometry_msgs/msg/Point"](x=x, y=y, z=0.0),
            orientation=t["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw)), covariance=cov),
        twist=t["geometry_msgs/msg/TwistWithCovariance"](twist=t["geometry_msgs/msg/Twist"](
            linear=t["geometry_msgs/msg/Vector3"](x=v, y=0.0, z=0.0),
            angular=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=w)), covariance=cov))


def _tf_msg(store, t_s: float, stamp: int):
    t = store.types
    x, y, yaw = pose_at(t_s)[:3]
    sec, nsec = divmod(stamp, NS)
    qx, qy, qz, qw = _quat(yaw)
    tr = t["geometry_msgs/msg/TransformStamped"](
        header=t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec),
                                        frame_id="odom"),
        child_frame_id="base_link",
        transform=t["geometry_msgs/msg/Transform"](
            translation=t["geometry_msgs/msg/Vector3"](x=x, y=y, z=0.0),
            rotation=t["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw)))
    return t["tf2_msgs/msg/TFMessage"](transforms=[tr])


EGO = Cam("/robot/front/image_raw/compressed", 15.0, (120, 160), "jpeg")
TOP = Cam("/robot/mast/image_raw", 30.0, (96, 128), "bgr8")
COMMANDS = ((0.05, "circle the tree"), (PHASE2, "drive to the ruby one"))  # the second: a known phrasing


def write_robot_bag(path: Path, cams=(EGO, TOP), duration: float = 22.0, storage: str = "sqlite3",
                    odom: str | None = "/robot/odometry", tf: bool = False, commands=COMMANDS,
                    seed: int = 0, odom_gap=GAP) -> dict[str, list[int]]:
    """Write a robot's bag with ``rosbags`` only (its own type store and writer). Returns each
    camera's frame stamps."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    rng = np.random.default_rng(seed)
    rows = []  # (log_ns, topic, type, msg)
    stamps: dict[str, list[int]] = {}
    for cam in cams:
        n = int(duration * cam.rate)
        ts = T0 + np.round((np.arange(n) / cam.rate + rng.normal(0, 0.003, n) + 0.01) * NS).astype(np.int64)
        stamps[cam.topic] = sorted(ts.tolist())
        for i, s in enumerate(stamps[cam.topic]):
            rows.append((s + int(LATENCY * NS), cam.topic, *_image_msg(store, cam, i, s)))
    for k in range(int(duration * 50) + 1):  # odometry / tf at 50 Hz
        t_s = k / 50
        if odom_gap and odom_gap[0] <= t_s < odom_gap[1]:
            continue
        stamp = T0 + round(t_s * NS)
        if odom:
            rows.append((stamp + int(LATENCY * NS), odom, "nav_msgs/msg/Odometry", _odom_msg(store, t_s, stamp)))
        if tf:
            rows.append((stamp + int(LATENCY * NS), "/tf", "tf2_msgs/msg/TFMessage", _tf_msg(store, t_s, stamp)))
    for t_s, text in commands:
        rows.append((T0 + round(t_s * NS), "/robot/say", "std_msgs/msg/String", store.types["std_msgs/msg/String"](data=text)))
    rows.sort(key=lambda r: r[0])
    plugin = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}[storage]
    with Writer(path, version=8, storage_plugin=plugin) as w:
        conns = {}
        for log_ns, topic, msgtype, msg in rows:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msgtype, typestore=store)
            w.write(conns[topic], log_ns, store.serialize_cdr(msg, msgtype))
    return stamps


def robot_config(**kw) -> FromBagConfig:
    base = dict(ego=EGO.topic, top=TOP.topic, command="/robot/say", odom="/robot/odometry", image_size=32)
    return FromBagConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def robot_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("robot") / "drive"
    return path, write_robot_bag(path)


@pytest.fixture(scope="module")
def converted(robot_bag, tmp_path_factory):
    out = tmp_path_factory.mktemp("conv") / "data"
    summary = convert_bags([robot_bag[0]], out, robot_config(), progress=False, log=lambda s: None)
    return out, summary


def _check_labels(out: Path, tol_m: float = 2e-3, tol_rad: float = 2e-3) -> int:
    """Every stored label and velocity equals the analytic motion at the episode's stamps."""
    checked = 0
    for f in list_episodes(out):
        arrays, meta = load_episode(f)
        for k, stamp in enumerate(arrays["stamp_ns"]):
            t = (int(stamp) - T0) / NS
            want = analytic_label(t)
            np.testing.assert_allclose(arrays["traj"][k, :, :2], want[:, :2], atol=tol_m)
            dyaw = np.angle(np.exp(1j * (arrays["traj"][k, :, 2] - want[:, 2])))
            assert np.abs(dyaw).max() < tol_rad
            if abs(t - PHASE2) > 0.02:  # (the twist jumps at the change: interpolated over one message)
                np.testing.assert_allclose(arrays["state"][k, 3:], pose_at(t)[3:], atol=1e-3)
            checked += 1
    return checked


def test_a_robot_bag_converts_with_exact_labels_episodes_and_drops(converted):
    out, s = converted
    assert _check_labels(out) == sum(load_episode(f)[1]["num_steps"] for f in list_episodes(out))
    metas = [load_episode(f)[1] for f in list_episodes(out)]
    for f in list_episodes(out):  # no label looks across the command change
        t = (load_episode(f)[0]["stamp_ns"] - T0) / NS
        assert not ((t < PHASE2) & (t + 3.2 > PHASE2)).any()
    # episodes: the first command until its horizon meets the change; the second until the odometry
    # gap; the second again after the gap until the horizon runs out of odometry
    assert [m["command"] for m in metas] == ["circle the tree", "drive to the ruby one", "drive to the ruby one"]
    assert [m["kind"] for m in metas] == [None, "goto_red", "goto_red"]
    assert all(m["format_version"] == 2 and m["source"]["type"] == "rosbag2" for m in metas)
    assert metas[0]["source"]["topics"] == {"ego": EGO.topic, "top": TOP.topic, "command": "/robot/say",
                                            "odometry": "/robot/odometry"}
    # episode 0 ends where its horizon (3.2 s) reaches the change at 7 s
    assert abs((metas[0]["source"]["end_ns"] - T0) / NS - (PHASE2 - 3.2)) < 0.1
    # episode 1: from 7 s to where the horizon meets the gap at 10 s, episode 2 after the gap
    assert (metas[1]["source"]["start_ns"] - T0) / NS >= PHASE2
    assert (metas[2]["source"]["start_ns"] - T0) / NS >= GAP[1]
    d = s["dropped"]
    assert d["command_change"] == pytest.approx(32, abs=1)  # 3.2 s of steps at 10 Hz
    assert d["odometry_gap"] >= 32 + 6  # the horizon touches the gap, and the 0.6 s inside it
    assert d["no_full_history"] == 3 * 8  # the first 8 steps of each episode
    assert d["horizon_past_end"] == pytest.approx(32, abs=1)
    assert s["samples"] + sum(d.values()) == s["grid_steps"]
    assert s["samples"] == sum(m["num_steps"] - 8 for m in metas)
    assert s["speed_m_s"]["max"] == pytest.approx(V2, abs=1e-6)
    assert json.loads((out / "from_bag.json").read_text())["samples"] == s["samples"]


def test_frames_are_the_newest_at_or_before_each_step_centre_cropped(converted, robot_bag):
    out, _ = converted
    stamps = robot_bag[1]
    for f in list_episodes(out):
        arrays, _ = load_episode(f)
        for cam, spec in (("ego", EGO), ("top", TOP)):
            frames = arrays[cam]
            assert frames.shape[1:] == (32, 32, 3)
            red = frames[..., 0].astype(int) - frames[..., 1]
            assert np.abs(red[:, :, 1:-1]).max() <= 3  # grey: the red border is cropped away (squashed: 4 columns)
            assert np.abs(red).max() < 40  # (JPEG's chroma bleeds a little into the edge column)
            grey = frames[:, 16, 16, 1].astype(int)
            cam_stamps = np.array(stamps[spec.topic])
            levels = (np.arange(len(cam_stamps)) * 7) % 200 + 20
            for k, g in enumerate(grey):  # one of the frames within 0.1 s at or before the stamp
                near = (cam_stamps <= arrays["stamp_ns"][k]) & (cam_stamps > arrays["stamp_ns"][k] - 0.1 * NS)
                assert near.any() and np.abs(levels[near] - g).min() <= 3, (f.name, cam, k)


def test_mcap_tf_odometry_other_encodings_and_one_command_text(tmp_path):
    """mono8 at 20 Hz, PNG at 12.5 Hz... too slow for the 10 Hz grid: one camera at 12.5 Hz still
    has a frame within 0.1 s at or before every step; odometry from /tf (twist differentiated)."""
    ego = Cam("/cam0/image_mono", 20.0, (60, 80), "mono8")
    top = Cam("/cam1/image_raw/compressed", 12.5, (72, 72), "png")
    bag = tmp_path / "tf_bag"
    write_robot_bag(bag, cams=(ego, top), storage="mcap", odom=None, tf=True, commands=(), seed=1)
    cfg = FromBagConfig(ego=ego.topic, top=top.topic, command_text="follow the road", tf="odom:base_link",
                        image_size=32)
    s = convert_bags([bag], tmp_path / "out", cfg, progress=False)
    metas = [load_episode(f)[1] for f in list_episodes(tmp_path / "out")]
    assert len(metas) == 2 and s["dropped"].get("command_change", 0) == 0  # one command: split at the gap only
    assert {m["kind"] for m in metas} == {"follow_lane"} and metas[0]["source"]["command_text"] == "follow the road"
    assert metas[0]["source"]["topics"]["odometry"] == "/tf (odom -> base_link)"
    assert _check_labels(tmp_path / "out") > 100
    arrays, _ = load_episode(list_episodes(tmp_path / "out")[0])
    assert np.array_equal(arrays["ego"][..., 0], arrays["ego"][..., 2])  # mono8 -> grey RGB


def test_bad_input_gets_a_clear_error_and_nothing_is_written(robot_bag, tmp_path):
    bag, _ = robot_bag
    out = tmp_path / "out"
    with pytest.raises(BagError) as err:
        convert_bags([bag], out, robot_config(ego="/camera/front"), progress=False)
    msg = str(err.value)
    assert "--ego /camera/front is not in the bag" in msg and "/robot/odometry  [nav_msgs/msg/Odometry]" in msg
    with pytest.raises(BagError, match="--odom /robot/mast/image_raw carries sensor_msgs/msg/Image, not nav_msgs"):
        convert_bags([bag], out, robot_config(odom=TOP.topic), progress=False)
    write_robot_bag(tmp_path / "tf", duration=4.0, tf=True)  # /tf holds odom -> base_link only
    with pytest.raises(BagError, match=r"no odometry: 0 message\(s\) from /tf \(map -> base_link\).*"
                                       r"transforms seen: odom->base_link \(201\)"):
        convert_bags([tmp_path / "tf"], out, robot_config(odom=None, tf="map:base_link"), progress=False)
    from vla_ros.config import ConfigError

    with pytest.raises(ConfigError, match="no odometry"):
        robot_config(odom=None)
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_an_error_in_a_later_bag_leaves_nothing_half_written(robot_bag, tmp_path):
    bad = tmp_path / "depth"
    write_robot_bag(bad, cams=(EGO, Cam(TOP.topic, 30.0, (96, 128), "rgb8")), duration=5.0)
    _corrupt_encoding(bad, TOP.topic)
    out = tmp_path / "out"
    with pytest.raises(BagError, match="its first frame cannot be used: unsupported encoding '16UC1'"):
        convert_bags([robot_bag[0], bad], out, robot_config(), progress=False)
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert_bags([robot_bag[0]], out, robot_config(), progress=False)
    assert (out / "keep.txt").read_text() == "mine"


def _corrupt_encoding(bag: Path, topic: str) -> None:
    """Rewrite ``bag`` with every image of ``topic`` declared 16UC1 (a depth image)."""
    from rosbags.rosbag2 import Reader, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    tmp = bag.with_name(bag.name + "_src")
    bag.rename(tmp)
    with Reader(tmp) as r, Writer(bag, version=8) as w:
        conns = {c.topic: w.add_connection(c.topic, c.msgtype, typestore=store) for c in r.connections}
        for c, log_ns, raw in r.messages():
            if c.topic == topic:
                msg = store.deserialize_cdr(raw, c.msgtype)
                msg.encoding = "16UC1"
                raw = store.serialize_cdr(msg, c.msgtype)
            w.write(conns[c.topic], log_ns, raw)
    shutil.rmtree(tmp)


def test_a_truncated_bag_converts_what_is_readable_and_says_where_it_stopped(tmp_path):
    import os

    bag = tmp_path / "cut"
    write_robot_bag(bag, storage="mcap")
    mcap = next(bag.glob("*.mcap"))
    os.truncate(mcap, int(mcap.stat().st_size * 0.7))
    said = []
    s = convert_bags([bag], tmp_path / "out", robot_config(), progress=False, log=said.append)
    assert s["truncated"] == [str(bag.resolve())] and "truncated" in said[0] and "messages read" in said[0]
    assert 0 < s["episodes"] and s["bags"][0]["seconds"] < 0.75 * 22
    assert _check_labels(tmp_path / "out") > 0


def test_vla_train_mixes_bags_with_simulated_data_by_weight_and_vla_eval_reads_bags(converted, tmp_path):
    import dataclasses

    from test_train_eval import TINY_MODEL, TINY_TRAIN

    from vla_ros.checkpoint import read_checkpoint
    from vla_ros.data.generate import generate_dataset
    from vla_ros.training.evaluate import evaluate
    from vla_ros.model.vla import SimpleVLA
    from vla_ros.sim.config import WorldConfig
    from vla_ros.training.bank import build_frame_bank
    from vla_ros.training.batch import batch_commands
    from vla_ros.training.loop import train
    from vla_ros.training.sources import parse_data, sample_probabilities, split_samples

    bags, conv = converted
    sim = generate_dataset(tmp_path / "sim", episodes=4, seed=2, config=WorldConfig(image_size=32, episode_steps=16),
                           progress=False)  # format version 1
    model_cfg = dataclasses.replace(TINY_MODEL, image_size=32)
    spec = f"{sim}:0.25,{bags}:0.75"
    sources = parse_data(spec)
    bank = build_frame_bank(SimpleVLA(model_cfg), sources, progress=False)
    lengths = [load_episode(f)[1]["num_steps"] for f in list_episodes(bags)]
    assert np.diff(bank.offsets).tolist() == [16] * 4 + lengths  # episodes of any length, side by side
    assert len(bank.samples) == 4 * 8 + conv["samples"]
    e = 4 + 1  # the bag's second episode: its labels arrive untouched
    np.testing.assert_array_equal(bank.traj[bank.offsets[e]:bank.offsets[e + 1]].numpy(),
                                  load_episode(list_episodes(bags)[1])[0]["traj"])
    train_idx, val_idx, _ = split_samples(bank, 2, 0.25)
    assert set(bank.source[bank.samples[val_idx, 0]].tolist()) == {0, 1}  # each source is validated
    p = sample_probabilities(bank, train_idx, sources)
    drawn = np.random.default_rng(0).choice(train_idx, 4000, p=p)
    assert abs((bank.source[bank.samples[drawn, 0]] == 1).mean() - 0.75) < 0.03
    with pytest.raises(ValueError, match="every directory or to none"):
        parse_data(f"{sim},{bags}:0.5")

    run = tmp_path / "run"
    few = dataclasses.replace(TINY_TRAIN, steps=4, val_every=4)
    assert train(model_cfg, few, spec, run, progress=False)["step"] == 4
    meta = read_checkpoint(run / "best.pth")["meta"]
    assert meta["data"] == spec and "circle the tree" in meta["baselines"]["mean_per_kind"]
    r = evaluate(run / "best.pth", bags, sweep=False, progress=False)
    assert r["samples"] == conv["samples"] and {"circle the tree", "goto_red"} <= set(r["model"])
    e = 4  # the bag's first episode: a robot's command, no kind, read verbatim
    first = np.flatnonzero(bank.samples[:, 0] == e)[:1]
    assert bank.kinds[e] is None and bank.texts[e] == "circle the tree"
    assert batch_commands(bank, first, [None], np.random.default_rng(0)) == ["circle the tree"]


def test_a_dataset_from_a_newer_vla_ros_is_refused(converted, tmp_path):
    from vla_ros.data.from_bag import FORMAT_VERSION

    out = tmp_path / "newer"
    shutil.copytree(converted[0], out)
    info = json.loads((out / "dataset.json").read_text())
    (out / "dataset.json").write_text(json.dumps({**info, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ValueError, match="format version 3; this vla_ros reads versions up to 2"):
        read_dataset_info(out)


def test_sim_round_trip_labels_equal_the_simulators_own_within_1cm_and_1deg(tmp_path, capsys):
    """The expert drives while `vla bag record-sim --robot` records what a robot publishes;
    `vla data from-bag` labels every recorded frame from the odometry alone."""
    from vla_ros.bag.io import BagReader
    from vla_ros.bag.record import _world_config
    from vla_ros.cli import main
    from vla_ros.data.generate import episode_kind, episode_seed
    from vla_ros.sim.episode import run_episode

    bag, out, kinds = tmp_path / "sim_robot", tmp_path / "data", ["turn_left", "follow_lane", "goto_green"]
    assert main(["bag", "record-sim", "--out", str(bag), "--episodes", "3", "--seed", "5", "--image-size", "32",
                 "--robot", "--expert-noise", "off", "--kinds", ",".join(kinds), "--quiet"]) == 0
    with BagReader(bag) as r:
        assert set(r.topics) == {"/ego/image_raw", "/top/image_raw", "/odom", "/command"}  # no ground truth
    assert main(["data", "from-bag", str(bag), "--out", str(out), "--ego", "/ego/image_raw", "--top",
                 "/top/image_raw", "--command", "/command", "--odom", "/odom", "--image-size", "32", "--quiet"]) == 0
    assert "wrote 3 episodes, 96 samples" in capsys.readouterr().out  # 32 per 40-step episode, as simulated
    world = _world_config(32, 40, robot=True, expert_noise=False)
    for i, f in enumerate(list_episodes(out)):
        arrays, meta = load_episode(f)
        ep = run_episode(episode_seed(5, i), episode_kind(5, i, kinds), "train", world)
        sim = ep.arrays
        assert meta["num_steps"] == 40 and meta["command"] == ep.meta["command"]
        err_m = np.linalg.norm(arrays["traj"][..., :2] - sim["traj"][:40, :, :2], axis=-1).max()
        err_deg = np.degrees(np.abs(np.angle(np.exp(1j * (arrays["traj"][..., 2] - sim["traj"][:40, :, 2]))))).max()
        assert err_m < 0.01 and err_deg < 1.0, (f.name, err_m, err_deg)
        np.testing.assert_array_equal(arrays["ego"], sim["ego"][:40])
        np.testing.assert_allclose(arrays["state"], sim["state"][:40], atol=1e-6)


def test_the_native_twin_of_a_robot_recording_holds_the_same_frames_and_states(tmp_path):
    """scripts/bag_round_trip.sh: `vla data generate --steps 72` cut to 40 steps
    (scripts/truncate_episodes.py) is the episodes `vla bag record-sim --robot --steps 40` drives,
    preludes included (the simulator draws their length from the whole run), with the noise on."""
    import importlib.util

    from vla_ros.cli import main

    path = Path(__file__).resolve().parents[1] / "scripts" / "truncate_episodes.py"
    spec = importlib.util.spec_from_file_location("truncate_episodes", path)
    truncate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(truncate)
    long, native, bag, bags = (tmp_path / n for n in ("long", "native", "bag", "bags"))
    common = ["--episodes", "2", "--seed", "3", "--image-size", "32", "--kinds", "stop,turn_left"]
    assert main(["data", "generate", "--out", str(long), "--steps", "72", *common]) == 0
    assert truncate.truncate(long, native, 40) == 2
    assert main(["bag", "record-sim", "--out", str(bag), "--robot", "--steps", "40", "--quiet", *common]) == 0
    assert main(["data", "from-bag", str(bag), "--out", str(bags), "--ego", "/ego/image_raw", "--top",
                 "/top/image_raw", "--command", "/command", "--odom", "/odom", "--image-size", "32", "--quiet"]) == 0
    assert read_dataset_info(native)["samples"] == read_dataset_info(bags)["samples"] == 64
    for f, g in zip(list_episodes(native), list_episodes(bags), strict=True):
        (a, meta), (b, bag_meta) = load_episode(f), load_episode(g)
        assert meta["num_steps"] == bag_meta["num_steps"] == 40 and meta["command"] == bag_meta["command"]
        np.testing.assert_array_equal(a["ego"], b["ego"])
        np.testing.assert_array_equal(a["top"], b["top"])
        np.testing.assert_allclose(a["state"], b["state"], atol=1e-6)
    stop = load_episode(list_episodes(native)[1])[1]
    assert stop["kind"] == "stop" and stop["prelude_steps"] > 0  # it drives before it stops



def test_what_recorded_episodes_cannot_give_is_said_clearly(robot_bag, converted, tmp_path):
    import dataclasses

    from test_train_eval import TINY_MODEL

    from vla_ros.config import ConfigError
    from vla_ros.model.vla import SimpleVLA
    from vla_ros.training.bank import build_frame_bank
    from vla_ros.training.labels import relabel_trajectories

    model = SimpleVLA(dataclasses.replace(TINY_MODEL, image_size=32))
    ego_only = tmp_path / "ego_only"
    convert_bags([robot_bag[0]], ego_only, robot_config(top=None), progress=False)
    assert "top" not in load_episode(list_episodes(ego_only)[0])[0]
    with pytest.raises(ConfigError, match="no 'top' frames, but the model's cameras are"):
        build_frame_bank(model, ego_only, progress=False)
    bank = build_frame_bank(model, converted[0], progress=False)
    with pytest.raises(ConfigError, match="the simulator's expert cannot relabel it"):
        relabel_trajectories(bank, progress=False)


def test_relabelling_a_recording_is_refused_before_any_frame_is_encoded(converted, tmp_path):
    """config/model_tokens.yaml relabels (relabel_prob 0.5) with the simulator's expert, which a
    recording has none of: the run stops on the metadata, not after encoding every frame."""
    import dataclasses

    from test_train_eval import TINY_MODEL, TINY_TRAIN

    from vla_ros.config import ConfigError
    from vla_ros.training.loop import train

    cfg = dataclasses.replace(TINY_TRAIN, steps=2, relabel_prob=0.5)
    with pytest.raises(ConfigError, match="the simulator's expert cannot relabel it.*--relabel-prob 0"):
        train(dataclasses.replace(TINY_MODEL, image_size=32), cfg, converted[0], tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "cache").exists()  # nothing was encoded


def test_a_token_fusion_checkpoint_with_its_locator_fine_tunes_on_episodes_without_a_layout(converted, tmp_path):
    """Token fusion freezes the locator after its pre-training, so fine-tuning such a checkpoint
    (--init) needs no cone positions: recorded episodes train it, alone or beside simulated ones
    (whose locator errors are still reported). Where the locator would be trained, they are refused."""
    import dataclasses
    import re

    import torch
    from test_train_eval import TINY_MODEL, TINY_TRAIN

    from vla_ros.checkpoint import load_checkpoint
    from vla_ros.config import ConfigError
    from vla_ros.data.generate import generate_dataset
    from vla_ros.training.evaluate import evaluate
    from vla_ros.sim.config import WorldConfig
    from vla_ros.training.loop import train

    bags = converted[0]
    sim = generate_dataset(tmp_path / "sim", episodes=4, seed=2, config=WorldConfig(image_size=32, episode_steps=16),
                           progress=False)
    tokens = dataclasses.replace(TINY_MODEL, image_size=32, fusion="tokens", fusion_dim=32, frame_token_source="frozen",
                                 unet_channels=(16, 32), target_locator=True)
    few = dataclasses.replace(TINY_TRAIN, steps=2, val_every=2, locator_pretrain_steps=3)
    train(tokens, few, sim, tmp_path / "base", progress=False)  # pre-trains the locator on the sim's layouts
    base = load_checkpoint(tmp_path / "base" / "last.pth")[0].state_dict()
    for name, data in (("robot", str(bags)), ("mixed", f"{sim},{bags}")):
        run = tmp_path / name
        assert train(tokens, few, data, run, init=tmp_path / "base" / "last.pth", progress=False)["step"] == 2
        log = json.loads((run / "train_log.json").read_text())
        assert all(math.isfinite(loss) for _, loss in log["history"]["train"])
        val = log["history"]["val"][-1]
        assert math.isfinite(val["val_loss"]) and math.isfinite(val["val_ade"])
        # the locator's errors only where a layout labels them: none from the robot's episodes alone
        assert ("val_robot_err" in val) == (name == "mixed") and all(math.isfinite(v) for v in val.values())
        tuned = load_checkpoint(run / "last.pth")[0].state_dict()
        assert all(torch.equal(tuned[k], v) for k, v in base.items() if k.startswith(("locator.", "txt_proj.")))
        assert any(not torch.equal(tuned[k], v) for k, v in base.items() if k.startswith("action_head."))
    r = evaluate(tmp_path / "robot" / "best.pth", bags, sweep=False, progress=False)
    assert r["samples"] == converted[1]["samples"] and math.isfinite(r["model"]["overall"]["ade"])

    refused = re.escape("no layout (an episode recorded on a robot), but the target locator would be trained")
    with pytest.raises(ConfigError, match=refused + ".*--init checkpoints/default.pth.*without model.target_locator"):
        train(tokens, few, f"{sim},{bags}", tmp_path / "scratch", progress=False)  # its pre-training
    additive = dataclasses.replace(TINY_MODEL, image_size=32, target_locator=True)
    with pytest.raises(ConfigError, match=refused):  # trained with the whole model, even without pre-training
        train(additive, dataclasses.replace(few, locator_pretrain_steps=0), bags, tmp_path / "additive", progress=False)


def test_a_replay_of_a_held_out_bag_scores_against_the_converted_labels(tmp_path, tiny_checkpoint, capsys):
    """vla data from-bag --truth-bag: the labels as ground truth, stamped as the node stamps its
    answers, so that `vla bag score` measures a replay of the robot's own bag."""
    from vla_ros.bag import schema
    from vla_ros.bag.io import BagReader
    from vla_ros.bag.record import record_sim
    from vla_ros.bag.score_bag import truths_from_bag
    from vla_ros.cli import main

    bag, truth = tmp_path / "held_out", tmp_path / "truth"
    record_sim(bag, episodes=2, seed=8, image_size=32, robot=True, expert_noise=False, kinds=["forward", "turn_left"])
    s = convert_bags([bag], tmp_path / "data", robot_config(ego="/ego/image_raw", top="/top/image_raw",
                                                              command="/command", odom="/odom"),
                     progress=False, truth_bag=truth)
    with BagReader(truth) as r:
        truths, damage = truths_from_bag(r, schema.TOPIC_TRUTH)
    stored = [load_episode(f)[0] for f in list_episodes(tmp_path / "data")]
    assert damage is None and len(truths) == sum(len(a["stamp_ns"]) for a in stored) == 80
    first = {t.stamp_ns: t for t in truths}
    np.testing.assert_allclose(first[int(stored[0]["stamp_ns"][9])].trajectory, stored[0]["traj"][9], atol=1e-6)
    assert s["truth_bag"] == str(truth)
    answers, report = tmp_path / "answers", tmp_path / "score.json"
    assert main(["bag", "replay", str(bag), "--offline", "--checkpoint", str(tiny_checkpoint), "--set",
                 "num_inference_steps=2", "--set", "warmup=false", "--record", str(answers), "--quiet"]) == 0
    assert main(["bag", "score", str(answers), "--truth", str(truth), "--report", str(report)]) == 0
    scored = json.loads(report.read_text())
    # every sample (a step with a full history: 32 per 40-step episode) is answered OK and scored;
    # the node stops on the first 8 steps of each episode for want of a history, as training skips them
    assert scored["truth"]["with_ok_answer"] == scored["overall"]["scored"] == s["samples"] == 64
