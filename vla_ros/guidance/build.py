"""The guidance object: build it for a checkpoint (checked), apply it to sampled trajectories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_ros import paths
from vla_ros.config import GUIDANCE_MODES
from vla_ros.errors import InputError

from .settings import parse_settings
from .steer import TargetGuidance

__all__ = ["Guidance", "build_guidance"]


class Guidance:
    """Mode ``"target"`` or ``"scene"`` for one model: ``apply`` steers a batch of sampled trajectories."""

    def __init__(self, mode: str, model, steer: TargetGuidance) -> None:
        self.mode, self.model, self.steer = mode, model, steer

    def apply(self, traj: torch.Tensor, located, cmd: torch.Tensor, top: Any) -> torch.Tensor:
        """traj (B, T, 3) sampled, the locator's ``Located``, cmd (B, d) encodings, the newest top
        frames (B, H, W, 3) uint8 -> (B, T, 3) guided."""
        if self.mode == "scene":
            x = self.model.preprocess(np.stack(top) if isinstance(top, list) else top)
            probs = torch.sigmoid(self.model.scene_map(x.to(cmd.device, cmd.dtype)).float())  # (B, 2, R, R)
            return self.steer.scene(traj, located, cmd, probs)
        return self.steer(traj, located.relative, cmd)


def build_guidance(model, payload: dict, checkpoint: Path, mode: str,
                   settings: str | dict | None = None) -> Guidance | None:
    """The guidance of ``mode`` for ``model`` (None for ``"none"``); the robot size and the top
    view's half-side come from the checkpoint's world, ``settings`` override (:func:`parse_settings`)."""
    from vla_ros.sim.config import WorldConfig

    if mode not in GUIDANCE_MODES:
        raise InputError(f"guidance={mode!r}: choose one of {GUIDANCE_MODES}")
    overrides = parse_settings(settings, mode)
    if mode == "none":
        return None
    _check_model_has(model, checkpoint, mode)
    world = (payload.get("meta") or {}).get("world_config") or {}
    defaults = WorldConfig()
    half = float(world.get("arena_size", defaults.arena_size)) / 2  # the top view's half-side
    values = {"robot_radius": float(world.get("robot_radius", defaults.robot_radius)),
              "safety_margin": float(world.get("safety_margin", defaults.safety_margin))} | overrides
    try:
        with torch.inference_mode():
            return Guidance(mode, model, TargetGuidance.for_model(model, half, **values))
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _check_model_has(model, checkpoint: Path, mode: str) -> None:
    """InputError unless the model has the locator (and for ``"scene"`` the scene map)."""
    if model.locator is None:
        raise InputError(f"guidance={mode!r} steers toward the target the model's locator finds; this "
                         f"checkpoint ({checkpoint}) has none. Use one that has: the packaged "
                         f"{paths.default_checkpoint().with_name('locator.pth')}, or one trained with "
                         "vla train --init CKPT --target-locator on")
    if mode == "scene" and model.scene_map is None:
        raise InputError("guidance='scene' steers around the obstacles and along the road that the model's "
                         f"scene map finds; this checkpoint ({checkpoint}) has none. Use one that has: "
                         f"the packaged {paths.default_checkpoint().with_name('scene.pth')}, or add one "
                         "with vla scene-map --init CKPT --data DIR --out FILE")
