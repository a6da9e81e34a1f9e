"""Tests of dataset generation, the on-disk format, the frame bank over it and show_dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vla_ros.data import (
    episode_kind,
    episode_seed,
    generate_dataset,
    list_episodes,
    load_episode,
    open_npz,
    read_dataset_info,
    show_dataset,
    trajectory_to_top_pixels,
    world_to_top_pixel,
)
from vla_ros.sim import KINDS, WorldConfig, phrasings, run_episode

TINY = WorldConfig(image_size=32, episode_steps=12)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "train"
    generate_dataset(out, episodes=2, seed=7, config=TINY, split="train", progress=False)
    return out


def test_generate_writes_files_and_metadata(tiny_dataset):
    files = list_episodes(tiny_dataset)
    assert [f.name for f in files] == ["episode_0000.npz", "episode_0001.npz"]
    info = read_dataset_info(tiny_dataset)
    assert info["episodes"] == 2 and info["split"] == "train" and info["seed"] == 7
    assert WorldConfig.from_dict(info["config"]) == TINY
    assert info["samples"] == 2 * (TINY.episode_steps - TINY.history_span)
    for i, f in enumerate(files):
        meta = json.loads(f.with_suffix(".json").read_text())
        assert meta["episode"] == i and meta["seed"] == episode_seed(7, i) and meta["kind"] == episode_kind(7, i)
        assert meta["command"] in phrasings(meta["kind"], "train")
        assert {"lane", "cones", "obstacles"} <= set(meta["layout"])
        assert {c["colour"] for c in meta["layout"]["cones"]} >= {"red", "green", "blue"}
        # plain numpy can read it
        with np.load(f) as z:
            assert z["ego"].shape == (12, 32, 32, 3) and z["ego"].dtype == np.uint8
            assert z["top"].shape == (12, 32, 32, 3)
            assert z["state"].shape == (12, 5) and z["state"].dtype == np.float32
            assert z["traj"].shape == (12, 16, 3) and z["traj"].dtype == np.float32
            assert z["stamp"].shape == (12,) and z["stamp"].dtype == np.float64


def test_round_trip_equals_what_the_world_produced(tiny_dataset):
    for i, f in enumerate(list_episodes(tiny_dataset)):
        arrays, meta = load_episode(f)
        ep = run_episode(seed=episode_seed(7, i), kind=episode_kind(7, i), split="train", config=TINY)
        for key, value in ep.arrays.items():
            assert np.array_equal(arrays[key], value), key
        assert meta["command"] == ep.meta["command"]
        mm = open_npz(f)
        assert not mm["ego"].flags.owndata and not mm["ego"].flags.writeable  # a view into the mapped file
        assert np.array_equal(mm["ego"], ep.arrays["ego"])


def test_frame_bank_samples_are_the_episodes_steps_with_their_history(tiny_dataset):
    """What training reads of a dataset (the frame bank): every step with a full history, its
    history steps, label, state and command, and the training phrasings of its kind."""
    from vla_ros.config import ModelConfig
    from vla_ros.model.vla import SimpleVLA
    from vla_ros.training.bank import build_frame_bank, gather
    from vla_ros.training.batch import batch_commands

    model = SimpleVLA(ModelConfig(backbone="tiny", image_size=32, cond_dim=64, num_timesteps=100,
                                  num_inference_steps=10))
    bank = build_frame_bank(model, tiny_dataset, progress=False)
    span = TINY.history_span
    assert len(bank.samples) == 2 * (TINY.episode_steps - span)
    assert bank.samples[0].tolist() == [0, span]
    files = list_episodes(tiny_dataset)
    for i in (0, 5, len(bank.samples) - 1):
        e, t = (int(v) for v in bank.samples[i])
        arrays, meta = load_episode(files[e])
        assert bank.history_index(np.array([t]))[0].tolist() == [t - 8, t - 6, t - 4, t - 2, t]
        row = bank.sample_rows(np.array([i]))[0]
        assert np.array_equal(bank.traj[row].numpy(), arrays["traj"][t])
        assert np.array_equal(bank.states[row], arrays["state"][t].astype(np.float64))
        assert bank.texts[e] == meta["command"] and bank.kinds[e] == meta["kind"] and meta["kind"] in KINDS
    frozen, traj = gather(bank, np.arange(4), model.device)
    assert frozen.shape[:3] == (4, 2, 5) and traj.shape == (4, 16, 3)  # (B, cameras, history, ...)
    idx = np.arange(len(bank.samples))
    kinds = [bank.kinds[e] for e in bank.samples[idx, 0]]
    texts = batch_commands(bank, idx, kinds, np.random.default_rng(0))
    assert all(text in phrasings(k, "train") for text, k in zip(texts, kinds)) and len(set(texts)) > 2


@pytest.mark.parametrize("every_frame, locator", [(True, False), (False, True)])
def test_frame_bank_with_a_cache_folder_is_memory_mapped_and_equals_the_one_in_memory(tiny_dataset, tmp_path,
                                                                                     every_frame, locator):
    """With a cache folder (every training run) the features and top frames are .npy files mapped
    from disk, written episode by episode, not tensors holding the whole dataset; a batch cut from
    them equals the in-memory bank's, and a second build maps the files without encoding again."""
    from vla_ros.config import ModelConfig
    from vla_ros.model.vla import SimpleVLA
    from vla_ros.training.bank import build_frame_bank, gather

    torch.manual_seed(0)
    model = SimpleVLA(ModelConfig(backbone="tiny", image_size=32, cond_dim=64, num_timesteps=100,
                                  num_inference_steps=10, target_locator=locator))
    ram = build_frame_bank(model, tiny_dataset, progress=False, every_frame=every_frame)
    disk = build_frame_bank(model, tiny_dataset, cache_dir=tmp_path, progress=False, every_frame=every_frame)
    mapped = sorted(p.name for p in tmp_path.glob("bank_*.npy"))
    assert len(mapped) == (2 if locator else 1) and not list(tmp_path.glob("bank_*.tmp*"))
    assert isinstance(np.load(tmp_path / mapped[0], mmap_mode="r"), np.memmap)
    idx = np.arange(len(ram.samples))
    for a, b in zip(gather(ram, idx, model.device), gather(disk, idx, model.device)):
        assert torch.equal(a, b)
    if locator:
        assert torch.equal(ram.top, disk.top)
    # a second build (another run or process on the same files) encodes nothing: the episodes'
    # own feature cache may go, the bank's files answer
    for p in tmp_path.glob("frozen_*/**/*.pt"):
        p.unlink()
    again = build_frame_bank(model, tiny_dataset, cache_dir=tmp_path, progress=False, every_frame=every_frame)
    assert torch.equal(gather(again, idx, model.device)[0], gather(ram, idx, model.device)[0])
    assert not list(tmp_path.glob("frozen_*/**/*.pt"))


