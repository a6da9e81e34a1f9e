"""Training lowers the loss, resumes, and evaluation reports figures on a fixed tiny set."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vla_ros.checkpoint import load_checkpoint, read_checkpoint
from vla_ros.config import ConfigError, ModelConfig, TrainConfig
from vla_ros.data.generate import generate_dataset
from vla_ros.training.evaluate import constant_velocity, evaluate, format_report, plot_report
from vla_ros.sim.commands import KINDS, phrasings
from vla_ros.sim.config import WorldConfig
from vla_ros.training.bank import FrameBank
from vla_ros.training.loop import train

TINY_MODEL = ModelConfig(backbone="tiny", image_size=64, cond_dim=64, num_timesteps=100, num_inference_steps=10)
TINY_TRAIN = TrainConfig(steps=60, batch_size=16, lr=2e-3, warmup_steps=5, val_every=30, val_batches=2,
                         log_every=5, val_fraction=0.25)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    world = WorldConfig(image_size=64, episode_steps=16)
    train_dir = generate_dataset(root / "train", episodes=8, seed=3, config=world, progress=False)
    eval_dir = generate_dataset(root / "eval", episodes=4, seed=99, config=world, split="eval", progress=False)
    return train_dir, eval_dir


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    summary = train(TINY_MODEL, TINY_TRAIN, tiny_data[0], out, progress=False)
    return out, summary


def test_training_lowers_the_loss_and_writes_its_files(trained):
    out, summary = trained
    assert summary["step"] == 60
    for name in ("best.pth", "last.pth", "loss_curve.png", "train_log.json"):
        assert (out / name).exists(), name
    log = json.loads((out / "train_log.json").read_text())
    val = log["history"]["val"]
    assert [v["step"] for v in val] == [0, 30, 60]
    assert val[-1]["val_loss"] < 0.8 * val[0]["val_loss"]  # the untrained model's loss is ~1
    payload = read_checkpoint(out / "best.pth")
    assert set(payload["meta"]["baselines"]["mean_per_kind"]) <= {
        "forward", "turn_left", "turn_right", "stop", "follow_lane", "goto_red", "goto_green", "goto_blue"}
    model, _ = load_checkpoint(out / "best.pth")
    assert bool(model.action_head.normalizer.fitted)
    # the commands it was trained on (every training phrasing: batches draw any of them)
    assert model.phrasebook == tuple(p for k in KINDS for p in phrasings(k, "train"))


def test_resume_continues_from_last(trained, tiny_data):
    import dataclasses

    out, _ = trained
    more = dataclasses.replace(TINY_TRAIN, steps=70)
    summary = train(TINY_MODEL, more, tiny_data[0], out, resume=out / "last.pth", progress=False)
    assert summary["step"] == 70
    log = json.loads((out / "train_log.json").read_text())
    assert [v["step"] for v in log["history"]["val"]][-2:] == [60, 70]
    with pytest.raises(ValueError, match="holds no training state"):
        train(TINY_MODEL, more, tiny_data[0], out, resume=out / "best.pth", progress=False)


def test_eval_reports_model_baselines_and_steps(trained, tiny_data, tmp_path):
    out, _ = trained
    r = evaluate(out / "best.pth", tiny_data[1], sweep_samples=16, progress=False)
    assert r["samples"] == 4 * (16 - 8) and r["sampler"] == f"DDIM-{TINY_MODEL.num_inference_steps}"
    for table in (r["model"], r["baselines"]["mean_per_command"], r["baselines"]["constant_velocity"]):
        assert np.isfinite(table["overall"]["ade"]) and table["overall"]["fde"] >= 0
    assert [row["sampler"] for row in r["steps_sweep"]["rows"]] == [
        "DDIM-1", "DDIM-2", "DDIM-5", "DDIM-10", "DDIM-20", "DDIM-50", "DDPM-100"]
    # eval phrasings were never trained on
    train_texts = {p for k in KINDS for p in phrasings(k, "train")}
    assert not set(r["phrasings"]) & train_texts
    again = evaluate(out / "best.pth", tiny_data[1], sweep=False, progress=False)
    assert again["model"] == r["model"]  # deterministic
    text = format_report(r)
    assert "mean per command" in text and "DDPM-100" in text
    plot_report(r, tmp_path / "eval.png")
    assert (tmp_path / "eval.png").stat().st_size > 1000


def test_constant_velocity_baseline_continues_the_motion():
    T = 12
    states = np.zeros((1, T, 5))
    states[0, :, 0] = 0.05 * np.arange(T)  # 0.5 m/s along x, sim_dt 0.1
    bank = FrameBank(torch.zeros(T, 2, 1), torch.zeros(T, 16, 3), states[0], ["forward"], ["go"],
                     np.array([[0, 10]]), stride=2, history=5, offsets=np.array([0, T]))
    pred = constant_velocity(bank, np.array([0]), traj_dt=0.2, sim_dt=0.1)
    np.testing.assert_allclose(pred[0, :, 0], 0.1 * np.arange(1, 17), atol=1e-6)
    np.testing.assert_allclose(pred[0, :, 1:], 0, atol=1e-6)


def test_init_fine_tunes_a_checkpoint_and_keeps_its_normaliser(trained, tiny_data, tmp_path):
    import dataclasses

    out, _ = trained
    start, _ = load_checkpoint(out / "best.pth")
    few = dataclasses.replace(TINY_TRAIN, steps=4, val_every=4)
    # flags name another architecture: --init uses the checkpoint's own config
    # (text_lora off drops a MiniLM's text LoRA; the tiny text encoder has none: nothing to drop)
    other = dataclasses.replace(TINY_MODEL, cond_dim=32, text_lora=False)
    summary = train(other, few, tiny_data[0], tmp_path / "ft", init=out / "best.pth", progress=False)
    assert summary["step"] == 4
    tuned, payload = load_checkpoint(tmp_path / "ft" / "last.pth")
    assert tuned.config.cond_dim == TINY_MODEL.cond_dim and tuned.config.text_lora == start.config.text_lora
    assert payload["meta"]["init"] == str(out / "best.pth")
    n0, n1 = start.action_head.normalizer, tuned.action_head.normalizer
    for name, buf in n0.named_buffers():
        torch.testing.assert_close(dict(n1.named_buffers())[name], buf)  # kept, not refitted
    log = json.loads((tmp_path / "ft" / "train_log.json").read_text())
    # step 0 validates the initial weights: already trained, far below an untrained model's ~1
    assert log["history"]["val"][0]["val_loss"] < 0.8


def test_on_policy_data_is_driven_by_the_checkpoint_and_labelled_by_the_expert(trained, tiny_data, tmp_path):
    from vla_ros.data.io import load_episode, read_dataset_info

    out, _ = trained
    world = WorldConfig(image_size=64, episode_steps=16)
    d = generate_dataset(tmp_path / "dagger", episodes=2, seed=3, config=world, progress=False,
                         policy=str(out / "best.pth"), first_index=8)
    info = read_dataset_info(d)
    assert info["policy"]["checkpoint"] == str(out / "best.pth") and info["files"] == ["episode_0008", "episode_0009"]
    arrays, meta = load_episode(d / "episode_0008.npz")
    assert meta["driver"].startswith("learner:") and meta["driven_steps"] > 0
    # the expert's episode with the same seed: same start, same first labels, another path
    expert, _ = load_episode(generate_dataset(tmp_path / "expert", episodes=1, seed=3, config=world,
                                              progress=False, first_index=8) / "episode_0008.npz")
    np.testing.assert_array_equal(arrays["state"][0], expert["state"][0])
    np.testing.assert_allclose(arrays["traj"][0], expert["traj"][0])
    assert not np.allclose(arrays["action"], expert["action"])
    with pytest.raises(FileNotFoundError, match="policy checkpoint"):
        generate_dataset(tmp_path / "none", episodes=1, seed=3, config=world, progress=False,
                         policy=str(tmp_path / "missing.pth"))
    # varied noise: another draw per prediction, the same draws on a second run (reproducible data)
    varied = [load_episode(generate_dataset(tmp_path / f"varied{i}", episodes=1, seed=3, config=world,
                                            progress=False, policy=str(out / "best.pth"), first_index=8,
                                            policy_noise="varied") / "episode_0008.npz")[0] for i in range(2)]
    np.testing.assert_array_equal(varied[0]["action"], varied[1]["action"])
    assert not np.allclose(varied[0]["action"], arrays["action"])
    assert read_dataset_info(tmp_path / "varied0")["policy"]["noise"] == "varied"
    with pytest.raises(ValueError, match="policy_noise"):
        generate_dataset(tmp_path / "bad", episodes=1, seed=3, config=world, progress=False,
                         policy=str(out / "best.pth"), policy_noise="random")
    with pytest.raises(ValueError, match="policy_guidance"):
        generate_dataset(tmp_path / "bad", episodes=1, seed=3, config=world, progress=False,
                         policy=str(out / "best.pth"), policy_guidance="cone")
    # the guidance reaches the driving model's API: this one has no locator to steer with
    from vla_ros.errors import InputError

    with pytest.raises(InputError, match="locator"):
        generate_dataset(tmp_path / "guided", episodes=1, seed=3, config=world, progress=False,
                         policy=str(out / "best.pth"), policy_guidance="target", overwrite=True)


def test_init_from_a_checkpoint_without_odometry_adds_the_input_and_trains_it(trained, tiny_data, tmp_path):
    import dataclasses

    out, _ = trained
    legacy = dataclasses.replace(TINY_MODEL, odometry_input=False)
    few = dataclasses.replace(TINY_TRAIN, steps=6, val_every=6)
    base = train(legacy, few, tiny_data[0], tmp_path / "legacy", progress=False)
    assert base["step"] == 6
    old, _ = load_checkpoint(tmp_path / "legacy" / "last.pth")
    assert not old.config.odometry_input and old.odom_proj is None
    train(TINY_MODEL, few, tiny_data[0], tmp_path / "ft", init=tmp_path / "legacy" / "last.pth", progress=False)
    tuned, _ = load_checkpoint(tmp_path / "ft" / "last.pth")
    assert tuned.config.odometry_input and tuned.odom_proj.weight.abs().sum() > 0  # added, then trained
    # a resumed run keeps the new layer's own learning rate
    more = dataclasses.replace(few, steps=8)
    assert train(TINY_MODEL, more, tiny_data[0], tmp_path / "ft", resume=tmp_path / "ft" / "last.pth",
                 progress=False)["step"] == 8


def test_eval_with_and_without_odometry(trained, tiny_data):
    out, _ = trained
    with_odom = evaluate(out / "best.pth", tiny_data[1], sweep=False, progress=False)
    without = evaluate(out / "best.pth", tiny_data[1], sweep=False, progress=False, odometry=False)
    assert with_odom["odometry"] and not without["odometry"]
    assert with_odom["model"]["overall"]["ade"] != without["model"]["overall"]["ade"]


def test_every_recorded_state_is_labelled_for_every_command(tiny_data, tmp_path):
    from vla_ros.model.vla import SimpleVLA
    from vla_ros.sim.commands import KINDS
    from vla_ros.training.bank import build_frame_bank
    from vla_ros.training.labels import relabel_trajectories

    torch.manual_seed(0)
    bank = build_frame_bank(SimpleVLA(TINY_MODEL), tiny_data[0], progress=False)
    labels = relabel_trajectories(bank, cache_dir=tmp_path, progress=False)
    assert labels.shape == (bank.traj.shape[0], len(KINDS), 16, 3)
    rows = torch.from_numpy(bank.sample_rows(np.arange(len(bank.samples))))
    own = torch.tensor([KINDS.index(bank.kinds[i]) for i in bank.samples[:, 0]])
    torch.testing.assert_close(labels[rows, own], bank.traj[rows], atol=1e-5, rtol=0)  # the stored label
    ahead = labels[rows, :, -1, 0]  # (S, K) metres ahead at the last waypoint
    fwd, stop = ahead[:, KINDS.index("forward")], ahead[:, KINDS.index("stop")]
    assert (fwd >= stop - 1e-3).all() and fwd.mean() > stop.mean() + 1.0  # (forward brakes for obstacles)
    assert ahead[:, KINDS.index("stop")].abs().max() < 0.3  # brakes within a quarter metre from any state
    # the same state, another colour: another trajectory (each layout has one cone of each colour)
    red, blue = labels[rows, KINDS.index("goto_red")], labels[rows, KINDS.index("goto_blue")]
    assert (red - blue).abs().amax((1, 2)).mean() > 0.3
    # a subset of kinds, from the cache, in the order asked for
    some = relabel_trajectories(bank, ("stop", "forward"), cache_dir=tmp_path, progress=False)
    torch.testing.assert_close(some, labels[:, [KINDS.index("stop"), KINDS.index("forward")]])


def test_labels_recorded_by_an_older_expert_are_recomputed_by_the_current_one(tmp_path):
    """Goto episodes recorded while the expert still stopped before an obstacle on the way (as
    every dataset from before world.expert_detour: their config lacks the key) get the current
    expert's labels, which drive around it; the other kinds keep theirs, and training uses them."""
    import dataclasses

    from vla_ros.data.io import list_episodes, load_meta
    from vla_ros.model.vla import SimpleVLA
    from vla_ros.sim.expert import expert_trajectory
    from vla_ros.sim.layout import Layout
    from vla_ros.training.bank import build_frame_bank
    from vla_ros.training.labels import refresh_labels

    old = WorldConfig(image_size=32, episode_steps=16, blocking_obstacle_prob=1.0, expert_detour=False)
    data = generate_dataset(tmp_path / "data", episodes=6, seed=4, config=old, progress=False,
                            kinds=["goto_red", "forward"])
    for f in list_episodes(data):  # as written before the field existed
        meta_path = f.with_suffix(".json")
        meta = json.loads(meta_path.read_text())
        del meta["config"]["expert_detour"]
        meta_path.write_text(json.dumps(meta))
    model = SimpleVLA(dataclasses.replace(TINY_MODEL, image_size=32))
    bank = build_frame_bank(model, data, progress=False)
    recorded = bank.traj.clone()
    changed = refresh_labels(bank, ("goto_red",), cache_dir=tmp_path / "cache", progress=False)
    steps = np.unique(bank.samples[:, 1])
    assert changed > 0
    for e, f in enumerate(list_episodes(data)):
        mine = slice(bank.offsets[e], bank.offsets[e + 1])
        if bank.kinds[e] != "goto_red":
            torch.testing.assert_close(bank.traj[mine], recorded[mine])
            continue
        meta = load_meta(f)
        layout, row = Layout.from_dict(meta["layout"]), int(bank.rows(e, steps[-1]))
        now = expert_trajectory("goto_red", bank.states[row], layout, WorldConfig(image_size=32))
        torch.testing.assert_close(bank.traj[row], torch.from_numpy(now), atol=1e-5, rtol=0)
    # from the cache, the same labels
    again = build_frame_bank(model, data, progress=False)
    assert refresh_labels(again, ("goto_red",), cache_dir=tmp_path / "cache", progress=False) == changed
    torch.testing.assert_close(again.traj, bank.traj)
    with pytest.raises(ConfigError, match="refresh_labels"):
        TrainConfig(refresh_labels=("fly",))


