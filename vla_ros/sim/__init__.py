"""A small seeded 2D world with two cameras and an expert driver (numpy only, no ROS, no torch).

    from vla_ros.sim import World, WorldConfig, run_episode
    world = World(WorldConfig())
    obs = world.reset(seed=0, kind="goto_red")      # {"ego", "top", "state", "stamp"}
    traj = world.expert_trajectory()                 # (16, 3) robot frame, waypoint k at (k+1)*0.2 s
    world.step(v, omega)

Modules: ``world`` (World: reset, step, cameras, expert), ``config``, ``layout`` / ``placement``
(what a world holds, where it goes), ``geometry`` (lane, unicycle), ``commands`` (phrasings per
kind), ``expert``, ``render`` / ``texture`` / ``raster`` (the cameras), ``episode`` (recorded
expert episodes for training).  The closed loop on top of it: ``loop`` (ClosedLoopSim),
``scoring``, ``record``, ``in_process`` (the loop without ROS), ``summary``, ``video``,
``node_config`` (sim_node's parameters) and ``options`` (what ``vla sim`` decides); those import
``vla_ros.control`` and are not re-exported here.
"""

from .commands import KINDS, PHRASINGS, SPLITS, kind_from_text, phrasings, sample_command
from .config import ConfigError, WorldConfig
from .episode import FORMAT_VERSION, Episode, run_episode
from .expert import controller, expert_trajectory, plan
from .geometry import Lane, make_lane, robot_to_world, unicycle_step, world_to_robot
from .layout import CONE_COLOURS, TARGET_COLOURS, Cone, Layout, Obstacle
from .render import EgoCamera, TopCamera, robot_to_ego_pixel, top_pixel_to_world, trajectory_to_top_pixels, world_to_top_pixel
from .world import World

__all__ = [
    "WorldConfig", "ConfigError", "World", "run_episode", "Episode", "FORMAT_VERSION",
    "KINDS", "SPLITS", "PHRASINGS", "phrasings", "sample_command", "kind_from_text",
    "controller", "plan", "expert_trajectory",
    "Lane", "make_lane", "unicycle_step", "world_to_robot", "robot_to_world",
    "Cone", "Obstacle", "Layout", "CONE_COLOURS", "TARGET_COLOURS",
    "EgoCamera", "TopCamera", "world_to_top_pixel", "top_pixel_to_world", "trajectory_to_top_pixels",
    "robot_to_ego_pixel",
]
