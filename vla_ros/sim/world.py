"""``World``: one seeded episode world (lane, cones, obstacles, robot) with two cameras.

    world = World(WorldConfig())
    obs = world.reset(seed=3, kind="goto_red")     # dict: ego, top, state, stamp
    traj = world.expert_trajectory()               # (16, 3) robot frame
    world.step(v, omega)

Everything random comes from ``np.random.default_rng(seed)``: the same seed (and kind/split)
gives the same episode bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

from .commands import KINDS, kind_from_text, sample_command
from .config import WorldConfig
from .expert import plan, rollout, states_to_trajectory
from .geometry import make_lane, unicycle_step
from .layout import TARGET_COLOURS, Cone, Layout, Obstacle
from .render import EgoCamera, GroundTexture, TopCamera

__all__ = ["World"]


class World:
    """A seeded simulated world. Create once per config, ``reset`` per episode."""

    def __init__(self, config: WorldConfig | None = None):
        self.config = config or WorldConfig()
        self.ego_camera = EgoCamera(self.config)
        self.top_camera = TopCamera(self.config)
        self.layout: Layout | None = None
        self.texture: GroundTexture | None = None
        self.state = np.zeros(5)
        self.t = 0
        self.kind = ""
        self.text = ""
        self.seed: int | None = None
        self.info: dict = {}

    # ---------------------------------------------------------------------------------------
    # episode setup
    # ---------------------------------------------------------------------------------------
    def reset(self, seed: int, kind: str | None = None, split: str = "train", text: str | None = None,
              layout: Layout | None = None, state=None) -> dict:
        """Start a new episode and return the first observation.

        ``kind``/``text``: the command (random kind and a ``split`` phrasing unless given; a
        given ``text`` without ``kind`` is classified with ``kind_from_text``). ``layout`` and
        ``state`` override the random world / start pose (the rest is still seeded).
        """
        if kind is not None and kind not in KINDS:
            raise ValueError(f"unknown command kind {kind!r}; choose one of {list(KINDS)}")
        if kind is None and text is not None:
            kind = kind_from_text(text)
            if kind is None:
                raise ValueError(f"cannot tell the command kind of {text!r}; pass kind=")
        rng = np.random.default_rng(seed)
        kind, sampled_text = sample_command(rng, kind, split)
        self.kind, self.text = kind, text if text is not None else sampled_text
        self.seed = seed
        self.t = 0
        self.info = {"blocking_obstacle": False}
        if layout is None:
            layout, start = self._random_layout(rng, kind)
        else:
            start = self._random_start(rng, layout, kind)
        if state is not None:
            start = np.asarray(state, dtype=np.float64)[:5].copy()
        self.state = start
        self.set_layout(layout)
        return self.observe()

    def set_layout(self, layout: Layout) -> None:
        """Use ``layout`` (re-bakes the ground texture)."""
        self.layout = layout
        self.texture = GroundTexture(layout, self.config)
        self.top_camera._bg_key = None

    def _random_start(self, rng: np.random.Generator, layout: Layout, kind: str) -> np.ndarray:
        cfg = self.config
        inner = cfg.arena_size / 2 - 2.5
        lane = layout.lane
        on_lane = kind == "follow_lane" or rng.random() < 0.5
        if on_lane:
            ok = np.flatnonzero(np.all(np.abs(lane.points) <= inner, axis=1))
            if len(ok) == 0:
                ok = np.arange(len(lane.points))
            i = int(ok[rng.integers(len(ok))])
            lateral = rng.uniform(-0.6, 0.6) * lane.half_width
            tan = lane.tangents[i]
            pos = lane.points[i] + lateral * np.array([-tan[1], tan[0]])
            yaw = lane.headings[i] + (math.pi if rng.random() < 0.5 else 0.0) + float(np.clip(rng.normal(0, 0.2), -0.5, 0.5))
        else:
            pos = rng.uniform(-inner, inner, size=2)
            yaw = rng.uniform(-math.pi, math.pi)
        v0 = rng.uniform(0.2, cfg.cruise_speed) if kind != "stop" else rng.uniform(0.3, max(cfg.cruise_speed, 0.31))
        w0 = float(np.clip(rng.normal(0, 0.15), -cfg.max_yaw_rate, cfg.max_yaw_rate))
        yaw = (yaw + math.pi) % (2 * math.pi) - math.pi
        return np.array([pos[0], pos[1], yaw, v0, w0], dtype=np.float64)

    def _random_layout(self, rng: np.random.Generator, kind: str) -> tuple[Layout, np.ndarray]:
        cfg = self.config
        half = cfg.arena_size / 2
        lane = make_lane(rng, cfg)
        layout = Layout(lane=lane)
        start = self._random_start(rng, layout, kind)
        sx, sy, syaw = start[:3]

        def inside(p, margin=0.5):
            return abs(p[0]) <= half - margin and abs(p[1]) <= half - margin

        def ahead_point(dmin, dmax, bearing):
            d = rng.uniform(dmin, dmax)
            b = syaw + bearing
            return np.array([sx + d * math.cos(b), sy + d * math.sin(b)])

        # the goto target first (ahead-ish, sometimes off to the side), so the expert's nominal
        # path is known before placing everything else off that path
        target = kind[5:] if kind.startswith("goto_") else None
        if target is not None:
            for _ in range(100):
                if rng.random() < 0.7:
                    bearing = rng.uniform(-0.6, 0.6)
                else:
                    bearing = rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.7)
                p = ahead_point(1.8, 4.5, bearing)
                if inside(p, 0.6):
                    break
            layout.cones.append(Cone(target, float(p[0]), float(p[1])))
        steps = cfg.episode_steps + cfg.horizon * cfg.steps_per_waypoint
        path, _ = rollout(kind, start, layout, cfg, steps)
        path_xy = path[:, :2]

        def path_gap(p) -> float:
            return float(np.min(np.hypot(path_xy[:, 0] - p[0], path_xy[:, 1] - p[1])))

        def free(p, radius, others_gap) -> bool:
            for o in layout.cones + layout.obstacles:
                rr = o.radius if isinstance(o, Cone) else o.bounding_radius
                if math.hypot(o.x - p[0], o.y - p[1]) < radius + rr + others_gap:
                    return False
            return True

        # cones: one of each target colour plus a few distractors, off the expert's path
        colours = [c for c in TARGET_COLOURS if c != target]
        colours += [str(rng.choice(["yellow", "purple"])) for _ in range(int(rng.integers(0, cfg.num_distractor_cones + 1)))]
        for colour in colours:
            placed = None
            for attempt in range(200):
                if attempt < 150 and rng.random() < 0.6:
                    p = ahead_point(2.0, 6.0, rng.uniform(-0.8, 0.8))
                else:
                    p = rng.uniform(-half + 0.5, half - 0.5, size=2)
                if (inside(p) and path_gap(p) > 0.18 + cfg.robot_radius + 0.35
                        and math.hypot(p[0] - sx, p[1] - sy) > 1.0 and free(p, 0.18, 0.6)):
                    placed = p
                    break
            if placed is None:  # crowded: anywhere free inside the arena
                for _ in range(1000):
                    p = rng.uniform(-half + 0.5, half - 0.5, size=2)
                    if free(p, 0.18, 0.3) and math.hypot(p[0] - sx, p[1] - sy) > 0.8:
                        placed = p
                        break
            if placed is not None:
                layout.cones.append(Cone(colour, float(placed[0]), float(placed[1])))

        def random_obstacle(p) -> Obstacle:
            if rng.random() < 0.5:
                return Obstacle("box", float(p[0]), float(p[1]), size=float(rng.uniform(0.2, 0.35)),
                                height=float(rng.uniform(0.4, 0.8)), yaw=float(rng.uniform(-math.pi / 2, math.pi / 2)))
            return Obstacle("barrel", float(p[0]), float(p[1]), size=float(rng.uniform(0.2, 0.3)),
                            height=float(rng.uniform(0.6, 0.9)))

        for _ in range(cfg.num_obstacles):
            for attempt in range(200):
                p = ahead_point(2.5, 6.0, rng.uniform(-0.9, 0.9)) if rng.random() < 0.5 else \
                    rng.uniform(-half + 0.5, half - 0.5, size=2)
                ob = random_obstacle(p)
                if (inside(p) and path_gap(p) > ob.bounding_radius + cfg.robot_radius + cfg.safety_margin + 0.25
                        and math.hypot(p[0] - sx, p[1] - sy) > 1.5 and free(p, ob.bounding_radius, 0.5)):
                    layout.obstacles.append(ob)
                    break
        # sometimes one obstacle right on the expert's path: a goto expert drives around it
        # (world.expert_detour), the others must stop before it
        if kind != "stop" and rng.random() < cfg.blocking_obstacle_prob:
            seg = np.hypot(np.diff(path_xy[:, 0]), np.diff(path_xy[:, 1]))
            arc = np.concatenate([[0.0], np.cumsum(seg)])
            if arc[-1] > 1.8:
                for _ in range(20):
                    s_at = rng.uniform(1.5, min(3.5, arc[-1]))
                    i = int(np.searchsorted(arc, s_at))
                    i = min(i, len(path_xy) - 1)
                    p = path_xy[i] + rng.normal(0, 0.12, size=2)
                    ob = random_obstacle(p)
                    if inside(p, 0.3) and free(p, ob.bounding_radius, 0.35):
                        layout.obstacles.append(ob)
                        self.info["blocking_obstacle"] = True
                        break
        layout.texture_seed = int(rng.integers(0, 2**31 - 1))
        return layout, start

    # ---------------------------------------------------------------------------------------
    # stepping and sensing
    # ---------------------------------------------------------------------------------------
    @property
    def time(self) -> float:
        return self.t * self.config.sim_dt

    def step(self, v: float, omega: float) -> np.ndarray:
        """Apply command (v, omega) for one sim step (clipped to the limits); returns the new state."""
        self.state = unicycle_step(self.state, v, omega, self.config)
        self.t += 1
        return self.state

    def render_ego(self, state=None) -> np.ndarray:
        """Ego camera image (H, W, 3) uint8 at ``state`` (default: the robot's)."""
        return self.ego_camera.render(self.state if state is None else state, self.layout, self.texture)

    def render_top(self, state=None) -> np.ndarray:
        """Overhead camera image (H, W, 3) uint8 with the robot at ``state`` (default: the robot's)."""
        return self.top_camera.render(self.state if state is None else state, self.layout, self.texture)

    def observe(self) -> dict:
        return {"ego": self.render_ego(), "top": self.render_top(), "state": self.state.copy(), "stamp": self.time}

    def expert_plan(self, state=None):
        """``(states, commands, braked)`` of the expert over the horizon (see ``expert.plan``)."""
        return plan(self.kind, self.state if state is None else state, self.layout, self.config)

    def expert_trajectory(self, state=None) -> np.ndarray:
        """Ground-truth (horizon, 3) float32 robot-frame trajectory for the current command."""
        states, _, _ = self.expert_plan(state)
        return states_to_trajectory(states, self.config)

    # -- checks ------------------------------------------------------------------------------------
    def _xy(self, xy):
        return self.state[:2] if xy is None else np.asarray(xy, dtype=np.float64)

    def obstacle_clearance(self, xy=None) -> np.ndarray:
        """Gap between the robot's disc (centred at ``xy``) and the nearest obstacle (< 0: collision)."""
        return self.layout.obstacle_distance(self._xy(xy)) - self.config.robot_radius

    def collides(self, xy=None) -> np.ndarray:
        """True where the robot's disc at ``xy`` overlaps an obstacle."""
        return self.obstacle_clearance(xy) < 0

    def lane_distance(self, xy=None) -> np.ndarray:
        """Distance from ``xy`` to the lane centre-line."""
        return self.layout.lane.distance(self._xy(xy))

    def in_lane(self, xy=None) -> np.ndarray:
        """True where ``xy`` is on the road (distance to the centre-line <= lane half-width)."""
        return self.layout.lane.contains(self._xy(xy))

    def cone_distances(self, xy=None) -> dict:
        """colour -> distance from ``xy`` to the nearest cone of that colour (centre to centre)."""
        p = self._xy(xy)
        out: dict = {}
        for c in self.layout.cones:
            d = np.hypot(p[..., 0] - c.x, p[..., 1] - c.y)
            out[c.colour] = np.minimum(out[c.colour], d) if c.colour in out else d
        return out
