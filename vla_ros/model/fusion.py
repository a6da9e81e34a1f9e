"""Token fusion: the command, the odometry and the located target as tokens of their own.

Why not add them to every token: the head's only conditioning path is one cross-attention
(softmax(q . k_i) over the condition tokens). A vector added to every key adds the same q . c to
every logit, so the attention weights do not change: the words could say how fast, never which
place. Here each input is a token, and a small pre-norm transformer lets the tokens attend to one
another before the head sees them, so the command can pick out the grid cells and the located
target it refers to (Octo, RT-1 put a transformer between the tokens and the action head)::

    command (B, d) + odometry [v, omega, known] (B, 3) + target features (B, 4) (locator)
    + frame tokens (B, C, T, d) + grid tokens (B, C, G, d)      each + a learnt type embedding
      (+ R learnt readout tokens, Octo-style, if ``fusion_readouts`` > 0)
      -> (B, N (+ R), d) -> TransformerEncoder (pre-norm, ``fusion_layers``) -> every token (or
      the R readouts) -> LayerNorm -> Linear(d, cond_dim)
      + Linear(the command, odometry and target tokens after the transformer) on every token
      goal (B, 2) = MLP(those tokens, raw command, odometry, target)   (the goal estimate)
      + the goal token MLP(goal or, in training, the true end) first and on every token
      -> cond for the unchanged diffusion head

``d`` is ``fusion_dim`` (256: the head's cross-attention width) rather than ``cond_dim`` (2048),
which keeps the fusion cheap; ``cond_dim`` stays the head's input width.

Readouts alone are cheaper for the head (its 2048 -> 256 projection runs on R tokens, not 45),
but at initialisation each readout attends almost uniformly to every token, so it carries their
average, which hardly differs between samples: in a 500-step trial the head learnt to ignore its
condition (the same trajectory for every frame and command). Every token keeps its own content
through the residual stream, so the default hands the head every token.

Every token alone was not enough either: the head's cross-attention starts out uniform, so it
passes on the average of the tokens' values, where the place of a cone averages away; after
1,000 steps the head still gave one trajectory for every frame and command. So the special
tokens (after the transformer has let the command look at the grids and read the located target)
are also projected and added to every token: broadcasting the *result* of a selection, not the
raw command.

The goal token (``goal_token``, ``model.fusion_goal_token``): the goal estimate -- an MLP over the
special tokens after the transformer and, directly, the raw command, odometry and located-target
features -- becomes a token of its own, also added to every token. In training it carries the
demonstration's true end for a share of the samples (teacher forcing), so the head learns to drive
where the token says, and the words choose the place through the estimate. With the locator's
target as an input and every state relabelled with every command, the estimate picked the named
cone in 0.91 of held-out answers (docs/results.md, "The goal token").

What made the fusion bind on the tiny binding probe (scripts/binding_probe.py, docs/results.md)
is the auxiliary goal loss: the command token after the transformer also predicts where the
trajectory ends (``goal``; weighted by ``model.fusion_goal_weight``). Without it the head ignores
its condition while that is useless to it, and nothing asks the fusion to find the named place:
chance after 1,500 steps; with it, 96% of answers went to the named square.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["FourierFeatures", "TokenFusion"]


class FourierFeatures(nn.Module):
    """(N, k) -> (N, k + 2 k F): the values, then sin and cos of each at F octave frequencies.

    A located target 2.2 m ahead and one 2.4 m ahead differ by 0.03 in the raw features; the
    sines of the higher octaves tell them apart, so the target token can encode a place finely."""

    def __init__(self, n_in: int, n_freq: int = 4) -> None:
        super().__init__()
        self.register_buffer("freq", math.pi * 2.0 ** torch.arange(n_freq).float(), persistent=False)
        self.out_dim = n_in * (1 + 2 * n_freq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ang = x[..., None] * self.freq  # (N, k, F)
        return torch.cat([x, ang.sin().flatten(-2), ang.cos().flatten(-2)], -1)


class TokenFusion(nn.Module):
    """The condition tokens of ``SimpleVLA`` with ``fusion: tokens`` (see the module docstring)."""

    def __init__(self, d: int, cond_dim: int, layers: int, heads: int, target: bool, readouts: int,
                 goal_token: bool = False) -> None:
        super().__init__()
        self.readouts = nn.Parameter(torch.randn(readouts, d) * 0.02) if readouts else None
        self.odom_in = nn.Linear(3, d)
        self.target_in = _target_mlp(d) if target else None
        # one type embedding per special token: command, odometry, target
        self.type_emb = nn.Parameter(torch.randn(3, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=2 * d, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        # nested tensors are an inference fast path for padded batches; ours have none
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cond_dim)
        n_special = 3 if target else 2
        self.broadcast = nn.Linear(n_special * d, cond_dim)  # special tokens -> every token
        # the goal estimate: where the trajectory ends (x, y normalised; a hindsight label every
        # demonstration has). An MLP reads the special tokens after the transformer *and* the raw
        # command, odometry and target features: a direct path (see the module docstring)
        self.target_fourier = FourierFeatures(4) if target else None
        n_raw = d + 3 + (self.target_fourier.out_dim if target else 0)
        self.goal = nn.Sequential(nn.Linear(n_special * d + n_raw, d), nn.GELU(), nn.Linear(d, d), nn.GELU(),
                                  nn.Linear(d, 2))
        # the goal token: the goal (estimated, or the label while training) as a token of its own
        # and added to every token, so the head is told where to end (``goal_token``)
        goal_fourier = FourierFeatures(2)
        self.goal_in = nn.Sequential(goal_fourier, nn.Linear(goal_fourier.out_dim, d), nn.SiLU(),
                                     nn.Linear(d, cond_dim)) if goal_token else None

    @property
    def num_out(self) -> int:
        """Tokens handed to the head, besides the visual ones: command, odometry (+ target), or the readouts."""
        goal = int(self.goal_in is not None)
        if self.readouts is not None:
            return self.readouts.shape[0] + goal
        return 2 + (self.target_in is not None) + goal

    @property
    def num_special(self) -> int:
        """Special tokens ahead of the visual ones: command, odometry (+ target)."""
        return 2 + (self.target_in is not None)

    def mix(self, visual: torch.Tensor, cmd: torch.Tensor, odometry: torch.Tensor,
            target: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The inputs of :meth:`forward` -> every token after the transformer and the output norm
        (B, num_special + V (+ R), d) and the goal estimate (B, 2)."""
        special = [cmd + self.type_emb[0], self.odom_in(odometry) + self.type_emb[1]]
        raw = [cmd, odometry]
        if self.target_in is not None:
            if target is None:
                raise ValueError("this fusion has a target token: give it the located target's features")
            special.append(self.target_in(target) + self.type_emb[2])
            raw.append(self.target_fourier(target))
        tokens = torch.cat([torch.stack(special, 1), visual], 1)  # (B, N, d)
        if self.readouts is not None:
            tokens = torch.cat([tokens, self.readouts.expand(cmd.shape[0], -1, -1)], 1)  # (B, N + R, d)
        x = self.out_norm(self.encoder(tokens))
        goal = self.goal(torch.cat([x[:, :len(special)].flatten(1), *raw], -1))  # (B, 2)
        return x, goal

    def forward(self, visual: torch.Tensor, cmd: torch.Tensor, odometry: torch.Tensor,
                target: torch.Tensor | None, goal_label: torch.Tensor | None = None,
                teacher: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """visual (B, V, d) with their embeddings, cmd (B, d), odometry (B, 3) [v, omega, known],
        target (B, 4) located-target features or None -> cond (B, num_out + V (or R), cond_dim)
        and the goal estimate (B, 2).

        Training hands ``goal_label`` (B, 2), the normalised last waypoint, and ``teacher`` (B,)
        bool: where it is set, the goal token carries the label instead of the estimate (teacher
        forcing; elsewhere the estimate, detached, so the head learns how far to trust it)."""
        x, goal = self.mix(visual, cmd, odometry, target)
        shared = self.broadcast(x[:, :self.num_special].flatten(1))[:, None]  # (B, 1, cond_dim): added to every token
        out = x if self.readouts is None else x[:, -self.readouts.shape[0]:]
        cond = self.out(out)
        if self.goal_in is not None:
            g = goal.detach()
            if goal_label is not None and teacher is not None:
                g = torch.where(teacher[:, None], goal_label, g)
            goal_tok = self.goal_in(g)[:, None]  # (B, 1, cond_dim)
            cond = torch.cat([goal_tok, cond], 1)
            shared = shared + goal_tok
        return cond + shared, goal


def _target_mlp(d: int) -> nn.Sequential:
    fourier = FourierFeatures(4)
    return nn.Sequential(fourier, nn.Linear(fourier.out_dim, d), nn.SiLU(), nn.Linear(d, d))