def test_validation_episodes_stay_put_when_a_round_is_appended():
    """The held-out episodes are spread over the data and mostly kept when new episodes are
    appended (a DAgger round), instead of being the newest round itself."""
    from pathlib import Path

    from vla_ros.training.sources import validation_episodes

    files = [Path(f"episode_{i:04d}.npz") for i in range(1360)]
    before = validation_episodes(files[:1200], 120)
    after = validation_episodes(files, 136)
    assert len(before) == 120 and len(after) == 136
    new = {e for e in after if e >= 1200}
    assert 5 <= len(new) <= 35  # about its share (16), not all 136
    assert len(before & after) >= 100
    assert validation_episodes(files[:8], 2) == validation_episodes(list(files[:8]), 2)


def test_relabelled_training_runs_and_the_kinds_are_checked(tiny_data, tmp_path):
    import dataclasses

    every = dataclasses.replace(TINY_TRAIN, steps=4, val_every=4, relabel_prob=1.0, relabel_kinds=("stop",))
    assert train(TINY_MODEL, every, tiny_data[0], tmp_path / "run", progress=False)["step"] == 4
    assert list((tmp_path / "run" / "cache" / "relabel").glob("*_stop_*.npy"))
    with pytest.raises(ConfigError, match="relabel_kinds"):
        TrainConfig(relabel_kinds=("fly",))
    with pytest.raises(ConfigError, match="relabel_prob"):
        TrainConfig(relabel_prob=1.5)


