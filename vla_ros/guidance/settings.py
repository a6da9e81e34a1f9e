"""The guidance's settings and their one parser (no torch: the node's config checks them early)."""

from __future__ import annotations

from vla_ros.errors import InputError

__all__ = ["GUIDANCE_SETTINGS", "parse_settings"]

#: name -> what it is; every setting is a float
GUIDANCE_SETTINGS = {
    "max_turn": "most a plan is turned toward the target, rad (default 0.785 = 45 deg)",
    "stop_distance": "plans stop this far from the target, m (default 0.5)",
    "robot_radius": "the robot's radius for the scene guidance's clearance, m (default: the checkpoint's world)",
    "safety_margin": "gap kept to mapped obstacles, m (default: the checkpoint's world)",
    "self_radius": "mapped obstacle cells this near the robot are the robot itself, m (default 0.45)",
}


def parse_settings(text: str | dict | None, mode: str) -> dict[str, float]:
    """``"max_turn=0.6,stop_distance=0.4"`` (or a dict) for guidance ``mode`` -> {name: value};
    InputError names the known settings on an unknown name or a value that is not a number, and
    refuses settings with guidance ``"none"`` (there is nothing they would set)."""
    if not text:
        return {}
    items = text.items() if isinstance(text, dict) else (
        part.split("=", 1) if "=" in part else (part, None) for part in str(text).split(",") if part.strip())
    out = {}
    for name, value in items:
        name = str(name).strip()
        if name not in GUIDANCE_SETTINGS:
            known = "; ".join(f"{k}: {v}" for k, v in GUIDANCE_SETTINGS.items())
            raise InputError(f"guidance setting {name!r} is unknown; known: {known}")
        try:
            out[name] = float(str(value).strip())
        except ValueError:
            raise InputError(f"guidance setting {name}={value!r}: expected a number, e.g. {name}=0.5") from None
    if out and mode == "none":
        raise InputError(f"guidance settings {sorted(out)} given with guidance 'none'; choose guidance 'target' "
                         "or 'scene', or drop the settings")
    return out
