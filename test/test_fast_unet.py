"""FastUNet (the lean DDIM-loop executor) computes what diffusers' UNet computes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vla_ros.config import ModelConfig, seed_before_config
from vla_ros.model.fast.ddim import DDIMSampler
from vla_ros.model.fast.unet import FastUNet, UnsupportedUNet
from vla_ros.model.head import DiffusionActionHead, build_unet

# float32 sums in another order: ~1e-6 on outputs of order 1
ATOL = 2e-5


def _randomize(module: torch.nn.Module, seed: int) -> None:
    """Random weights everywhere: fresh norms (1/0) and zero-initialised layers would hide mistakes."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


@pytest.mark.parametrize("cfg", [
    ModelConfig(),  # the seed's "after" head: channels (32, 64), 2 heads
    seed_before_config(),  # the "before" head: channels (64, 128)
    dataclasses.replace(ModelConfig(), unet_channels=(32, 64, 64), layers_per_block=1, trajectory_length=16),
], ids=["after", "before", "three-levels"])
@pytest.mark.parametrize("batch", [1, 3])
def test_one_call_equals_diffusers(cfg, batch):
    unet = build_unet(cfg).eval()
    _randomize(unet, 0)
    lean = FastUNet(unet)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, cfg.action_dim, cfg.trajectory_length, 1, generator=g)  # (B, D, T, 1)
    ctx = torch.randn(batch, 11, cfg.cross_attention_dim, generator=g)  # (B, N, cross_dim)
    t = torch.tensor([0, 137, cfg.num_timesteps - 1])
    with torch.inference_mode():
        biases = lean.time_biases(t)
        kv = lean.cross_kv(ctx)
        for i, ti in enumerate(t):
            ref = unet(x, ti, encoder_hidden_states=ctx, return_dict=False)[0]  # (B, D, T, 1)
            got = lean(x.squeeze(-1), [b[i] for b in biases], kv)  # (B, D, T)
            assert got.shape == ref.shape[:-1]
            torch.testing.assert_close(got, ref.squeeze(-1), atol=ATOL, rtol=0)


def test_ddim_loop_lean_equals_diffusers_calls():
    head = DiffusionActionHead(ModelConfig()).eval()
    _randomize(head, 2)
    cond = torch.randn(2, 43, head.config.cond_dim, generator=torch.Generator().manual_seed(3))
    noise = head.initial_noise(2, torch.Generator().manual_seed(4))
    with torch.inference_mode():
        ctx = head.cond_proj(cond)
        lean = DDIMSampler(head, 20, lean=True)
        plain = DDIMSampler(head, 20, lean=False)
        assert lean.lean is not None and plain.lean is None
        torch.testing.assert_close(lean(ctx, noise), plain(ctx, noise), atol=1e-4, rtol=0)


def test_weights_changed_in_place_are_picked_up():
    head = DiffusionActionHead(ModelConfig()).eval()
    sampler = DDIMSampler(head, 5)
    ctx = torch.randn(1, 4, head.config.cross_attention_dim)
    noise = head.initial_noise(1, torch.Generator().manual_seed(0))
    with torch.inference_mode():
        before = sampler(ctx, noise)
    with torch.no_grad():
        head.unet.conv_out.weight.mul_(2.0)  # e.g. a training step
    assert sampler.lean.stale
    with torch.inference_mode():
        after = sampler(ctx, noise)
        ref = DDIMSampler(head, 5, lean=False)(ctx, noise)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, ref, atol=1e-4, rtol=0)


def test_unknown_layout_is_refused_and_the_sampler_keeps_diffusers():
    cfg = ModelConfig()
    unet = build_unet(cfg)
    unet.mid_block.attentions[0].transformer_blocks[0].norm_type = "ada_norm"  # not implemented
    with pytest.raises(UnsupportedUNet):
        FastUNet(unet)
    head = DiffusionActionHead(cfg)
    head.unet = unet
    assert DDIMSampler(head, 3).lean is None