def test_colour_grounding_tells_a_model_that_follows_the_colour_from_a_colour_blind_one(tmp_path):
    from vla_ros.data.io import list_episodes, load_episode
    from vla_ros.training.evaluate import colour_grounding
    from vla_ros.sim.expert import expert_trajectory
    from vla_ros.sim.layout import Layout

    world = WorldConfig(image_size=32, episode_steps=12)
    data = generate_dataset(tmp_path / "data", episodes=16, seed=5, config=world, progress=False)
    answers = {}  # the expert's answer for each colour, keyed by the newest ego frame
    for path in list_episodes(data):
        arrays, meta = load_episode(path)
        layout = Layout.from_dict(meta["layout"])
        for t in (8, 10):
            for c in ("red", "green", "blue"):
                answers[arrays["ego"][t].tobytes(), c] = expert_trajectory(f"goto_{c}", arrays["state"][t], layout,
                                                                            world)

    def follows(ego, top, text, odometry):
        return answers[ego[-1].tobytes(), text.split()[-2]]  # "go to the <colour> cone"

    perfect = colour_grounding(follows, data, steps=(8, 10), progress=False)
    assert perfect["samples"] >= 2 and perfect["answers"] == 3 * perfect["samples"]
    assert perfect["identified"] == 1.0 and perfect["bearing_error_deg"] == 0.0
    assert perfect["model_spread_m"] == pytest.approx(perfect["expert_spread_m"]) and perfect["expert_spread_m"] > 0.3
    blind = colour_grounding(lambda ego, top, text, odometry: answers[ego[-1].tobytes(), "red"], data,
                             steps=(8, 10), progress=False)
    assert blind["identified"] == pytest.approx(1 / 3, abs=0.05) and blind["model_spread_m"] == 0.0
    with pytest.raises(ValueError, match="full history"):
        colour_grounding(follows, data, steps=(2,), progress=False)
    # other words for the colours: a model that knows "cherry" but answers "red" for any word it lacks
    synonyms = {"cherry": "red", "fern": "green", "periwinkle": "blue"}
    words = {"red": ("red", "cherry", "vermillion"), "green": ("green", "fern", "viridian"),
             "blue": ("blue", "periwinkle", "cornflower")}

    def knows_some(ego, top, text, odometry):
        word = text.split()[-1]  # "head for the <word>"
        colour = word if word in words else synonyms.get(word, "red")
        return answers[ego[-1].tobytes(), colour]

    out = colour_grounding(knows_some, data, steps=(8, 10), progress=False, phrase="head for the {}", words=words)
    assert out["answers"] == 9 * out["samples"] and out["phrase"] == "head for the {}"
    by_word = out["identified_by_word"]
    assert all(by_word[w] == 1.0 for w in ("red", "green", "blue", *synonyms, "vermillion"))  # (red by luck)
    assert by_word["viridian"] == 0.0 and by_word["cornflower"] == 0.0
    assert out["identified"] == pytest.approx(7 / 9)
    with pytest.raises(ValueError, match="same number"):
        colour_grounding(follows, data, steps=(8,), progress=False, words={**words, "red": ("red",)})


