"""Where is the commanded target, relative to the robot? Keypoints on the top camera.

The overhead camera is fixed to the world, so "the red cone, relative to me" relates two
things in its image -- the red cone and the robot (where it is and which way it faces) -- and
the backbone's 4 x 4 grid of features keeps neither the cones' colours nor the robot's heading
(linear probes: docs/history.md, "Which cone?"). :class:`TargetLocator` finds them explicitly:

    top (N, 3, S, S) -> small CNN at S/2 -> features f (N, ch, S/2, S/2)
    target  = soft-argmax of conv1x1(FiLM(f; command))      (where the command points)
    robot   = soft-argmax of conv1x1(f)                      (where the robot is)
    heading = small CNN on a 16 x 16 pixel window of the image around the robot
    relative = R(-heading) (target - robot)                  (robot frame: x ahead, y left)

Points are in normalised top-camera coordinates: x to the right, y up (north), in units of
half the image side (the image spans [-1, 1]^2). Each is a spatial soft-argmax, so it is
differentiable and supervised directly in training (``locator_loss``: the episode's cone for
goto commands, the robot's recorded pose always) -- labels only the simulator has, used only
in training; at run time the module sees the image and the command like everything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["TargetLocator", "Located", "locator_loss", "to_robot_frame"]

WINDOW = 16  # pixels around the robot seen by the heading network (the robot is ~9 px long at 128 px)


@dataclass
class Located:
    target: torch.Tensor  # (N, 2) where the command points, top-camera coordinates
    robot: torch.Tensor  # (N, 2) the robot's centre
    heading: torch.Tensor  # (N, 2) unit vector the robot faces
    relative: torch.Tensor  # (N, 2) target in the robot frame (x ahead, y left)
    target_logp: torch.Tensor  # (N, R*R) log-softmax of the target heatmap (cells: cell_centres)
    robot_logp: torch.Tensor  # (N, R*R) ... of the robot heatmap

    def features(self) -> torch.Tensor:
        """(N, 4): relative x, y, distance, bearing / pi -- the input of the condition."""
        r = self.relative
        dist = r.norm(dim=-1, keepdim=True)
        bearing = torch.atan2(r[:, 1:], r[:, :1]) / torch.pi
        return torch.cat([r, dist, bearing], -1)


class TargetLocator(nn.Module):
    def __init__(self, cmd_dim: int, image_size: int, channels: int = 32) -> None:
        super().__init__()
        ch = channels
        self.conv = nn.Sequential(
            nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(16, ch, 3, padding=1), nn.ReLU(),
            nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU())
        # the command's colour is a small part of its encoding ("go to the red cone" and "... blue
        # cone" have cosine 0.96 after the model's text projection): normalised, then an MLP
        self.film = nn.Sequential(nn.LayerNorm(cmd_dim), nn.Linear(cmd_dim, 64), nn.ReLU(), nn.Linear(64, 2 * ch))
        self.target_map = nn.Conv2d(ch, 1, 1)
        self.robot_map = nn.Conv2d(ch, 1, 1)
        # the robot's heading from a window of the full-resolution image around it (a pixel's
        # features at S/2 do not tell which way the robot's arrow-head points)
        self.heading_net = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * (WINDOW // 4) ** 2, 64), nn.ReLU(), nn.Linear(64, 2))
        o = (torch.arange(WINDOW) - (WINDOW - 1) / 2) * 2 / image_size
        oy, ox = torch.meshgrid(o, o, indexing="ij")
        self.register_buffer("window", torch.stack([ox, oy], -1), persistent=False)  # (W, W, 2) grid_sample offsets
        self.log_sharpness = nn.Parameter(torch.tensor(1.0))  # softmax logits are scaled by 10 * exp(.)
        self.register_buffer("grid", cell_centres((image_size + 1) // 2), persistent=False)  # (R*R, 2)

    def _log_softmax(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, 1, R, R) -> (N, R*R) log weights."""
        return F.log_softmax(logits.flatten(1) * (10.0 * self.log_sharpness.exp()), -1)

    def forward(self, top: torch.Tensor, cmd: torch.Tensor) -> Located:
        """top (N, 3, S, S) float in [0, 1], cmd (N, cmd_dim) -> Located."""
        f = self.conv(top)  # (N, ch, R, R)
        if f.shape[-1] * f.shape[-2] != self.grid.shape[0]:
            raise ValueError(f"top image of {tuple(top.shape[-2:])} pixels; the locator was built for "
                             f"{2 * int(self.grid.shape[0] ** 0.5)}")
        gamma, beta = self.film(cmd).chunk(2, -1)
        ft = F.relu(f * (1 + gamma[..., None, None]) + beta[..., None, None])
        target_logp = self._log_softmax(self.target_map(ft))  # (N, R*R)
        robot_logp = self._log_softmax(self.robot_map(f))
        target = target_logp.exp() @ self.grid  # (N, 2): soft-argmax
        robot = robot_logp.exp() @ self.grid
        # grid_sample's axes: x right, y down; the window follows the robot (not a gradient path)
        centre = torch.stack([robot[:, 0], -robot[:, 1]], -1).detach()
        crop = F.grid_sample(top, centre[:, None, None, :] + self.window[None], align_corners=False)
        d = self.heading_net(crop)  # (N, 2) in image axes
        heading = torch.stack([d[:, 0], -d[:, 1]], -1)
        heading = heading / (heading.norm(dim=-1, keepdim=True) + 1e-6)
        return Located(target, robot, heading, to_robot_frame(target, robot, heading), target_logp, robot_logp)


