"""A lean executor of the action head's UNet for the DDIM loop (the CPU fast path).

The head's diffusers ``UNet2DConditionModel`` runs on a ``(B, 3, 16, 1)`` "image" that is one
pixel wide. Every 3x3 convolution with padding 1 then only ever multiplies its middle kernel
column with data (the side columns see zero padding), so it is exactly a 1-D convolution with
kernel 3; and PyTorch's CPU convolution takes its slow generic path for such thin inputs.
Most of the rest of a UNet call does not depend on the noisy sample at all:

* the timestep embedding and every ResNet block's ``time_emb_proj(silu(temb))`` depend only on
  the step: computed once per step count (:meth:`FastUNet.time_biases`);
* the cross-attention keys and values depend only on the condition tokens: computed once per
  prediction (:meth:`FastUNet.cross_kv`), not once per step.

:class:`FastUNet` reads the weights of a diffusers UNet built by
:func:`vla_ros.model.head.build_unet` (DownBlock2D / UpBlock2D, a cross-attention mid block)
and computes the same function on ``(B, C, T)`` tensors with those constants hoisted; a test
checks it against diffusers on random and trained weights (max abs difference ~1e-6). The
convolution weights are rearranged copies: :attr:`FastUNet.stale` tells when the UNet's
parameters changed in place since, and the caller rebuilds. Layouts it does not know raise
:class:`UnsupportedUNet`, and the caller keeps diffusers.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vla_ros.model.fast.cpu_graph import param_versions

__all__ = ["FastUNet", "UnsupportedUNet"]


class UnsupportedUNet(ValueError):
    """The UNet's layout is not one the lean executor implements (the caller falls back)."""


