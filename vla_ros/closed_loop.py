"""Closed-loop driving in the simulated world: trajectories in, robot motion out (no ROS, no torch).

The pieces that ``sim_node`` (the ROS adapter), ``vla sim --no-ros`` and the tests share:

* :class:`~vla_ros.control.tracker.TrajectoryTracker` (re-exported here with ``PoseHistory``,
  ``Plan``, ``Control``, ``TrackerConfig``) -- the tracking controller, in :mod:`vla_ros.control.tracker`
  because ``trajectory_follower`` runs the same code on a robot;
* :class:`ClosedLoopSim` -- one episode of the :class:`~vla_ros.sim.World` driven by the
  tracker: reset, render, receive trajectories, step, record, score;
* :func:`score_episode` / :class:`SuccessCriteria` -- did the robot do what it was told;
* :func:`run_in_process` -- the same loop calling a predictor directly (deterministic, fast);
* :func:`write_episode_gif` / :func:`write_strip` -- what a person watches.

Times are integer nanoseconds (ROS stamps), like ``vla_ros.runtime``.  Poses are ``(x, y, yaw)``;
states are the world's ``[x, y, yaw, v, omega]`` (see ``vla_ros.sim.geometry``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np

from vla_ros.config import ConfigError, _require
from vla_ros.control.tracker import (NS, STATUS_NAMES, STATUS_OK, Control, Plan, PoseHistory, TrackerConfig,
                                     TrajectoryTracker)
from vla_ros.runtime.config import _opt, defaults_table
from vla_ros.sim.commands import KINDS, kind_from_text
from vla_ros.sim.config import WorldConfig
from vla_ros.sim.geometry import unicycle_step
from vla_ros.sim.layout import Layout
from vla_ros.sim.world import World

__all__ = [
    "NS",
    "STATUS_OK",
    "STATUS_NAMES",
    "PoseHistory",
    "Plan",
    "Control",
    "TrackerConfig",
    "TrajectoryTracker",
    "SuccessCriteria",
    "score_episode",
    "EpisodeRecord",
    "ClosedLoopSim",
    "SimNodeConfig",
    "sim_parameter_table",
    "episode_kinds",
    "unblocked_seeds",
    "run_in_process",
    "api_predictor",
    "expert_predictor",
    "expert_reference",
    "summarize",
    "format_summary",
    "render_episode_frames",
    "write_gif",
    "write_episode_gif",
    "write_strip",
]

# =============================================================================================
# Success criteria
# =============================================================================================


@dataclass
class SuccessCriteria:
    """What counts as doing what was told (times from the end of the warm-up)."""

    goal_radius: float = 0.8  # goto_*: robot centre within this of the cone at the end
    stop_after: float = 2.0  # stop: from this time on ...
    stop_speed: float = 0.05  # ... |v| stays below this (m/s)
    min_progress: float = 1.0  # forward: metres along the start heading; turns / lane: path length
    max_forward_yaw: float = 0.5  # forward: |heading change| at most this (rad)
    min_turn: float = 0.6  # turn_left / turn_right: heading change of at least this (rad), that sign
    min_in_lane: float = 0.95  # follow_lane: fraction of steps on the road (and on it at the end)


def score_episode(kind: str, t, states, collided, in_lane=None, target_distance=None,
                  criteria: SuccessCriteria | None = None) -> dict:
    """Score one controlled episode.

    Args (N = steps since the warm-up ended, arrays of N + 1 entries from that moment):
        kind: the command kind (``vla_ros.sim.commands.KINDS``).
        t: (N+1,) seconds since control started.  states: (N+1, 5) world states.
        collided: (N+1,) bool, robot overlapping an obstacle.  in_lane: (N+1,) bool.
        target_distance: (N+1,) metres to the commanded cone (goto_* only).

    Returns ``{"success", "reason", "time_to_goal", "collision", ...metrics}``: every kind fails
    on a collision; goto_* needs the cone within ``goal_radius`` at the end (time to goal = first
    time within it); follow_lane needs ``min_in_lane`` of the steps on the road, the last one too,
    and ``min_progress`` of path; stop needs |v| < ``stop_speed`` from ``stop_after`` on;
    forward needs ``min_progress`` along the start heading with |heading change| <=
    ``max_forward_yaw``; turns need a heading change >= ``min_turn`` in their direction and
    ``min_progress`` / 2 of path.
    """
    c = criteria or SuccessCriteria()
    t = np.asarray(t, dtype=np.float64)
    st = np.asarray(states, dtype=np.float64)
    collided = np.asarray(collided, dtype=bool)
    xy = st[:, :2]
    path = float(np.hypot(*np.diff(xy, axis=0).T).sum()) if len(st) > 1 else 0.0
    yaw = np.unwrap(st[:, 2])
    dyaw = float(yaw[-1] - yaw[0])
    h0 = st[0, 2]
    d = xy[-1] - xy[0]
    along = float(d[0] * math.cos(h0) + d[1] * math.sin(h0))
    out: dict[str, Any] = {
        "kind": kind, "duration": float(t[-1] - t[0]), "path_length": path, "heading_change": dyaw,
        "progress": along, "final_speed": float(abs(st[-1, 3])), "collision": bool(collided.any()),
        "time_to_goal": None,
    }
    ok, why = True, ""
    if kind.startswith("goto_"):
        dist = np.asarray(target_distance, dtype=np.float64)
        out["final_distance"] = float(dist[-1])
        out["min_distance"] = float(dist.min())
        inside = np.flatnonzero(dist <= c.goal_radius)
        if len(inside):
            out["time_to_goal"] = float(t[inside[0]] - t[0])
        ok = bool(dist[-1] <= c.goal_radius)
        why = (f"reached the {kind[5:]} cone ({dist[-1]:.2f} m)" if ok else
               f"{dist[-1]:.2f} m from the {kind[5:]} cone at the end (need <= {c.goal_radius:g} m)")
    elif kind == "follow_lane":
        lane = np.asarray(in_lane, dtype=bool)
        frac = float(lane.mean())
        out["in_lane_fraction"] = frac
        ok = frac >= c.min_in_lane and bool(lane[-1]) and path >= c.min_progress
        why = (f"on the road {frac:.0%} of the time, {path:.1f} m driven" if ok else
               f"on the road {frac:.0%} of the time (need {c.min_in_lane:.0%}), "
               f"{'on' if lane[-1] else 'off'} it at the end, {path:.1f} m driven (need {c.min_progress:g})")
    elif kind == "stop":
        late = t - t[0] >= c.stop_after
        v_late = np.abs(st[late, 3]) if late.any() else np.abs(st[-1:, 3])
        out["max_speed_after_stop"] = float(v_late.max())
        inside = np.flatnonzero(np.abs(st[:, 3]) < c.stop_speed)
        if len(inside):
            out["time_to_goal"] = float(t[inside[0]] - t[0])  # time to standstill
        ok = bool(v_late.max() < c.stop_speed)
        why = (f"stopped (|v| < {c.stop_speed:g} m/s after {c.stop_after:g} s)" if ok else
               f"still moving at {v_late.max():.2f} m/s after {c.stop_after:g} s")
    elif kind == "forward":
        ok = along >= c.min_progress and abs(dyaw) <= c.max_forward_yaw
        why = f"{along:.1f} m ahead, heading changed {math.degrees(dyaw):+.0f} deg" + (
            "" if ok else f" (need >= {c.min_progress:g} m and |change| <= {math.degrees(c.max_forward_yaw):.0f} deg)")
    elif kind in ("turn_left", "turn_right"):
        sign = 1.0 if kind == "turn_left" else -1.0
        ok = sign * dyaw >= c.min_turn and path >= c.min_progress / 2
        why = f"turned {math.degrees(dyaw):+.0f} deg over {path:.1f} m" + (
            "" if ok else f" (need {'+' if sign > 0 else '-'}{math.degrees(c.min_turn):.0f} deg or more "
                          f"over >= {c.min_progress / 2:g} m)")
    else:
        ok, why = False, f"unknown command kind {kind!r}: cannot score"
    if out["collision"]:
        first = float(t[np.flatnonzero(collided)[0]] - t[0])
        ok, why = False, f"collided with an obstacle at {first:.1f} s; " + why
    out["success"] = bool(ok)
    out["reason"] = why
    return out


# =============================================================================================
# One episode
# =============================================================================================


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


@dataclass
class EpisodeRecord:
    """Everything about one closed-loop episode (JSON round-trip: ``to_dict`` / ``from_dict``).

    ``stamps_ns``/``states`` have one entry per simulation step plus the start; ``controls``,
    ``modes`` and ``plan_ids`` one per step (the command applied from that stamp, and the index
    into ``plans`` of the plan in use, -1 for none).  ``plans`` lists every trajectory accepted
    or that stopped the robot, with its world waypoints.
    """

    meta: dict
    stamps_ns: list[int]
    states: np.ndarray  # (N + 1, 5)
    controls: np.ndarray  # (N, 2)
    modes: list[str]
    plan_ids: list[int]
    plans: list[dict]
    received: dict  # counters: messages, per status, per outcome
    result: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "EpisodeRecord":
        d = dict(d)
        d["states"] = np.asarray(d["states"], dtype=np.float64).reshape(-1, 5)
        d["controls"] = np.asarray(d["controls"], dtype=np.float64).reshape(-1, 2)
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict()))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "EpisodeRecord":
        return cls.from_dict(json.loads(Path(path).read_text()))


class ClosedLoopSim:
    """One robot in the simulated world following received trajectories, episode by episode.

        sim = ClosedLoopSim(WorldConfig(image_size=128))
        sim.reset(seed=3, kind="goto_red", start_ns=10**9)
        while not sim.done:
            ego, top = sim.render()                   # observation at sim.stamp_ns
            ... sim.receive(stamp_ns, poses, dt, status)  # whenever a trajectory arrives
            sim.step()                                # one sim_dt with the tracker's command
        record = sim.finish()                         # scored EpisodeRecord

    For the first ``warmup`` seconds the robot keeps its start velocity (the VLA node is filling
    its camera history and cannot answer yet); then ``duration`` seconds of control, scored.
    Not thread-safe: the ROS node calls it under one lock.
    """

    def __init__(self, world_config: WorldConfig | None = None, tracker: TrackerConfig | None = None,
                 criteria: SuccessCriteria | None = None, warmup: float = 0.8, duration: float = 8.0) -> None:
        self.world = World(world_config or WorldConfig())
        self.config = self.world.config
        self.tracker = TrajectoryTracker(self.config, tracker)
        self.criteria = criteria or SuccessCriteria()
        self.history = PoseHistory(keep=max(10.0, 4 * self.config.horizon * self.config.traj_dt))
        self.warmup_steps = int(round(warmup / self.config.sim_dt))
        self.total_steps = self.warmup_steps + int(round(duration / self.config.sim_dt))
        _require(self.total_steps > self.warmup_steps, f"duration={duration}: must be at least one sim step")
        self.meta: dict = {}
        self.k = 0

    # -- episode ---------------------------------------------------------------------------
    def reset(self, seed: int, kind: str | None = None, split: str = "train", text: str | None = None,
              start_ns: int = NS, episode: int = 0) -> None:
        self.world.reset(seed=seed, kind=kind, split=split, text=text)
        self.tracker.reset()
        self.history.clear()
        self.k = 0
        self.start_ns = int(start_ns)
        self._hold = (float(self.world.state[3]), float(self.world.state[4]))  # warm-up command
        self.stamps = [self.start_ns]
        self.states = [self.world.state.copy()]
        self.controls: list[tuple[float, float]] = []
        self.modes: list[str] = []
        self.plan_ids: list[int] = []
        self.plans: list[dict] = []
        self.counts: dict = {"messages": 0, "status": {}, "outcome": {}}
        self.track_errors: list[float] = []
        self.cmd_deviations: list[float] = []
        self.history.add(self.start_ns, self.world.state)
        self.wall0 = time.perf_counter()
        self.meta = {
            "episode": int(episode), "seed": int(seed), "kind": self.world.kind, "text": self.world.text,
            "split": split, "start_ns": self.start_ns, "sim_dt": self.config.sim_dt,
            "blocking_obstacle": bool(self.world.info.get("blocking_obstacle", False)),
            "warmup": self.warmup_steps * self.config.sim_dt,
            "duration": (self.total_steps - self.warmup_steps) * self.config.sim_dt,
            "world_config": self.config.to_dict(), "layout": self.world.layout.to_dict(),
            "tracker": asdict(self.tracker.config), "criteria": asdict(self.criteria),
        }

    @property
    def kind(self) -> str:
        return self.world.kind

    @property
    def text(self) -> str:
        return self.world.text

    @property
    def stamp_ns(self) -> int:
        """Stamp of the current state (and of the next observation)."""
        return self.start_ns + int(round(self.k * self.config.sim_dt * NS))

    @property
    def state(self) -> np.ndarray:
        return self.world.state

    @property
    def done(self) -> bool:
        return self.k >= self.total_steps

    @property
    def in_warmup(self) -> bool:
        return self.k < self.warmup_steps

    def render(self) -> tuple[np.ndarray, np.ndarray]:
        """(ego, top) uint8 RGB images of the current state."""
        return self.world.render_ego(), self.world.render_top()

    # -- input -----------------------------------------------------------------------------
    def receive(self, stamp_ns: int, robot_poses, dt: float, status: int = STATUS_OK, reason: str = "",
                latency: float = 0.0, now_ns: int | None = None) -> str:
        """A trajectory arrived at ``now_ns`` (default: the current stamp); see TrajectoryTracker.receive."""
        now = self.stamp_ns if now_ns is None else int(now_ns)
        pid = len(self.plans)
        outcome = self.tracker.receive(int(stamp_ns), robot_poses, dt, int(status), reason, now, self.history, pid)
        c = self.counts
        c["messages"] += 1
        name = STATUS_NAMES.get(int(status), str(status))
        c["status"][name] = c["status"].get(name, 0) + 1
        c["outcome"][outcome] = c["outcome"].get(outcome, 0) + 1
        c.setdefault("latency_sum", 0.0)
        if int(status) == STATUS_OK:
            c["latency_sum"] += float(latency)
        if outcome in ("accepted", "stop"):
            entry = {"stamp_ns": int(stamp_ns), "received_ns": now, "status": int(status), "reason": reason,
                     "latency": float(latency), "world": None}
            if outcome == "accepted":
                entry["world"] = self.tracker.plan.world_waypoints().round(4).tolist()
            self.plans.append(entry)
        return outcome

    # -- stepping --------------------------------------------------------------------------
    def control(self) -> Control:
        if self.in_warmup:
            return Control(self._hold[0], self._hold[1], "warmup", "keeping the start velocity")
        return self.tracker.command(self.stamp_ns, self.world.state, self.config.sim_dt)

    def step(self, command: tuple[float, float] | None = None) -> Control:
        """Advance one ``sim_dt``; returns the tracker's control.

        ``command``: the (v, omega) the robot's base was told (cmd_vel, e.g. from
        trajectory_follower) -- applied after the warm-up instead of the tracker's; None = the
        tracker drives. The tracker runs either way: its modes, plan ids and tracking errors go
        into the record, and how far the command's effect strays from the tracker's goes into
        ``result["cmd_vel_deviation"]`` (m/s and rad/s after the robot's limits; 0 = the same).
        """
        ctl = self.control()
        if ctl.mode == "track":  # how far the robot is from where the plan wants it now
            ref = self.tracker.plan.pose_at(self.stamp_ns)
            self.track_errors.append(float(math.hypot(ref[0] - self.world.state[0], ref[1] - self.world.state[1])))
        applied = (ctl.v, ctl.omega)
        if command is not None and not self.in_warmup:
            applied = (float(command[0]), float(command[1]))
            want = unicycle_step(self.world.state, ctl.v, ctl.omega, self.config)
            got = unicycle_step(self.world.state, applied[0], applied[1], self.config)
            self.cmd_deviations.append(float(max(abs(want[3] - got[3]), abs(want[4] - got[4]))))
        self.controls.append(applied)
        self.modes.append(ctl.mode)
        self.plan_ids.append(self.tracker.plan_id if ctl.mode in ("track", "stop") else -1)
        self.world.step(*applied)
        self.k += 1
        self.stamps.append(self.stamp_ns)
        self.states.append(self.world.state.copy())
        self.history.add(self.stamp_ns, self.world.state)
        return ctl

    # -- result ----------------------------------------------------------------------------
    def finish(self, wall_s: float | None = None, extra: dict | None = None) -> EpisodeRecord:
        """Score the episode and return its record (call when ``done``, or early to score a cut one)."""
        states = np.asarray(self.states)
        w0 = min(self.warmup_steps, len(states) - 1)
        ctl_states = states[w0:]
        t = np.arange(len(ctl_states)) * self.config.sim_dt
        xy = ctl_states[:, :2]
        collided = self.world.collides(xy)
        in_lane = self.world.in_lane(xy)
        target = None
        if self.kind.startswith("goto_"):
            target = self.world.cone_distances(xy)[self.kind[5:]]
        result = score_episode(self.kind, t, ctl_states, collided, in_lane, target, self.criteria)
        wall = time.perf_counter() - self.wall0 if wall_s is None else float(wall_s)
        c = self.counts
        ok_count = c["status"].get("OK", 0)
        sim_s = (len(states) - 1) * self.config.sim_dt
        result.update({
            "wall_s": wall,
            "sim_s": sim_s,
            "real_time_factor": sim_s / wall if wall > 0 else None,
            "trajectories": c["messages"],
            "trajectories_ok": ok_count,
            "trajectories_per_wall_s": c["messages"] / wall if wall > 0 else None,
            "trajectories_per_sim_s": c["messages"] / sim_s if sim_s > 0 else None,
            "mean_inference_latency": c.get("latency_sum", 0.0) / ok_count if ok_count else None,
            "tracking_error_mean": float(np.mean(self.track_errors)) if self.track_errors else None,
            "tracking_error_max": float(np.max(self.track_errors)) if self.track_errors else None,
            "cmd_vel_deviation": max(self.cmd_deviations) if self.cmd_deviations else None,
            "stopped_by": sorted({m for m in self.modes[self.warmup_steps:] if m not in ("track", "warmup")}),
        })
        meta = dict(self.meta)
        meta.update(extra or {})
        return EpisodeRecord(meta=meta, stamps_ns=list(self.stamps), states=states, controls=np.asarray(
            self.controls, dtype=np.float64).reshape(-1, 2), modes=list(self.modes), plan_ids=list(self.plan_ids),
            plans=list(self.plans), received=_jsonable(c), result=_jsonable(result))


# =============================================================================================
# sim_node settings (the ROS parameters are a view of this dataclass)
# =============================================================================================


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


# =============================================================================================
# In-process closed loop (no ROS)
# =============================================================================================

# (ego frames, top frames oldest first, text, odometry (v, omega) or None) -> (K, 3) or .trajectory
Predictor = Callable[[list, list, str, Any], Any]


def api_predictor(api) -> Predictor:
    """A VLAInferenceAPI as a predictor."""
    return lambda ego, top, text, odometry=None: api.predict(ego, top, text, odometry).trajectory


def expert_predictor(sim: ClosedLoopSim) -> Predictor:
    """The expert's trajectory for the current state (reads the world: a reference, not a model)."""
    return lambda ego, top, text, odometry=None: sim.world.expert_trajectory()


def run_in_process(predictor: Predictor, seed: int, kind: str | None = None, split: str = "train",
                   text: str | None = None, world_config: WorldConfig | None = None,
                   warmup: float = 0.8, duration: float = 8.0, replan_period: float = 0.2,
                   history_length: int = 5, history_spacing: float = 0.2, dt: float = 0.2,
                   tracker: TrackerConfig | None = None, criteria: SuccessCriteria | None = None,
                   sim: ClosedLoopSim | None = None, episode: int = 0, render: bool = True,
                   odometry: bool = True) -> EpisodeRecord:
    """One episode of the closed loop with ``predictor`` called directly (what ``vla sim --no-ros`` runs).

    The same timing as sim_node in lockstep mode: frames every ``sim_dt``; every
    ``replan_period`` (once ``history_length`` frames ``history_spacing`` apart exist) the
    predictor gets the frames at t, t - spacing, ... (oldest first) and its trajectory is stamped
    t and used from t on (zero latency).  ``render=False`` skips the cameras (expert predictors).
    ``odometry``: pass the robot's measured (v, omega) at t (what sim_node publishes on ``odom``);
    False passes None (a robot without odometry).
    """
    sim = sim or ClosedLoopSim(world_config, tracker, criteria, warmup=warmup, duration=duration)
    sim.reset(seed=seed, kind=kind, split=split, text=text, episode=episode)
    cfg = sim.config
    stride = max(1, int(round(history_spacing / cfg.sim_dt)))
    every = max(1, int(round(replan_period / cfg.sim_dt)))
    span = (history_length - 1) * stride
    ego_frames: list = []
    top_frames: list = []
    t_pred = 0.0
    n_pred = 0
    t0 = time.perf_counter()
    while not sim.done:
        if render:
            ego, top = sim.render()
            ego_frames.append(ego)
            top_frames.append(top)
            if len(ego_frames) > span + 1:
                ego_frames.pop(0)
                top_frames.pop(0)
        if sim.k >= span and sim.k % every == 0:
            idx = [len(ego_frames) - 1 - (history_length - 1 - i) * stride for i in range(history_length)] \
                if render else []
            ta = time.perf_counter()
            odom = (float(sim.world.state[3]), float(sim.world.state[4])) if odometry else None
            out = predictor([ego_frames[i] for i in idx], [top_frames[i] for i in idx], sim.text, odom)
            lat = time.perf_counter() - ta
            t_pred += lat
            n_pred += 1
            traj = np.asarray(getattr(out, "trajectory", out), dtype=np.float64)
            status = STATUS_OK if np.isfinite(traj).all() else 5
            sim.receive(sim.stamp_ns, traj if status == STATUS_OK else np.zeros_like(traj), dt, status,
                        "" if status == STATUS_OK else "non-finite model output", latency=lat)
        sim.step()
    wall = time.perf_counter() - t0
    return sim.finish(wall_s=wall, extra={"mode": "in_process", "replan_period": replan_period,
                                          "predictions": n_pred, "predict_s": t_pred})


# =============================================================================================
# Summaries
# =============================================================================================


def summarize(records: Sequence[EpisodeRecord | dict]) -> dict:
    """Success rate per command kind and overall, mean time to goal, trajectory rates."""
    rows = [r.to_dict() if isinstance(r, EpisodeRecord) else r for r in records]
    per_kind: dict[str, dict] = {}
    for kind in [k for k in KINDS if any(r["meta"]["kind"] == k for r in rows)] + sorted(
            {r["meta"]["kind"] for r in rows} - set(KINDS)):
        rs = [r["result"] for r in rows if r["meta"]["kind"] == kind]
        ttg = [x["time_to_goal"] for x in rs if x["success"] and x.get("time_to_goal") is not None]
        per_kind[kind] = {
            "episodes": len(rs),
            "successes": sum(bool(x["success"]) for x in rs),
            "success_rate": sum(bool(x["success"]) for x in rs) / len(rs),
            "collisions": sum(bool(x["collision"]) for x in rs),
            "blocked": sum(bool(r["meta"].get("blocking_obstacle")) for r in rows if r["meta"]["kind"] == kind),
            "mean_time_to_goal": float(np.mean(ttg)) if ttg else None,
        }
    res = [r["result"] for r in rows]
    wall = sum(x["wall_s"] for x in res)
    msgs = sum(x["trajectories"] for x in res)
    sim_s = sum(x["sim_s"] for x in res)
    lat = [x["mean_inference_latency"] for x in res if x.get("mean_inference_latency") is not None]
    goto_ttg = [x["time_to_goal"] for r, x in zip(rows, res)
                if r["meta"]["kind"].startswith("goto_") and x["success"] and x.get("time_to_goal") is not None]
    return {
        "episodes": len(rows),
        "successes": sum(bool(x["success"]) for x in res),
        "success_rate": (sum(bool(x["success"]) for x in res) / len(res)) if res else None,
        "collisions": sum(bool(x["collision"]) for x in res),
        "mean_time_to_goal_goto": float(np.mean(goto_ttg)) if goto_ttg else None,
        "trajectories": msgs,
        "trajectories_per_wall_s": msgs / wall if wall > 0 else None,
        "trajectories_per_sim_s": msgs / sim_s if sim_s > 0 else None,
        "mean_inference_latency": float(np.mean(lat)) if lat else None,
        "wall_s": wall,
        "sim_s": sim_s,
        "mean_episode_wall_s": wall / len(rows) if rows else None,
        "per_kind": per_kind,
    }


def expert_reference(records: Sequence[EpisodeRecord | dict], world_config: WorldConfig | None = None) -> dict:
    """The expert (reading the true state) driven through the same loop on the same episodes:
    the success a perfect copy of it would reach here. Worlds with an obstacle across the way
    make lane / forward episodes fail even for it (it stops before the obstacle; a goto expert
    drives around it), so this is the figure to read a model's against.

    Returns ``{"episodes", "successes", "success_rate", "per_kind": {kind: {"episodes",
    "successes", "success_rate"}}}``; cheap (no rendering, no model).
    """
    rows = [r.to_dict() if isinstance(r, EpisodeRecord) else r for r in records]
    per_kind: dict[str, dict] = {}
    sims: dict[tuple, ClosedLoopSim] = {}
    ok_all = 0
    for r in rows:
        m = r["meta"]
        cfg = WorldConfig.from_dict(m["world_config"]) if "world_config" in m else (world_config or WorldConfig())
        key = (m.get("warmup", 0.8), m.get("duration", 8.0))
        sim = sims.get(key)
        if sim is None or sim.config != cfg:
            sim = sims[key] = ClosedLoopSim(cfg, warmup=key[0], duration=key[1])
        rec = run_in_process(expert_predictor(sim), seed=m["seed"], kind=m["kind"], split=m.get("split", "train"),
                             text=m.get("text"), sim=sim, render=False)
        ok = bool(rec.result["success"])
        ok_all += ok
        k = per_kind.setdefault(m["kind"], {"episodes": 0, "successes": 0})
        k["episodes"] += 1
        k["successes"] += ok
    for k in per_kind.values():
        k["success_rate"] = k["successes"] / k["episodes"]
    return {"episodes": len(rows), "successes": ok_all, "success_rate": ok_all / len(rows) if rows else None,
            "per_kind": per_kind}


def format_summary(summary: dict) -> str:
    """The per-command table ``vla sim`` prints."""
    f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
    expert = summary.get("expert")
    ex = (lambda k: "" if expert is None else f" {k['success_rate']:>7.0%}")  # noqa: E731
    lines = [f"{'command':<12} {'episodes':>8} {'success':>8} {'rate':>6} {'collisions':>10} {'blocked':>8} "
             f"{'time to goal':>13}" + ("" if expert is None else f" {'expert':>7}")]
    for kind, k in summary["per_kind"].items():
        ttg = "-" if k["mean_time_to_goal"] is None else f"{k['mean_time_to_goal']:.1f} s"
        lines.append(f"{kind:<12} {k['episodes']:>8} {k['successes']:>8} {k['success_rate']:>6.0%} "
                     f"{k['collisions']:>10} {k.get('blocked', 0):>8} {ttg:>13}"
                     + (ex(expert["per_kind"][kind]) if expert and kind in expert["per_kind"] else ""))
    s = summary
    if s["episodes"]:
        ttg = "-" if s["mean_time_to_goal_goto"] is None else f"{s['mean_time_to_goal_goto']:.1f} s"
        blocked = sum(k.get("blocked", 0) for k in s["per_kind"].values())
        lines.append(f"{'all':<12} {s['episodes']:>8} {s['successes']:>8} {s['success_rate']:>6.0%} "
                     f"{s['collisions']:>10} {blocked:>8} {ttg:>13}" + (ex(expert) if expert else ""))
    if expert:
        lines.append("expert: the rule-based expert (true state, no cameras) on the same episodes through the "
                     "same loop; an obstacle across the way fails goto / lane episodes even for it")
    lat = s.get("mean_inference_latency")
    lines.append(f"trajectories: {s['trajectories']} in {s['wall_s']:.1f} s wall = "
                 f"{f(s['trajectories_per_wall_s'], '.2f')}/s (per simulated second: "
                 f"{f(s['trajectories_per_sim_s'], '.2f')}); mean inference latency "
                 + ("-" if lat is None else f"{lat * 1e3:.0f} ms")
                 + f"; {f(s['mean_episode_wall_s'], '.1f')} s wall per episode")
    return "\n".join(lines)


# =============================================================================================
# Video
# =============================================================================================


def _world_for(record: EpisodeRecord, size: int) -> World:
    cfg = WorldConfig.from_dict({**record.meta["world_config"], "image_size": int(size)})
    world = World(cfg)
    m = record.meta
    world.reset(seed=m["seed"], kind=m["kind"], split=m.get("split", "train"), text=m["text"],
                layout=Layout.from_dict(m["layout"]), state=record.states[0])
    return world


def render_episode_frames(record: EpisodeRecord, size: int = 192, stride: int = 2, ego: bool = True,
                          steps: Sequence[int] | None = None):
    """Yield (step, PIL.Image) frames (every ``stride``-th step and the last, or ``steps``): the top
    view with the robot's path (white), the plan in use (orange; red while the robot is stopped) and
    the goal radius around the target cone; the ego view beside it."""
    from PIL import Image, ImageDraw

    from vla_ros.sim.render import world_to_top_pixel

    world = _world_for(record, size)
    cfg = world.config
    m = record.meta
    target = None
    if m["kind"].startswith("goto_"):
        try:
            cone = world.layout.cone(m["kind"][5:])
            target = world_to_top_pixel(np.array([cone.x, cone.y]), cfg)
        except KeyError:
            target = None
    ppm = size / cfg.arena_size
    radius = record.meta.get("criteria", {}).get("goal_radius", 0.8) * ppm
    n = len(record.states)
    path_px = world_to_top_pixel(record.states[:, :2], cfg)
    if steps is None:
        steps = list(range(0, n, max(1, stride)))
        if steps[-1] != n - 1:
            steps.append(n - 1)
    res = record.result
    for k in steps:
        st = record.states[k]
        top = Image.fromarray(world.render_top(st))
        d = ImageDraw.Draw(top)
        if target is not None:
            d.ellipse([target[0] - radius, target[1] - radius, target[0] + radius, target[1] + radius],
                      outline=(255, 255, 255))
        if k > 0:
            d.line([tuple(p) for p in path_px[: k + 1]], fill=(255, 255, 255), width=1)
        ki = min(k, len(record.modes) - 1)
        mode = record.modes[ki] if record.modes else "warmup"
        pid = record.plan_ids[ki] if record.plan_ids else -1
        if 0 <= pid < len(record.plans) and record.plans[pid].get("world"):
            wp = np.asarray(record.plans[pid]["world"])
            stamp = record.plans[pid]["stamp_ns"]
            anchor = record.states[max(0, min(n - 1, int(round((stamp - record.stamps_ns[0]) / (cfg.sim_dt * NS)))))]
            pts = world_to_top_pixel(np.concatenate([anchor[None, :2], wp[:, :2]], 0), cfg)
            col = (255, 150, 0) if mode == "track" else (230, 40, 40)
            d.line([tuple(p) for p in pts], fill=col, width=2)
            for p in pts[1:]:
                d.ellipse([p[0] - 1.5, p[1] - 1.5, p[0] + 1.5, p[1] + 1.5], fill=col)
        panels = [top]
        if ego:
            panels.insert(0, Image.fromarray(world.render_ego(st)))
        w = sum(p.width for p in panels)
        bar = 30
        frame = Image.new("RGB", (w, size + bar), (20, 20, 20))
        x = 0
        for p in panels:
            frame.paste(p, (x, bar))
            x += p.width
        d = ImageDraw.Draw(frame)
        t = (record.stamps_ns[k] - record.stamps_ns[0]) / NS - m.get("warmup", 0.0)
        head = f"'{m['text']}'" + (f"  ({m['kind']}, seed {m['seed']})" if w >= 300 else "")
        d.text((4, 2), head, fill=(255, 255, 255))
        status = "warm-up" if mode == "warmup" else mode
        line2 = f"t={t:+.1f} s  v={st[3]:.2f} m/s  {status}" if w >= 300 else f"t={t:+.1f}s v={st[3]:.2f} {status}"
        if k == n - 1 and res:
            line2 += "  SUCCESS" if res.get("success") else "  FAILED"
        d.text((4, 15), line2, fill=(255, 220, 120) if mode in ("track", "warmup") else (255, 120, 120))
        yield k, frame


def write_gif(records: Sequence[EpisodeRecord], path: str | Path, size: int = 192, stride: int = 2,
              ego: bool = True, hold_ms: int = 1500) -> Path:
    """An animated GIF of one or more episodes one after the other, at real-time speed (``stride``
    sim steps per frame); each episode's last frame stays ``hold_ms`` on screen."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames, durations = [], []
    for rec in records:
        ep = [f for _, f in render_episode_frames(rec, size=size, stride=stride, ego=ego)]
        frames += ep
        durations += [int(round(rec.meta["sim_dt"] * stride * 1000))] * (len(ep) - 1) + [hold_ms]
    if not frames:
        raise ValueError("no episodes to draw")
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0, optimize=False)
    return path


def write_episode_gif(record: EpisodeRecord, path: str | Path, size: int = 192, stride: int = 2,
                      ego: bool = True) -> Path:
    """An animated GIF of one episode (see :func:`write_gif`)."""
    return write_gif([record], path, size=size, stride=stride, ego=ego)


def write_strip(records: Sequence[EpisodeRecord], path: str | Path, size: int = 160, columns: int = 5) -> Path:
    """A PNG with one row per episode: ``columns`` top views (plan drawn) evenly spread over it."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for rec in records:
        n = len(rec.states)
        wanted = sorted({int(round(x)) for x in np.linspace(0, n - 1, columns)})
        rows.append([f for _, f in render_episode_frames(rec, size=size, ego=False, steps=wanted)])
    if not rows or not rows[0]:
        raise ValueError("no episodes to draw")
    fw, fh = rows[0][0].size
    sheet = Image.new("RGB", (fw * columns, fh * len(rows)), (0, 0, 0))
    for i, row in enumerate(rows):
        for j, f in enumerate(row):
            sheet.paste(f, (j * fw, i * fh))
    sheet.save(path)
    return path
