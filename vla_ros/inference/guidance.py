"""The API's guidance set-up: check that the checkpoint has what the mode steers by, build it.

The modes themselves (what ``"target"`` and ``"scene"`` do to a trajectory) live in
:mod:`vla_ros.model.guidance`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vla_ros import paths
from vla_ros.errors import InputError
from vla_ros.model.guidance import TargetGuidance
from vla_ros.sim.config import WorldConfig

__all__ = ["GUIDANCE_SETTINGS", "build_guidance"]

GUIDANCE_SETTINGS = ("max_turn", "stop_distance", "robot_radius", "safety_margin", "self_radius")


def build_guidance(model, payload: dict, checkpoint: Path, guidance: str,
                   guidance_settings: dict | None) -> TargetGuidance | None:
    """The guidance of mode ``guidance`` for ``model`` (None for ``"none"``); the robot size and
    the top view's half-side come from the checkpoint's world, ``guidance_settings`` override."""
    if guidance not in ("target", "scene"):
        return None
    _check_model_has(model, checkpoint, guidance)
    world = (payload.get("meta") or {}).get("world_config") or {}
    defaults = WorldConfig()
    half = float(world.get("arena_size", defaults.arena_size)) / 2  # the top view's half-side
    settings = {"robot_radius": float(world.get("robot_radius", defaults.robot_radius)),
                "safety_margin": float(world.get("safety_margin", defaults.safety_margin))}
    settings.update(guidance_settings or {})
    unknown = set(settings) - set(GUIDANCE_SETTINGS)
    if unknown:
        raise InputError(f"guidance_settings: unknown {sorted(unknown)}; known: max_turn (rad), "
                         "stop_distance, robot_radius, safety_margin, self_radius (m)")
    try:
        with torch.inference_mode():
            return TargetGuidance.for_model(model, half, **settings)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _check_model_has(model, checkpoint: Path, guidance: str) -> None:
    """InputError unless the model has the locator (and for ``"scene"`` the scene map)."""
    if model.locator is None:
        raise InputError(f"guidance={guidance!r} steers toward the target the model's locator finds; this "
                         f"checkpoint ({checkpoint}) has none. Use one that has: the packaged "
                         f"{paths.default_checkpoint().with_name('locator.pth')}, or one trained with "
                         "vla train --init CKPT --target-locator on")
    if guidance == "scene" and model.scene_map is None:
        raise InputError("guidance='scene' steers around the obstacles and along the road that the model's "
                         f"scene map finds; this checkpoint ({checkpoint}) has none. Use one that has: "
                         f"the packaged {paths.default_checkpoint().with_name('scene.pth')}, or add one "
                         "with vla scene-map --init CKPT --data DIR --out FILE")
