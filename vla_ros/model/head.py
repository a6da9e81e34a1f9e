"""The diffusion action head of the user's design document.

A diffusers ``UNet2DConditionModel`` denoises a trajectory laid out as a ``(B, action_dim,
horizon, 1)`` "image"; the condition tokens of width ``cond_dim`` (2048) are projected to the
cross-attention width (256) by ``cond_proj`` and attended to in the UNet's mid block.  With the
seed's settings the parameter counts equal the seed's table exactly:

=================  ===========  ===========
                   before       after
=================  ===========  ===========
UNet               3,990,403    1,018,307
head (UNet+proj)   4,514,947    1,542,851
=================  ===========  ===========

Sampling: DDIM (eta 0, deterministic given the initial noise) or DDPM (ancestral, all
training steps); the number of inference steps is a run-time argument, no retraining.
Trajectories are normalised to [-1, 1] per waypoint and dimension by a :class:`RangeNormalizer`
whose statistics are buffers, so they travel inside the checkpoint.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from torch import nn

from vla_ros.config import ModelConfig


class RangeNormalizer(nn.Module):
    """Maps trajectories ``(B, T, D)`` to [-1, 1] with per-(waypoint, dim) min/max buffers."""

    def __init__(self, horizon: int, action_dim: int) -> None:
        super().__init__()
        self.register_buffer("low", -torch.ones(horizon, action_dim))
        self.register_buffer("high", torch.ones(horizon, action_dim))
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def fit(self, trajectories: torch.Tensor, margin: float = 0.05) -> None:
        """trajectories: (N, T, D). Leaves a small margin so the data stays inside (-1, 1)."""
        low = trajectories.amin(0)
        high = trajectories.amax(0)
        span = (high - low).clamp_min(1e-3)  # a constant dimension (e.g. x at k=0 for stop)
        self.low.copy_(low - margin * span)
        self.high.copy_(high + margin * span)
        self.fitted.fill_(True)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return 2.0 * (x - self.low) / (self.high - self.low) - 1.0

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x + 1.0) * 0.5 * (self.high - self.low) + self.low


def build_unet(cfg: ModelConfig) -> UNet2DConditionModel:
    """The seed's UNet: two down/up blocks, cross-attention only in the mid block."""
    n = len(cfg.unet_channels)
    return UNet2DConditionModel(
        sample_size=(cfg.trajectory_length, 1),
        in_channels=cfg.action_dim,
        out_channels=cfg.action_dim,
        down_block_types=("DownBlock2D",) * n,
        up_block_types=("UpBlock2D",) * n,
        mid_block_type="UNetMidBlock2DCrossAttn",
        block_out_channels=tuple(cfg.unet_channels),
        layers_per_block=cfg.layers_per_block,
        cross_attention_dim=cfg.cross_attention_dim,
        attention_head_dim=cfg.attention_head_dim,
        norm_num_groups=cfg.norm_num_groups,
    )


def build_scheduler(cfg: ModelConfig, use_ddim: bool) -> DDIMScheduler | DDPMScheduler:
    common = dict(
        num_train_timesteps=cfg.num_timesteps,
        beta_schedule=cfg.beta_schedule,
        clip_sample=cfg.clip_sample,
        prediction_type=cfg.prediction_type,
    )
    if use_ddim:
        # "trailing" spacing starts sampling at t = T-1 (better with few steps than "leading").
        return DDIMScheduler(**common, timestep_spacing="trailing", set_alpha_to_one=True)
    return DDPMScheduler(**common, variance_type="fixed_small")


