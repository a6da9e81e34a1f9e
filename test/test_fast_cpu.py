"""The CPU fast path's condition graph and narrow readout compute what the plain modules compute."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vla_ros.checkpoint import save_checkpoint
from vla_ros.inference import VLAInferenceAPI
from vla_ros.model.fast.condition import NarrowReadout
from vla_ros.model.fast.unet import _Conv
from vla_ros.model.vla import SimpleVLA

ATOL = 1e-4  # as test_inference: float sums in another order, over 10 DDIM steps


def _randomize(module: torch.nn.Module, seed: int) -> None:
    """Random weights everywhere: zero-initialised layers (the goal token's) would hide mistakes."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def _token_model(**kw) -> SimpleVLA:
    torch.manual_seed(0)
    model = SimpleVLA(backbone="tiny", image_size=64, cond_dim=64, fusion="tokens", fusion_dim=32,
                      frame_token_source="frozen", unet_channels=(16, 32), num_timesteps=100,
                      num_inference_steps=10, odometry_input=True, **kw)
    _randomize(model.fusion, 1)
    _randomize(model.action_head.cond_proj, 2)
    model.action_head.normalizer.fit(torch.randn(50, 16, 3) * 2)
    return model.eval()


@pytest.mark.parametrize("kw", [dict(target_locator=True), dict(fusion_readouts=3, fusion_goal_token=False)],
                         ids=["locator-goal-token", "readouts"])
def test_narrow_readout_equals_cond_proj_of_the_fusion(kw):
    model = _token_model(**kw)
    fusion, proj = model.fusion, model.action_head.cond_proj
    g = torch.Generator().manual_seed(3)
    visual = torch.randn(2, 7, 32, generator=g)
    cmd, odom = torch.randn(2, 32, generator=g), torch.randn(2, 3, generator=g)
    target = torch.randn(2, 4, generator=g) if fusion.target_in is not None else None
    with torch.no_grad():
        ref = proj(fusion(visual, cmd, odom, target)[0])
        x, goal = fusion.mix(visual, cmd, odom, target)
        got = NarrowReadout(fusion, proj)(x, goal)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def _frames(seed: int) -> list[np.ndarray]:
    return list(np.random.default_rng(seed).integers(0, 255, (5, 64, 64, 3), dtype=np.uint8))


@pytest.mark.parametrize("kw", [dict(target_locator=True), dict(spatial_tokens=False)],
                         ids=["locator", "no-locator-no-grid"])
def test_condition_graph_path_equals_plain_path(tmp_path, kw):
    ckpt = save_checkpoint(_token_model(**kw), tmp_path / "tokens.pth")
    fast = VLAInferenceAPI(ckpt)  # warm-up builds the graphs
    plain = VLAInferenceAPI(ckpt, fast=False, warmup=False)
    assert fast._condition_graph_applies()
    assert all(g not in (None, False) for g in fast._condition_graph.graphs.values())  # built, not refused
    for odom in (None, (0.4, -0.2)):
        a = fast.predict(_frames(1), _frames(2), "go to the red cone", odometry=odom).trajectory
        b = plain.predict(_frames(1), _frames(2), "go to the red cone", odometry=odom).trajectory
        np.testing.assert_allclose(a, b, atol=ATOL, rtol=0)
    if kw.get("target_locator"):  # the guidance reads the located target: the graph hands it back whole
        with torch.inference_mode():
            cmd = fast._encode_text("go to the red cone")
            ft, gt = fast._encode_frames([_frames(1), _frames(2)])
            _, located = fast._condition([_frames(2)[-1]], ft, gt, cmd, None)
            ref = fast._locate([_frames(2)[-1]], cmd)
        for name in ("target", "robot", "heading", "relative", "target_logp", "robot_logp"):
            torch.testing.assert_close(getattr(located, name), getattr(ref, name), atol=1e-5, rtol=0)


def test_condition_graph_follows_weights_changed_in_place(tmp_path):
    ckpt = save_checkpoint(_token_model(target_locator=True), tmp_path / "tokens.pth")
    fast = VLAInferenceAPI(ckpt)
    plain = VLAInferenceAPI(ckpt, fast=False, warmup=False)
    for api in (fast, plain):
        with torch.no_grad():  # e.g. a fine-tuning step on the fusion and the head's projection
            api.model.fusion.out.weight.mul_(1.5)
            api.model.action_head.cond_proj.bias.add_(0.1)
    a = fast.predict(_frames(3), _frames(4), "stop").trajectory
    b = plain.predict(_frames(3), _frames(4), "stop").trajectory
    np.testing.assert_allclose(a, b, atol=ATOL, rtol=0)


@pytest.mark.parametrize(("k", "stride", "length", "upsample_to"), [(3, 1, 16, None), (3, 2, 16, None),
                                                                    (3, 1, 8, 16), (1, 1, 8, None)])
def test_lean_convolution_equals_conv2d(k, stride, length, upsample_to):
    torch.manual_seed(5)
    conv = torch.nn.Conv2d(6, 4, k, stride=stride, padding=k // 2).requires_grad_(False)
    x = torch.randn(2, 6, length)
    ref_in = x if upsample_to is None else torch.nn.functional.interpolate(x, size=upsample_to, mode="nearest")
    ref = conv(ref_in[..., None]).squeeze(-1)
    got = _Conv(conv)(x, upsample_to=upsample_to)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_split_batch_equals_one_call_and_restores_the_thread_count():
    from vla_ros.model.fast.threads import SplitBatch, intra_op_threads

    x = torch.randn(3, 5)
    fn = lambda t: (t * 2, t.sum(1), torch.full((t.shape[0],), torch.get_num_threads()))  # noqa: E731
    with intra_op_threads(2):
        a, s, threads = SplitBatch()(fn, x)
        assert torch.get_num_threads() == 2
    torch.testing.assert_close(a, x * 2)
    torch.testing.assert_close(s, x.sum(1))
    assert threads.tolist() == [1, 1, 1]  # each half on one intra-op thread


def test_new_frames_encoded_one_per_core_equal_the_eager_encoder(tmp_path):
    from vla_ros.model.fast.threads import intra_op_threads

    ckpt = save_checkpoint(_token_model(target_locator=True), tmp_path / "tokens.pth")
    api = VLAInferenceAPI(ckpt)
    images = np.stack([_frames(5)[-1], _frames(6)[-1]])
    with torch.inference_mode(), intra_op_threads(2):
        split = api._frame_tokens(images)  # two frames, two threads: split across the cores
        ref = api.model.frame_tokens(api.model.frame_frozen(images))
    assert api._split._pool is not None  # the worker thread ran half of them
    for got, want in zip(split, ref):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
