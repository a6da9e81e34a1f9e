"""The expert: a feedback controller per command kind, and the 16-step ground-truth trajectory
obtained by rolling that controller forward on the unicycle (so it is kinematically consistent).

Every trajectory stays clear of obstacles: the controller is first rolled out ignoring them; if
that path comes within ``robot_radius + safety_margin`` of an obstacle surface (while getting
closer), a goto command (with ``expert_detour``, the default) drives around the obstacle through a
via point beside it (on the side away from it, else the other side, else wider; from close by,
after backing away from it first); when none is safe, or for any other command, it is rolled out
again with a braking speed cap that stops at the last safe arc length.
"""

from __future__ import annotations

import math

import numpy as np

from .config import WorldConfig
from .geometry import step_tuple, world_to_robot
from .layout import Layout

__all__ = ["Via", "controller", "rollout", "plan", "expert_trajectory", "states_to_trajectory"]


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def _lane_target(state, layout: Layout, config: WorldConfig) -> tuple[float, float]:
    lane = layout.lane
    x, y, yaw = float(state[0]), float(state[1]), float(state[2])
    idx = lane.nearest_index(x, y)
    direction = 1 if math.cos(yaw - lane.headings[idx]) >= 0 else -1
    ds = float(lane.s[1] - lane.s[0])
    j = min(max(idx + direction * int(round(config.lookahead / ds)), 0), len(lane.points) - 1)
    return float(lane.points[j, 0]), float(lane.points[j, 1])


def controller(kind: str, state, layout: Layout, config: WorldConfig) -> tuple[float, float]:
    """Desired ``(v, omega)`` of the expert for command ``kind`` at robot ``state`` (obstacles ignored)."""
    cruise = config.cruise_speed
    if kind == "forward":
        return cruise, 0.0
    if kind == "turn_left":
        return cruise, config.turn_yaw_rate
    if kind == "turn_right":
        return cruise, -config.turn_yaw_rate
    if kind == "stop":
        return 0.0, 0.0
    x, y, yaw = float(state[0]), float(state[1]), float(state[2])
    if kind == "follow_lane":
        tx, ty = _lane_target(state, layout, config)
        dx, dy = tx - x, ty - y
        dist = max(math.hypot(dx, dy), 1e-6)
        alpha = _wrap(math.atan2(dy, dx) - yaw)
        v = cruise * max(0.25, math.cos(alpha))
        # pure pursuit: curvature 2 sin(alpha) / L
        w = 2.0 * v * math.sin(alpha) / dist
        if abs(alpha) > math.pi / 2:  # facing away from the look-ahead point: turn hard
            w = math.copysign(config.max_yaw_rate, alpha)
        return v, w
    if kind.startswith("goto_"):
        cone = layout.cone(kind[5:])
        return _seek(state, cone.x, cone.y, config, stop_distance=config.goal_distance)
    raise ValueError(f"unknown command kind {kind!r}")


def _seek(state, tx: float, ty: float, config: WorldConfig, stop_distance: float | None) -> tuple[float, float]:
    """Drive to point (tx, ty): slow down to stop ``stop_distance`` from it (None: pass through at cruise)."""
    x, y, yaw = float(state[0]), float(state[1]), float(state[2])
    dx, dy = tx - x, ty - y
    alpha = _wrap(math.atan2(dy, dx) - yaw)
    v = config.cruise_speed
    if stop_distance is not None:
        remaining = math.hypot(dx, dy) - stop_distance
        if remaining <= 0.02:
            return 0.0, 0.0
        v = min(v, math.sqrt(2 * 0.5 * remaining), remaining / config.sim_dt)
    v *= max(0.0, math.cos(alpha)) ** 2
    return v, 1.6 * alpha


Via = tuple[float, float, float, float]  # (x, y, ux, uy): a point and the direction to pass it in


def _passed(st, via: Via) -> bool:
    """Past the via point along its direction, or within 0.3 m of it."""
    return ((st[0] - via[0]) * via[2] + (st[1] - via[1]) * via[3] >= 0.0
            or math.hypot(st[0] - via[0], st[1] - via[1]) < 0.3)


def rollout(kind: str, state, layout: Layout, config: WorldConfig, steps: int,
            stop_at: float | None = None, via: Via | list[Via] | None = None,
            ) -> tuple[np.ndarray, np.ndarray]:
    """Simulate the controller for ``steps`` sim steps from ``state``.

    With ``stop_at`` (metres of travel), the speed is capped to brake to a stop there.
    With ``via = (x, y, ux, uy)`` (goto only), the robot first drives through point (x, y) and
    follows the controller once it is past it along direction (ux, uy) (or within 0.3 m of it);
    a list of via points is driven through in order.
    Returns ``states`` (steps + 1, 5) including the start and ``commands`` (steps, 2).
    """
    vias = [] if via is None else ([via] if isinstance(via, tuple) else list(via))
    st = tuple(float(v) for v in np.asarray(state, dtype=np.float64)[:5])
    states = [st]
    cmds = []
    a_brake = 0.6 * config.max_decel
    travelled = 0.0
    for _ in range(steps):
        while vias and _passed(st, vias[0]):
            vias.pop(0)  # on to the next via point, or the goal
        if vias:
            v, w = _seek(st, vias[0][0], vias[0][1], config, stop_distance=None)
        else:
            v, w = controller(kind, st, layout, config)
        if stop_at is not None:
            cap = math.sqrt(2 * a_brake * max(stop_at - travelled, 0.0))
            if v > cap:
                f = cap / v if v > 1e-9 else 0.0
                v, w = cap, w * f
        cmds.append((v, w))
        new = step_tuple(st, v, w, config)
        travelled += math.hypot(new[0] - st[0], new[1] - st[1])
        st = new
        states.append(st)
    return np.array(states, dtype=np.float64), np.array(cmds, dtype=np.float64).reshape(steps, 2)