def test_init_can_add_the_target_locator_which_trains_resumes_and_evaluates(trained, tiny_data, tmp_path):
    import dataclasses

    out, _ = trained
    few = dataclasses.replace(TINY_TRAIN, steps=4, val_every=4, locator_pretrain_steps=5)
    with_locator = dataclasses.replace(TINY_MODEL, target_locator=True)
    train(with_locator, few, tiny_data[0], tmp_path / "loc", init=out / "best.pth", progress=False)
    tuned, _ = load_checkpoint(tmp_path / "loc" / "last.pth")
    assert tuned.config.target_locator and tuned.locator is not None
    log = json.loads((tmp_path / "loc" / "train_log.json").read_text())
    first = log["history"]["val"][0]
    assert {"val_robot_err", "val_heading_err_deg"} <= set(first)  # the locator's own errors are reported
    # step 0 is the checkpoint's model exactly (the located target enters through a zero-initialised layer)
    start = json.loads((out / "train_log.json").read_text())["history"]["val"]
    assert first["val_loss"] == pytest.approx(min(v["val_loss"] for v in start if v["val_ade"] == min(
        w["val_ade"] for w in start)), rel=1e-4)
    more = dataclasses.replace(few, steps=6)
    assert train(with_locator, more, tiny_data[0], tmp_path / "loc", resume=tmp_path / "loc" / "last.pth",
                 progress=False)["step"] == 6
    r = evaluate(tmp_path / "loc" / "last.pth", tiny_data[1], sweep_samples=8, progress=False)
    assert np.isfinite(r["model"]["overall"]["ade"])
    assert all(row["latency_ms_b1"] > 0 for row in r["steps_sweep"]["rows"])  # sampled with the top frame too