def test_generate_refuses_to_overwrite_and_eval_split(tmp_path, tiny_dataset):
    with pytest.raises(FileExistsError, match="overwrite"):
        generate_dataset(tiny_dataset, episodes=1, seed=1, config=TINY, progress=False)
    out = generate_dataset(tmp_path / "eval", episodes=1, seed=3, config=TINY, split="eval", progress=False)
    _, meta = load_episode(list_episodes(out)[0])
    assert meta["split"] == "eval" and meta["command"] in phrasings(meta["kind"], "eval")
    with pytest.raises(ValueError, match="split"):
        generate_dataset(tmp_path / "x", episodes=1, seed=3, config=TINY, split="test", progress=False)


def test_generate_only_the_kinds_asked_for(tmp_path):
    out = generate_dataset(tmp_path / "lane", episodes=3, seed=5, config=TINY, progress=False,
                           kinds=["follow_lane", "stop"])
    kinds = [load_episode(f)[1]["kind"] for f in list_episodes(out)]
    assert kinds == [episode_kind(5, i, ("follow_lane", "stop")) for i in range(3)]
    assert set(kinds) == {"follow_lane", "stop"}
    assert json.loads((out / "dataset.json").read_text())["kinds"] == {k: kinds.count(k) for k in sorted(set(kinds))}
    with pytest.raises(ValueError, match="follow_lanes"):
        generate_dataset(tmp_path / "x", episodes=1, seed=5, config=TINY, progress=False, kinds=["follow_lanes"])


def test_top_pixel_transform(tiny_dataset):
    cfg = TINY
    half = cfg.arena_size / 2
    corners = world_to_top_pixel(np.array([[-half, half], [half, -half]]), cfg)
    assert np.allclose(corners, [[-0.5, -0.5], [cfg.image_size - 0.5, cfg.image_size - 0.5]])
    state = np.array([1.0, 2.0, np.pi / 2])
    uv = trajectory_to_top_pixels(np.array([[1.0, 0.0, 0.0]]), state, cfg)  # 1 m ahead = north
    assert np.allclose(uv, world_to_top_pixel(np.array([[1.0, 3.0]]), cfg))


def test_show_dataset_writes_png(tiny_dataset, tmp_path):
    out = show_dataset(tiny_dataset, tmp_path / "show.png", n=2)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_missing_dataset_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="vla data generate"):
        list_episodes(tmp_path / "nope")


def test_a_driver_executes_after_the_prelude_and_the_expert_still_labels():
    calls = []

    def driver(t, ego, top, world):
        calls.append(t)
        assert ego is not None and ego[t].any()  # the current frame is rendered before the driver runs
        return (0.2, 0.0) if t >= 3 else None  # None: the expert executes

    ep = run_episode(seed=11, kind="turn_left", config=TINY, driver=driver)
    plain = run_episode(seed=11, kind="turn_left", config=TINY)
    first = ep.meta["prelude_steps"]
    assert calls == list(range(first, TINY.episode_steps))
    driven = np.arange(TINY.episode_steps) >= max(first, 3)
    assert ep.meta["driven_steps"] == int(driven.sum()) > 0
    np.testing.assert_allclose(ep.arrays["action"][driven], [[0.2, 0.0]] * int(driven.sum()))
    # labels answer the command from the visited state: identical until the paths part
    np.testing.assert_allclose(ep.arrays["traj"][0], plain.arrays["traj"][0])
    assert not np.allclose(ep.arrays["state"][-1], plain.arrays["state"][-1])


def test_learner_driver_noise_seeds_vary_per_prediction_and_repeat_per_episode():
    from vla_ros.data.dagger import LearnerDriver

    seeds, odometry = [], []

    def predictor(ego, top, text, odom, noise_seed=None):
        seeds.append(noise_seed)
        odometry.append(odom)
        return np.zeros((TINY.horizon, 3))

    for noise in ("fixed", "varied", "varied"):
        run_episode(seed=11, kind="forward", config=TINY, driver=LearnerDriver(predictor, TINY, noise=noise))
    n = len(seeds) // 3
    fixed, varied, again = seeds[:n], seeds[n:2 * n], seeds[2 * n:]
    assert n > 1 and fixed == [None] * n  # fixed: the predictor's own seed, like the node
    assert len(set(varied)) == n and varied == again
    # the model drives with the robot's measured velocity, as from sim_node's odom
    assert all(len(o) == 2 and np.isfinite(o).all() for o in odometry) and odometry[0][0] > 0
    with pytest.raises(ValueError, match="noise"):
        LearnerDriver(predictor, TINY, noise="random")
