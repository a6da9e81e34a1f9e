"""sim_node's settings (its ROS parameters are a view of :class:`SimNodeConfig`) and which episodes a run
holds; importable without rclpy, so ``vla sim`` checks the settings before anything starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from vla_ros.config import ConfigError, _require
from vla_ros.runtime.config import _opt, defaults_table
from vla_ros.sim.commands import KINDS, kind_from_text
from vla_ros.sim.config import WorldConfig
from vla_ros.sim.world import World

__all__ = ["SimNodeConfig", "sim_parameter_table", "episode_kinds", "unblocked_seeds"]


@dataclass
class SimNodeConfig:
    """Settings of ``sim_node`` (its ROS parameters; ``vla sim`` sets them)."""

    seed: int = _opt(0, "Seed of the first episode; episode i uses seed + i (same seed, same world).")
    seeds: str = _opt("", "Comma-separated seeds, one per episode (overrides seed; '' = seed + i).")
    episodes: int = _opt(1, "Episodes to run; the node exits after the last one. 0 = run until stopped.")
    kinds: str = _opt("", "Command kinds cycled over the episodes, comma-separated ('' = all: "
                          + ", ".join(KINDS) + ").")
    command: str = _opt("", "Command text for every episode ('' = a phrasing of the episode's kind from "
                            "split); its kind (for scoring) is guessed from the text unless kinds is set.")
    split: Literal["train", "eval"] = _opt("train", "Phrasings to draw commands from: 'train', or 'eval' "
                                                    "(held out: never seen in training).")
    image_size: int = _opt(128, "Side (pixels) of the square ego and top camera images.")
    mode: Literal["lockstep", "real_time"] = _opt(
        "lockstep", "'lockstep': the simulation waits for the trajectory that answers the newest frames "
                    "every lockstep_period (results do not depend on CPU speed); 'real_time': it runs on a "
                    "wall-clock timer and the robot follows whatever trajectories arrive.")
    real_time_factor: float = _opt(1.0, "real_time mode: simulated seconds per wall-clock second.")
    lockstep_period: float = _opt(0.2, "lockstep mode: simulated seconds between two camera frames, after "
                                       "each of which the simulation waits for the trajectory that answers "
                                       "it. Keep it equal to (or a divisor of) the VLA node's "
                                       "history_spacing (0.2 s), or its history never fills. real_time mode "
                                       "publishes frames every sim step (0.1 s).")
    lockstep_timeout: float = _opt(30.0, "lockstep mode: wall seconds to wait for an answer; after that the "
                                         "simulation runs on without waiting until trajectories come back "
                                         "(and the robot stops by trajectory_timeout).")
    stop_grace: float = _opt(1.0, "lockstep mode: wall seconds a stop answer (after the warm-up) waits for an OK "
                                  "trajectory answering the same frames before the simulation goes on with the "
                                  "stop. The VLA node stamps a stop with its clock, so a tick that fell between "
                                  "the new /clock and the frames' arrival answers frames it has not seen yet; "
                                  "its next tick answers them. 0 = go on at the first answer of any status.")
    startup_timeout: float = _opt(120.0, "Wall seconds to wait for the VLA node (a subscriber of "
                                         "ego/image_raw and a publisher of trajectory) before the first "
                                         "episode; 0 = start at once.")
    warmup: float = _opt(0.8, "Seconds at the start of an episode in which the robot keeps its start "
                              "velocity while the VLA node fills its camera history (not scored).")
    duration: float = _opt(8.0, "Seconds of control per episode after the warm-up (scored).")
    control_input: Literal["cmd_vel", "trajectory"] = _opt(
        "cmd_vel", "What drives the robot: 'cmd_vel' -- velocity commands (geometry_msgs/TwistStamped, or Twist "
                   "with cmd_vel_stamped false), as a robot base takes them, e.g. from trajectory_follower (odom "
                   "control trigger; lockstep waits for the command answering each odom); 'trajectory' -- the "
                   "node's own tracker follows the trajectories (the same tracker code). Either way the node's "
                   "tracker runs on the trajectories for the episode record.")
    cmd_vel_stamped: bool = _opt(True, "cmd_vel is geometry_msgs/TwistStamped (header.stamp = the odom stamp it "
                                       "answers; lockstep needs it); false: geometry_msgs/Twist (real_time only).")
    follower_plan: str = _opt("trajectory_follower/plan", "cmd_vel lockstep: the driver's plan topic "
                                                          "(nav_msgs/Path, one per trajectory it took, stamped with "
                                                          "it); sim_node asks for the command only after the driver "
                                                          "took the trajectory answering the frames.")
    cmd_vel_timeout: float = _opt(0.5, "cmd_vel input: the base stops (zero command) when no cmd_vel has arrived "
                                       "for this many simulated seconds, as a real base's command timeout does.")
    trajectory_timeout: float = _opt(1.0, "Stop the robot when no trajectory has arrived for this many "
                                          "seconds (simulated time).")
    tracker_horizon: float = _opt(0.6, "Seconds of each trajectory the tracker's feed-forward velocity is "
                                       "averaged over (0 = the coming simulation step only). The model plans "
                                       "from the robot's measured speed and accelerates later in the plan; "
                                       "following only the first 0.2 s of each plan keeps the robot at the "
                                       "speed it has.")
    episode_gap: float = _opt(1.0, "Simulated seconds between episodes (no frames: the VLA node's "
                                   "camera history of the last episode goes stale).")
    publish_clock: bool = _opt(True, "Publish /clock with the simulated time (run the VLA node with "
                                     "use_sim_time:=true). false (real_time mode only): stamps come from "
                                     "this node's clock.")
    output_dir: str = _opt("", "Write episode_NNN.json (states, plans, score) and progress.jsonl here "
                               "('' = nothing written).")
    odom_frame_id: str = _opt("odom", "World frame of odom and pose.")
    base_frame_id: str = _opt("base_link", "Robot frame (child frame of odom).")
    ego_frame_id: str = _opt("ego_camera", "frame_id of the ego camera images.")
    top_frame_id: str = _opt("top_camera", "frame_id of the top camera images.")

    def __post_init__(self) -> None:
        _require(self.episodes >= 0, f"episodes={self.episodes}: must be >= 0 (0 = until stopped)")
        try:
            seeds = [int(x) for x in self.seeds.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"seeds={self.seeds!r}: write integers separated by commas, e.g. 3,7,12") from None
        _require(not seeds or len(seeds) >= self.episodes > 0,
                 f"seeds={self.seeds!r}: give at least one seed per episode (episodes={self.episodes})")
        for k in [k.strip() for k in self.kinds.split(",") if k.strip()]:
            _require(k in KINDS, f"kinds: unknown kind {k!r}; choose from {', '.join(KINDS)}")
        if self.command.strip() and not self.kinds.strip():
            _require(kind_from_text(self.command) is not None,
                     f"command={self.command!r}: cannot tell its kind for scoring; also set kinds "
                     f"(one of {', '.join(KINDS)})")
        _require(16 <= self.image_size <= 1024, f"image_size={self.image_size}: must be within [16, 1024]")
        _require(self.real_time_factor > 0, f"real_time_factor={self.real_time_factor}: must be > 0")
        _require(0 <= self.tracker_horizon <= 5.0,
                 f"tracker_horizon={self.tracker_horizon}: must be within [0, 5] seconds (0 = the coming step only)")
        _require(self.lockstep_period > 0, f"lockstep_period={self.lockstep_period}: must be > 0 seconds")
        _require(self.lockstep_timeout > 0, f"lockstep_timeout={self.lockstep_timeout}: must be > 0 seconds")
        _require(0 <= self.stop_grace < self.lockstep_timeout,
                 f"stop_grace={self.stop_grace}: must be >= 0 and below lockstep_timeout ({self.lockstep_timeout})")
        _require(self.startup_timeout >= 0, f"startup_timeout={self.startup_timeout}: must be >= 0")
        _require(self.warmup >= 0, f"warmup={self.warmup}: must be >= 0 seconds")
        _require(self.duration > 0, f"duration={self.duration}: must be > 0 seconds")
        _require(self.trajectory_timeout > 0, f"trajectory_timeout={self.trajectory_timeout}: must be > 0")
        _require(self.episode_gap >= 0, f"episode_gap={self.episode_gap}: must be >= 0 seconds")
        _require(self.control_input in ("cmd_vel", "trajectory"),
                 f"control_input={self.control_input!r}: choose 'cmd_vel' or 'trajectory'")
        _require(self.cmd_vel_timeout > 0, f"cmd_vel_timeout={self.cmd_vel_timeout}: must be > 0 seconds")
        _require(self.cmd_vel_stamped or self.control_input != "cmd_vel" or self.mode == "real_time",
                 "cmd_vel_stamped=false needs mode=real_time: lockstep matches each command to its odom stamp")
        _require(self.publish_clock or self.mode == "real_time",
                 "publish_clock=false needs mode=real_time: lockstep owns the clock")

    def episode(self, i: int) -> tuple[int, str, str | None]:
        """(seed, kind, text or None) of episode ``i``."""
        kinds = [k.strip() for k in self.kinds.split(",") if k.strip()]
        text = self.command.strip() or None
        if kinds:
            kind = kinds[i % len(kinds)]
        elif text:
            kind = kind_from_text(text)
        else:
            kind = KINDS[i % len(KINDS)]
        seeds = [int(x) for x in self.seeds.split(",") if x.strip()]
        return (seeds[i] if seeds else self.seed + i), kind, text


def sim_parameter_table() -> str:
    """Markdown table of sim_node's parameters (docs/closed_loop.md holds a copy; a test compares)."""
    return defaults_table(SimNodeConfig)


def unblocked_seeds(kinds: Sequence[str], seed: int, split: str = "train",
                    world_config: WorldConfig | None = None, tries: int = 50) -> list[int]:
    """For each kind, the first seed >= ``seed`` (and after the previous pick) whose world has no
    obstacle on the expert's path -- episodes the expert itself can finish (for demos)."""
    world = World(world_config or WorldConfig(image_size=16))
    out, s = [], int(seed)
    for kind in kinds:
        for _ in range(tries):
            world.reset(seed=s, kind=kind, split=split)
            s += 1
            if not world.info.get("blocking_obstacle"):
                break
        out.append(s - 1)
    return out


def episode_kinds(kinds: str | Sequence[str] | None, n: int) -> list[str]:
    """Kinds of ``n`` episodes cycling through ``kinds`` (comma-separated or a list; None/'' = all)."""
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.split(",") if k.strip()]
    kinds = list(kinds or KINDS)
    for k in kinds:
        if k not in KINDS:
            raise ConfigError(f"unknown command kind {k!r}; choose from {', '.join(KINDS)}")
    return [kinds[i % len(kinds)] for i in range(n)]