def cell_centres(r: int, device: torch.device | None = None) -> torch.Tensor:
    """(r*r, 2) centres of an r x r heatmap's cells in top-camera coordinates, row by row from
    the top (north) of the image."""
    c = torch.linspace(-1 + 1 / r, 1 - 1 / r, r, device=device)
    ys, xs = torch.meshgrid(-c, c, indexing="ij")
    return torch.stack([xs, ys], -1).view(-1, 2)


def to_robot_frame(point: torch.Tensor, robot: torch.Tensor, heading: torch.Tensor) -> torch.Tensor:
    """(N, 2) points, robot positions and unit headings (same frame) -> (N, 2) points in the robot
    frame: x ahead, y to the left."""
    v = point - robot
    return torch.stack([(v * heading).sum(-1), heading[:, 0] * v[:, 1] - heading[:, 1] * v[:, 0]], -1)


def locator_loss(located: Located, robot: torch.Tensor, heading: torch.Tensor, target: torch.Tensor,
                 target_mask: torch.Tensor) -> torch.Tensor:
    """Supervision of the keypoints: robot (N, 2) and target (N, 2) in top-camera coordinates,
    heading (N, 2) unit vectors, target_mask (N,) 1 where the command names a target.

    Each point is fitted twice: its soft-argmax by L1, and its heatmap by the KL divergence from a
    Gaussian (one cell wide) around the label. The soft-argmax alone learns slowly from scratch:
    while a heatmap is flat its gradient barely says where the point is.
    """
    m = target_mask.float()
    r = int(round(located.target_logp.shape[1] ** 0.5))
    cells = cell_centres(r, device=target.device)
    sigma = 2.0 / r

    def kl(logp: torch.Tensor, point: torch.Tensor) -> torch.Tensor:  # KL(q || p): 0 when they agree
        logq = torch.log_softmax(-((cells[None] - point[:, None]) ** 2).sum(-1) / (2 * sigma ** 2), -1)
        return (logq.exp() * (logq - logp)).sum(-1)

    per_target = 3 * (located.target - target).abs().sum(-1) + kl(located.target_logp, target)  # (N,)
    l_target = (per_target * m).sum() / m.sum().clamp(min=1)
    l_robot = ((located.robot - robot).abs().sum(-1) + kl(located.robot_logp, robot)).mean()
    l_heading = (1 - (located.heading * heading).sum(-1)).mean()
    return l_target + l_robot + l_heading
