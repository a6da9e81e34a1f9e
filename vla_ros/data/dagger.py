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

from ..config import NOISE_MODES
from ..runtime.config import NodeConfig
from ..runtime.scan_guard import ScanGuard
from ..sim.config import WorldConfig
from ..sim.lidar import world_scan

__all__ = ["LearnerDriver", "checkpoint_predictor"]

Predictor = Callable[..., np.ndarray]  # (ego frames, top frames, command, odometry[, noise_seed=]) -> (T, 3)


class LearnerDriver:
    """A ``run_episode`` driver that follows a model's trajectories.

    ``predictor(ego_frames, top_frames, text, odometry)`` gets ``history_length`` frames
    ``history_spacing`` seconds apart (oldest first) and the robot's (v, omega), and returns a robot-frame trajectory ``(T, 3)`` with waypoints
    ``traj_dt`` apart. Until the history is full it returns None (the expert executes).

    ``noise="zero"`` drives with x_T = 0 (the node's ``noise: zero``).
    ``noise="fixed"`` drives like the node (one noise draw for every prediction: a model's bias
    then repeats at every replan); ``"varied"`` passes ``noise_seed=`` (a function of the
    episode's seed and the step, so a dataset is reproducible) and the predictor draws anew each
    time, which spreads the visited states over what the model's samples do, braking late for an
    obstacle included, instead of what one draw does.
    """

    def __init__(self, predictor: Predictor, config: WorldConfig, history_length: int = 5,
                 history_spacing: float = 0.2, replan_period: float = 0.2, name: str = "learner",
                 noise: str = "fixed", scan_guard: bool = False) -> None:
        from ..control.tracker import PoseHistory, TrajectoryTracker

        if replan_period <= 0 or history_spacing <= 0 or history_length < 1:
            raise ValueError("replan_period and history_spacing must be > 0 and history_length >= 1")
        if noise not in NOISE_MODES:
            raise ValueError(f"noise={noise!r}: choose one of {NOISE_MODES}")
        self.noise = noise
        self.predictor = predictor
        self.config = config
        self.name = name
        self.stride = max(1, int(round(history_spacing / config.sim_dt)))
        self.every = max(1, int(round(replan_period / config.sim_dt)))
        self.span = (history_length - 1) * self.stride
        self.history_length = history_length
        self.tracker = TrajectoryTracker(config)
        self.poses = PoseHistory()
        # the node's scan guard with its default settings: the model drives as it would under it
        self.scan_guard = ScanGuard.from_config(NodeConfig(scan_guard=True)) if scan_guard else None

    def reset(self) -> None:
        self.tracker.reset()
        self.poses.clear()

    def _ns(self, t: int) -> int:
        return int(round((t + 1) * self.config.sim_dt * 1e9))  # stamps start at sim_dt (0 means "unset")

    def __call__(self, t: int, ego: np.ndarray, top: np.ndarray, world) -> tuple[float, float] | None:
        from ..control.tracker import STATUS_OK

        if (self.poses.newest_stamp or 0) >= self._ns(t):  # time went back: a new episode
            self.reset()
        now = self._ns(t)
        self.poses.add(now, world.state)
        if t < self.span:
            return None  # the history is not full yet: the expert executes
        if (t - self.span) % self.every == 0:
            idx = [t - (self.history_length - 1 - i) * self.stride for i in range(self.history_length)]
            odometry = (float(world.state[3]), float(world.state[4]))  # what sim_node's odom says now
            frames = ([ego[i] for i in idx], [top[i] for i in idx], world.text, odometry)
            if self.noise == "varied":
                seed = int(np.random.SeedSequence([int(world.seed), t]).generate_state(1)[0])
                out = self.predictor(*frames, noise_seed=seed)
            else:
                out = self.predictor(*frames)
            traj = np.asarray(out, dtype=np.float64)
            if self.scan_guard is not None and np.isfinite(traj).all():
                self.scan_guard.on_scan(world_scan(world, now))
                traj = self.scan_guard.apply(traj).trajectory
            if np.isfinite(traj).all():
                self.tracker.receive(now, traj, self.config.traj_dt, STATUS_OK, "", now, self.poses)
        if self.tracker.plan is None:
            return None
        ctl = self.tracker.command(now, world.state, self.config.sim_dt)
        return ctl.v, ctl.omega


def checkpoint_predictor(checkpoint: str, seed: int = 0, noise: str = "fixed", guidance: str = "none") -> Predictor:
    """The fast inference API of a checkpoint as a predictor: noise seed ``seed`` (fixed, like the
    node) unless a call passes ``noise_seed``; ``noise="zero"``: x_T = 0 on every call;
    ``guidance``: the API's (``"target"`` steers goto trajectories to the located cone, ``"scene"``
    also around mapped obstacles and along the mapped road)."""
    from ..inference import VLAInferenceAPI

    api = VLAInferenceAPI(checkpoint, seed=seed, noise="zero" if noise == "zero" else "fixed", guidance=guidance)

    def predict(ego, top, text, odometry=None, noise_seed: int | None = None) -> np.ndarray:
        api.seed = seed if noise_seed is None else int(noise_seed)
        return api.predict(ego, top, text, odometry).trajectory

    return predict
