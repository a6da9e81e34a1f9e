"""Where the things of a random world go: the goto target, the other cones and the obstacles, placed
around the robot's start and off the expert's path (one obstacle sometimes right on it).

Every draw comes from the world's generator in a fixed order: the same seed gives the same layout.
"""

from __future__ import annotations

import math

import numpy as np

from .config import WorldConfig
from .layout import TARGET_COLOURS, Cone, Layout, Obstacle

__all__ = ["Placer"]


class Placer:
    """Places objects into ``layout`` for a robot starting at ``start`` (x, y, yaw, ...)."""

    def __init__(self, rng: np.random.Generator, cfg: WorldConfig, layout: Layout, start: np.ndarray) -> None:
        self.rng, self.cfg, self.layout = rng, cfg, layout
        self.half = cfg.arena_size / 2
        self.sx, self.sy, self.syaw = start[:3]
        self.path_xy: np.ndarray | None = None  # the expert's nominal path, once known

    # -- tests and draws -----------------------------------------------------------------------
    def inside(self, p, margin=0.5) -> bool:
        return abs(p[0]) <= self.half - margin and abs(p[1]) <= self.half - margin

    def ahead_point(self, dmin, dmax, bearing) -> np.ndarray:
        """A point ``dmin``..``dmax`` m from the start at ``bearing`` from its heading."""
        d = self.rng.uniform(dmin, dmax)
        b = self.syaw + bearing
        return np.array([self.sx + d * math.cos(b), self.sy + d * math.sin(b)])

    def anywhere(self) -> np.ndarray:
        return self.rng.uniform(-self.half + 0.5, self.half - 0.5, size=2)

    def from_start(self, p) -> float:
        return math.hypot(p[0] - self.sx, p[1] - self.sy)

    def path_gap(self, p) -> float:
        """Distance from ``p`` to the expert's path."""
        return float(np.min(np.hypot(self.path_xy[:, 0] - p[0], self.path_xy[:, 1] - p[1])))

    def free(self, p, radius, others_gap) -> bool:
        """No cone or obstacle within ``radius`` + its own radius + ``others_gap`` of ``p``."""
        for o in self.layout.cones + self.layout.obstacles:
            rr = o.radius if isinstance(o, Cone) else o.bounding_radius
            if math.hypot(o.x - p[0], o.y - p[1]) < radius + rr + others_gap:
                return False
        return True

    def random_obstacle(self, p) -> Obstacle:
        rng = self.rng
        if rng.random() < 0.5:
            return Obstacle("box", float(p[0]), float(p[1]), size=float(rng.uniform(0.2, 0.35)),
                            height=float(rng.uniform(0.4, 0.8)), yaw=float(rng.uniform(-math.pi / 2, math.pi / 2)))
        return Obstacle("barrel", float(p[0]), float(p[1]), size=float(rng.uniform(0.2, 0.3)),
                        height=float(rng.uniform(0.6, 0.9)))

    # -- placing -------------------------------------------------------------------------------
    def place_target(self, colour: str) -> None:
        """The goto target (ahead-ish, sometimes off to the side); placed before the path is known."""
        rng = self.rng
        for _ in range(100):
            if rng.random() < 0.7:
                bearing = rng.uniform(-0.6, 0.6)
            else:
                bearing = rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.7)
            p = self.ahead_point(1.8, 4.5, bearing)
            if self.inside(p, 0.6):
                break
        self.layout.cones.append(Cone(colour, float(p[0]), float(p[1])))

    def place_cones(self, target: str | None) -> None:
        """One cone of each other target colour plus a few distractors, off the expert's path."""
        cfg, rng = self.cfg, self.rng
        colours = [c for c in TARGET_COLOURS if c != target]
        distractors = int(rng.integers(0, cfg.num_distractor_cones + 1))
        colours += [str(rng.choice(["yellow", "purple"])) for _ in range(distractors)]
        for colour in colours:
            placed = self._cone_spot()
            if placed is not None:
                self.layout.cones.append(Cone(colour, float(placed[0]), float(placed[1])))

    def _cone_spot(self) -> np.ndarray | None:
        cfg, rng = self.cfg, self.rng
        for attempt in range(200):
            if attempt < 150 and rng.random() < 0.6:
                p = self.ahead_point(2.0, 6.0, rng.uniform(-0.8, 0.8))
            else:
                p = self.anywhere()
            if (self.inside(p) and self.path_gap(p) > 0.18 + cfg.robot_radius + 0.35
                    and self.from_start(p) > 1.0 and self.free(p, 0.18, 0.6)):
                return p
        for _ in range(1000):  # crowded: anywhere free inside the arena
            p = self.anywhere()
            if self.free(p, 0.18, 0.3) and self.from_start(p) > 0.8:
                return p
        return None

    def place_obstacles(self) -> None:
        """``num_obstacles`` obstacles off the expert's path (each given up after 200 tries)."""
        cfg, rng = self.cfg, self.rng
        for _ in range(cfg.num_obstacles):
            for attempt in range(200):
                p = self.ahead_point(2.5, 6.0, rng.uniform(-0.9, 0.9)) if rng.random() < 0.5 else self.anywhere()
                ob = self.random_obstacle(p)
                gap = ob.bounding_radius + cfg.robot_radius + cfg.safety_margin + 0.25
                if (self.inside(p) and self.path_gap(p) > gap
                        and self.from_start(p) > 1.5 and self.free(p, ob.bounding_radius, 0.5)):
                    self.layout.obstacles.append(ob)
                    break

    def place_blocking(self) -> bool:
        """One obstacle right on the expert's path, 1.5-3.5 m along it; True when one was placed."""
        rng, path_xy = self.rng, self.path_xy
        seg = np.hypot(np.diff(path_xy[:, 0]), np.diff(path_xy[:, 1]))
        arc = np.concatenate([[0.0], np.cumsum(seg)])
        if arc[-1] <= 1.8:
            return False
        for _ in range(20):
            s_at = rng.uniform(1.5, min(3.5, arc[-1]))
            i = int(np.searchsorted(arc, s_at))
            i = min(i, len(path_xy) - 1)
            p = path_xy[i] + rng.normal(0, 0.12, size=2)
            ob = self.random_obstacle(p)
            if self.inside(p, 0.3) and self.free(p, ob.bounding_radius, 0.35):
                self.layout.obstacles.append(ob)
                return True
        return False
