"""``vla bag record-sim``: simulated episodes as a rosbag2 (MCAP) with the node's topics.

Timeline: episode ``i`` starts at ``t_i`` (the first at ``start``); its frame ``k`` is stamped
``t_i + k * sim_dt``; the next episode starts ``gap`` seconds after the last frame, so the node
sees every episode start with an empty history (as after a pause of the robot).  Every message is
logged at its stamp (bag time = sim time):

==========================  ==============================  ==============================================
topic                       type                            what
==========================  ==============================  ==============================================
/clock                      rosgraph_msgs/msg/Clock         every ``sim_dt``, gaps included
/command                    std_msgs/msg/String             the episode's command, one ``sim_dt`` before
                                                            its first frame; offered QoS transient-local
/ego/image_raw              sensor_msgs/msg/Image (rgb8)    robot camera, frame_id ``ego_camera``
/top/image_raw              sensor_msgs/msg/Image (rgb8)    overhead camera, frame_id ``top_camera``
/ground_truth/trajectory    vla_ros/msg/Trajectory          the expert's trajectory from that frame
                                                            (header.stamp = the frame's stamp)
/odom                       nav_msgs/msg/Odometry           the robot's pose and velocity at each frame
                                                            (frame ``odom``, child ``base_link``)
==========================  ==============================  ==============================================

Episode ``i`` is the dataset's episode ``i`` for the same seed (``vla data generate --seed``):
same world seed, command kind and phrasing.

``--robot``: the bag holds only what a robot publishes: the cameras, ``/odom`` and ``/command``
(no ``/clock``, no ``/ground_truth/trajectory``), and each episode drives ``horizon * traj_dt``
(3.2 s) longer, so that ``vla data from-bag`` labels every one of its ``--steps`` frames from the
recorded motion.  The others' first ``--steps`` frames are the dataset's, except in episodes with
a prelude (a waiting start, the drive before a stop): its length depends on the episode's.
``--expert-noise off``: the expert drives exactly its plan, so that the recorded motion equals the
simulator's labels (no command noise, perturbations nor waiting starts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from vla_ros.bag import schema
from vla_ros.bag.io import BagWriter
from vla_ros.runtime.history import NS

__all__ = ["record_sim", "RecordSummary", "RECORD_KEY"]

RECORD_KEY = "vla_ros.record_sim"  # custom_data key in metadata.yaml


@dataclass
class RecordSummary:
    path: Path
    episodes: list[dict] = field(default_factory=list)
    messages: int = 0
    start_ns: int = 0
    end_ns: int = 0


def _world_config(image_size: int, steps: int, robot: bool, expert_noise: bool):
    """The simulator's config: a robot recording drives ``horizon`` waypoints further, so that
    each of the ``steps`` frames has its whole label horizon in the odometry."""
    from vla_ros.sim.config import WorldConfig

    cfg = WorldConfig(image_size=image_size, episode_steps=steps)
    extra = cfg.horizon * cfg.steps_per_waypoint if robot else 0
    quiet = {} if expert_noise else {"action_noise": 0.0, "perturb_prob": 0.0, "hold_prob": 0.0}
    return WorldConfig(image_size=image_size, episode_steps=steps + extra, **quiet)


def _add_topics(bag: BagWriter, robot: bool) -> None:
    if not robot:  # a robot has no simulation clock and no ground truth
        bag.add_topic(schema.TOPIC_CLOCK, schema.CLOCK, schema.CLOCK_QOS())
    bag.add_topic(schema.TOPIC_COMMAND, schema.STRING, schema.LATCHED_QOS())
    bag.add_topic(schema.TOPIC_EGO, schema.IMAGE, schema.SENSOR_QOS())
    bag.add_topic(schema.TOPIC_TOP, schema.IMAGE, schema.SENSOR_QOS())
    if not robot:
        bag.add_topic(schema.TOPIC_TRUTH, schema.TRAJECTORY, schema.RELIABLE_QOS())
    bag.add_topic(schema.TOPIC_ODOM, schema.ODOMETRY, schema.RELIABLE_QOS())


def record_sim(out: str | Path, episodes: int, seed: int, split: str = "train", image_size: int = 128,
               steps: int = 40, gap: float = 2.0, start: float = 10.0, storage: str = "mcap",
               overwrite: bool = False, progress: Callable[[str], None] | None = None, robot: bool = False,
               expert_noise: bool = True, kinds: Sequence[str] | None = None) -> RecordSummary:
    """Record ``episodes`` simulated episodes (see the module docstring).

    ``robot``: only what a robot publishes (cameras, odometry, the command; no /clock, no ground
    truth), each episode driven ``horizon * traj_dt`` seconds longer so that every one of its
    ``steps`` frames gets its label from the recorded motion (``vla data from-bag``).
    ``expert_noise=False``: the expert drives its own plan (no command noise, perturbations nor
    waiting start; stop episodes still drive before they stop), so the recorded motion is the
    simulator's label. ``kinds``: only these command kinds (cycled, as ``vla data generate --kinds``).
    """
    from vla_ros.data.generate import checked_kinds, episode_kind, episode_seed
    from vla_ros.sim.episode import run_episode
    from vla_ros.sim.world import World

    if episodes < 1:
        raise ValueError(f"--episodes {episodes}: must be >= 1")
    if gap < 0.2:
        raise ValueError(f"--gap {gap}: must be >= 0.2 seconds (two sim steps: the next command comes "
                         "one step before its episode's first frame)")
    if start <= 0:
        raise ValueError(f"--start {start}: must be > 0 seconds (the node rejects frames stamped 0)")
    kinds = checked_kinds(kinds)
    cfg = _world_config(image_size, steps, robot, expert_noise)
    dt_ns = int(round(cfg.sim_dt * NS))
    gap_ns = int(round(gap * NS))
    world = World(cfg)
    summary = RecordSummary(Path(out))
    t_ns = int(round(start * NS))
    summary.start_ns = t_ns - dt_ns
    with BagWriter(out, storage=storage, overwrite=overwrite) as bag:
        _add_topics(bag, robot)
        clock = None if robot else _Clock(bag, summary.start_ns, dt_ns)
        for i in range(episodes):
            ep = run_episode(episode_seed(seed, i), episode_kind(seed, i, kinds), split, cfg, world=world,
                             episode_index=i)
            last = _write_episode(bag, ep, t_ns, dt_ns, cfg.traj_dt, clock, truth=not robot)
            frames = len(ep.arrays["stamp"])
            summary.episodes.append({"index": i, "seed": ep.meta["seed"], "kind": ep.meta["kind"],
                                     "command": ep.meta["command"], "first_stamp_ns": t_ns, "last_stamp_ns": last,
                                     "frames": frames})
            if progress:
                progress(f"episode {i}: {ep.meta['kind']:<11} {ep.meta['command']!r} ({frames} frames)")
            t_ns = last + gap_ns if i + 1 < episodes else last
        summary.end_ns = t_ns
        bag.set_custom_data(RECORD_KEY, {"seed": seed, "split": split, "episodes": summary.episodes,
                                         "gap_s": gap, "robot": robot, "expert_noise": expert_noise,
                                         "world": cfg.to_dict()})
        summary.messages = bag.count
    return summary


class _Clock:
    """/clock every ``dt`` from ``start_ns``, gaps included."""

    def __init__(self, bag: BagWriter, start_ns: int, dt_ns: int) -> None:
        self.bag, self.next_ns, self.dt_ns = bag, start_ns, dt_ns

    def until(self, until_ns: int) -> None:
        types = schema.typestore().types
        while self.next_ns <= until_ns:
            self.bag.write_msg(schema.TOPIC_CLOCK, self.next_ns, types[schema.CLOCK](clock=schema.time_msg(self.next_ns)))
            self.next_ns += self.dt_ns


def _write_episode(bag: BagWriter, ep, t_ns: int, dt_ns: int, traj_dt: float, clock: _Clock | None,
                   truth: bool) -> int:
    """The command one step before the first frame, then every frame's messages; returns the
    last frame's stamp."""
    types = schema.typestore().types
    text, a = ep.meta["command"], ep.arrays
    cmd_ns = t_ns - dt_ns
    if clock is not None:
        clock.until(cmd_ns)
    bag.write_msg(schema.TOPIC_COMMAND, cmd_ns, types[schema.STRING](data=text))
    for k in range(len(a["stamp"])):
        stamp = t_ns + k * dt_ns
        if clock is not None:
            clock.until(stamp)
        bag.write_msg(schema.TOPIC_EGO, stamp, schema.image_msg(a["ego"][k], stamp, "ego_camera"))
        bag.write_msg(schema.TOPIC_TOP, stamp, schema.image_msg(a["top"][k], stamp, "top_camera"))
        if truth:
            bag.write_msg(schema.TOPIC_TRUTH, stamp, schema.trajectory_msg(stamp, a["traj"][k], traj_dt, command=text))
        bag.write_msg(schema.TOPIC_ODOM, stamp, schema.odometry_msg(stamp, *(float(x) for x in a["state"][k])))
    return t_ns + (len(a["stamp"]) - 1) * dt_ns
