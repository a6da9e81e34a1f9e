"""The scan guard (vla_ros/runtime/scan_guard.py), the simulated laser (vla_ros/sim/lidar.py), the node
core's use of both, and the closed loop with the guard under a policy that drives into an obstacle."""

import math

import numpy as np
import pytest

from vla_ros.config import ConfigError
from vla_ros.runtime.config import NodeConfig
from vla_ros.runtime.history import NS
from vla_ros.runtime.safety import Status
from vla_ros.runtime.scan_guard import STEP_M, Scan, ScanGuard, guard_trajectory, scan_points
from vla_ros.sim.config import WorldConfig
from vla_ros.sim.geometry import make_lane
from vla_ros.sim.layout import Cone, Layout, Obstacle
from vla_ros.sim.lidar import LidarSpec, lidar_ranges

from test_runtime import MS, T0, FakeModel, _core, _feed

R, MARGIN = 0.25, 0.1


def _straight(speed=1.0, n=16, dt=0.2):
    """(n, 3) forward at ``speed`` m/s: waypoint k at x = speed * (k + 1) * dt."""
    x = speed * dt * np.arange(1, n + 1)
    return np.stack([x, np.zeros(n), np.zeros(n)], 1).astype(np.float32)


def _wall(x, y0=-2.0, y1=2.0, n=81):
    """(n, 2) scan points of a wall across the way at ``x``."""
    return np.stack([np.full(n, x), np.linspace(y0, y1, n)], 1)


def _scan_of(points, stamp_ns=T0, beams=720):
    """A Scan whose beams hit ``points`` (robot frame; the nearest point per beam)."""
    ranges = np.full(beams, np.inf, np.float32)
    inc = 2 * math.pi / beams
    for x, y in points:
        i = int(round((math.atan2(y, x) + math.pi) / inc)) % beams
        ranges[i] = min(ranges[i], math.hypot(x, y))
    return Scan(stamp_ns, -math.pi, inc, 0.05, 20.0, ranges)


# -- the cut -------------------------------------------------------------------------------------


def test_a_plan_clear_of_every_scan_point_is_not_touched():
    traj = _straight()
    out = guard_trajectory(traj, _wall(5.0), R, MARGIN)
    assert out.kept == 16 and np.array_equal(out.trajectory, traj) and out.trajectory.dtype == np.float32
    assert out.clearance == pytest.approx(5.0 - R)
    assert guard_trajectory(traj, np.zeros((0, 2)), R, MARGIN).clearance == math.inf


def test_a_plan_into_a_wall_stops_margin_short_of_it_and_holds_there():
    traj = _straight()  # 3.2 m straight ahead; a wall at 2 m
    out = guard_trajectory(traj, _wall(2.0), R, MARGIN)
    stop_x = 2.0 - R - MARGIN
    assert out.kept == int(stop_x / 0.2)  # waypoints up to x = 1.6 m stay as planned
    np.testing.assert_array_equal(out.trajectory[:out.kept], traj[:out.kept])
    held = out.trajectory[out.kept:]
    assert np.all(held == held[0]) and stop_x - STEP_M <= held[0, 0] <= stop_x
    assert out.blocked_at < MARGIN


def test_a_robot_already_too_close_may_back_away_or_slide_along_but_never_get_closer():
    wall = _wall(0.3)  # clearance now 0.05 m, below the margin
    forward = guard_trajectory(_straight(), wall, R, MARGIN)
    assert forward.kept == 0 and np.all(forward.trajectory == 0)  # hold where it is
    back = -_straight(0.5)
    assert guard_trajectory(back, wall, R, MARGIN).kept == 16
    side = np.stack([np.zeros(16), 0.05 * np.arange(1, 17), np.zeros(16)], 1)
    assert guard_trajectory(side, wall, R, MARGIN).kept == 16


