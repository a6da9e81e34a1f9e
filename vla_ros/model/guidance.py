"""Target guidance: sampled trajectories steered toward the target the locator found.

A model with the target locator (``model.target_locator``) finds the cone a command names on
the top camera, but its diffusion head barely uses that input (README, "Which cone?"): the same
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

Pure PyTorch; no ROS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vla_ros.config import GUIDANCE_MODES

__all__ = ["GUIDANCE_MODES", "TargetGuidance", "steer_to_target"]


def steer_to_target(traj: torch.Tensor, target: torch.Tensor, max_turn: float, stop_distance: float
                    ) -> torch.Tensor:
    """traj (B, T, 3) robot-frame waypoints (x ahead, y left, heading), target (B, 2) metres in
    the robot frame -> (B, T, 3) turned toward the target (at most ``max_turn`` rad) and cut at
    the arc length that ends ``stop_distance`` before it (later waypoints wait there). A
    trajectory shorter than 5 cm (standing) is not turned."""
    xy, heading = traj[..., :2], traj[..., 2]
    end = xy[:, -1]  # (B, 2)
    moving = end.norm(dim=-1) > 0.05
    want = torch.atan2(target[:, 1], target[:, 0]) - torch.atan2(end[:, 1], end[:, 0])
    turn = torch.remainder(want + math.pi, 2 * math.pi) - math.pi  # wrapped to [-pi, pi)
    turn = torch.where(moving, turn.clamp(-max_turn, max_turn), torch.zeros_like(turn))  # (B,)
    c, s = torch.cos(turn)[:, None], torch.sin(turn)[:, None]
    xy = torch.stack([c * xy[..., 0] - s * xy[..., 1], s * xy[..., 0] + c * xy[..., 1]], -1)  # (B, T, 2)
    heading = heading + turn[:, None]
    # cut the path at arc length `room`: waypoints before it keep their timing (the planned
    # speed), the ones after it wait at the stopping point
    prev = torch.cat([torch.zeros_like(xy[:, :1]), xy[:, :-1]], 1)  # (B, T, 2) each segment's start
    seg = (xy - prev).norm(dim=-1)  # (B, T)
    cum = seg.cumsum(-1)  # (B, T) arc length at each waypoint
    room = (target.norm(dim=-1) - stop_distance).clamp(min=0.0)[:, None]  # (B, 1)
    past = cum > room  # (B, T)
    k = past.float().argmax(-1)  # first waypoint past the stopping point (0 if none)
    rows = torch.arange(len(xy), device=xy.device)
    before = cum[rows, k] - seg[rows, k]  # arc length at that segment's start
    u = ((room[:, 0] - before) / seg[rows, k].clamp(min=1e-9)).clamp(0.0, 1.0)[:, None]
    stop = prev[rows, k] + u * (xy[rows, k] - prev[rows, k])  # (B, 2) the point at arc length `room`
    xy = torch.where(past[..., None], stop[:, None], xy)
    heading = torch.where(past, heading[rows, k][:, None], heading)
    return torch.cat([xy, heading[..., None]], -1)


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

    def __post_init__(self) -> None:
        if not 0.0 < self.max_turn <= math.pi:
            raise ValueError(f"guidance max_turn={self.max_turn}: must be within (0, pi] radians (default 45 deg)")
        if not 0.0 <= self.stop_distance <= 10.0:
            raise ValueError(f"guidance stop_distance={self.stop_distance}: must be within [0, 10] m (default 0.5)")
        if not self.metres_per_unit > 0:
            raise ValueError(f"guidance metres_per_unit={self.metres_per_unit}: must be > 0")

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
