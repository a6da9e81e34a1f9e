"""The scene map (obstacles and road on the top camera) and the guidance that uses it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vla_ros.checkpoint import save_checkpoint
from vla_ros.errors import UserError
from vla_ros.inference import InputError, VLAInferenceAPI
from vla_ros.guidance.steer import TargetGuidance, brake_before_obstacles, clear_aim, keep_on_road
from vla_ros.model.locator import Located, cell_centres
from vla_ros.model.scene_map import SceneView, scene_map_labels
from vla_ros.model.vla import SimpleVLA
from vla_ros.sim.commands import KINDS, phrasings
from vla_ros.sim.world import World

R = 64  # cells of a 128 px top camera's map
HALF = 6.0  # metres per top-camera unit (the 12 m arena)
CELL = 2 * HALF / R  # metres per map cell: the resolution of every clearance read off the map


def _straight(length=2.4, n=16):
    x = torch.linspace(length / n, length, n)
    return torch.stack([x, torch.zeros(n), torch.zeros(n)], -1)  # (16, 3)


def _probs(obstacles=(), road=None):
    """(2, R, R) map: discs (x, y, radius) of obstacles in metres, world frame; road: a function of
    (N, 2) world points -> bool."""
    xy = cell_centres(R) * HALF  # (R*R, 2)
    obs = torch.zeros(R * R)
    for x, y, r in obstacles:
        obs = torch.maximum(obs, ((xy - torch.tensor([x, y])).norm(dim=-1) <= r + HALF / R).float())
    rd = road(xy).float() if road is not None else torch.zeros(R * R)
    return torch.stack([obs, rd]).view(2, R, R)


def _view(probs, x=0.0, y=0.0, yaw=0.0):
    return SceneView(probs, torch.tensor([x, y]) / HALF, torch.tensor([math.cos(yaw), math.sin(yaw)]), HALF)


def _gap_to_discs(traj, obstacles, robot_xy=(0.0, 0.0)):
    pts = traj[:, :2] + torch.tensor(robot_xy)
    return min(float(((pts - torch.tensor([x, y])).norm(dim=-1) - r).min()) for x, y, r in obstacles)


def test_labels_mark_each_obstacle_and_the_road_of_a_world():
    world = World()
    world.reset(seed=11, kind="goto_red")
    lab = scene_map_labels(world.layout, world.config.arena_size, R)
    assert lab.shape == (2, R, R) and lab.dtype == np.float32
    centres = cell_centres(R).numpy() * HALF
    for ob in world.layout.obstacles:
        nearest = np.argmin(np.hypot(centres[:, 0] - ob.x, centres[:, 1] - ob.y))
        assert lab[0].reshape(-1)[nearest] == 1.0
    assert lab[0].sum() >= len(world.layout.obstacles)
    np.testing.assert_array_equal(lab[1].reshape(-1) > 0, world.layout.lane.contains(centres))
    # the dict in every episode's JSON gives the same labels
    np.testing.assert_array_equal(scene_map_labels(world.layout.to_dict(), 12.0, R), lab)


def test_view_puts_the_map_in_the_robot_frame():
    probs = _probs([(2.0, 3.0, 0.2)])
    view = _view(probs, x=2.0, y=1.0, yaw=math.pi / 2)  # facing north, the barrel 2 m ahead
    ahead, left = view.obstacle_gap(torch.tensor([[2.0, 0.0], [0.0, 2.0]]))
    assert float(ahead) == pytest.approx(0.0, abs=0.2) and float(left) > 2.5
    road = _probs(road=lambda p: p[:, 0].abs() < 0.8)  # a north-south road through x = 0
    on, off = _view(road, x=0.0, y=0.0, yaw=0.0).road(torch.tensor([[0.0, 2.0], [2.0, 0.0]]))
    assert float(on) > 0.9 and float(off) < 0.1


def test_the_goto_aim_passes_beside_an_obstacle_on_the_way_and_keeps_the_margin():
    target = torch.tensor([4.0, 0.0])
    barrel = (1.8, 0.1, 0.3)  # on the straight way, a little to the left
    view = _view(_probs([barrel]))
    aim = clear_aim(view, target, robot_radius=0.25, margin=0.15, reach=3.0)
    assert aim is not None and math.radians(-90) < aim < 0  # the side away from the barrel (left of the line)
    way = torch.stack([torch.arange(0.1, 3.0, 0.05) * math.cos(aim), torch.arange(0.1, 3.0, 0.05) * math.sin(aim)], -1)
    assert _gap_to_discs(way, [barrel]) - 0.25 >= 0.15  # the margin from the true barrel
    step = abs(aim) - math.radians(10)  # the offset tried before it, to either side
    assert clear_aim(view, target, 0.25, 0.15, reach=3.0, offsets=(0.0, step, -step)) is None  # the smallest clear one
    assert clear_aim(_view(_probs()), target, 0.25, 0.15, reach=3.0) == 0.0  # nothing in the way: straight at it
    for reach in (0.05, 0.0, -0.3):  # at (or inside) the stopping point: straight at it
        assert clear_aim(view, target, 0.25, 0.15, reach=reach) == 0.0
    # a braking model's short plan toward the barrel does not make the straight way clear
    assert clear_aim(view, target, 0.25, 0.15, reach=3.0, offsets=(0.0,)) is None


def test_a_plan_that_would_come_too_close_is_cut_before_the_obstacle():
    barrel = (1.5, 0.0, 0.3)
    braked = brake_before_obstacles(_straight(), _view(_probs([barrel])), 0.25, 0.15)
    assert _gap_to_discs(braked, [barrel]) - 0.25 >= 0.15 - CELL  # the margin, within a map cell
    assert float(braked[-1, :2].norm()) < 1.0  # stops short of it
    torch.testing.assert_close(braked[:3], _straight()[:3])  # the model's timing up to there
    torch.testing.assert_close(brake_before_obstacles(_straight(), _view(_probs([(1.5, 2.0, 0.3)])), 0.25, 0.15),
                               _straight())  # beside the way: unchanged
    ring = [(1.2 * math.cos(a), 1.2 * math.sin(a), 0.2) for a in np.radians(np.arange(-100, 101, 10))]
    assert clear_aim(_view(_probs(ring)), torch.tensor([4.0, 0.0]), 0.25, 0.15, reach=3.0) is None  # no way out


def test_a_lane_plan_turns_onto_the_road():
    heading = math.radians(25)  # the road runs 25 deg to the left of the robot's heading
    d = torch.tensor([math.cos(heading), math.sin(heading)])
    road = _probs(road=lambda p: (p[:, 0] * d[1] - p[:, 1] * d[0]).abs() < 0.8)
    turned = keep_on_road(_straight(), _view(road), math.radians(45))
    assert math.degrees(math.atan2(float(turned[-1, 1]), float(turned[-1, 0]))) == pytest.approx(25, abs=6)
    along = keep_on_road(_straight(), _view(_probs(road=lambda p: p[:, 1].abs() < 0.8)), math.radians(45))
    torch.testing.assert_close(along, _straight())  # already on the road: the model's own plan
    standing = torch.zeros(16, 3)
    assert torch.equal(keep_on_road(standing, _view(road), math.radians(45)), standing)


def test_scene_guidance_picks_by_command_kind():
    d = 8
    centroids = torch.eye(len(KINDS), d)
    guide = TargetGuidance(centroids, torch.tensor([k.startswith("goto_") for k in KINDS]), tuple(KINDS), HALF)
    barrel = (1.8, 0.0, 0.3)
    probs = _probs([barrel], road=lambda p: p[:, 1].abs() < 0.8)[None].expand(len(KINDS), -1, -1, -1)
    located = Located(target=torch.zeros(len(KINDS), 2), robot=torch.zeros(len(KINDS), 2),
                      heading=torch.tensor([[1.0, 0.0]]).expand(len(KINDS), -1),
                      relative=torch.tensor([[4.0 / HALF, 0.0]]).expand(len(KINDS), -1),
                      target_logp=torch.zeros(len(KINDS), 1), robot_logp=torch.zeros(len(KINDS), 1))
    traj = _straight()[None].expand(len(KINDS), -1, -1)
    out = guide.scene(traj, located, centroids, probs)
    for i, kind in enumerate(KINDS):
        if kind == "stop":
            torch.testing.assert_close(out[i], traj[i])  # stop is left alone
            continue
        assert _gap_to_discs(out[i], [barrel]) - 0.25 >= 0.15 - CELL, kind  # the margin, within a map cell
        if kind.startswith("goto_"):
            assert float(out[i, -1, :2].norm()) > 2.0, kind  # around it
        else:
            assert float(out[i, -1, :2].norm()) < 1.3, kind  # the others brake before it


@pytest.fixture(scope="module")
def scene_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = SimpleVLA(backbone="tiny", image_size=64, cond_dim=64, num_timesteps=100, num_inference_steps=10,
                      target_locator=True, scene_map=True)
    model.action_head.normalizer.fit(torch.randn(50, 16, 3) * 2)
    return save_checkpoint(model, tmp_path_factory.mktemp("ck") / "scene.pth")


def frames(seed, n=5, size=64):
    return list(np.random.default_rng(seed).integers(0, 255, (n, size, size, 3), dtype=np.uint8))


def test_api_scene_guidance_needs_the_map_and_runs_both_paths(scene_ckpt, tmp_path):
    torch.manual_seed(0)
    locator_only = save_checkpoint(SimpleVLA(backbone="tiny", image_size=64, cond_dim=64, num_timesteps=100,
                                             num_inference_steps=10, target_locator=True), tmp_path / "loc.pth")
    with pytest.raises(InputError, match="vla scene-map"):
        VLAInferenceAPI(locator_only, warmup=False, guidance="scene")
    with pytest.raises(InputError, match="self_radius"):
        VLAInferenceAPI(scene_ckpt, warmup=False, guidance="scene", guidance_settings={"self_radius": -1.0})
    api = VLAInferenceAPI(scene_ckpt, warmup=False, guidance="scene")
    ego, top = frames(1), frames(2)
    goto, stop = phrasings("goto_red", "train")[0], phrasings("stop", "train")[0]
    a = api.predict(ego, top, goto)
    assert a.trajectory.shape == (16, 3) and a.finite
    plain = VLAInferenceAPI(scene_ckpt, warmup=False)
    np.testing.assert_array_equal(api.predict(ego, top, stop).trajectory, plain.predict(ego, top, stop).trajectory)
    images = np.stack([np.stack([ego, top]), np.stack([ego, top])])
    np.testing.assert_allclose(api.predict_batch(images, [goto, stop]),
                               np.stack([a.trajectory, plain.predict(ego, top, stop).trajectory]), atol=1e-4)


def test_vla_scene_map_trains_the_map_alone_and_the_guidance_uses_it(scene_ckpt, tmp_path, capsys):
    """A few steps on a tiny dataset: the map learns the road (the larger class), every other
    weight is copied unchanged, bad arguments are clear errors, and the result drives guidance."""
    from vla_ros.checkpoint import load_checkpoint
    from vla_ros.cli import main
    from vla_ros.data.generate import generate_dataset
    from vla_ros.sim.config import WorldConfig

    world = WorldConfig(image_size=64, episode_steps=12)
    data = generate_dataset(tmp_path / "data", episodes=6, seed=3, config=world, progress=False)
    torch.manual_seed(0)
    init = save_checkpoint(SimpleVLA(backbone="tiny", image_size=64, cond_dim=64, num_timesteps=100,
                                     num_inference_steps=10, target_locator=True), tmp_path / "loc.pth")
    out = tmp_path / "scene.pth"
    assert main(["scene-map", "--init", str(init), "--data", str(data), "--out", str(out), "--steps", "60",
                 "--batch-size", "8", "--lr", "5e-3", "--json", str(tmp_path / "map.json")]) == 0
    printed = capsys.readouterr().out
    assert "road accuracy" in printed and "--guidance scene" in printed
    summary = __import__("json").loads((tmp_path / "map.json").read_text())
    assert summary["validation"]["road_accuracy"] > 0.7  # beats chance on held-out frames after 60 steps
    assert summary["validation_episodes"] == 1 and summary["frames"]["validation"] == 4
    before, _ = load_checkpoint(init)
    after, payload = load_checkpoint(out)
    assert after.config.scene_map and after.scene_map is not None and payload["meta"]["scene_map"]["steps"] == 60
    own = before.state_dict()
    for k, v in after.state_dict().items():
        if not k.startswith("scene_map."):
            torch.testing.assert_close(v, own[k], msg=k)
    api = VLAInferenceAPI(out, warmup=False, guidance="scene")
    assert api.predict(frames(1), frames(2), phrasings("follow_lane", "train")[0]).finite
    # fine-tuning the model (vla train --init) leaves the map as it is and keeps it in the checkpoint
    from vla_ros.config import ModelConfig, TrainConfig
    from vla_ros.training.loop import train

    train(ModelConfig(backbone="tiny", image_size=64), TrainConfig(steps=3, batch_size=4, warmup_steps=1, val_every=3,
                                                                   val_batches=1, log_every=1, val_fraction=0.25),
          data, tmp_path / "ft", init=out, progress=False)
    tuned, _ = load_checkpoint(tmp_path / "ft" / "last.pth")
    mapped = {k: v for k, v in after.state_dict().items() if k.startswith("scene_map.")}
    assert tuned.config.scene_map and mapped
    for k, v in mapped.items():
        torch.testing.assert_close(tuned.state_dict()[k], v, msg=k)
    with pytest.raises(UserError, match="new file"):
        from vla_ros.training.scene import train_scene_map

        train_scene_map(init, [data], init, steps=1)
    assert main(["scene-map", "--init", str(init), "--data", str(tmp_path / "nowhere"), "--out", str(out)]) != 0
    assert "does not exist" in capsys.readouterr().err


def test_the_packaged_scene_map_sees_obstacles_and_road_and_finds_the_way_around_on_held_out_worlds():
    """checkpoints/scene.pth on the first frame of held-out worlds (the real encoders): the map
    against the layout's labels, and, in the blocked goto worlds, the aim it chooses against the
    true obstacles."""
    from vla_ros import paths
    from vla_ros.training.scene import map_metrics
    from vla_ros.sim.geometry import world_to_robot

    api = VLAInferenceAPI(paths.default_checkpoint().with_name("scene.pth"), warmup=False, guidance="scene")
    world = World()
    for seed, kind in [(5015, "goto_blue"), (6013, "goto_red"), (5004, "follow_lane"), (6012, "follow_lane")]:
        obs = world.reset(seed, kind=kind, split="eval")
        with torch.inference_mode():
            logits = api.model.scene_map(api.model.preprocess(obs["top"][None])).float()
        m = map_metrics(logits, torch.from_numpy(scene_map_labels(world.layout, world.config.arena_size, R))[None])
        assert m["obstacle_recall"] > 0.8 and m["obstacle_precision"] > 0.7 and m["road_accuracy"] > 0.98, (seed, m)
        if not kind.startswith("goto_"):
            continue
        assert world.info["blocking_obstacle"]
        st = world.state
        view = SceneView(torch.sigmoid(logits[0]), torch.tensor(st[:2] / HALF, dtype=torch.float32),
                         torch.tensor([math.cos(st[2]), math.sin(st[2])], dtype=torch.float32), HALF, ignore_radius=0.45)
        cone = world.layout.cone(kind[5:])
        target = torch.as_tensor(world_to_robot([cone.x, cone.y], st), dtype=torch.float32)
        reach = min(3.0, float(target.norm()) - 0.5)
        assert clear_aim(view, target, 0.25, 0.15, reach, offsets=(0.0,)) is None  # the straight way is blocked
        aim = clear_aim(view, target, 0.25, 0.15, reach)
        assert aim is not None and aim != 0.0
        b = math.atan2(float(target[1]), float(target[0])) + aim
        s = np.arange(0.1, reach + 1e-6, 0.05)
        way = np.stack([st[0] + s * math.cos(st[2] + b), st[1] + s * math.sin(st[2] + b)], -1)
        assert float(world.obstacle_clearance(way).min()) > 0.05, seed  # clear of the true obstacles