def test_a_turn_keeps_its_heading_up_to_the_cut():
    k = np.arange(1, 17)
    traj = np.stack([0.2 * k, np.zeros(16), 0.1 * k], 1)  # heading turns while it drives
    out = guard_trajectory(traj, _wall(1.5), R, MARGIN)
    held = out.trajectory[out.kept:]
    assert 0 < out.kept < 16 and np.all(held == held[0])
    assert traj[out.kept - 1, 2] <= held[0, 2] <= traj[out.kept, 2]


def test_scan_points_skip_beams_without_a_return_and_honour_the_scanner_pose():
    scan = Scan(T0, -math.pi / 2, math.pi / 2, 0.1, 10.0, np.float32([1.0, np.inf, 0.05, np.nan]))
    np.testing.assert_allclose(scan_points(scan), [[0.0, -1.0]], atol=1e-9)  # -90 deg only: 0.05 < range_min
    rear = Scan(T0, 0.0, 1.0, 0.1, 10.0, np.float32([2.0]))  # a laser 0.3 m ahead, facing backwards
    np.testing.assert_allclose(scan_points(rear, (0.3, 0.0, math.pi)), [[-1.7, 0.0]], atol=1e-9)


def test_the_guard_rejects_unusable_scans_and_reports_missing_or_stale_ones():
    guard = ScanGuard(R, MARGIN, max_age=0.3)
    assert guard.problem(T0)[1] == "no_scan"
    assert "no ranges" in guard.on_scan(Scan(T0, 0.0, 0.1, 0.1, 10.0, np.float32([])))
    assert "stamped" in guard.on_scan(Scan(0, 0.0, 0.1, 0.1, 10.0, np.float32([1.0])))
    assert "not usable" in guard.on_scan(Scan(T0, 0.0, 0.0, 0.1, 10.0, np.float32([1.0])))
    assert guard.on_scan(_scan_of(_wall(2.0))) is None
    assert guard.problem(T0 + 200 * MS) is None
    reason, key = guard.problem(T0 + 500 * MS)
    assert key == "stale_scan" and "0.50 s old" in reason


@pytest.mark.parametrize("values, words", [({"scan_max_age": 0}, "scan_max_age"), ({"scan_margin": -0.1}, "scan_margin"),
                                           ({"robot_radius": 0.0}, "robot_radius"), ({"scan_yaw": math.inf}, "finite")])
def test_bad_scan_guard_parameters_are_named(values, words):
    with pytest.raises(ConfigError, match=words):
        NodeConfig(**values)


# -- the node core ------------------------------------------------------------------------------


def test_node_core_with_scan_guard_stops_without_a_fresh_scan_and_cuts_plans_at_the_wall():
    core, log = _core(scan_guard=True)
    core.on_command("go")
    _feed(core, T0)
    model = FakeModel(_straight())
    r = core.tick(T0, model)
    assert r.status == Status.STOP_NO_SCAN and "no laser scan" in r.reason and not model.calls
    assert core.on_scan(_scan_of(_wall(2.0), stamp_ns=T0))
    r = core.tick(T0 + 100 * MS, model)
    assert r.ok and r.trajectory[:, 0].max() <= 2.0 - R - MARGIN and r.trajectory[-1, 0] == r.trajectory[8, 0]
    assert any("scan guard: plan cut after" in m for _, m in log.lines)
    values = dict(core.diagnostics(T0 + 100 * MS)[2])
    assert values["scan_guard_cut"] == "1" and values["scans"] == "1"
    assert not core.on_scan(Scan(T0, 0.0, 0.1, 0.1, 10.0, np.float32([])))
    assert core.rejected["bad_scan"] == 1
    r = core.tick(T0 + 400 * MS, model)  # the scan of T0 is 0.4 s old now (scan_max_age 0.3)
    assert r.status == Status.STOP_NO_SCAN and "old" in r.reason


def test_node_core_without_scan_guard_ignores_scans():
    core, _ = _core()
    core.on_command("go")
    _feed(core, T0)
    assert not core.on_scan(_scan_of(_wall(0.5)))
    r = core.tick(T0, FakeModel(_straight()))
    assert r.ok and r.trajectory[-1, 0] == pytest.approx(3.2)


# -- the simulated laser and the closed loop ------------------------------------------------------