class DiffusionActionHead(nn.Module):
    """Denoises a ``(B, horizon, action_dim)`` trajectory conditioned on ``(B, N, cond_dim)`` tokens."""

    def __init__(self, config: ModelConfig | None = None, **overrides) -> None:
        super().__init__()
        if config is None:
            config = ModelConfig(**overrides)
        elif overrides:
            import dataclasses

            config = dataclasses.replace(config, **overrides)
        self.config = config
        self.unet = build_unet(config)
        self.cond_proj = nn.Linear(config.cond_dim, config.cross_attention_dim)
        self.normalizer = RangeNormalizer(config.trajectory_length, config.action_dim)
        self.num_inference_steps = config.num_inference_steps
        self.use_ddim = config.use_ddim
        self.train_scheduler = build_scheduler(config, use_ddim=False)  # q(x_t | x_0) for training

    # -- the seed's attributes --------------------------------------------------------
    @property
    def num_timesteps(self) -> int:
        return self.config.num_timesteps

    # -- layout helpers ---------------------------------------------------------------
    @staticmethod
    def to_unet(traj: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, D, T, 1)"""
        return traj.transpose(1, 2).unsqueeze(-1)

    @staticmethod
    def from_unet(x: torch.Tensor) -> torch.Tensor:
        """(B, D, T, 1) -> (B, T, D)"""
        return x.squeeze(-1).transpose(1, 2)

    def denoise(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """One UNet call. x: (B, D, T, 1) noisy sample; t: (B,) or scalar; context: (B, N, cross_dim)."""
        return self.unet(x, t, encoder_hidden_states=context, return_dict=False)[0]

    # -- training -----------------------------------------------------------------------
    def draw_noise(self, traj: torch.Tensor, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise (B, D, T, 1) and timesteps (B,) for a training batch of trajectories (B, T, D).

        A seeded generator draws on its own device (validation's is a CPU one, so its losses are
        the same figures on any device); an unseeded draw happens where ``traj`` is.
        """
        b, horizon, dim = traj.shape
        where = generator.device if generator is not None else traj.device
        noise = torch.randn((b, dim, horizon, 1), generator=generator, device=where, dtype=traj.dtype).to(traj.device)
        t = torch.randint(0, self.config.num_timesteps, (b,), generator=generator, device=where).to(traj.device)
        return noise, t

    def loss(self, cond: torch.Tensor, traj: torch.Tensor, generator: torch.Generator | None = None,
             noise: torch.Tensor | None = None, timesteps: torch.Tensor | None = None) -> torch.Tensor:
        """Denoising loss. cond: (B, N, cond_dim); traj: (B, T, D) in robot-frame units; ``noise`` /
        ``timesteps``: given (:meth:`draw_noise`, e.g. a data-parallel process's share of the global
        batch's), else drawn here."""
        x0 = self.to_unet(self.normalizer.normalize(traj))  # (B, D, T, 1) in [-1, 1]
        noise, t = (noise, timesteps) if noise is not None else self.draw_noise(traj, generator)
        xt = self.train_scheduler.add_noise(x0, noise, t)
        pred = self.denoise(xt, t, self.cond_proj(cond))
        if self.config.prediction_type == "epsilon":
            target = noise
        elif self.config.prediction_type == "sample":
            target = x0
        else:
            target = self.train_scheduler.get_velocity(x0, noise, t)
        return torch.nn.functional.mse_loss(pred, target)

    # -- sampling -----------------------------------------------------------------------
    def initial_noise(self, batch: int, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> torch.Tensor:
        """x_T: (B, D, T, 1) standard normal, drawn on the CPU so a seed gives the same noise on any device."""
        cfg = self.config
        shape = (batch, cfg.action_dim, cfg.trajectory_length, 1)
        noise = torch.randn(shape, generator=generator, dtype=torch.float32)
        return noise.to(device or self.cond_proj.weight.device)

    def seeded_noise(self, batch: int, seed: int, samples: int = 1,
                     device: torch.device | str | None = None) -> torch.Tensor:
        """x_T (batch * samples, D, T, 1): the same ``samples`` draws from ``seed`` for every row
        (row b, draw j at b * samples + j), so a row's result does not depend on its batch."""
        draws = self.initial_noise(samples, torch.Generator().manual_seed(seed), device)
        return draws.repeat(batch, 1, 1, 1)

    @torch.inference_mode()
    def sample(
        self,
        cond: torch.Tensor,
        generator: torch.Generator | None = None,
        num_inference_steps: int | None = None,
        use_ddim: bool | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The plain loop: a diffusers UNet call per step. cond: (B, N, cond_dim) -> trajectory (B, T, D).

        ``num_inference_steps`` and ``use_ddim`` default to the head's settings. DDIM runs the one
        DDIM loop (:class:`vla_ros.model.fast.ddim.DDIMSampler` with diffusers' UNet, equal to
        diffusers' ``DDIMScheduler``); DDPM runs diffusers' scheduler over all training steps
        (ancestral sampling needs them).
        """
        use_ddim = self.use_ddim if use_ddim is None else use_ddim
        steps = num_inference_steps or self.num_inference_steps
        if use_ddim and not 1 <= steps <= self.config.num_timesteps:
            raise ValueError(
                f"num_inference_steps={steps} must be within [1, num_timesteps={self.config.num_timesteps}]"
            )
        context = self.cond_proj(cond)  # (B, N, cross_dim)
        x = noise if noise is not None else self.initial_noise(cond.shape[0], generator, cond.device)
        if use_ddim:
            from vla_ros.model.fast.ddim import DDIMSampler  # it builds on this module

            x = DDIMSampler(self, steps, lean=False)(context, x)
        else:
            scheduler = build_scheduler(self.config, use_ddim=False)
            scheduler.set_timesteps(self.config.num_timesteps)
            for t in scheduler.timesteps:
                eps = self.denoise(x, t.to(x.device), context)
                x = scheduler.step(eps, t, x, generator=generator).prev_sample
        return self.normalizer.unnormalize(self.from_unet(x))

    def parameter_counts(self) -> dict[str, int]:
        unet = sum(p.numel() for p in self.unet.parameters())
        proj = sum(p.numel() for p in self.cond_proj.parameters())
        return {"unet": unet, "cond_proj": proj, "total": unet + proj}
