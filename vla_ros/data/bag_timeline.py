"""A robot's recording resampled onto the dataset's time grid (numpy only; ``vla data from-bag``).

Every time is an integer of nanoseconds (header stamps; the command, a ``std_msgs/String``
without a header, by its log time).  The grid runs every ``step`` (the dataset's ``sim_dt``)
from the first moment every camera has a frame to the last.  At each grid time ``g``:

* **frames**: per camera, the node's frame selection (:func:`~vla_ros.runtime.history.select_indices`)
  among the frames stamped at or before ``g`` (what a node running at ``g`` would hold), within
  the tolerance: the newest such frame.  The observation stamp ``s`` is the newest frame used
  (the node stamps its trajectory the same way);
* **state**: the odometry pose and twist at ``s``, interpolated between the two messages around
  it (yaw along the shorter arc), never across a gap between messages longer than the gap tolerance;
* **label**: the poses at ``s + (k + 1) * traj_dt`` (k < horizon) in the robot frame at ``s``;
* **command**: the newest command logged at or before ``s``.

A grid step that cannot be a training sample gets one reason (:data:`REASONS`, first that
applies); episodes are runs of consecutive usable steps with one command and one stretch of
odometry without gaps, and their first ``span`` steps (no full history) are kept as history only.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from vla_ros.runtime.history import NS, select_indices
from vla_ros.sim.geometry import wrap_angle, world_to_robot

__all__ = ["NS", "REASONS", "Timing", "PoseTrack", "CommandTrack", "StepPlan", "twist_from_poses",
           "select_newest", "plan_steps", "split_episodes"]


# Why a grid step is not a sample (keys of the summary's "dropped"), in the order they are checked.
NO_FRAME = "no_frame:{camera}"  # no frame of that camera at or before the step, within the tolerance
CAMERA_SKEW = "camera_skew"  # the cameras' frames are further apart than max_skew
NO_COMMAND = "no_command"  # before the first command
NO_ODOMETRY = "no_odometry"  # before the first odometry message
ODOMETRY_GAP = "odometry_gap"  # the pose at the step or on its horizon falls into an odometry gap
HORIZON_PAST_END = "horizon_past_end"  # the horizon runs past the last odometry message
COMMAND_CHANGE = "command_change"  # another command starts within the horizon: the motion answers it
NO_FULL_HISTORY = "no_full_history"  # one of an episode's first span steps (kept as history frames)
BAD_IMAGE = "bad_image:{camera}"  # the selected frame did not decode (found when writing)
REASONS = (NO_FRAME, CAMERA_SKEW, NO_COMMAND, NO_ODOMETRY, ODOMETRY_GAP, HORIZON_PAST_END, COMMAND_CHANGE,
           NO_FULL_HISTORY, BAD_IMAGE)

# PoseTrack.at status codes
_OK, _BEFORE, _GAP, _AFTER = 0, 1, 2, 3


@dataclass(frozen=True)
class Timing:
    """The grid and the tolerances, in nanoseconds."""

    step_ns: int  # grid period: the dataset's sim_dt
    traj_dt_ns: int  # seconds between label waypoints
    horizon: int  # waypoints per label
    span: int  # history span in steps: (history_length - 1) * history_stride
    frame_tolerance_ns: int  # a frame is at most this old at its step (strictly less)
    max_skew_ns: int  # the cameras' frames of a step at most this far apart
    max_gap_ns: int  # odometry messages further apart than this are a gap

    def __post_init__(self) -> None:
        if self.frame_tolerance_ns > self.step_ns:
            # a frame must not serve two steps: the history would hold the same picture twice
            raise ValueError(f"frame tolerance {self.frame_tolerance_ns / NS:g} s exceeds the grid step "
                             f"{self.step_ns / NS:g} s")


@dataclass
class PoseTrack:
    """Odometry of the robot in its odometry frame, ascending unique header stamps."""

    stamp_ns: np.ndarray  # (M,) int64
    pose: np.ndarray  # (M, 3) float64 x, y, yaw; yaw unwrapped (continuous from message to message)
    twist: np.ndarray  # (M, 2) float64 v (forward), omega
    segment: np.ndarray  # (M,) int64: stretch without gaps; a new one after each gap

    @classmethod
    def build(cls, stamp_ns, pose, twist, max_gap_ns: int) -> "PoseTrack":
        """Sort by stamp, keep the first of equal stamps, unwrap yaw, number the stretches."""
        stamp_ns = np.asarray(stamp_ns, np.int64)
        order = np.argsort(stamp_ns, kind="stable")
        stamp_ns = stamp_ns[order]
        keep = np.concatenate([[True], np.diff(stamp_ns) > 0])
        stamp_ns = stamp_ns[keep]
        pose = np.asarray(pose, np.float64).reshape(-1, 3)[order][keep].copy()
        pose[:, 2] = np.unwrap(pose[:, 2])
        twist = np.asarray(twist, np.float64).reshape(-1, 2)[order][keep]
        segment = np.concatenate([[0], np.cumsum(np.diff(stamp_ns) > max_gap_ns)]).astype(np.int64)
        return cls(stamp_ns, pose, twist, segment)

    def __len__(self) -> int:
        return len(self.stamp_ns)

    def at(self, t_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n,) times -> state (n, 5) [x, y, yaw in [-pi, pi), v, omega], status (n,) (0 ok,
        1 before the first message, 2 in a gap, 3 after the last) and segment (n,) (-1 unless ok)."""
        t = np.asarray(t_ns, np.int64)
        s, m = self.stamp_ns, len(self.stamp_ns)
        j = np.searchsorted(s, t, side="right") - 1  # last message at or before t
        exact = (j >= 0) & (s[np.clip(j, 0, m - 1)] == t)
        status = np.full(t.shape, _OK, np.int8)
        status[j < 0] = _BEFORE
        status[(j == m - 1) & ~exact] = _AFTER
        inner = (j >= 0) & (j < m - 1) & ~exact
        status[inner & (self.segment[np.clip(j, 0, m - 1)] != self.segment[np.clip(j + 1, 0, m - 1)])] = _GAP
        j0 = np.clip(j, 0, max(m - 2, 0))
        j1 = np.minimum(j0 + 1, m - 1)
        span = np.maximum(s[j1] - s[j0], 1)
        w = np.where(j1 > j0, (t - s[j0]) / span, 0.0)[:, None]
        pose = (1 - w) * self.pose[j0] + w * self.pose[j1]
        twist = (1 - w) * self.twist[j0] + w * self.twist[j1]
        pose[:, 2] = wrap_angle(pose[:, 2])
        segment = np.where(status == _OK, self.segment[np.clip(j, 0, m - 1)], -1)
        return np.concatenate([pose, twist], 1), status, segment


