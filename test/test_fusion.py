"""Token fusion (model/fusion.py, ``fusion: tokens``): structure and checkpoints.

Whether it learns to bind words to places is measured by scripts/binding_probe.py and the
training runs in docs/results.md, not here.
"""

from __future__ import annotations

import numpy as np
import torch

from vla_ros.checkpoint import load_checkpoint, save_checkpoint
from vla_ros.model.vla import SimpleVLA


def _tiny(**kw) -> SimpleVLA:
    return SimpleVLA(backbone="tiny", image_size=64, cond_dim=64, fusion="tokens", fusion_dim=32,
                     frame_token_source="frozen", unet_channels=(16, 32), **kw)


def test_token_fusion_gives_the_head_every_token_and_each_input_changes_the_condition():
    model = _tiny(target_locator=True).eval()
    x = torch.randint(0, 255, (2, 2, 5, 64, 64, 3), dtype=torch.uint8)
    x[1] = x[0]
    # command, odometry, target + 2 cameras x 5 frames + 2 cameras x a 4 x 4 grid
    assert model.num_tokens == 3 + 10 + 32
    cond = model.condition(x, ["go to the red cone", "go to the blue cone"], odometry=[[0.3, 0.0], [0.3, 0.0]])
    assert cond.shape == (2, model.num_tokens, 64)
    assert (cond[0] - cond[1]).abs().amax() > 1e-4  # the command
    moving = model.condition(x[:1], ["stop"], odometry=[[0.5, 0.2]])
    unknown = model.condition(x[:1], ["stop"], odometry=None)
    assert (moving - unknown).abs().amax() > 1e-4  # the odometry token ("unknown" is an input too)
    traj = model.predict(x, ["go to the red cone", "stop"], noise=torch.zeros(2, 3, 16, 1))
    assert traj.shape == (2, 16, 3) and torch.isfinite(traj).all()


def test_token_fusion_round_trips_and_old_checkpoints_stay_additive(tmp_path):
    model = _tiny(fusion_readouts=4).eval()
    assert model.num_tokens == 4
    save_checkpoint(model, tmp_path / "t.pth")
    loaded, _ = load_checkpoint(tmp_path / "t.pth")
    x = np.random.default_rng(0).integers(0, 255, (1, 2, 5, 64, 64, 3), dtype=np.uint8)
    zero = torch.zeros(1, 3, 16, 1)
    a = model.predict(x, ["turn left"], noise=zero)
    b = loaded.predict(x, ["turn left"], noise=zero)
    assert torch.allclose(a, b, atol=1e-6)
    old, _ = load_checkpoint("checkpoints/default.pth")  # written before fusion existed
    assert old.config.fusion == "additive" and old.fusion is None and old.config.frame_token_source == "tuned"


def test_a_frozen_text_encoder_is_encoded_once_per_string():
    model = _tiny(text_lora=False)
    model.text.requires_grad_(False)
    calls = []
    forward = model.text.forward
    model.text.forward = lambda texts: calls.append(list(texts)) or forward(texts)
    a = model.encode_text(["stop", "halt", "stop"])
    b = model.encode_text(["halt", "turn left"])
    assert calls == [["stop", "halt"], ["turn left"]]
    assert torch.allclose(a[1], b[0])
