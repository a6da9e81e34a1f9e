"""What stands in the world: the lane, coloured cones and obstacles (plain data + geometry)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .geometry import Lane

__all__ = ["CONE_COLOURS", "TARGET_COLOURS", "OBSTACLE_COLOURS", "Cone", "Obstacle", "Layout"]

#: RGB of every cone colour. red/green/blue are goto targets (exactly one cone each per
#: episode); yellow/purple are distractors.
CONE_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 30, 30),
    "green": (20, 215, 60),
    "blue": (35, 70, 235),
    "yellow": (240, 215, 30),
    "purple": (160, 60, 210),
}
TARGET_COLOURS = ("red", "green", "blue")
OBSTACLE_COLOURS: dict[str, tuple[int, int, int]] = {
    "box": (150, 150, 155),  # grey concrete block
    "barrel": (125, 80, 45),  # brown barrel
}


@dataclass
class Cone:
    colour: str
    x: float
    y: float
    radius: float = 0.18  # base radius (m)
    height: float = 0.5

    @property
    def rgb(self) -> tuple[int, int, int]:
        return CONE_COLOURS[self.colour]

    @property
    def xy(self) -> np.ndarray:
        return np.array([self.x, self.y])

    def to_dict(self) -> dict:
        return {"colour": self.colour, "x": float(self.x), "y": float(self.y),
                "radius": self.radius, "height": self.height}


@dataclass
class Obstacle:
    shape: str  # "box" (square block, half side ``size``, rotated by ``yaw``) or "barrel" (radius ``size``)
    x: float
    y: float
    size: float
    height: float
    yaw: float = 0.0

    @property
    def rgb(self) -> tuple[int, int, int]:
        return OBSTACLE_COLOURS[self.shape]

    @property
    def xy(self) -> np.ndarray:
        return np.array([self.x, self.y])

    @property
    def bounding_radius(self) -> float:
        return self.size * (math.sqrt(2.0) if self.shape == "box" else 1.0)

    def corners(self) -> np.ndarray:
        """(4, 2) world corners of a box, counter-clockwise."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        loc = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64) * self.size
        return np.stack([self.x + c * loc[:, 0] - s * loc[:, 1], self.y + s * loc[:, 0] + c * loc[:, 1]], 1)

    def surface_distance(self, xy) -> np.ndarray:
        """Signed distance from points ``(..., 2)`` to the obstacle's footprint (< 0 inside)."""
        xy = np.asarray(xy, dtype=np.float64)
        dx, dy = xy[..., 0] - self.x, xy[..., 1] - self.y
        if self.shape == "barrel":
            return np.hypot(dx, dy) - self.size
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        qx = np.abs(c * dx + s * dy) - self.size
        qy = np.abs(-s * dx + c * dy) - self.size
        outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
        inside = np.minimum(np.maximum(qx, qy), 0)
        return outside + inside

    def to_dict(self) -> dict:
        return {"shape": self.shape, "x": float(self.x), "y": float(self.y), "size": float(self.size),
                "height": float(self.height), "yaw": float(self.yaw)}


@dataclass
class Layout:
    """The static world of one episode."""

    lane: Lane
    cones: list[Cone] = field(default_factory=list)
    obstacles: list[Obstacle] = field(default_factory=list)
    texture_seed: int = 0  # seeds the grass/asphalt texture noise

    def cone(self, colour: str) -> Cone:
        """The (first) cone of ``colour``."""
        for c in self.cones:
            if c.colour == colour:
                return c
        raise KeyError(f"no {colour} cone in this layout (have {[c.colour for c in self.cones]})")

    def obstacle_distance(self, xy) -> np.ndarray:
        """Distance from points ``(..., 2)`` to the nearest obstacle surface (inf without obstacles)."""
        xy = np.asarray(xy, dtype=np.float64)
        out = np.full(xy.shape[:-1], np.inf)
        for ob in self.obstacles:
            out = np.minimum(out, ob.surface_distance(xy))
        return out

    def to_dict(self) -> dict:
        return {"lane": self.lane.to_dict(), "cones": [c.to_dict() for c in self.cones],
                "obstacles": [o.to_dict() for o in self.obstacles], "texture_seed": self.texture_seed}

    @classmethod
    def from_dict(cls, d: dict) -> "Layout":
        return cls(lane=Lane.from_dict(d["lane"]), cones=[Cone(**c) for c in d["cones"]],
                   obstacles=[Obstacle(**o) for o in d["obstacles"]], texture_seed=int(d.get("texture_seed", 0)))