def twist_from_poses(stamp_ns: np.ndarray, pose: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """(M,) stamps, (M, 3) poses (yaw unwrapped), (M,) stretches -> (M, 2) (v, omega): central
    differences within a stretch (one-sided at its ends), v along the robot's heading.
    For odometry from /tf, which carries no twist."""
    m = len(stamp_ns)
    idx = np.arange(m)
    prev = np.where((idx > 0) & (segment == np.roll(segment, 1)), idx - 1, idx)
    nxt = np.where((idx < m - 1) & (segment == np.roll(segment, -1)), idx + 1, idx)
    dt = (stamp_ns[nxt] - stamp_ns[prev]) / NS
    d = pose[nxt] - pose[prev]
    yaw = pose[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.where(dt > 0, (np.cos(yaw) * d[:, 0] + np.sin(yaw) * d[:, 1]) / dt, 0.0)
        w = np.where(dt > 0, d[:, 2] / dt, 0.0)
    return np.stack([v, w], 1)


@dataclass
class CommandTrack:
    """Commands by log time (ascending); ``run`` numbers the stretches of one text."""

    stamp_ns: np.ndarray  # (K,) int64
    texts: list[str]
    run: np.ndarray = field(init=False)  # (K,) int64, +1 at each change of text

    def __post_init__(self) -> None:
        self.stamp_ns = np.asarray(self.stamp_ns, np.int64)
        changed = [i > 0 and self.texts[i] != self.texts[i - 1] for i in range(len(self.texts))]
        self.run = np.cumsum(np.asarray(changed, np.int64)) if self.texts else np.zeros(0, np.int64)

    def at(self, t_ns: np.ndarray) -> np.ndarray:
        """(n,) times -> index of the newest command logged at or before each (-1: none yet)."""
        return np.searchsorted(self.stamp_ns, np.asarray(t_ns, np.int64), side="right") - 1

    def run_of(self, index: np.ndarray) -> np.ndarray:
        """(n,) command indices (-1: none) -> the run of each (-1: none)."""
        index = np.asarray(index, np.int64)
        if not len(self.run):
            return np.full(index.shape, -1, np.int64)
        return np.where(index >= 0, self.run[np.maximum(index, 0)], -1)


def select_newest(stamps: list[int], grid_ns: np.ndarray, tolerance_ns: int) -> np.ndarray:
    """(n,) grid times -> (n,) index of the frame the node would use at each among ``stamps``
    (ascending): its selection restricted to the frames stamped at or before the time; -1: none."""
    out = np.full(len(grid_ns), -1, np.int64)
    for i, g in enumerate(grid_ns.tolist()):
        k = select_indices(stamps, [g], tolerance_ns, hi=bisect.bisect_right(stamps, g))[0]
        out[i] = -1 if k is None else k
    return out


@dataclass
class StepPlan:
    """Every grid step of one bag: its frames, observation stamp, state, label and verdict."""

    grid_ns: np.ndarray  # (n,) int64
    frames: dict[str, np.ndarray]  # camera -> (n,) index into its stamps (-1: none)
    obs_ns: np.ndarray  # (n,) int64 stamp of the newest frame used (0 where a frame is missing)
    state: np.ndarray  # (n, 5) [x, y, yaw, v, omega] at obs_ns
    traj: np.ndarray  # (n, horizon, 3) label in the robot frame at obs_ns
    command: np.ndarray  # (n,) index into the CommandTrack (-1: none)
    segment: np.ndarray  # (n,) odometry stretch (-1: none)
    reason: np.ndarray  # (n,) object: "" for a usable step, else why not (REASONS)


def _mark(reason: np.ndarray, where: np.ndarray, why: str) -> None:
    """Give ``why`` to the steps in ``where`` that have no reason yet (the first reason wins)."""
    reason[(reason == "") & where] = why


def _horizon_checks(odom: PoseTrack, obs: np.ndarray, seg: np.ndarray, timing: Timing,
                    reason: np.ndarray) -> np.ndarray:
    """(n,) observation stamps -> (n, horizon, 5) states on the horizon; marks gaps and the end."""
    offs = timing.traj_dt_ns * np.arange(1, timing.horizon + 1, dtype=np.int64)
    times = obs[:, None] + offs[None]
    state, status, hseg = odom.at(times.ravel())
    status = status.reshape(times.shape)
    hseg = hseg.reshape(times.shape)
    _mark(reason, (status == _AFTER).any(1), HORIZON_PAST_END)
    _mark(reason, ((status != _OK) | (hseg != seg[:, None])).any(1), ODOMETRY_GAP)
    return state.reshape(*times.shape, 5)


def plan_steps(cams: dict[str, list[int]], odom: PoseTrack, commands: CommandTrack, timing: Timing) -> StepPlan:
    """Resample one bag onto the grid (see the module docstring). ``cams``: camera -> ascending
    unique frame stamps (the first camera is the reference, as in the node)."""
    first = max(s[0] for s in cams.values())
    last = min(s[-1] for s in cams.values())
    n = max(0, (last - first) // timing.step_ns + 1)
    grid = first + timing.step_ns * np.arange(n, dtype=np.int64)
    reason = np.full(n, "", dtype=object)
    frames = {cam: select_newest(stamps, grid, timing.frame_tolerance_ns) for cam, stamps in cams.items()}
    used = np.zeros((len(cams), n), np.int64)
    for c, (cam, idx) in enumerate(frames.items()):
        _mark(reason, idx < 0, NO_FRAME.format(camera=cam))
        used[c] = np.where(idx >= 0, np.asarray(cams[cam], np.int64)[np.maximum(idx, 0)], 0)
    _mark(reason, used.max(0) - used.min(0) > timing.max_skew_ns, CAMERA_SKEW)
    obs = used.max(0) if len(cams) else grid
    command = commands.at(obs)
    _mark(reason, command < 0, NO_COMMAND)
    state, status, seg = odom.at(obs)
    _mark(reason, status == _BEFORE, NO_ODOMETRY)
    _mark(reason, status == _GAP, ODOMETRY_GAP)
    _mark(reason, status == _AFTER, HORIZON_PAST_END)
    future = _horizon_checks(odom, obs, seg, timing, reason)
    end_run = commands.run_of(commands.at(obs + timing.traj_dt_ns * timing.horizon))
    _mark(reason, end_run != commands.run_of(command), COMMAND_CHANGE)
    traj = np.zeros((n, timing.horizon, 3), np.float64)
    for i in np.flatnonzero(reason == ""):
        traj[i] = world_to_robot(future[i, :, :3], state[i])
    return StepPlan(grid, frames, obs, state, traj, command, seg, reason)


def split_episodes(plan: StepPlan, commands: CommandTrack, span: int) -> list[tuple[int, int]]:
    """Episodes as ``[start, stop)`` step ranges: runs of usable steps with one command (text) and
    one odometry stretch.  Marks each episode's first ``span`` steps ``no_full_history`` (kept as
    history); a run of at most ``span`` steps has no sample and is not an episode."""
    ok = plan.reason == ""
    run = commands.run_of(plan.command)
    episodes = []
    i, n = 0, len(ok)
    while i < n:
        if not ok[i]:
            i += 1
            continue
        j = i + 1
        while j < n and ok[j] and run[j] == run[i] and plan.segment[j] == plan.segment[i]:
            j += 1
        plan.reason[i:min(j, i + span)] = NO_FULL_HISTORY
        if j - i > span:
            episodes.append((i, j))
        i = j
    return episodes
