"""The steering geometry of guidance: sampled trajectories turned toward the target the locator
found, aimed past mapped obstacles, kept on the mapped road, cut before obstacles.

A model with the target locator (``model.target_locator``) finds the cone a command names on
the top camera, but its diffusion head barely uses that input (docs/history.md, "Which cone?"): the same
frames give nearly the same trajectory whatever colour is named. Guidance uses the located target
at sampling time instead, as goal-conditioned diffusion planners constrain their samples to a goal
(Janner et al. 2022, "Planning with Diffusion", inpaint the goal state). For a command that names
a target, each sampled trajectory (T, 3) in the robot frame is

1. turned about the robot so that its last waypoint points at the target, by at most
   ``max_turn`` per plan (the robot turns further over the next plans), and
2. cut where its path comes within ``stop_distance`` of the target: the waypoints before keep
   their timing (the planned speed), the later ones wait at that point.

The rest is the model's: the speed profile, braking for an obstacle (a short trajectory stays
short), the curvature. Which commands name a target is learnt from the phrasings the model was
trained on: the nearest class centroid of their encodings (the eight command kinds), checked on
held-out phrasings by a test.

``guidance: scene`` (``TargetGuidance.scene``) also uses the scene map (model/scene_map.py:
obstacles and road on the top camera), because the head cannot plan around an obstacle or back
onto a road it is leaving:

* a command that names a target is aimed beside it where the straight way to it passes a mapped
  obstacle closer than the safety margin (``clear_aim``: the smallest offset, up to 90 deg, whose
  straight way is clear; the way is checked, not the model's plan, so a braking plan cannot pass
  for a clear one);
* "follow the lane" is turned (at most ``max_turn``) to keep its waypoints deep in the mapped
  road (``keep_on_road``);
* every moving command is cut before a mapped obstacle it would come too close to
  (``brake_before_obstacles``): a safety layer under the model's own braking.

Pure PyTorch; no ROS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vla_ros.model.scene_map import SceneView

__all__ = ["TargetGuidance", "steer_to_target", "turn_about_robot", "cut_at_arc_length",
           "clear_aim", "brake_before_obstacles", "keep_on_road", "DETOUR_OFFSETS"]


def turn_about_robot(traj: torch.Tensor, turn: torch.Tensor) -> torch.Tensor:
    """traj (B, T, 3) robot-frame waypoints, turn (B,) rad -> (B, T, 3) turned about the robot."""
    xy, heading = traj[..., :2], traj[..., 2]
    c, s = torch.cos(turn)[:, None], torch.sin(turn)[:, None]
    xy = torch.stack([c * xy[..., 0] - s * xy[..., 1], s * xy[..., 0] + c * xy[..., 1]], -1)  # (B, T, 2)
    return torch.cat([xy, (heading + turn[:, None])[..., None]], -1)


def cut_at_arc_length(traj: torch.Tensor, room: torch.Tensor) -> torch.Tensor:
    """traj (B, T, 3), room (B,) metres -> (B, T, 3): the waypoints within arc length ``room``
    keep their timing (the planned speed), the later ones wait at the point at that arc length."""
    xy, heading = traj[..., :2], traj[..., 2]
    prev = torch.cat([torch.zeros_like(xy[:, :1]), xy[:, :-1]], 1)  # (B, T, 2) each segment's start
    seg = (xy - prev).norm(dim=-1)  # (B, T)
    cum = seg.cumsum(-1)  # (B, T) arc length at each waypoint
    room = room.clamp(min=0.0)[:, None]  # (B, 1)
    past = cum > room  # (B, T)
    k = past.float().argmax(-1)  # first waypoint past the stopping point (0 if none)
    rows = torch.arange(len(xy), device=xy.device)
    before = cum[rows, k] - seg[rows, k]  # arc length at that segment's start
    u = ((room[:, 0] - before) / seg[rows, k].clamp(min=1e-9)).clamp(0.0, 1.0)[:, None]
    stop = prev[rows, k] + u * (xy[rows, k] - prev[rows, k])  # (B, 2) the point at arc length `room`
    xy = torch.where(past[..., None], stop[:, None], xy)
    heading = torch.where(past, heading[rows, k][:, None], heading)
    return torch.cat([xy, heading[..., None]], -1)


def _wrap(a: torch.Tensor) -> torch.Tensor:
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi  # to [-pi, pi)


def steer_to_target(traj: torch.Tensor, target: torch.Tensor, max_turn: float, stop_distance: float,
                    offset: torch.Tensor | None = None) -> torch.Tensor:
    """traj (B, T, 3) robot-frame waypoints (x ahead, y left, heading), target (B, 2) metres in
    the robot frame -> (B, T, 3) turned toward the target (at most ``max_turn`` rad) and cut at
    the arc length that ends ``stop_distance`` before it (later waypoints wait there). A
    trajectory shorter than 5 cm (standing) is not turned. ``offset`` (B,) rad: aim that far to
    the left of the target instead (a way around an obstacle)."""
    end = traj[:, -1, :2]  # (B, 2)
    moving = end.norm(dim=-1) > 0.05
    want = torch.atan2(target[:, 1], target[:, 0]) - torch.atan2(end[:, 1], end[:, 0])
    if offset is not None:
        want = want + offset
    turn = _wrap(want)
    turn = torch.where(moving, turn.clamp(-max_turn, max_turn), torch.zeros_like(turn))  # (B,)
    return cut_at_arc_length(turn_about_robot(traj, turn), target.norm(dim=-1) - stop_distance)


# aims tried around an obstacle, in order: straight at the target, then ever further to either side
DETOUR_OFFSETS = tuple(math.radians(d) * sign for d in range(0, 91, 10) for sign in ((1,) if d == 0 else (1, -1)))
LOOKAHEAD = 3.0  # metres of the straight way toward an aim that must be clear of obstacles


def _needed_clearance(view: SceneView, robot_radius: float, margin: float, device) -> float:
    """The clearance a way must keep: ``margin``, or, already closer, 5 cm less than now."""
    now = float(view.obstacle_gap(torch.zeros(1, 2, device=device))[0]) - robot_radius
    return min(margin, now - 0.05)


def clear_aim(view: SceneView, target: torch.Tensor, robot_radius: float, margin: float, reach: float,
              offsets: tuple[float, ...] = DETOUR_OFFSETS) -> float | None:
    """target (2,) metres in the robot frame -> the first of ``offsets`` (rad, to the left of the
    target's bearing; ordered 0, +a1, -a1, +a2, -a2, ... as ``DETOUR_OFFSETS``) whose straight
    way, ``reach`` metres long, keeps the robot's disc ``margin`` from every mapped obstacle
    (already closer: not 5 cm closer than now). Of the two sides of one offset, the one with more
    room. None when no aim is clear. The way is checked, not the model's plan: a braking model's
    short plan would pass any check."""
    need = _needed_clearance(view, robot_radius, margin, target.device)
    bearing = math.atan2(float(target[1]), float(target[0]))
    length = float(reach)
    if length < 0.1:  # at the stopping point already: nothing left to clear
        return 0.0
    s = torch.arange(0.1, length + 1e-6, 0.1, device=target.device)  # (n,) along the way
    aims = torch.tensor([bearing + o for o in offsets], device=target.device)  # (K,)
    pts = s[None, :, None] * torch.stack([aims.cos(), aims.sin()], -1)[:, None]  # (K, n, 2)
    room = view.obstacle_gap(pts).min(-1).values - robot_radius  # (K,)
    ok = room >= need
    if not bool(ok.any()):
        return None
    k = int(ok.float().argmax())
    partner = k + 1 if k % 2 == 1 else k - 1  # the same offset to the other side (index 0 has none)
    if k > 0 and partner < len(offsets) and bool(ok[partner]) and room[partner] > room[k]:
        k = partner
    return offsets[k]


def brake_before_obstacles(traj: torch.Tensor, view: SceneView, robot_radius: float, margin: float
                           ) -> torch.Tensor:
    """traj (T, 3) -> (T, 3): unchanged while its waypoints keep the robot's disc ``margin`` from
    every mapped obstacle (already closer: not 5 cm closer than now); else cut before the first
    that does not (the later waypoints wait there: the robot brakes)."""
    need = _needed_clearance(view, robot_radius, margin, traj.device)
    gaps = view.obstacle_gap(traj[:, :2]) - robot_radius  # (T,)
    bad = gaps < need
    if not bool(bad.any()):
        return traj
    first = int(bad.float().argmax())
    xy = traj[:, :2]
    seg = (xy - torch.cat([torch.zeros_like(xy[:1]), xy[:-1]])).norm(dim=-1)  # (T,)
    room = seg[:first].sum() if first > 0 else torch.zeros((), device=traj.device)
    return cut_at_arc_length(traj[None], room[None])[0]


def keep_on_road(traj: torch.Tensor, view: SceneView, max_turn: float, steps: int = 9,
                 turn_cost: float = 0.1) -> torch.Tensor:
    """traj (T, 3) -> (T, 3) turned about the robot (at most ``max_turn``, in ``steps`` steps to
    either side) to keep the most of its waypoints on the mapped road, each radian of turn costing
    ``turn_cost`` of the on-road fraction (the model's own heading wins a tie). A trajectory
    shorter than 5 cm (standing) is not turned."""
    if float(traj[-1, :2].norm()) <= 0.05:
        return traj
    turns = torch.linspace(-max_turn, max_turn, 2 * steps + 1, device=traj.device)  # (K,)
    cands = turn_about_robot(traj[None].expand(len(turns), -1, -1), turns)  # (K, T, 3)
    score = view.road(cands[..., :2]).mean(-1) - turn_cost * turns.abs()  # (K,)
    return cands[int(score.argmax())]


@dataclass
class TargetGuidance:
    """Steers the trajectories of target-naming commands toward the located target.

    centroids: (K, d) unit class centroids of the training phrasings' encodings, one per command
    kind; ``names_target[k]`` whether kind k names a target. ``metres_per_unit``: the locator's
    coordinates are in half the top image's side; this is that half-side in metres (the
    training world's ``arena_size / 2``).
    """

    centroids: torch.Tensor
    names_target: torch.Tensor  # (K,) bool
    kinds: tuple[str, ...]
    metres_per_unit: float
    max_turn: float = math.radians(45.0)
    stop_distance: float = 0.5
    robot_radius: float = 0.25  # the scene guidance's clearance: the training world's robot_radius
    safety_margin: float = 0.15  # ... and safety_margin
    # mapped obstacle cells this near the robot's centre are the robot itself: the top camera draws
    # it as an arrow-head whose nose is 0.5 m ahead of its centre (sim/render.py), and the map
    # takes a few of its pixels for an obstacle (no obstacle can be there without a collision)
    self_radius: float = 0.45

    def __post_init__(self) -> None:
        if not 0.0 < self.max_turn <= math.pi:
            raise ValueError(f"guidance max_turn={self.max_turn}: must be within (0, pi] radians (default 45 deg)")
        if not 0.0 <= self.stop_distance <= 10.0:
            raise ValueError(f"guidance stop_distance={self.stop_distance}: must be within [0, 10] m (default 0.5)")
        if not self.metres_per_unit > 0:
            raise ValueError(f"guidance metres_per_unit={self.metres_per_unit}: must be > 0")
        if not (0.0 < self.robot_radius <= 5.0 and 0.0 <= self.safety_margin <= 5.0 and 0.0 <= self.self_radius <= 5.0):
            raise ValueError(f"guidance robot_radius={self.robot_radius}, safety_margin={self.safety_margin}, "
                             f"self_radius={self.self_radius}: must be within (0, 5], [0, 5] and [0, 5] m")

    @classmethod
    def for_model(cls, model, metres_per_unit: float, **settings) -> "TargetGuidance":
        """Centroids from ``model.encode_text`` of every training phrasing of every kind."""
        from vla_ros.sim.commands import KINDS, phrasings

        rows = []
        for kind in KINDS:
            enc = model.encode_text(list(phrasings(kind, "train")))  # (P, d)
            rows.append(torch.nn.functional.normalize(enc.float().mean(0), dim=-1))
        names = torch.tensor([k.startswith("goto_") for k in KINDS], device=rows[0].device)
        return cls(torch.stack(rows), names, tuple(KINDS), float(metres_per_unit), **settings)

    def kind_of(self, cmd: torch.Tensor) -> torch.Tensor:
        """cmd (B, d) encodings -> (B,) index of the nearest kind centroid (cosine)."""
        return (torch.nn.functional.normalize(cmd.float(), dim=-1) @ self.centroids.T).argmax(-1)

    def __call__(self, traj: torch.Tensor, relative: torch.Tensor, cmd: torch.Tensor) -> torch.Tensor:
        """traj (B, T, 3), the locator's ``relative`` target (B, 2, locator units), cmd (B, d) ->
        (B, T, 3): steered where the command names a target, unchanged elsewhere."""
        named = self.names_target[self.kind_of(cmd)]  # (B,)
        if not bool(named.any()):
            return traj
        steered = steer_to_target(traj.float(), relative.float() * self.metres_per_unit, self.max_turn,
                                  self.stop_distance).to(traj.dtype)
        return torch.where(named[:, None, None], steered, traj)

    def scene(self, traj: torch.Tensor, located, cmd: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """``guidance: scene``. traj (B, T, 3), the locator's ``Located``, cmd (B, d), the scene
        map's probabilities (B, 2, R, R) -> (B, T, 3):

        * a command that names a target: steered toward it as ``__call__`` does, but aimed beside
          it (``clear_aim``: up to 90 deg to either side) where the straight way passes a mapped
          obstacle closer than the safety margin;
        * follow the lane: turned to keep on the mapped road (``keep_on_road``);
        * every command but stop: cut before a mapped obstacle it would come too close to.
        """
        kind = self.kind_of(cmd)  # (B,)
        out = []
        lane = self.kinds.index("follow_lane") if "follow_lane" in self.kinds else -1
        stop = self.kinds.index("stop") if "stop" in self.kinds else -1
        for b in range(len(traj)):
            t = traj[b].float()
            k = int(kind[b])
            if k == stop:
                out.append(t)
                continue
            view = SceneView(probs[b], located.robot[b].float(), located.heading[b].float(), self.metres_per_unit,
                             ignore_radius=max(self.self_radius, self.robot_radius))
            if bool(self.names_target[k]):
                target = located.relative[b].float() * self.metres_per_unit
                reach = min(LOOKAHEAD, float(target.norm()) - self.stop_distance)  # up to where it stops
                aim = clear_aim(view, target, self.robot_radius, self.safety_margin, reach)
                offset = torch.tensor([aim or 0.0], device=t.device)
                t = steer_to_target(t[None], target[None], self.max_turn, self.stop_distance, offset=offset)[0]
            elif k == lane:
                t = keep_on_road(t, view, self.max_turn)
            out.append(brake_before_obstacles(t, view, self.robot_radius, self.safety_margin))
        return torch.stack(out).to(traj.dtype)
