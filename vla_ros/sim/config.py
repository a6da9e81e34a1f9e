"""``WorldConfig``: every setting of the simulated world, its cameras and its expert.

numpy-free and torch-free; validated in ``__post_init__`` (``ConfigError`` names the field
and says how to fix it). ``WorldConfig.to_dict()`` / ``WorldConfig.from_dict()`` round-trip
through JSON/YAML (the dataset stores the config in ``dataset.json`` and every episode's JSON).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

from vla_ros.config import ConfigError, _require, _require_probability, from_dict as _from_dict, to_dict as _to_dict

__all__ = ["WorldConfig", "ConfigError"]


@dataclass
class WorldConfig:
    """The simulated world (units: metres, seconds, radians; images are square RGB uint8)."""

    # -- timing / sample layout -----------------------------------------------------------
    image_size: int = 128  # H = W of both cameras
    sim_dt: float = 0.1  # seconds per simulation step (one camera frame per step)
    traj_dt: float = 0.2  # seconds between trajectory waypoints (a multiple of sim_dt)
    horizon: int = 16  # waypoints per expert trajectory; waypoint k at (k + 1) * traj_dt
    history_length: int = 5  # frames per camera in one model input
    history_stride: int = 2  # sim steps between history frames (2 * 0.1 s = 0.2 s)
    episode_steps: int = 40  # recorded steps (frames) per episode

    # -- arena ------------------------------------------------------------------------------
    arena_size: float = 12.0  # side of the square arena (centred at the origin) the top camera sees
    lane_width: float = 1.6  # road width (edge line to edge line)
    lane_max_curvature: float = 0.22  # |1/m|, bound of the lane centre-line's curvature
    num_obstacles: int = 3  # random obstacles (boxes / barrels) per episode
    blocking_obstacle_prob: float = 0.25  # chance of one extra obstacle placed on the expert's path
    num_distractor_cones: int = 2  # at most this many extra yellow/purple cones per episode

    # -- robot (unicycle) ---------------------------------------------------------------------
    robot_radius: float = 0.25
    max_speed: float = 1.0  # m/s, |v| limit
    max_yaw_rate: float = 1.0  # rad/s, |omega| limit
    max_accel: float = 1.0  # m/s^2 when speeding up
    max_decel: float = 2.0  # m/s^2 when slowing down
    max_yaw_accel: float = 4.0  # rad/s^2

    # -- expert -------------------------------------------------------------------------------
    cruise_speed: float = 0.6  # m/s for forward / turns / follow_lane / goto
    turn_yaw_rate: float = 0.5  # rad/s of turn_left / turn_right
    goal_distance: float = 0.5  # goto_<colour> stops with the robot centre this far from the cone
    safety_margin: float = 0.15  # gap kept between the robot's disc and an obstacle
    expert_detour: bool = True  # goto_<colour>: drive around an obstacle on the way (False: stop before it)
    lookahead: float = 1.2  # pure-pursuit look-ahead distance on the lane (m)
    action_noise: float = 0.05  # std of the executed command noise (fraction of limits)
    perturb_prob: float = 0.04  # chance per step of starting a steering perturbation
    hold_prob: float = 0.15  # chance that an episode (not "stop") starts with the robot waiting at rest

    # -- ego camera (pinhole on the robot) ----------------------------------------------------
    ego_height: float = 0.55  # camera height above the ground (m)
    ego_forward: float = 0.15  # camera position ahead of the robot centre (m)
    ego_pitch_deg: float = 15.0  # pitched down by this much
    ego_fov_deg: float = 90.0  # horizontal (= vertical) field of view
    supersample: int = 2  # render at supersample x resolution and average (anti-aliasing)

    def __post_init__(self) -> None:
        _require(isinstance(self.image_size, int) and 16 <= self.image_size <= 1024,
                 f"world.image_size={self.image_size!r}: must be an integer in [16, 1024] (default 128)")
        _require(self.sim_dt > 0, f"world.sim_dt={self.sim_dt}: must be > 0 seconds (default 0.1)")
        _require(self.traj_dt > 0, f"world.traj_dt={self.traj_dt}: must be > 0 seconds (default 0.2)")
        ratio = self.traj_dt / self.sim_dt
        _require(abs(ratio - round(ratio)) < 1e-6 and round(ratio) >= 1,
                 f"world.traj_dt={self.traj_dt} is not a whole multiple of world.sim_dt={self.sim_dt}: "
                 "the expert trajectory is sampled from the simulation; use e.g. traj_dt=0.2 with sim_dt=0.1")
        _require(isinstance(self.horizon, int) and self.horizon >= 1,
                 f"world.horizon={self.horizon!r}: must be an integer >= 1 (default 16)")
        _require(isinstance(self.history_length, int) and self.history_length >= 1,
                 f"world.history_length={self.history_length!r}: must be an integer >= 1 (default 5)")
        _require(isinstance(self.history_stride, int) and self.history_stride >= 1,
                 f"world.history_stride={self.history_stride!r}: must be an integer >= 1 sim steps (default 2)")
        first = (self.history_length - 1) * self.history_stride
        _require(isinstance(self.episode_steps, int) and self.episode_steps > first,
                 f"world.episode_steps={self.episode_steps!r}: must exceed (history_length-1)*history_stride"
                 f"={first}, or no step has a full history; raise episode_steps (default 40)")
        _require(4.0 <= self.arena_size <= 100.0,
                 f"world.arena_size={self.arena_size}: must be within [4, 100] m (default 12)")
        _require(0.5 <= self.lane_width <= self.arena_size / 3,
                 f"world.lane_width={self.lane_width}: must be within [0.5, arena_size/3] m (default 1.6)")
        _require(0.0 <= self.lane_max_curvature <= 1.0 / self.lane_width,
                 f"world.lane_max_curvature={self.lane_max_curvature}: must be within [0, 1/lane_width] "
                 "(a tighter bend folds the road onto itself); default 0.22")
        _require(isinstance(self.num_obstacles, int) and 0 <= self.num_obstacles <= 20,
                 f"world.num_obstacles={self.num_obstacles!r}: must be an integer in [0, 20] (default 3)")
        _require(0.0 <= self.blocking_obstacle_prob <= 1.0,
                 f"world.blocking_obstacle_prob={self.blocking_obstacle_prob}: must be a probability in [0, 1]")
        _require(isinstance(self.num_distractor_cones, int) and 0 <= self.num_distractor_cones <= 10,
                 f"world.num_distractor_cones={self.num_distractor_cones!r}: must be an integer in [0, 10]")
        _require(0.05 <= self.robot_radius <= 1.0,
                 f"world.robot_radius={self.robot_radius}: must be within [0.05, 1] m (default 0.25)")
        for name in ("max_speed", "max_yaw_rate", "max_accel", "max_decel", "max_yaw_accel",
                     "cruise_speed", "turn_yaw_rate", "lookahead"):
            _require(getattr(self, name) > 0, f"world.{name}={getattr(self, name)}: must be > 0")
        _require(self.cruise_speed <= self.max_speed,
                 f"world.cruise_speed={self.cruise_speed} exceeds world.max_speed={self.max_speed}; "
                 "lower cruise_speed or raise max_speed")
        _require(self.turn_yaw_rate <= self.max_yaw_rate,
                 f"world.turn_yaw_rate={self.turn_yaw_rate} exceeds world.max_yaw_rate={self.max_yaw_rate}; "
                 "lower turn_yaw_rate or raise max_yaw_rate")
        _require(self.goal_distance > 0, f"world.goal_distance={self.goal_distance}: must be > 0 m (default 0.5)")
        _require(self.safety_margin >= 0, f"world.safety_margin={self.safety_margin}: must be >= 0 m")
        _require(0.0 <= self.action_noise <= 0.5,
                 f"world.action_noise={self.action_noise}: must be within [0, 0.5] (default 0.05)")
        for name in ("perturb_prob", "hold_prob"):
            _require_probability(getattr(self, name), f"world.{name}")
        _require(0.05 <= self.ego_height <= 5.0,
                 f"world.ego_height={self.ego_height}: must be within [0.05, 5] m (default 0.55)")
        _require(0.0 <= self.ego_pitch_deg < 80.0,
                 f"world.ego_pitch_deg={self.ego_pitch_deg}: must be within [0, 80) degrees (default 15)")
        _require(20.0 <= self.ego_fov_deg <= 150.0,
                 f"world.ego_fov_deg={self.ego_fov_deg}: must be within [20, 150] degrees (default 90)")
        _require(isinstance(self.supersample, int) and 1 <= self.supersample <= 4,
                 f"world.supersample={self.supersample!r}: must be an integer in [1, 4] (1 = no anti-aliasing)")

    # -- derived ------------------------------------------------------------------------------
    @property
    def steps_per_waypoint(self) -> int:
        """Simulation steps between two trajectory waypoints (traj_dt / sim_dt)."""
        return int(round(self.traj_dt / self.sim_dt))

    @property
    def history_span(self) -> int:
        """Sim steps from the oldest history frame to the newest: (history_length - 1) * stride."""
        return (self.history_length - 1) * self.history_stride

    @property
    def ego_focal(self) -> float:
        """Focal length of the ego camera in pixels (at image_size)."""
        return 0.5 * self.image_size / math.tan(math.radians(self.ego_fov_deg) / 2)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "WorldConfig":
        """Build from a mapping (e.g. ``dataset.json['config']``); unknown keys raise ConfigError."""
        return _from_dict(cls, data, where="world")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
