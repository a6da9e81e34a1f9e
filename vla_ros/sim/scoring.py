"""Did the robot do what it was told: the success criteria of a closed-loop episode per command kind."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SuccessCriteria", "score_episode"]


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
    out = _motion(kind, t, st, collided)
    scorer = _SCORERS.get("goto" if kind.startswith("goto_") else kind)
    if scorer is None:
        ok, why = False, f"unknown command kind {kind!r}: cannot score"
    else:
        ok, why = scorer(kind, t, st, out, c, in_lane=in_lane, target_distance=target_distance)
    if out["collision"]:
        first = float(t[np.flatnonzero(collided)[0]] - t[0])
        ok, why = False, f"collided with an obstacle at {first:.1f} s; " + why
    out["success"] = bool(ok)
    out["reason"] = why
    return out


def _motion(kind: str, t: np.ndarray, st: np.ndarray, collided: np.ndarray) -> dict[str, Any]:
    """The figures every kind reports: path length, heading change, progress along the start heading."""
    xy = st[:, :2]
    path = float(np.hypot(*np.diff(xy, axis=0).T).sum()) if len(st) > 1 else 0.0
    yaw = np.unwrap(st[:, 2])
    h0 = st[0, 2]
    d = xy[-1] - xy[0]
    return {
        "kind": kind, "duration": float(t[-1] - t[0]), "path_length": path, "heading_change": float(yaw[-1] - yaw[0]),
        "progress": float(d[0] * math.cos(h0) + d[1] * math.sin(h0)), "final_speed": float(abs(st[-1, 3])),
        "collision": bool(collided.any()), "time_to_goal": None,
    }


def _score_goto(kind, t, st, out, c: SuccessCriteria, target_distance=None, **_) -> tuple[bool, str]:
    dist = np.asarray(target_distance, dtype=np.float64)
    out["final_distance"] = float(dist[-1])
    out["min_distance"] = float(dist.min())
    inside = np.flatnonzero(dist <= c.goal_radius)
    if len(inside):
        out["time_to_goal"] = float(t[inside[0]] - t[0])
    ok = bool(dist[-1] <= c.goal_radius)
    return ok, (f"reached the {kind[5:]} cone ({dist[-1]:.2f} m)" if ok else
                f"{dist[-1]:.2f} m from the {kind[5:]} cone at the end (need <= {c.goal_radius:g} m)")


def _score_lane(kind, t, st, out, c: SuccessCriteria, in_lane=None, **_) -> tuple[bool, str]:
    path = out["path_length"]
    lane = np.asarray(in_lane, dtype=bool)
    frac = float(lane.mean())
    out["in_lane_fraction"] = frac
    ok = frac >= c.min_in_lane and bool(lane[-1]) and path >= c.min_progress
    return ok, (f"on the road {frac:.0%} of the time, {path:.1f} m driven" if ok else
                f"on the road {frac:.0%} of the time (need {c.min_in_lane:.0%}), "
                f"{'on' if lane[-1] else 'off'} it at the end, {path:.1f} m driven (need {c.min_progress:g})")


def _score_stop(kind, t, st, out, c: SuccessCriteria, **_) -> tuple[bool, str]:
    late = t - t[0] >= c.stop_after
    v_late = np.abs(st[late, 3]) if late.any() else np.abs(st[-1:, 3])
    out["max_speed_after_stop"] = float(v_late.max())
    inside = np.flatnonzero(np.abs(st[:, 3]) < c.stop_speed)
    if len(inside):
        out["time_to_goal"] = float(t[inside[0]] - t[0])  # time to standstill
    ok = bool(v_late.max() < c.stop_speed)
    return ok, (f"stopped (|v| < {c.stop_speed:g} m/s after {c.stop_after:g} s)" if ok else
                f"still moving at {v_late.max():.2f} m/s after {c.stop_after:g} s")


def _score_forward(kind, t, st, out, c: SuccessCriteria, **_) -> tuple[bool, str]:
    along, dyaw = out["progress"], out["heading_change"]
    ok = along >= c.min_progress and abs(dyaw) <= c.max_forward_yaw
    return ok, f"{along:.1f} m ahead, heading changed {math.degrees(dyaw):+.0f} deg" + (
        "" if ok else f" (need >= {c.min_progress:g} m and |change| <= {math.degrees(c.max_forward_yaw):.0f} deg)")


def _score_turn(kind, t, st, out, c: SuccessCriteria, **_) -> tuple[bool, str]:
    path, dyaw = out["path_length"], out["heading_change"]
    sign = 1.0 if kind == "turn_left" else -1.0
    ok = sign * dyaw >= c.min_turn and path >= c.min_progress / 2
    return ok, f"turned {math.degrees(dyaw):+.0f} deg over {path:.1f} m" + (
        "" if ok else f" (need {'+' if sign > 0 else '-'}{math.degrees(c.min_turn):.0f} deg or more "
                      f"over >= {c.min_progress / 2:g} m)")


_SCORERS = {"goto": _score_goto, "follow_lane": _score_lane, "stop": _score_stop, "forward": _score_forward,
            "turn_left": _score_turn, "turn_right": _score_turn}
