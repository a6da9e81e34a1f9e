"""One robot in the simulated world following received trajectories (no ROS, no torch).

:class:`ClosedLoopSim` runs one episode of the :class:`~vla_ros.sim.world.World` driven by the
:class:`~vla_ros.control.tracker.TrajectoryTracker` (the same controller ``trajectory_follower``
runs on a robot): reset, render, receive trajectories, step, record, score.  ``sim_node`` (the
ROS adapter) and the in-process runner (:mod:`vla_ros.sim.in_process`) both drive it.

Times are integer nanoseconds (ROS stamps), like ``vla_ros.runtime``.  Poses are ``(x, y, yaw)``;
states are the world's ``[x, y, yaw, v, omega]`` (see ``vla_ros.sim.geometry``).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict

import numpy as np

from vla_ros.config import _require
from vla_ros.control.tracker import STATUS_NAMES, STATUS_OK, Control, PoseHistory, TrackerConfig, TrajectoryTracker
from vla_ros.runtime.history import NS
from vla_ros.sim.config import WorldConfig
from vla_ros.sim.geometry import unicycle_step
from vla_ros.sim.record import EpisodeRecord, jsonable
from vla_ros.sim.scoring import SuccessCriteria, score_episode
from vla_ros.sim.world import World

__all__ = ["ClosedLoopSim"]


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
            plans=list(self.plans), received=jsonable(c), result=jsonable(result))
