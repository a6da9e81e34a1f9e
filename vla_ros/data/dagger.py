"""On-policy data (DAgger): a trained model drives, the expert labels.

Behaviour cloning only shows the model the states the expert visits; in closed loop the model's
own small errors take it elsewhere (the robot drifts off the lane, creeps after "stop", misses
the cone) and it has never seen the right answer there. :class:`LearnerDriver` lets a model
drive the data generator (``vla data generate --policy CKPT``): every ``replan_period`` it gets
the same 5-frame history the ROS node would give it, its trajectory is followed by the closed
loop's tracking controller, and every recorded step keeps the expert's plan as the label.
Training on the union of expert and on-policy episodes (``vla train --init CKPT``) is one
DAgger round (Ross et al., 2011).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..sim.config import WorldConfig

__all__ = ["LearnerDriver", "checkpoint_predictor"]

Predictor = Callable[[list, list, str], np.ndarray]  # ego frames, top frames, command -> (T, 3)


class LearnerDriver:
    """A ``run_episode`` driver that follows a model's trajectories.

    ``predictor(ego_frames, top_frames, text)`` gets ``history_length`` frames ``history_spacing``
    seconds apart (oldest first) and returns a robot-frame trajectory ``(T, 3)`` with waypoints
    ``traj_dt`` apart. Until the history is full it returns None (the expert executes).
    """

    def __init__(self, predictor: Predictor, config: WorldConfig, history_length: int = 5,
                 history_spacing: float = 0.2, replan_period: float = 0.2, name: str = "learner") -> None:
        from ..closed_loop import PoseHistory, TrajectoryTracker

        if replan_period <= 0 or history_spacing <= 0 or history_length < 1:
            raise ValueError("replan_period and history_spacing must be > 0 and history_length >= 1")
        self.predictor = predictor
        self.config = config
        self.name = name
        self.stride = max(1, int(round(history_spacing / config.sim_dt)))
        self.every = max(1, int(round(replan_period / config.sim_dt)))
        self.span = (history_length - 1) * self.stride
        self.history_length = history_length
        self.tracker = TrajectoryTracker(config)
        self.poses = PoseHistory()

    def reset(self) -> None:
        self.tracker.reset()
        self.poses.clear()

    def _ns(self, t: int) -> int:
        return int(round((t + 1) * self.config.sim_dt * 1e9))  # stamps start at sim_dt (0 means "unset")

    def __call__(self, t: int, ego: np.ndarray, top: np.ndarray, world) -> tuple[float, float] | None:
        from ..closed_loop import STATUS_OK

        if (self.poses.newest_stamp or 0) >= self._ns(t):  # time went back: a new episode
            self.reset()
        now = self._ns(t)
        self.poses.add(now, world.state)
        if t < self.span:
            return None  # the history is not full yet: the expert executes
        if (t - self.span) % self.every == 0:
            idx = [t - (self.history_length - 1 - i) * self.stride for i in range(self.history_length)]
            traj = np.asarray(self.predictor([ego[i] for i in idx], [top[i] for i in idx], world.text),
                              dtype=np.float64)
            if np.isfinite(traj).all():
                self.tracker.receive(now, traj, self.config.traj_dt, STATUS_OK, "", now, self.poses)
        if self.tracker.plan is None:
            return None
        ctl = self.tracker.command(now, world.state, self.config.sim_dt)
        return ctl.v, ctl.omega


def checkpoint_predictor(checkpoint: str, seed: int = 0) -> Predictor:
    """The fast inference API of a checkpoint as a predictor (one fixed noise seed, like the node)."""
    from ..inference import VLAInferenceAPI

    api = VLAInferenceAPI(checkpoint, seed=seed)
    return lambda ego, top, text: api.predict(ego, top, text).trajectory
