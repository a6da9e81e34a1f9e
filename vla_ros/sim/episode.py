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
    arrays = _empty_arrays(config, render)
    prelude_kind, prelude_steps = _choose_prelude(world, rng, config)
    start_state = world.state.copy()
    noise = _Noise(rng, config)
    collisions = 0
    driven_steps = 0
    for t in range(T):
        if render:
            arrays["ego"][t] = world.render_ego()
            arrays["top"][t] = world.render_top()
        arrays["state"][t] = world.state
        states, cmds, brk = world.expert_plan()
        arrays["traj"][t] = states_to_trajectory(states, config)
        arrays["braked"][t] = brk
        if t < prelude_steps:
            arrays["prelude"][t] = True
            if prelude_kind == "hold":
                cmds = np.zeros((1, 2))
            else:
                cmds = plan(prelude_kind, world.state, world.layout, config)[1]
        expert = (float(cmds[0, 0]), float(cmds[0, 1]))
        v, w = expert
        draws = noise.draw()
        driving = (prelude_kind != "hold") if arrays["prelude"][t] else (world.kind != "stop")
        driven = driver(t, arrays.get("ego"), arrays.get("top"), world) \
            if driver is not None and t >= prelude_steps else None
        if driven is not None:  # the learner drives (no noise, no perturbation)
            v, w = float(driven[0]), float(driven[1])
            driven_steps += 1
        elif driving:  # executed command: the expert's plus noise, sometimes a steering perturbation
            v, w, arrays["perturbed"][t] = noise.apply(v, w, draws)
        v, w, fell_back = _keep_clear(world, v, w, expert, config)
        if fell_back:
            arrays["perturbed"][t] = False
            noise.left = 0
        arrays["action"][t] = (v, w)
        world.step(v, w)
        collisions += int(world.collides())
    arrays["stamp"] = np.arange(T, dtype=np.float64) * config.sim_dt
    meta = _meta(world, config, seed, split, episode_index, start_state, prelude_kind, prelude_steps, collisions,
                 driver, driven_steps)
    return Episode(arrays=_ordered(arrays, render), meta=meta)


def _empty_arrays(config: WorldConfig, render: bool) -> dict[str, np.ndarray]:
    T, H, S = config.episode_steps, config.horizon, config.image_size
    arrays = {"ego": np.empty((T, S, S, 3), np.uint8), "top": np.empty((T, S, S, 3), np.uint8)} if render else {}
    arrays.update(state=np.empty((T, 5), np.float32), traj=np.empty((T, H, 3), np.float32),
                  action=np.empty((T, 2), np.float32), perturbed=np.zeros(T, bool), braked=np.zeros(T, bool),
                  prelude=np.zeros(T, bool))
    return arrays


def _ordered(arrays: dict, render: bool) -> dict:
    """The arrays in the order of the episode files: images first, then state, traj, stamp, action, flags."""
    names = (["ego", "top"] if render else []) + ["state", "traj", "stamp", "action", "perturbed", "braked",
                                                  "prelude"]
    return {k: arrays[k] for k in names}


def _choose_prelude(world: World, rng: np.random.Generator, config: WorldConfig) -> tuple[str | None, int]:
    """(kind driven before obeying, steps): a stop episode first drives; other kinds sometimes wait at rest."""
    span = config.history_span
    last = max(span + 1, int(0.7 * config.episode_steps))
    if world.kind == "stop":
        prelude_kind = str(rng.choice(["forward", "follow_lane", "turn_left", "turn_right"]))
        return prelude_kind, int(rng.integers(span, last))
    if rng.random() < config.hold_prob:
        steps = int(rng.integers(span, last))
        world.state[3:] = 0.0  # at rest
        return "hold", steps
    return None, 0


class _Noise:
    """The executor's noise: Gaussian on (v, omega) and, now and then, a steering perturbation held
    for a few steps. Its draws are made every step (driven or not), so the stream stays aligned."""

    def __init__(self, rng: np.random.Generator, config: WorldConfig) -> None:
        self.rng, self.config = rng, config
        self.left, self.w = 0, 0.0  # steps left of the perturbation under way, and its yaw rate

    def draw(self) -> tuple:
        c, rng = self.config, self.rng
        nv = rng.normal(0.0, c.action_noise * c.max_speed)
        nw = rng.normal(0.0, 2.0 * c.action_noise * c.max_yaw_rate)
        start_perturb = rng.random() < c.perturb_prob
        p_w = rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 0.8)
        p_len = int(rng.integers(3, 7))
        return nv, nw, start_perturb, p_w, p_len

    def apply(self, v: float, w: float, draws: tuple) -> tuple[float, float, bool]:
        """(v, w, perturbed) with this step's ``draws``; a robot told to stand still gets no noise."""
        nv, nw, start_perturb, p_w, p_len = draws
        if abs(v) > 1e-6 or abs(w) > 1e-6:
            v, w = v + nv, w + nw
        if self.left == 0 and start_perturb:
            self.left, self.w = p_len, p_w
        if self.left > 0:
            w += self.w
            self.left -= 1
            return v, w, True
        return v, w, False


def _keep_clear(world: World, v: float, w: float, expert: tuple[float, float],
                config: WorldConfig) -> tuple[float, float, bool]:
    """The executor never drives into an obstacle: a command that would (closer than the safety
    margin, and closer than now) falls back to the expert's, and if that would too, brakes.
    Returns (v, w, fell back to the expert's command)."""
    margin = config.safety_margin
    before = float(world.obstacle_clearance())
    cand = unicycle_step(world.state, v, w, config)
    after = float(world.obstacle_clearance(cand[:2]))
    fell_back = False
    if after < min(before, margin) - 1e-9 and (v, w) != expert:
        v, w = expert
        fell_back = True
        cand = unicycle_step(world.state, v, w, config)
        after = float(world.obstacle_clearance(cand[:2]))
    if after < min(before, margin) - 1e-9:
        v, w = 0.0, 0.0
    return v, w, fell_back


def _meta(world: World, config: WorldConfig, seed: int, split: str, episode_index: int | None,
          start_state: np.ndarray, prelude_kind: str | None, prelude_steps: int, collisions: int,
          driver, driven_steps: int) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "episode": episode_index,
        "seed": int(seed),
        "split": split,
        "kind": world.kind,
        "command": world.text,
        "num_steps": config.episode_steps,
        "start_state": [float(x) for x in start_state],
        "final_state": [float(x) for x in world.state],
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
