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
from .layout import Layout
from .lidar import LidarSpec, lidar_ranges
from .placement import Placer
from .render import EgoCamera, TopCamera
from .texture import GroundTexture

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
        layout = Layout(lane=make_lane(rng, cfg))
        start = self._random_start(rng, layout, kind)
        placer = Placer(rng, cfg, layout, start)
        # the goto target first, so the expert's nominal path is known before placing everything
        # else off that path
        target = kind[5:] if kind.startswith("goto_") else None
        if target is not None:
            placer.place_target(target)
        steps = cfg.episode_steps + cfg.horizon * cfg.steps_per_waypoint
        path, _ = rollout(kind, start, layout, cfg, steps)
        placer.path_xy = path[:, :2]
        placer.place_cones(target)
        placer.place_obstacles()
        # sometimes one obstacle right on the expert's path: a goto expert drives around it
        # (world.expert_detour), the others must stop before it
        if kind != "stop" and rng.random() < cfg.blocking_obstacle_prob and placer.place_blocking():
            self.info["blocking_obstacle"] = True
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

    def scan(self, state=None, spec: LidarSpec = LidarSpec()) -> np.ndarray:
        """(beams,) float32 laser ranges from ``state`` (default: the robot's); see ``sim.lidar``."""
        return lidar_ranges(self.layout, self.state if state is None else state, spec)

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