class _Conv:
    """A (k, k) Conv2d with padding k//2 (or a 1x1) applied to width-1 input, as two matmuls.

    Width 1 + zero padding: only the middle kernel column ever meets data, so the convolution
    is 1-D. It runs as ``x (B, Cin, T) @ S (T, k*T_out)``, a constant 0/1 matrix that gathers
    the input under each kernel tap (zero padding, the stride and an optional nearest upsampling
    folded in), then ``[taps] (B, T_out, Cin*k) @ W^T (Cin*k, Cout)``. Two matrix products
    replace PyTorch's CPU convolution (its slow generic path for such thin inputs) and the
    pad / unfold / copy that gathering the taps costs otherwise: on the CPU each of those small
    operators costs about as much as a product (measured in docs/results.md, "Halving the CPU
    latency"). The output is a transposed view, time-major in memory (the orientation MKL
    multiplies fastest on this project's CPU).
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        kh, kw = conv.kernel_size
        if conv.dilation != (1, 1) or conv.groups != 1 or kh != kw or kh % 2 == 0 \
                or conv.padding != (kh // 2, kw // 2):
            raise UnsupportedUNet(f"convolution {conv}")
        self.k, self.stride = kh, int(conv.stride[0])
        w = conv.weight.detach()[:, :, :, kw // 2]  # (Cout, Cin, k)
        self.cin = w.shape[1]
        self.wt = w.reshape(w.shape[0], -1).t().contiguous()  # (Cin*k, Cout), channel-major like the taps
        self.b = None if conv.bias is None else conv.bias.detach().clone()  # (Cout,)
        self._gathers: dict[tuple[int, int], torch.Tensor] = {}

    def out_length(self, length: int) -> int:
        return (length + 2 * (self.k // 2) - self.k) // self.stride + 1

    def gather(self, length: int, upsample_to: int | None = None) -> torch.Tensor:
        """The 0/1 matrix (T, k*T_out) that takes x (.., T) to its taps (.., k, T_out), after a
        nearest upsampling to ``upsample_to`` if given (PyTorch's index: floor(i * T / T_up))."""
        key = (length, upsample_to or length)
        if key not in self._gathers:
            t_in, t_up = key
            src = [min(int(i * t_in / t_up), t_in - 1) for i in range(t_up)]  # upsampled index -> input
            t_out, p = self.out_length(t_up), self.k // 2
            g = torch.zeros(t_in, self.k * t_out, dtype=self.wt.dtype, device=self.wt.device)
            for j in range(self.k):
                for t in range(t_out):
                    u = t * self.stride + j - p
                    if 0 <= u < t_up:
                        g[src[u], j * t_out + t] = 1.0
            self._gathers[key] = g
        return self._gathers[key]

    def __call__(self, x: torch.Tensor, bias: torch.Tensor | None = None, upsample_to: int | None = None
                 ) -> torch.Tensor:
        """x (B, Cin, T) -> (B, Cout, T_out) (a transposed view); ``bias`` (Cout,) replaces the
        conv's own (a ResNet folds its time projection into it); ``upsample_to``: upsample x
        (nearest) to that length first."""
        b = self.b if bias is None else bias
        if self.k == 1 and self.stride == 1 and upsample_to is None:
            taps, t_out = x, int(x.shape[-1])  # a Python int also while tracing: graphs are per shape
        else:
            g = self.gather(int(x.shape[-1]), upsample_to)  # a constant of a traced graph
            t_out = g.shape[1] // self.k
            taps = torch.matmul(x, g).view(-1, self.cin * self.k, t_out)  # (B, Cin*k, T_out)
        # (B*T_out, Cin*k): a view for one sample (a copy for more), so one 2-D product follows
        # (sizes as Python ints: no shape queries in a traced graph)
        cols = taps.transpose(1, 2).reshape(-1, self.wt.shape[0])
        y = torch.mm(cols, self.wt) if b is None else torch.addmm(b, cols, self.wt)  # (B*T_out, Cout)
        return y.view(-1, t_out, self.wt.shape[1]).transpose(1, 2)


class _Resnet:
    def __init__(self, r) -> None:
        if r.time_embedding_norm != "default" or r.up or r.down or r.output_scale_factor != 1.0 \
                or getattr(r, "skip_time_act", False) or r.time_emb_proj is None:
            raise UnsupportedUNet("ResnetBlock2D variant")
        self.n1, self.n2 = r.norm1, r.norm2
        self.c1, self.c2 = _Conv(r.conv1), _Conv(r.conv2)
        self.short = _Conv(r.conv_shortcut) if r.conv_shortcut is not None else None
        self.temb_proj = r.time_emb_proj

    def step_bias(self, emb: torch.Tensor) -> torch.Tensor:
        """silu(temb) (S, E) -> conv1's bias plus the time projection, (S, Cout)."""
        tb = self.temb_proj(emb)
        return tb if self.c1.b is None else tb + self.c1.b

    def __call__(self, x: torch.Tensor, step_bias: torch.Tensor) -> torch.Tensor:
        """x (B, Cin, T); step_bias (Cout,) -> (B, Cout, T)"""
        h = F.silu(F.group_norm(x, self.n1.num_groups, self.n1.weight, self.n1.bias, self.n1.eps))
        h = self.c1(h, step_bias)
        h = F.silu(F.group_norm(h, self.n2.num_groups, self.n2.weight, self.n2.bias, self.n2.eps))
        h = self.c2(h)
        return (x if self.short is None else self.short(x)) + h


class _Attention:
    def __init__(self, a) -> None:
        if a.norm_cross is not None or a.group_norm is not None or a.spatial_norm is not None \
                or a.residual_connection or a.rescale_output_factor != 1.0 or a.to_q.bias is not None:
            raise UnsupportedUNet("Attention variant")
        self.heads = a.heads
        self.scale = a.scale
        self.q, self.k, self.v, self.out = a.to_q, a.to_k, a.to_v, a.to_out[0]

    def split(self, t: torch.Tensor) -> torch.Tensor:
        """(B, L, H*d) -> (B, H, L, d)"""
        b, n, c = t.shape
        return t.view(b, n, self.heads, c // self.heads).transpose(1, 2)

    def kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """context (B, N, cross_dim) -> keys, values (B, H, N, d)"""
        return self.split(F.linear(context, self.k.weight)), self.split(F.linear(context, self.v.weight))

    def __call__(self, x: torch.Tensor, k: torch.Tensor | None = None, v: torch.Tensor | None = None
                 ) -> torch.Tensor:
        """x (B, L, C) queries; k, v (B, H, N, d) or None for self-attention -> (B, L, C)"""
        if k is None:
            k, v = self.kv(x)
        q = self.split(F.linear(x, self.q.weight))
        o = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # (B, H, L, d)
        b, h, n, d = o.shape
        return F.linear(o.transpose(1, 2).reshape(b, n, h * d), self.out.weight, self.out.bias)


class _Transformer:
    """Transformer2DModel (conv projections) with BasicTransformerBlocks (layer norm, GEGLU)."""

    def __init__(self, t) -> None:
        if t.use_linear_projection or not t.is_input_continuous:
            raise UnsupportedUNet("Transformer2DModel variant")
        self.norm = t.norm
        self.proj_in = _Conv(t.proj_in)
        self.proj_out = _Conv(t.proj_out)
        self.blocks = []
        for b in t.transformer_blocks:
            if b.norm_type != "layer_norm" or b.only_cross_attention or b.pos_embed is not None \
                    or b.attn2 is None or type(b.ff.net[0]).__name__ != "GEGLU":
                raise UnsupportedUNet("BasicTransformerBlock variant")
            self.blocks.append((b.norm1, _Attention(b.attn1), b.norm2, _Attention(b.attn2), b.norm3,
                                b.ff.net[0].proj, b.ff.net[2]))

    def cross_kv(self, context: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [blk[3].kv(context) for blk in self.blocks]

    def __call__(self, x: torch.Tensor, kv: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """x (B, C, T) -> (B, C, T)"""
        h = F.group_norm(x, self.norm.num_groups, self.norm.weight, self.norm.bias, self.norm.eps)
        h = self.proj_in(h).transpose(1, 2)  # (B, T, C)
        for (n1, a1, n2, a2, n3, geglu, ff_out), (k, v) in zip(self.blocks, kv):
            h = a1(F.layer_norm(h, n1.normalized_shape, n1.weight, n1.bias, n1.eps)) + h
            h = a2(F.layer_norm(h, n2.normalized_shape, n2.weight, n2.bias, n2.eps), k, v) + h
            g = F.linear(F.layer_norm(h, n3.normalized_shape, n3.weight, n3.bias, n3.eps), geglu.weight, geglu.bias)
            g, gate = g.chunk(2, dim=-1)
            h = F.linear(g * F.gelu(gate), ff_out.weight, ff_out.bias) + h
        return self.proj_out(h.transpose(1, 2)) + x


def _levels(blocks, side: str, block_type: str, resampler: Callable[[nn.Module], _Conv | None]
            ) -> list[tuple[list[_Resnet], _Conv | None]]:
    """Per down (or up) block: its ResNets and its resampling convolution (None at the last level)."""
    levels = []
    for blk in blocks:
        if type(blk).__name__ != block_type:
            raise UnsupportedUNet(f"{side} block {type(blk).__name__}")
        rs = resampler(blk)
        levels.append(([_Resnet(r) for r in blk.resnets], rs))
    return levels


def _downsampler(blk: nn.Module) -> _Conv | None:
    if blk.downsamplers is None:
        return None
    d = blk.downsamplers[0]
    if getattr(d, "norm", None) is not None or not isinstance(d.conv, nn.Conv2d):
        raise UnsupportedUNet("Downsample2D variant")
    return _Conv(d.conv)


def _upsampler(blk: nn.Module) -> _Conv | None:
    if blk.upsamplers is None:
        return None
    u = blk.upsamplers[0]
    if u.use_conv_transpose or not u.interpolate or getattr(u, "norm", None) is not None or u.conv is None:
        raise UnsupportedUNet("Upsample2D variant")
    return _Conv(u.conv)


class FastUNet:
    """The head's UNet as a lean function of ``(x (B, C, T), step index, hoisted constants)``."""

    def __init__(self, unet) -> None:
        cfg = unet.config
        for name, want in (("center_input_sample", False), ("time_embedding_type", "positional"),
                           ("class_embed_type", None), ("addition_embed_type", None),
                           ("encoder_hid_dim", None), ("time_cond_proj_dim", None)):
            if cfg.get(name, want) != want:
                raise UnsupportedUNet(f"UNet config {name}={cfg.get(name)!r}")
        if unet.time_embedding.cond_proj is not None or unet.time_embedding.post_act is not None \
                or unet.time_embed_act is not None:
            raise UnsupportedUNet("time embedding variant")
        self.unet = unet
        self.conv_in = _Conv(unet.conv_in)
        self.down = _levels(unet.down_blocks, "down", "DownBlock2D", _downsampler)
        mid = unet.mid_block
        if type(mid).__name__ != "UNetMidBlock2DCrossAttn" or len(mid.attentions) != 1:
            raise UnsupportedUNet(f"mid block {type(mid).__name__}")
        self.mid_res = [_Resnet(r) for r in mid.resnets]
        self.mid_attn = _Transformer(mid.attentions[0])
        self.up = _levels(unet.up_blocks, "up", "UpBlock2D", _upsampler)
        self.norm_out = unet.conv_norm_out
        self.conv_out = _Conv(unet.conv_out)
        self.resnets = [r for rs, _ in self.down for r in rs] + self.mid_res + [r for rs, _ in self.up for r in rs]
        self._params = list(unet.parameters())
        self._versions = param_versions(self._params)

    @property
    def stale(self) -> bool:
        """True once the UNet's weights changed in place (the matmul weights are copies)."""
        return param_versions(self._params) != self._versions

    # -- constants hoisted out of the loop ------------------------------------------------------
    def time_biases(self, timesteps: torch.Tensor) -> list[torch.Tensor]:
        """timesteps (S,) -> per ResNet block, ``conv1.bias + time_emb_proj(silu(temb))`` (S, Cout)."""
        u = self.unet
        emb = u.time_proj(timesteps).to(dtype=u.time_embedding.linear_1.weight.dtype)  # (S, C0)
        emb = F.silu(u.time_embedding(emb))  # (S, 4*C0); each ResNet applies silu first
        return [r.step_bias(emb) for r in self.resnets]

    def cross_kv(self, context: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """context (B, N, cross_dim) projected condition tokens -> keys/values per attention block."""
        return self.mid_attn.cross_kv(context)

    # -- one UNet call -----------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor, tb: list[torch.Tensor], kv: list) -> torch.Tensor:
        """x (B, C_in, T) noisy sample; tb: this step's row of :meth:`time_biases` ((Cout,) each);
        kv: :meth:`cross_kv` -> the model output (B, C_out, T)."""
        h = self.conv_in(x)
        skips = [h]
        i = 0
        for resnets, ds in self.down:
            for r in resnets:
                h = r(h, tb[i])
                i += 1
                skips.append(h)
            if ds is not None:
                h = ds(h)
                skips.append(h)
        h = self.mid_res[0](h, tb[i])
        i += 1
        h = self.mid_attn(h, kv)
        for r in self.mid_res[1:]:
            h = r(h, tb[i])
            i += 1
        for resnets, us in self.up:
            for r in resnets:
                h = r(torch.cat([h, skips.pop()], dim=1), tb[i])
                i += 1
            if us is not None:
                # diffusers upsamples (nearest) to the size of the next skip (width 1 stays 1)
                h = us(h, upsample_to=int(skips[-1].shape[-1]))
        n = self.norm_out
        h = F.silu(F.group_norm(h, n.num_groups, n.weight, n.bias, n.eps))
        return self.conv_out(h)