def _layout(obstacles, cones=()):
    lane = make_lane(np.random.default_rng(0), WorldConfig())
    return Layout(lane=lane, cones=list(cones), obstacles=list(obstacles))


def test_the_simulated_laser_measures_the_distance_to_barrels_boxes_and_cones():
    spec = LidarSpec()
    layout = _layout([Obstacle("barrel", 3.0, 0.0, 0.4, 1.0), Obstacle("box", 0.0, 2.0, 0.5, 1.0, yaw=0.0)],
                     [Cone("red", -1.5, 0.0)])
    r = lidar_ranges(layout, np.array([0.0, 0.0, 0.0, 0.0, 0.0]), spec)
    beam = lambda deg: int(round((math.radians(deg) - spec.angle_min) / spec.angle_increment)) % spec.beams  # noqa: E731
    assert r[beam(0)] == pytest.approx(2.6, abs=1e-5)  # barrel surface
    assert r[beam(90)] == pytest.approx(1.5, abs=1e-5)  # box face
    assert r[beam(180)] == pytest.approx(1.5 - 0.18, abs=1e-5)  # cone base
    assert np.isinf(r[beam(-90)])  # nothing to the right
    turned = lidar_ranges(layout, np.array([0.0, 0.0, math.pi / 2, 0.0, 0.0]), spec)
    assert turned[beam(0)] == pytest.approx(1.5, abs=1e-5)  # the robot faces the box now


def test_in_the_closed_loop_the_guard_stops_a_policy_that_drives_into_an_obstacle():
    from vla_ros.sim.in_process import run_in_process
    from vla_ros.sim.loop import ClosedLoopSim

    def blind(ego, top, text, odometry=None):  # ignores everything: 1 m/s straight ahead
        return _straight()

    seed, sim = None, ClosedLoopSim(duration=6.0)
    for s in range(200):  # a world where straight ahead runs into an obstacle
        sim.reset(seed=s, kind="forward")
        x, y, yaw = sim.world.state[:3]
        ahead = np.stack([x + np.cos(yaw) * np.arange(0, 5, 0.05), y + np.sin(yaw) * np.arange(0, 5, 0.05)], 1)
        if sim.world.collides(ahead).any() and not sim.world.collides(ahead[:30]).any():
            seed = s
            break
    assert seed is not None
    plain = run_in_process(blind, seed=seed, kind="forward", sim=sim, render=False)
    assert plain.result["collision"]
    guard = ScanGuard.from_config(NodeConfig(scan_guard=True))
    guarded = run_in_process(blind, seed=seed, kind="forward", sim=sim, render=False, scan_guard=guard)
    assert not guarded.result["collision"] and guard.cut > 0 and guarded.meta["scan_guard"]["cut"] == guard.cut
    assert sim.world.obstacle_clearance(np.asarray(guarded.states)[-1, :2]) > 0


def test_on_policy_data_can_be_driven_under_the_scan_guard():
    """`vla data generate --policy CKPT --policy-scan-guard`: the learner's plans go through the same cut,
    so DAgger visits the states where the guard stopped the model (and the expert labels them). The
    generator's own last resort (falling back to the expert near an obstacle) lets a blind learner come
    closer than the guard's margin; under the guard it keeps the margin by itself."""
    from vla_ros.data.dagger import LearnerDriver
    from vla_ros.sim.episode import run_episode
    from vla_ros.sim.world import World

    config = WorldConfig(image_size=32, episode_steps=60)
    world = World(config)

    def blind(ego, top, text, odometry=None):
        return _straight(0.8)

    def closest(driver):  # seed 4, forward: an obstacle 1.5 m straight ahead
        ep = run_episode(seed=4, kind="forward", config=config, driver=driver, world=world)
        return float(world.obstacle_clearance(ep.arrays["state"][:, :2]).min())

    guarded = LearnerDriver(blind, config, scan_guard=True)
    assert closest(LearnerDriver(blind, config)) < MARGIN <= closest(guarded)
    assert guarded.scan_guard.cut > 0
