"""Run one recorded episode: the expert drives (with noise and occasional steering perturbations,
so the data also covers recovering from off-nominal states) and every step is recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .config import WorldConfig
from .expert import plan, states_to_trajectory
from .geometry import unicycle_step
from .world import World

__all__ = ["Episode", "run_episode", "FORMAT_VERSION"]

FORMAT_VERSION = 1


@dataclass
class Episode:
    """Arrays (see ``vla_ros/data/FORMAT.md``) and JSON-friendly metadata of one episode."""

    arrays: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def run_episode(seed: int, kind: str | None = None, split: str = "train", config: WorldConfig | None = None,
                render: bool = True, world: World | None = None, episode_index: int | None = None,
                driver: Callable[[int, np.ndarray, np.ndarray, World], tuple[float, float] | None] | None = None,
                ) -> Episode:
    """Generate one episode with ``config.episode_steps`` steps.

    At step t: both cameras render the state, the expert plans its trajectory for the command
    from it (the label), and then the expert's first command (plus noise / a perturbation) is
    executed. Some episodes start with a *prelude* in which the executor does something else
    while the labels still answer the command, so that the data holds states the commanded
    expert would not reach by itself:

    * ``stop`` episodes: the robot first keeps driving (forward / a turn / lane following) for a
      random number of steps, so "stop" is also seen while moving;
    * other kinds, with probability ``hold_prob``: the robot first waits at rest, so starting
      from standstill is seen.

    ``driver`` (on-policy data, DAgger): after the prelude, ``driver(t, ego, top, world)`` may
    return the (v, omega) to execute instead of the expert's noisy command (``ego``/``top``: the
    frames rendered so far, index t is the current one); the labels stay the expert's plans, so
    the data shows the expert's answer in the states a learned policy drives into. ``None``
    from the driver (e.g. while its history fills) executes the expert as usual.

    ``render=False`` skips the images (fast, for tests of the expert). Deterministic in
    (seed, kind, split, config) (and the driver).
    """
    config = config or (world.config if world is not None else WorldConfig())
    world = world if world is not None and world.config == config else World(config)
    world.reset(seed=seed, kind=kind, split=split)
    # noise gets its own stream so the layout does not depend on render / episode length
    rng = np.random.default_rng([seed, 7919])
    T = config.episode_steps
    H, S = config.horizon, config.image_size
    ego = np.empty((T, S, S, 3), np.uint8) if render else None
    top = np.empty((T, S, S, 3), np.uint8) if render else None
    state = np.empty((T, 5), np.float32)
    traj = np.empty((T, H, 3), np.float32)
    action = np.empty((T, 2), np.float32)
    perturbed = np.zeros(T, bool)
    braked = np.zeros(T, bool)
    prelude = np.zeros(T, bool)
    span = config.history_span
    prelude_kind, prelude_steps = None, 0
    last = max(span + 1, int(0.7 * T))
    if world.kind == "stop":
        prelude_kind = str(rng.choice(["forward", "follow_lane", "turn_left", "turn_right"]))
        prelude_steps = int(rng.integers(span, last))
    elif rng.random() < config.hold_prob:
        prelude_kind, prelude_steps = "hold", int(rng.integers(span, last))
        world.state[3:] = 0.0  # at rest
    start_state = world.state.copy()
    perturb_left, perturb_w = 0, 0.0
    collisions = 0
    driven_steps = 0
    margin = config.safety_margin
    for t in range(T):
        if render:
            ego[t] = world.render_ego()
            top[t] = world.render_top()
        state[t] = world.state
        states, cmds, brk = world.expert_plan()
        traj[t] = states_to_trajectory(states, config)
        braked[t] = brk
        if t < prelude_steps:
            prelude[t] = True
            if prelude_kind == "hold":
                cmds = np.zeros((1, 2))
            else:
                cmds = plan(prelude_kind, world.state, world.layout, config)[1]
        v, w = float(cmds[0, 0]), float(cmds[0, 1])
        # executed command: the expert's plus noise, sometimes a steering perturbation
        nv = rng.normal(0.0, config.action_noise * config.max_speed)
        nw = rng.normal(0.0, 2.0 * config.action_noise * config.max_yaw_rate)
        start_perturb = rng.random() < config.perturb_prob
        p_w = rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 0.8)
        p_len = int(rng.integers(3, 7))
        driving = (prelude_kind != "hold") if prelude[t] else (world.kind != "stop")
        driven = driver(t, ego, top, world) if driver is not None and t >= prelude_steps else None
        if driven is not None:  # the learner drives (no noise, no perturbation)
            v, w = float(driven[0]), float(driven[1])
            driven_steps += 1
        elif driving:
            if abs(v) > 1e-6 or abs(w) > 1e-6:
                v, w = v + nv, w + nw
            if perturb_left == 0 and start_perturb:
                perturb_left, perturb_w = p_len, p_w
            if perturb_left > 0:
                w += perturb_w
                perturb_left -= 1
                perturbed[t] = True
        # the executor never drives into an obstacle: if this command would, brake instead
        before = float(world.obstacle_clearance())
        cand = unicycle_step(world.state, v, w, config)
        after = float(world.obstacle_clearance(cand[:2]))
        if after < min(before, margin) - 1e-9 and (v, w) != (float(cmds[0, 0]), float(cmds[0, 1])):
            v, w = float(cmds[0, 0]), float(cmds[0, 1])
            perturbed[t] = False
            perturb_left = 0
            cand = unicycle_step(world.state, v, w, config)
            after = float(world.obstacle_clearance(cand[:2]))
        if after < min(before, margin) - 1e-9:
            v, w = 0.0, 0.0
        action[t] = (v, w)
        world.step(v, w)
        collisions += int(world.collides())
    stamp = np.arange(T, dtype=np.float64) * config.sim_dt
    arrays = {"state": state, "traj": traj, "stamp": stamp, "action": action, "perturbed": perturbed,
              "braked": braked, "prelude": prelude}
    if render:
        arrays = {"ego": ego, "top": top, **arrays}
    final = world.state
    meta = {
        "format_version": FORMAT_VERSION,
        "episode": episode_index,
        "seed": int(seed),
        "split": split,
        "kind": world.kind,
        "command": world.text,
        "num_steps": T,
        "start_state": [float(x) for x in start_state],
        "final_state": [float(x) for x in final],
        "blocking_obstacle": bool(world.info.get("blocking_obstacle", False)),
        "prelude": prelude_kind,  # None, "hold", or the kind driven before obeying "stop"
        "prelude_steps": prelude_steps,
        "collisions": collisions,
        "driver": None if driver is None else getattr(driver, "name", type(driver).__name__),
        "driven_steps": driven_steps,  # steps executed by the driver, not the expert
        "final_in_lane": bool(world.in_lane()),
        "final_cone_distances": {k: float(v) for k, v in world.cone_distances().items()},
        "config": config.to_dict(),
        "layout": world.layout.to_dict(),
    }
    return Episode(arrays=arrays, meta=meta)