def _clearance(layout: Layout, xy: np.ndarray, config: WorldConfig) -> np.ndarray:
    return layout.obstacle_distance(xy) - config.robot_radius


def plan(kind: str, state, layout: Layout, config: WorldConfig, avoid_obstacles: bool = True,
         lookahead_steps: int = 10) -> tuple[np.ndarray, np.ndarray, bool]:
    """Expert rollout over the horizon: ``(states (horizon*spw + 1, 5), commands (horizon*spw, 2), braked)``.

    ``braked`` is True when the expert slows down for an obstacle.
    """
    n = config.horizon * config.steps_per_waypoint
    states, cmds = rollout(kind, state, layout, config, n + (lookahead_steps if avoid_obstacles else 0))
    if not avoid_obstacles or not layout.obstacles:
        return states[: n + 1], cmds[:n], False
    c = _clearance(layout, states[:, :2], config)
    bad = np.flatnonzero((c[1:] < config.safety_margin) & (c[1:] < c[:-1] - 1e-9))
    if len(bad) == 0:
        return states[: n + 1], cmds[:n], False
    k = int(bad[0]) + 1  # first state that is too close (and closer than the previous one)
    if config.expert_detour and kind.startswith("goto_"):
        around = _detour(kind, state, layout, config, n, lookahead_steps, states[k, :2])
        if around is not None:
            return around[0], around[1], False
    seg = np.hypot(np.diff(states[:k, 0]), np.diff(states[:k, 1]))
    stop_at = max(float(seg.sum()) - 0.02, 0.0)  # arc length of the last safe state
    states2, cmds2 = rollout(kind, state, layout, config, n, stop_at=stop_at)
    c2 = _clearance(layout, states2[:, :2], config)
    if np.any((c2[1:] < 0) & (c2[1:] < c2[:-1])):
        # braking along the path was not enough (e.g. already too fast and too close): hard stop
        states2, cmds2 = rollout("stop", state, layout, config, n)
    return states2, cmds2, True


def _safe(layout: Layout, states: np.ndarray, config: WorldConfig) -> bool:
    """No state comes within the safety margin of an obstacle, or (when the robot already is
    within it) closer than it is now, less 5 cm, and never closer than 3 cm."""
    c = _clearance(layout, states[:, :2], config)
    floor = max(min(config.safety_margin, float(c[0]) - 0.05), 0.03)
    return bool(np.all(c[1:] >= floor))


def _detour(kind: str, state, layout: Layout, config: WorldConfig, n: int, lookahead_steps: int,
            blocked_at: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A way to the cone around the obstacle that blocks the direct path at ``blocked_at``: the
    controller through the first safe candidate of :func:`_via_candidates`. ``None`` if no
    candidate rollout is safe."""
    ob = min(layout.obstacles, key=lambda o: float(o.surface_distance(blocked_at)))
    cone = layout.cone(kind[5:])
    for vias in _via_candidates(state, ob, (cone.x, cone.y), config):
        states, cmds = rollout(kind, state, layout, config, n + lookahead_steps, via=vias)
        if _safe(layout, states, config):
            return states[: n + 1], cmds[:n]
    return None


def _via_candidates(state, ob, goal: tuple[float, float], config: WorldConfig):
    """Via-point sequences around obstacle ``ob`` on the way to ``goal``, in order of preference.

    First a point beside the obstacle (seen along the line to the goal) on the side away from it,
    then the other side; then both sides wider; then, for a robot already close to the obstacle
    (where turning towards a point beside it would graze it), a retreat point straight away from
    the obstacle before the point beside it. Without these the expert could only stop there, and
    on-policy data would teach a learned policy to stop in front of every obstacle it nears.
    """
    x, y = float(state[0]), float(state[1])
    dist = math.hypot(goal[0] - x, goal[1] - y)
    if dist < 1e-6:
        return
    ux, uy = (goal[0] - x) / dist, (goal[1] - y) / dist
    lateral = -uy * (ob.x - x) + ux * (ob.y - y)  # > 0: the obstacle lies left of the line to the goal
    sides = (-1.0, 1.0) if lateral > 0 else (1.0, -1.0)
    gap = ob.bounding_radius + config.robot_radius + config.safety_margin + 0.35

    def beside(side: float, g: float) -> Via:
        return (ob.x - side * uy * g, ob.y + side * ux * g, ux, uy)

    for g in (gap, gap + 0.35, gap + 0.7):
        for side in sides:
            yield [beside(side, g)]
    rx, ry = x - ob.x, y - ob.y
    r = max(math.hypot(rx, ry), 1e-6)
    for back in (0.5, 1.0):
        retreat = (x + rx / r * back, y + ry / r * back, rx / r, ry / r)
        for side in sides:
            yield [retreat, beside(side, gap)]


def states_to_trajectory(states: np.ndarray, config: WorldConfig) -> np.ndarray:
    """Sim-rate states (horizon*spw + 1, 5) from the current state -> robot-frame waypoints (horizon, 3)."""
    spw = config.steps_per_waypoint
    wp = states[spw::spw][: config.horizon, :3]
    return world_to_robot(wp, states[0]).astype(np.float32)


def expert_trajectory(kind: str, state, layout: Layout, config: WorldConfig) -> np.ndarray:
    """The ground-truth trajectory (horizon, 3) float32: (x, y, yaw) in the robot frame of ``state``;
    waypoint k is the pose at time (k + 1) * traj_dt."""
    states, _, _ = plan(kind, state, layout, config)
    return states_to_trajectory(states, config)
