"""A map of the scene from the top camera: where the obstacles are, and where the road is.

The target locator (``model/locator.py``) finds the cone a command names and the robot. Guidance
(``vla_ros/guidance/``, ``guidance: scene``) also needs to know what lies around them: the
diffusion head brakes before an obstacle on its way and cannot plan the way around it, and it
leaves the road where a lane starts at an angle (docs/history.md, "Driving around an obstacle"). The top
camera is fixed to the world and sees the whole arena, so both are a per-cell segmentation of it:

    top (N, 3, S, S) in [0, 1] -> small CNN (stride 2, dilated) -> logits (N, 2, S/2, S/2)
        channel 0: an obstacle covers the cell       channel 1: the cell is on the road

Cells are those of the locator's heatmaps (``cell_centres``: row by row from the top, in
top-camera coordinates, units of half the image side), so a located robot and the map share one
frame. Training labels come from the simulator's layout (``scene_map_labels``), used only in
training (``vla scene-map``); at run time the map sees the image like everything else.

Pure PyTorch; no ROS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from vla_ros.model.locator import cell_centres, to_robot_frame

__all__ = ["SceneMap", "SceneView", "scene_map_labels", "scene_map_loss", "MAP_CHANNELS"]

MAP_CHANNELS = ("obstacle", "road")
ROAD_WINDOW = 1.3  # metres: SceneView.road averages over this square (the simulated road is 1.6 m wide)


class SceneMap(nn.Module):
    """top (N, 3, S, S) in [0, 1] -> logits (N, 2, R, R), R = ceil(S / 2) (``MAP_CHANNELS``)."""

    def __init__(self, image_size: int, channels: int = 32) -> None:
        super().__init__()
        ch = channels
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(16, ch, 3, padding=1), nn.ReLU(),
            nn.Conv2d(ch, ch, 3, padding=2, dilation=2), nn.ReLU(),  # context: a box's inside, the road's edges
            nn.Conv2d(ch, ch, 3, padding=4, dilation=4), nn.ReLU(),
            nn.Conv2d(ch, len(MAP_CHANNELS), 1))

    def forward(self, top: torch.Tensor) -> torch.Tensor:
        return self.net(top)  # (N, 2, R, R)


def scene_map_labels(layout: Any, arena_size: float, cells: int) -> np.ndarray:
    """The simulator's ``Layout`` (or its dict) -> (2, R, R) float32 labels: 1 where an obstacle
    overlaps the cell (its surface within half a cell of the centre), 1 where the cell's centre is
    on the road."""
    from vla_ros.sim.layout import Layout

    if isinstance(layout, Mapping):
        layout = Layout.from_dict(dict(layout))
    half = arena_size / 2
    xy = cell_centres(cells).numpy().astype(np.float64) * half  # (R*R, 2) metres, world frame
    cell = arena_size / cells
    obstacle = layout.obstacle_distance(xy) <= cell / 2 if layout.obstacles else np.zeros(len(xy), bool)
    road = layout.lane.contains(xy)
    return np.stack([obstacle, road]).reshape(2, cells, cells).astype(np.float32)


OBSTACLE_POS_WEIGHT = 2.0  # a missed obstacle cell costs twice a false one


def scene_map_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """logits, labels (N, 2, R, R) -> BCE of both channels, missed obstacle cells weighted by
    ``OBSTACLE_POS_WEIGHT``. (Weighting them up to balance the classes, about 50 : 1, made the
    map mark cones and the robot as obstacles: precision 0.40 at recall 0.99.)"""
    obs, road = logits[:, 0], logits[:, 1]
    pos_weight = torch.tensor(OBSTACLE_POS_WEIGHT, device=logits.device)
    return (F.binary_cross_entropy_with_logits(obs, labels[:, 0], pos_weight=pos_weight)
            + F.binary_cross_entropy_with_logits(road, labels[:, 1]))


@dataclass
class SceneView:
    """One robot's view of the map, in its own frame (x ahead, y left, metres).

    probs: (2, R, R) map probabilities; robot, heading: the located robot (2,) and its unit
    heading (2,) in top-camera units; ``metres_per_unit``: the top view's half side in metres.
    A cell is an obstacle's where its probability exceeds ``threshold``; those within
    ``ignore_radius`` of the robot's centre are left out (the robot cannot stand in an obstacle,
    and a map that takes part of the robot for one would otherwise block every way).
    """

    probs: torch.Tensor
    robot: torch.Tensor
    heading: torch.Tensor
    metres_per_unit: float
    threshold: float = 0.5
    ignore_radius: float = 0.0  # metres: covered cells this near the robot's centre are the robot itself

    def __post_init__(self) -> None:
        r = self.probs.shape[-1]
        self.cell = 2.0 * self.metres_per_unit / r  # metres per cell
        centres = cell_centres(r, self.probs.device)  # (R*R, 2)
        occupied = self.probs[0].reshape(-1) > self.threshold
        obstacle_cells = centres[occupied]  # (M, 2) top-camera units
        pts = to_robot_frame(obstacle_cells, self.robot[None], self.heading[None].expand(len(obstacle_cells), 2)
                             ) * self.metres_per_unit  # (M, 2) metres, robot frame
        self._obstacles = pts[pts.norm(dim=-1) > self.ignore_radius]
        # the road probability averaged over a window narrower than the road (1.3 m at 12 m / 64
        # cells): 1 along the middle of the road, falling toward its edges
        k = max(3, int(round(ROAD_WINDOW / self.cell)) // 2 * 2 + 1)
        self._road = F.avg_pool2d(self.probs[1][None, None].float(), k, 1, k // 2, count_include_pad=False)

    def _to_image(self, xy: torch.Tensor) -> torch.Tensor:
        """(..., 2) robot-frame metres -> (..., 2) top-camera units."""
        p = xy / self.metres_per_unit
        h = self.heading
        return self.robot + torch.stack([h[0] * p[..., 0] - h[1] * p[..., 1], h[1] * p[..., 0] + h[0] * p[..., 1]], -1)

    def obstacle_gap(self, xy: torch.Tensor) -> torch.Tensor:
        """(..., 2) robot-frame points -> (...) distance to the nearest obstacle surface (metres:
        to the nearest covered cell's centre; inf without obstacles). A cell counts as covered
        when the surface is within half a cell of its centre, so this reads up to half a cell
        short; measured against the truth on held-out frames (docs/history.md, "Scene guidance"): median
        -0.04 m, 5% of points below -0.19 m and 5% above +0.10 m."""
        if len(self._obstacles) == 0:
            return torch.full(xy.shape[:-1], float("inf"), device=xy.device)
        d = torch.cdist(xy.reshape(-1, 2).float(), self._obstacles.float()).min(-1).values
        return d.reshape(xy.shape[:-1])

    def road(self, xy: torch.Tensor) -> torch.Tensor:
        """(..., 2) robot-frame points -> (...) how deep into the road each lies: the road
        probability averaged over a ``ROAD_WINDOW`` square around it (bilinear between cells); 1
        in the middle of the road, about 0.5 at its edge, 0 off it."""
        uv = self._to_image(xy.float())  # x right, y up in [-1, 1]
        grid = torch.stack([uv[..., 0], -uv[..., 1]], -1).reshape(1, 1, -1, 2)  # grid_sample: y down
        p = F.grid_sample(self._road, grid, align_corners=False, padding_mode="border")
        return p.reshape(xy.shape[:-1])
