"""Tests of the simulated world, its cameras, commands and expert (numpy only; fast)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from vla_ros.sim import (
    KINDS,
    ConfigError,
    Cone,
    Layout,
    Obstacle,
    World,
    WorldConfig,
    kind_from_text,
    make_lane,
    phrasings,
    plan,
    robot_to_ego_pixel,
    run_episode,
    sample_command,
    world_to_top_pixel,
)
from vla_ros.sim.commands import PHRASINGS, normalize_text
from vla_ros.sim.geometry import Lane, robot_to_world, unicycle_step, world_to_robot
from vla_ros.sim.layout import CONE_COLOURS

SMALL = WorldConfig(image_size=64, episode_steps=12)
CLEAR = WorldConfig(image_size=64, episode_steps=12, num_obstacles=0, blocking_obstacle_prob=0.0)


@pytest.fixture(scope="module")
def world():
    return World(WorldConfig())


def straight_layout(config: WorldConfig, cones=(), obstacles=()) -> Layout:
    """A straight east-west road through the origin."""
    xs = np.arange(-12.0, 12.0001, 0.1)
    lane = Lane(points=np.stack([xs, np.zeros_like(xs)], 1), width=config.lane_width,
                params={"grid_extent": config.arena_size / 2 + 4.0})
    return Layout(lane=lane, cones=list(cones), obstacles=list(obstacles), texture_seed=1)


# --------------------------------------------------------------------------------------------
# config, imports
# --------------------------------------------------------------------------------------------


def test_core_does_not_import_ros_or_torch():
    import subprocess

    code = ("import sys, vla_ros.sim, vla_ros.data; "
            "bad = [m for m in ('rclpy', 'torch', 'std_msgs') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_config_validation_names_field_and_round_trips():
    with pytest.raises(ConfigError, match="traj_dt"):
        WorldConfig(traj_dt=0.25)
    with pytest.raises(ConfigError, match="episode_steps"):
        WorldConfig(episode_steps=8)
    with pytest.raises(ConfigError, match="cruise_speed"):
        WorldConfig(cruise_speed=2.0)
    with pytest.raises(ConfigError, match="unknown key"):
        WorldConfig.from_dict({"imagesize": 64})
    cfg = WorldConfig(image_size=96, num_obstacles=5)
    assert WorldConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.steps_per_waypoint == 2 and cfg.history_span == 8


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------


def test_frames_round_trip_and_unicycle_limits():
    rng = np.random.default_rng(0)
    state = np.array([1.0, -2.0, 0.7, 0.0, 0.0])
    poses = rng.normal(size=(10, 3))
    back = robot_to_world(world_to_robot(poses, state), state)
    assert np.allclose(back[:, :2], poses[:, :2])
    assert np.allclose(np.cos(back[:, 2]), np.cos(poses[:, 2])) and np.allclose(np.sin(back[:, 2]), np.sin(poses[:, 2]))
    cfg = WorldConfig()
    s = np.zeros(5)
    for _ in range(50):
        s = unicycle_step(s, 5.0, 5.0, cfg)
    assert s[3] == pytest.approx(cfg.max_speed) and s[4] == pytest.approx(cfg.max_yaw_rate)
    s2 = unicycle_step(np.array([0, 0, 0, 1.0, 0]), 0.0, 0.0, cfg)
    assert s2[3] == pytest.approx(1.0 - cfg.max_decel * cfg.sim_dt)


def test_lane_distance_and_in_lane():
    cfg = WorldConfig()
    lane = make_lane(np.random.default_rng(3), cfg)
    mid = lane.points[len(lane.points) // 2]
    normal = np.array([-lane.tangents[len(lane.points) // 2][1], lane.tangents[len(lane.points) // 2][0]])
    assert lane.contains(mid) and lane.distance(mid) < 1e-9
    assert lane.contains(mid + 0.9 * lane.half_width * normal)
    assert not lane.contains(mid + 1.3 * lane.half_width * normal)
    idx, lat = lane.nearest(np.array([mid + 0.5 * normal, mid - 0.5 * normal]))
    assert lat[0] == pytest.approx(0.5, abs=1e-6) and lat[1] == pytest.approx(-0.5, abs=1e-6)
    rng = np.random.default_rng(1)
    for p in rng.uniform(-5, 5, size=(200, 2)):
        assert lane.nearest_index(*p) == int(lane.nearest(p)[0])


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------


def test_phrasings_train_eval_disjoint_and_classified():
    train_all, eval_all = set(), set()
    for kind in KINDS:
        tr, ev = phrasings(kind, "train"), phrasings(kind, "eval")
        assert len(tr) >= 4 and len(ev) >= 2
        train_all |= {normalize_text(t) for t in tr}
        eval_all |= {normalize_text(t) for t in ev}
        for t in tr + ev:
            assert kind_from_text(t) == kind, t
    assert not train_all & eval_all
    assert set(PHRASINGS) == set(KINDS)
    assert kind_from_text("please go to the crimson cone now") == "goto_red"
    assert kind_from_text("sing a song") is None
    rng = np.random.default_rng(0)
    for _ in range(50):
        kind, text = sample_command(rng, split="eval")
        assert text in phrasings(kind, "eval")
    with pytest.raises(ValueError, match="split"):
        phrasings("stop", "test")


# --------------------------------------------------------------------------------------------
# world: determinism, rendering
# --------------------------------------------------------------------------------------------


def test_same_seed_same_episode_different_seed_differs():
    a = run_episode(seed=11, kind="goto_green", config=SMALL)
    b = run_episode(seed=11, kind="goto_green", config=SMALL)
    c = run_episode(seed=12, kind="goto_green", config=SMALL)
    for key in ("ego", "top", "state", "traj", "action", "stamp"):
        assert np.array_equal(a.arrays[key], b.arrays[key]), key
    assert a.meta == b.meta
    assert not np.array_equal(a.arrays["ego"], c.arrays["ego"])
    assert not np.array_equal(a.arrays["top"], c.arrays["top"])
    assert not np.array_equal(a.arrays["traj"], c.arrays["traj"])
    # the world alone: reset twice with the same seed
    w = World(SMALL)
    o1 = w.reset(seed=5)
    t1 = w.expert_trajectory()
    o2 = w.reset(seed=5)
    assert np.array_equal(o1["ego"], o2["ego"]) and np.array_equal(o1["top"], o2["top"])
    assert np.array_equal(t1, w.expert_trajectory())


def test_render_shapes_dtypes_sky_and_ground(world):
    obs = world.reset(seed=2)
    n = world.config.image_size
    for key in ("ego", "top"):
        assert obs[key].shape == (n, n, 3) and obs[key].dtype == np.uint8
    ego = obs["ego"].astype(int)
    top_row = ego[0].mean(0)
    assert top_row[2] > top_row[0] + 40  # blue sky at the top
    bottom = ego[-1].mean(0)
    assert bottom[2] < 200 and not (bottom[2] > bottom[0] + 40)  # ground (grass / road) at the bottom
    assert obs["state"].shape == (5,) and obs["stamp"] == 0.0


def test_rendered_frames_are_independent_copies():
    for ss in (1, 2):
        w = World(WorldConfig(image_size=48, supersample=ss))
        w.reset(seed=1)
        e1, t1 = w.render_ego(), w.render_top()
        e1c, t1c = e1.copy(), t1.copy()
        w.step(0.8, 0.8)
        w.step(0.8, 0.8)
        e2, t2 = w.render_ego(), w.render_top()
        assert e2.shape == (48, 48, 3) and t2.shape == (48, 48, 3)
        assert np.array_equal(e1, e1c) and np.array_equal(t1, t1c)
        assert not np.array_equal(e1, e2) and not np.array_equal(t1, t2)


def test_render_is_fast(world):
    import time

    world.reset(seed=4)
    world.render_ego(), world.render_top()
    t0 = time.perf_counter()
    for _ in range(10):
        world.render_ego()
        world.render_top()
    per_pair = (time.perf_counter() - t0) / 10
    assert per_pair < 0.1, f"{per_pair * 1e3:.1f} ms per ego+top frame"


@pytest.mark.parametrize("colour", ["red", "green", "blue"])
def test_cone_in_front_appears_in_ego_in_its_colour(colour):
    cfg = WorldConfig(image_size=128)
    w = World(cfg)
    layout = straight_layout(cfg, cones=[Cone(colour, 2.0, 0.0)])
    w.reset(seed=0, kind="stop", layout=layout, state=[0.0, 0.0, 0.0, 0.0, 0.0])
    ego = w.render_ego().astype(int)
    uv, valid = robot_to_ego_pixel(np.array([[2.0, 0.0, 0.15]]), cfg)  # lower part of the cone
    assert valid[0]
    u, v = np.round(uv[0]).astype(int)
    patch = ego[v - 2:v + 3, u - 3:u + 4].reshape(-1, 3)
    target = np.array(CONE_COLOURS[colour])
    dist = np.abs(patch - target).sum(1)
    assert (dist < 120).sum() >= 5, (colour, patch)
    # without the cone that spot is road, not the cone colour
    w.set_layout(straight_layout(cfg))
    empty = w.render_ego().astype(int)[v - 2:v + 3, u - 3:u + 4].reshape(-1, 3)
    assert (np.abs(empty - target).sum(1) < 120).sum() == 0
    # turned away: the cone is not in view
    far = w.render_ego(np.array([0.0, 0.0, np.pi, 0, 0])).astype(int).reshape(-1, 3)
    assert (np.abs(far - target).sum(1) < 60).sum() == 0


def test_obstacles_visible_in_ego_and_top():
    cfg = WorldConfig()
    w = World(cfg)
    box = Obstacle("box", 2.5, 0.0, size=0.3, height=0.7)
    w.reset(seed=0, kind="stop", layout=straight_layout(cfg, obstacles=[box]), state=[0, 0, 0, 0, 0])
    with_box = w.render_ego()
    w.set_layout(straight_layout(cfg))
    without = w.render_ego()
    assert (np.abs(with_box.astype(int) - without.astype(int)).sum(-1) > 60).sum() > 100


def test_top_camera_shows_robot_and_cones_where_expected():
    cfg = WorldConfig()
    w = World(cfg)
    layout = straight_layout(cfg, cones=[Cone("blue", -3.0, 3.0)])
    w.reset(seed=0, kind="stop", layout=layout, state=[2.0, -2.0, 0.5, 0, 0])
    top = w.render_top().astype(int)
    u, v = np.round(world_to_top_pixel(np.array([2.0, -2.0]), cfg)).astype(int)
    assert (top[v, u] > 220).all()  # white robot
    u, v = np.round(world_to_top_pixel(np.array([-3.0, 3.0]), cfg)).astype(int)
    assert np.abs(top[v, u] - np.array(CONE_COLOURS["blue"])).sum() < 60
    u, v = np.round(world_to_top_pixel(np.array([0.0, 0.35]), cfg)).astype(int)
    assert abs(top[v, u, 0] - top[v, u, 2]) < 30 and top[v, u].max() < 140  # grey road next to the centre line


def test_world_checks(world):
    cfg = world.config
    layout = straight_layout(cfg, cones=[Cone("red", 3.0, 1.0)], obstacles=[Obstacle("barrel", 0.0, 2.0, 0.3, 0.8)])
    world.reset(seed=0, kind="stop", layout=layout, state=[0, 0, 0, 0, 0])
    assert world.in_lane() and not world.in_lane([0.0, 1.5])
    assert world.lane_distance([1.0, -0.4]) == pytest.approx(0.4)
    assert world.cone_distances()["red"] == pytest.approx(np.hypot(3.0, 1.0))
    assert not world.collides()
    assert world.collides([0.0, 2.0 - 0.3 - 0.2])
    assert world.obstacle_clearance([0.0, 0.0]) == pytest.approx(2.0 - 0.3 - cfg.robot_radius)


# --------------------------------------------------------------------------------------------
# expert
# --------------------------------------------------------------------------------------------


def _expert_at_start(kind: str, seed: int, config=CLEAR):
    w = World(config)
    w.reset(seed=seed, kind=kind)
    return w, w.expert_trajectory()


@pytest.mark.parametrize("seed", range(5))
def test_expert_turns_forward_stop(seed):
    _, left = _expert_at_start("turn_left", seed)
    _, right = _expert_at_start("turn_right", seed)
    _, fwd = _expert_at_start("forward", seed)
    w, stop = _expert_at_start("stop", seed)
    assert left.shape == (16, 3) and left.dtype == np.float32
    assert left[-1, 1] > 0.5 and left[-1, 2] > 0.5  # ends to the left, turned left
    assert right[-1, 1] < -0.5 and right[-1, 2] < -0.5
    assert fwd[-1, 0] > 1.0 and abs(fwd[-1, 1]) < 0.15 and np.all(np.diff(fwd[:, 0]) >= 0)
    # stop: comes to rest quickly and stays
    assert np.abs(stop[-1, :2] - stop[3, :2]).max() < 1e-6
    assert np.linalg.norm(stop[-1, :2]) < 0.25
    states, _, _ = w.expert_plan()
    assert abs(states[-1, 3]) < 1e-9


@pytest.mark.parametrize("colour", ["red", "green", "blue"])
def test_expert_goto_gets_closer_to_its_cone(colour):
    for seed in range(4):
        w, traj = _expert_at_start(f"goto_{colour}", seed)
        cone = w.layout.cone(colour)
        end = robot_to_world(traj[-1:, :2], w.state)[0]
        start_d = np.hypot(*(w.state[:2] - cone.xy))
        end_d = np.hypot(*(end - cone.xy))
        assert end_d < start_d - 0.3
        assert end_d > w.config.goal_distance - 0.05  # stops in front, not on the cone


def test_expert_goto_stops_in_front_of_cone():
    cfg = CLEAR
    layout = straight_layout(cfg, cones=[Cone("red", 1.5, 0.3)])
    w = World(cfg)
    w.reset(seed=0, kind="goto_red", layout=layout, state=[0, 0, 0, 0.3, 0])
    traj = w.expert_trajectory()
    d = np.hypot(traj[-1, 0] - 1.5, traj[-1, 1] - 0.3)
    assert d == pytest.approx(cfg.goal_distance, abs=0.06)
    assert np.abs(traj[-1, :2] - traj[-2, :2]).max() < 1e-3  # at rest


def test_expert_follow_lane_stays_on_the_lane():
    for seed in range(4):
        ep = run_episode(seed=seed, kind="follow_lane", config=CLEAR, render=False)
        w = World(CLEAR)
        w.reset(seed=seed, kind="follow_lane")
        for t in (0, 6, 11):
            st = ep.arrays["state"][t].astype(np.float64)
            end = robot_to_world(ep.arrays["traj"][t][-1:, :2], st)
            assert w.lane_distance(end)[0] < 0.5 * CLEAR.lane_width


def test_expert_stops_before_an_obstacle_in_the_way():
    cfg = WorldConfig()
    bar = Obstacle("barrel", 1.6, 0.0, size=0.25, height=0.8)
    for kind in ("forward", "follow_lane"):
        w = World(cfg)
        w.reset(seed=0, kind=kind, layout=straight_layout(cfg, obstacles=[bar]), state=[0, 0, 0, 0.6, 0])
        states, _, braked = w.expert_plan()
        assert braked
        assert abs(states[-1, 3]) < 1e-6  # at rest before the barrel
        clearance = w.obstacle_clearance(states[:, :2])
        assert clearance.min() >= cfg.safety_margin - 0.05
        assert states[-1, 0] > 0.4  # but it did drive up to it


@pytest.mark.parametrize("offset, side", [(0.1, -1), (-0.1, 1)])
def test_expert_drives_around_an_obstacle_on_its_way_to_the_cone(offset, side):
    """goto: a barrel on the line to the cone is passed on the side away from it (a little left
    of the line: on the right), with the safety margin kept, and the robot reaches the cone; with
    world.expert_detour off the expert stops before the barrel instead."""
    cfg = WorldConfig()
    bar = Obstacle("barrel", 2.0, offset, size=0.3, height=0.8)
    layout = straight_layout(cfg, cones=[Cone("red", 4.5, 0.0)], obstacles=[bar])
    w = World(cfg)
    w.reset(seed=0, kind="goto_red", layout=layout, state=[0, 0, 0, 0.6, 0])
    states, _, braked = w.expert_plan()
    assert not braked and states[-1, 3] > 0.4 and side * states[-1, 1] > 0.3  # drives on, turning aside
    path = []
    for _ in range(120):  # closed loop on the expert's own plan
        assert float(w.obstacle_clearance(w.state[:2])) > cfg.safety_margin - 0.05
        path.append(w.state.copy())
        w.step(*w.expert_plan()[1][0])
    path = np.array(path)
    assert side * path[np.argmin(np.abs(path[:, 0] - 2.0)), 1] > 0.5  # beside the barrel, away from it
    assert np.hypot(w.state[0] - 4.5, w.state[1]) <= cfg.goal_distance + 0.05
    stopper = World(WorldConfig(expert_detour=False))
    stopper.reset(seed=0, kind="goto_red", layout=layout, state=[0, 0, 0, 0.6, 0])
    states, _, braked = stopper.expert_plan()
    assert braked and abs(states[-1, 3]) < 1e-6 and states[-1, 0] < 2.0 - 0.3


def test_expert_recovers_from_right_in_front_of_an_obstacle_on_its_way_to_the_cone():
    """goto from a robot at rest, facing a barrel closer than the safety margin with the cone behind
    it (where a learned policy that drove straight at the cone stands): the expert turns away and
    goes around it instead of stopping there for good, and never touches the barrel."""
    cfg = WorldConfig()
    bar = Obstacle("barrel", 0.6, 0.0, size=0.3, height=0.8)
    layout = straight_layout(cfg, cones=[Cone("red", 3.0, 0.0)], obstacles=[bar])
    w = World(cfg)
    w.reset(seed=0, kind="goto_red", layout=layout, state=[0.0, 0.0, 0.0, 0.0, 0.0])
    assert float(w.obstacle_clearance(w.state[:2])) < cfg.safety_margin
    states, _, braked = w.expert_plan()
    assert not braked and np.abs(states[:, 4]).max() > 0.5  # turns (in place) rather than stop
    for _ in range(150):
        assert float(w.obstacle_clearance(w.state[:2])) > 0.0
        w.step(*w.expert_plan()[1][0])
    assert np.hypot(w.state[0] - 3.0, w.state[1]) <= cfg.goal_distance + 0.05


def test_no_expert_trajectory_passes_through_an_obstacle():
    cfg = WorldConfig(episode_steps=16, num_obstacles=6, blocking_obstacle_prob=0.6)
    w = World(cfg)
    worst = np.inf
    blocked = 0
    for seed in range(24):
        kind = KINDS[seed % len(KINDS)]
        ep = run_episode(seed=seed, kind=kind, config=cfg, render=False, world=w)
        assert ep.meta["collisions"] == 0
        blocked += ep.meta["blocking_obstacle"]
        for t in range(0, cfg.episode_steps, 3):
            states, _, _ = plan(kind, ep.arrays["state"][t].astype(np.float64), w.layout, cfg)
            worst = min(worst, float(w.obstacle_clearance(states[:, :2]).min()))
            # the recorded trajectory is these states, sampled at traj_dt, in the robot frame
            assert np.allclose(robot_to_world(ep.arrays["traj"][t][:, :2], ep.arrays["state"][t].astype(np.float64)),
                               states[2::2, :2], atol=1e-4)
    assert worst >= 0.0, worst
    assert blocked >= 5


def test_episode_arrays_consistent():
    ep = run_episode(seed=3, kind="turn_left", config=SMALL)
    T, n = SMALL.episode_steps, SMALL.image_size
    a = ep.arrays
    assert a["ego"].shape == (T, n, n, 3) and a["top"].shape == (T, n, n, 3)
    assert a["state"].shape == (T, 5) and a["state"].dtype == np.float32
    assert a["traj"].shape == (T, 16, 3) and a["traj"].dtype == np.float32
    assert np.allclose(a["stamp"], np.arange(T) * SMALL.sim_dt)
    assert ep.meta["kind"] == "turn_left" and ep.meta["command"] in phrasings("turn_left", "train")
    ev = run_episode(seed=3, kind="turn_left", split="eval", config=SMALL, render=False)
    assert ev.meta["command"] in phrasings("turn_left", "eval")
    # the state at t+1 follows from the state at t and the executed action
    for t in range(T - 1):
        nxt = unicycle_step(a["state"][t].astype(np.float64), *a["action"][t], SMALL)
        assert np.allclose(nxt, a["state"][t + 1], atol=1e-4)


def test_preludes_cover_stop_while_moving_and_start_from_rest():
    cfg = WorldConfig(episode_steps=24, num_obstacles=0, blocking_obstacle_prob=0.0)
    ep = run_episode(seed=1, kind="stop", config=cfg, render=False)
    a = ep.arrays
    assert ep.meta["prelude"] in ("forward", "follow_lane", "turn_left", "turn_right")
    moving = [t for t in range(cfg.history_span, cfg.episode_steps) if a["prelude"][t] and a["state"][t, 3] > 0.3]
    assert moving, "stop episodes must contain samples where the robot still moves"
    for t in moving:  # the label is still "stop": a short braking trajectory
        assert np.linalg.norm(a["traj"][t, -1, :2]) < 0.3
        assert np.abs(a["traj"][t, -1] - a["traj"][t, -2]).max() < 1e-6
    assert a["state"][-1, 3] < 1e-6  # and it did stop in the end
    hold = WorldConfig(episode_steps=24, num_obstacles=0, blocking_obstacle_prob=0.0, hold_prob=1.0)
    ep = run_episode(seed=2, kind="forward", config=hold, render=False)
    a = ep.arrays
    k = ep.meta["prelude_steps"]
    assert ep.meta["prelude"] == "hold" and k >= hold.history_span
    assert np.all(a["state"][:k, 3] == 0) and np.allclose(a["state"][:k, :3], a["state"][0, :3])
    assert a["traj"][k - 1, -1, 0] > 1.0  # from rest, the label accelerates forward
    assert a["state"][-1, 3] > 0.3  # afterwards it drives
