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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from vla_ros.bag import schema
from vla_ros.bag.io import BagWriter

__all__ = ["record_sim", "RecordSummary", "RECORD_KEY"]

NS = 1_000_000_000
RECORD_KEY = "vla_ros.record_sim"  # custom_data key in metadata.yaml


@dataclass
class RecordSummary:
    path: Path
    episodes: list[dict] = field(default_factory=list)
    messages: int = 0
    start_ns: int = 0
    end_ns: int = 0


def record_sim(out: str | Path, episodes: int, seed: int, split: str = "train", image_size: int = 128,
               steps: int = 40, gap: float = 2.0, start: float = 10.0, storage: str = "mcap",
               overwrite: bool = False, progress: Callable[[str], None] | None = None) -> RecordSummary:
    from vla_ros.data.generate import episode_kind, episode_seed
    from vla_ros.sim.config import WorldConfig
    from vla_ros.sim.episode import run_episode
    from vla_ros.sim.world import World

    if episodes < 1:
        raise ValueError(f"--episodes {episodes}: must be >= 1")
    if gap < 0.2:
        raise ValueError(f"--gap {gap}: must be >= 0.2 seconds (two sim steps: the next command comes "
                         "one step before its episode's first frame)")
    if start <= 0:
        raise ValueError(f"--start {start}: must be > 0 seconds (the node rejects frames stamped 0)")
    cfg = WorldConfig(image_size=image_size, episode_steps=steps)
    dt_ns = int(round(cfg.sim_dt * NS))
    gap_ns = int(round(gap * NS))
    world = World(cfg)
    summary = RecordSummary(Path(out))
    t_ns = int(round(start * NS))
    summary.start_ns = t_ns - dt_ns
    with BagWriter(out, storage=storage, overwrite=overwrite) as bag:
        bag.add_topic(schema.TOPIC_CLOCK, schema.CLOCK, schema.CLOCK_QOS())
        bag.add_topic(schema.TOPIC_COMMAND, schema.STRING, schema.LATCHED_QOS())
        bag.add_topic(schema.TOPIC_EGO, schema.IMAGE, schema.SENSOR_QOS())
        bag.add_topic(schema.TOPIC_TOP, schema.IMAGE, schema.SENSOR_QOS())
        bag.add_topic(schema.TOPIC_TRUTH, schema.TRAJECTORY, schema.RELIABLE_QOS())
        bag.add_topic(schema.TOPIC_ODOM, schema.ODOMETRY, schema.RELIABLE_QOS())
        types = schema.typestore().types
        clock_ns = summary.start_ns  # next /clock to write

        def clock_until(until_ns: int) -> None:
            nonlocal clock_ns
            while clock_ns <= until_ns:
                bag.write_msg(schema.TOPIC_CLOCK, clock_ns, types[schema.CLOCK](clock=schema.time_msg(clock_ns)))
                clock_ns += dt_ns

        for i in range(episodes):
            ep = run_episode(episode_seed(seed, i), episode_kind(seed, i), split, cfg, world=world, episode_index=i)
            text = ep.meta["command"]
            a = ep.arrays
            cmd_ns = t_ns - dt_ns
            clock_until(cmd_ns)
            bag.write_msg(schema.TOPIC_COMMAND, cmd_ns, types[schema.STRING](data=text))
            for k in range(len(a["stamp"])):
                stamp = t_ns + k * dt_ns
                clock_until(stamp)
                bag.write_msg(schema.TOPIC_EGO, stamp, schema.image_msg(a["ego"][k], stamp, "ego_camera"))
                bag.write_msg(schema.TOPIC_TOP, stamp, schema.image_msg(a["top"][k], stamp, "top_camera"))
                bag.write_msg(schema.TOPIC_TRUTH, stamp,
                              schema.trajectory_msg(stamp, a["traj"][k], cfg.traj_dt, command=text))
                bag.write_msg(schema.TOPIC_ODOM, stamp, schema.odometry_msg(stamp, *(float(x) for x in a["state"][k])))
            last = t_ns + (len(a["stamp"]) - 1) * dt_ns
            summary.episodes.append({"index": i, "seed": ep.meta["seed"], "kind": ep.meta["kind"], "command": text,
                                     "first_stamp_ns": t_ns, "last_stamp_ns": last, "frames": len(a["stamp"])})
            if progress:
                progress(f"episode {i}: {ep.meta['kind']:<11} {text!r} ({len(a['stamp'])} frames)")
            t_ns = last + gap_ns if i + 1 < episodes else last
        summary.end_ns = t_ns
        bag.set_custom_data(RECORD_KEY, {"seed": seed, "split": split, "episodes": summary.episodes,
                                         "gap_s": gap, "world": cfg.to_dict()})
        summary.messages = bag.count
    return summary
