"""SimpleVLA: two cameras x a history of frames + a language command -> a trajectory.

Data flow (shapes for the defaults: B batch, C=2 cameras, T=5 frames, S=128 pixels)::

    images (B, C, T, S, S, 3) uint8
      -> vision.frozen  (B*C*T, 192, 4, 4)        cacheable per frame (pretrained, no LoRA)
      -> vision.tuned   pooled (.., 1280), grid (.., 16, 1280)      (LoRA)
      -> img_proj       frame token (.., 2048), grid tokens (.., 16, 2048)
    command str -> text encoder (B, 384) (LoRA) -> txt_proj (B, 2048)
    odometry (B, 2) (v, omega; NaN = unknown) -> [v, omega, known] -> odom_proj (B, 2048)
    target locator (optional): newest top frame + command -> the named target in the robot frame (B, 4)
    fusion "tokens" (default, model/fusion.py; d = fusion_dim 256): one token per (camera,
            frame) + a grid of tokens for each camera's newest frame, each + camera/frame/position
            embedding, and the command, odometry and target as tokens of their own
            -> transformer -> Linear(d, 2048)                      -> cond (B, 45, 2048)
    fusion "additive" (older checkpoints; d = cond_dim): each token = LayerNorm(feature +
            embedding + command + odometry + target) + one command token -> cond (B, 43, 2048)
    DiffusionActionHead(cond) -> trajectory (B, 16, 3) = (x, y, heading) in the robot frame
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch
from torch import nn

from vla_ros.config import ModelConfig
from vla_ros.model.backbone import build_text, build_vision
from vla_ros.model.colour_words import ColourWords
from vla_ros.model.fusion import TokenFusion
from vla_ros.model.head import DiffusionActionHead
from vla_ros.model.locator import Located, TargetLocator, locator_loss
from vla_ros.model.scene_map import SceneMap


class SimpleVLA(nn.Module):
    """The user's ``SimpleVLA``; keyword arguments override fields of :class:`ModelConfig`."""

    def __init__(self, config: ModelConfig | None = None, **overrides) -> None:
        super().__init__()
        config = dataclasses.replace(config or ModelConfig(), **overrides)
        self.config = config
        d = self.token_dim
        self.vision = build_vision(config)
        self.text = build_text(config)
        self.img_proj = nn.Linear(self.vision.feature_dim, d)
        self.txt_proj = nn.Linear(self.text.feature_dim, d)
        with torch.no_grad():  # number of grid tokens of the newest frame
            probe = self.vision.frozen(torch.zeros(1, 3, config.image_size, config.image_size))
            self.grid_size = self.vision.tuned(probe)[1].shape[1]
        # each frame's own token from its pooled frozen features (frame_token_source: frozen)
        self.frozen_proj = nn.Linear(probe.shape[1], d) if config.frame_token_source == "frozen" else None
        n_cam, n_hist = len(config.cameras), config.history_length
        self.cam_emb = nn.Parameter(torch.randn(n_cam, d) * 0.02)
        self.frame_emb = nn.Parameter(torch.randn(n_hist, d) * 0.02)
        self.grid_emb = nn.Parameter(torch.randn(self.grid_size, d) * 0.02)
        self.cmd_emb = nn.Parameter(torch.randn(d) * 0.02)
        self.norm = nn.LayerNorm(d)
        tokens = config.fusion == "tokens"
        self.odom_proj = self._new_odometry_layer() if config.odometry_input and not tokens else None
        # the commanded target located on the top camera, relative to the robot (model/locator.py)
        self.locator = TargetLocator(d, config.image_size) if config.target_locator else None
        self.target_proj = self._new_target_layer() if config.target_locator and not tokens else None
        self.fusion = TokenFusion(d, config.cond_dim, config.fusion_layers, config.fusion_heads,
                                  target=config.target_locator, readouts=config.fusion_readouts,
                                  goal_token=config.fusion_goal_token) if tokens else None
        # encodings of a frozen text encoder, by string (no LoRA: a fixed function of the text)
        self._text_cache: dict[str, torch.Tensor] = {}
        # the commands seen in training (config.phrasebook_temperature); set by training, kept in
        # the checkpoint (vla_ros.checkpoint), never part of the state dict (its length varies)
        self.phrasebook: tuple[str, ...] = ()
        self._colour_words: ColourWords | None = None
        # obstacles and road on the top camera, for the guidance only (model/scene_map.py)
        self.scene_map = SceneMap(config.image_size) if config.scene_map else None
        self.action_head = DiffusionActionHead(config)

    def _apply(self, fn, *args, **kwargs):
        self._text_cache = {}  # cached encodings live on the old device / dtype
        return super()._apply(fn, *args, **kwargs)

    @property
    def token_dim(self) -> int:
        """Width of the tokens before the head: fusion_dim for token fusion, cond_dim for additive."""
        return self.config.fusion_dim if self.config.fusion == "tokens" else self.config.cond_dim

    def _new_target_layer(self) -> nn.Module:
        # the last layer zero-initialised: a model that gains the input predicts as before until trained
        layer = nn.Sequential(nn.Linear(4, 64), nn.SiLU(), nn.Linear(64, self.config.cond_dim))
        nn.init.zeros_(layer[2].weight)
        nn.init.zeros_(layer[2].bias)
        return layer

    def add_target_locator(self) -> None:
        """Give a model trained without it the target locator (its condition input starts at zero)."""
        if self.locator is None:
            if self.fusion is not None:
                raise ValueError("a token-fusion model gets its target token when it is built "
                                 "(model.target_locator); train a new one with --target-locator on")
            self.locator = TargetLocator(self.config.cond_dim, self.config.image_size).to(self.device)
            self.target_proj = self._new_target_layer().to(self.device)
            self.config = dataclasses.replace(self.config, target_locator=True)

    def add_scene_map(self) -> None:
        """Give a model trained without it the scene map (untrained: ``vla scene-map`` trains it)."""
        if self.scene_map is None:
            self.scene_map = SceneMap(self.config.image_size).to(self.device)
            self.config = dataclasses.replace(self.config, scene_map=True)

    def _new_odometry_layer(self) -> nn.Linear:
        # zero-initialised: a model that gains the input predicts exactly as before until trained
        layer = nn.Linear(3, self.config.cond_dim)
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
        return layer

    @property
    def has_text_lora(self) -> bool:
        """Whether the text encoder carries LoRA layers (MiniLM with ``text_lora`` on)."""
        return any("lora_" in n for n, _ in self.text.named_parameters())

    def freeze_text_encoder(self, phrasings: Sequence[str], ridge: float = 1e-3) -> dict[str, float]:
        """Replace the LoRA-tuned text encoder by the pretrained one it was tuned from
        (``config.text_lora`` off) and refit ``txt_proj`` so that ``phrasings`` (the training
        commands) encode as before: ridge regression from the pretrained encodings (P, D) to the
        old command encodings (P, d). Other wordings then follow the pretrained encoder's notion
        of similarity. Returns the fit's mean relative error on ``phrasings``."""
        if not self.has_text_lora:
            raise ValueError("this model's text encoder has no LoRA to drop (model.text_lora is off, "
                             "or the backbone's text encoder is not MiniLM)")
        texts = list(dict.fromkeys(phrasings))
        if len(texts) < 2:
            raise ValueError(f"refitting the text projection needs at least 2 distinct phrasings, got {len(texts)}")
        with torch.no_grad():
            y = self.encode_text(texts).float()  # (P, d)
            config = dataclasses.replace(self.config, text_lora=False)
            text = build_text(config).to(self.device)
            x = text(texts).float()  # (P, D) the pretrained encoder's output
            mx, my = x.mean(0), y.mean(0)
            xc, yc = x - mx, y - my
            eye = torch.eye(x.shape[1], device=x.device)
            wt = torch.linalg.solve(xc.T @ xc + ridge * eye, xc.T @ yc)  # (D, d)
            self.txt_proj.weight.copy_(wt.T.to(self.txt_proj.weight.dtype))
            self.txt_proj.bias.copy_((my - mx @ wt).to(self.txt_proj.bias.dtype))
            err = ((xc @ wt - yc).norm(dim=-1) / yc.norm(dim=-1).clamp_min(1e-9)).mean()
        self.text, self.config = text, config
        return {"fit_rel_error": float(err)}

    def add_odometry_input(self) -> None:
        """Give a model trained without odometry the (zero-initialised) input, for fine-tuning."""
        if self.fusion is not None:
            self.config = dataclasses.replace(self.config, odometry_input=True)
            return  # token fusion always has its odometry token ("unknown" when not given)
        if self.odom_proj is None:
            self.odom_proj = self._new_odometry_layer().to(self.device)
            self.config = dataclasses.replace(self.config, odometry_input=True)

    def odometry_features(self, odometry: torch.Tensor | np.ndarray | None, batch: int) -> torch.Tensor:
        """(B, 2) measured (v m/s, omega rad/s), a row of NaN = unknown, or None (all unknown)
        -> (B, 3) [v, omega, known] with v = omega = 0 where unknown."""
        dev = self.device
        if odometry is None:
            return torch.zeros(batch, 3, device=dev)
        o = torch.as_tensor(odometry, dtype=torch.float32, device=dev).reshape(-1, 2)
        if o.shape[0] != batch:
            raise ValueError(f"odometry has {o.shape[0]} rows for a batch of {batch}")
        known = torch.isfinite(o).all(-1, keepdim=True)
        return torch.cat([torch.where(known, o, torch.zeros_like(o)), known.float()], -1)

    # -- sizes --------------------------------------------------------------------------
    @property
    def num_tokens(self) -> int:
        c = self.config
        visual = len(c.cameras) * c.history_length + (len(c.cameras) * self.grid_size if c.spatial_tokens else 0)
        if self.fusion is None:
            return visual + 1
        return self.fusion.num_out + (0 if self.fusion.readouts is not None else visual)

    @property
    def device(self) -> torch.device:
        return self.img_proj.weight.device

    # -- images -------------------------------------------------------------------------
    def preprocess(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(..., H, W, 3) uint8 -> (N, 3, S, S) float in [0, 1] on the model's device."""
        if isinstance(images, np.ndarray) and not images.flags.writeable:
            images = np.array(images)  # read-only memory maps: torch wants writable memory
        x = torch.as_tensor(images)
        if x.dtype != torch.uint8:
            raise TypeError(f"images must be uint8 RGB, got {x.dtype}")
        if x.dim() < 3 or x.shape[-1] != 3:
            raise ValueError(f"images must end in (H, W, 3), got shape {tuple(x.shape)}")
        x = x.reshape(-1, *x.shape[-3:]).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        s = self.config.image_size
        if x.shape[-2:] != (s, s):
            x = nn.functional.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        return x

    def frame_frozen(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(..., H, W, 3) uint8 -> frozen features (N, ...) of each frame (cacheable)."""
        with torch.no_grad():
            return self.vision.frozen(self.preprocess(images))

    def frame_tokens(self, frozen: torch.Tensor, grid: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """frozen (N, ...) -> frame token (N, d) and grid tokens (N, G, d) (or None), before embeddings.
        With ``frame_token_source: frozen`` the tuned (LoRA) stage runs only when a grid is asked for."""
        grid = grid and self.config.spatial_tokens
        if self.frozen_proj is None:
            pooled, grid_feat = self.vision.tuned(frozen)
            return self.img_proj(pooled), (self.img_proj(grid_feat) if grid else None)
        tok = self.frozen_proj(frozen.flatten(2).mean(-1) if frozen.dim() > 2 else frozen)
        return tok, (self.img_proj(self.vision.tuned(frozen)[1]) if grid else None)

    def _text_features(self, texts: list[str]) -> torch.Tensor:
        """Distinct strings -> the text encoder's features (P, D); a frozen encoder's are cached
        by string, so training on a few hundred phrasings encodes each once."""
        if any(p.requires_grad for p in self.text.parameters()):
            return self.text(texts)
        todo = [t for t in texts if t not in self._text_cache]
        if todo:
            with torch.no_grad():
                for t, f in zip(todo, self.text(todo)):
                    self._text_cache[t] = f
            if len(self._text_cache) > 100_000:  # unbounded user text: keep memory bounded
                self._text_cache = {t: self._text_cache[t] for t in texts}
        return torch.stack([self._text_cache[t] for t in texts])

    def set_phrasebook(self, texts: Sequence[str]) -> None:
        """The commands the model is trained on (distinct, in a fixed order)."""
        self.phrasebook = tuple(dict.fromkeys(str(t) for t in texts))
        self._colour_words = ColourWords(self.phrasebook) if self.phrasebook else None

    def reading(self, command: str) -> str:
        """The command as the text encoder is given it: colour words the phrasebook lacks replaced
        by the trained colour they name (model.colour_words; unchanged without a phrasebook)."""
        if not self.config.colour_words or self._colour_words is None:
            return command
        return self._colour_words.rewrite(command)

    def phrasebook_weights(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Text features (B, D) -> (weights (B, P), the phrasebook's features (P, D), cosines (B, P)):
        softmax(cosine / phrasebook_temperature) over the phrasebook's pretrained encodings."""
        bank = self._text_features(list(self.phrasebook))  # (P, D), cached for a frozen encoder
        cos = nn.functional.normalize(features.float(), dim=-1) @ nn.functional.normalize(bank.float(), dim=-1).T
        return torch.softmax(cos / self.config.phrasebook_temperature, -1).to(bank.dtype), bank, cos

    def read_as_phrasebook(self, features: torch.Tensor) -> torch.Tensor:
        """Text features (B, D) -> the weighted mean of the phrasebook's features (B, D) (unchanged
        when phrasebook_temperature is 0 or there is no phrasebook).

        A new wording is read as the known commands whose pretrained encodings it resembles, so
        the learnt layers after the encoder only ever see encodings they were trained on: those
        layers fit the ~10 wordings of each command kind and mapped held-out ones ("freeze right
        there") far from their kind, while the pretrained encoder's nearest neighbour gets 15 of
        the 16 held-out wordings right (docs/results.md). A known command reads as itself
        (weight ~1 at temperature 0.01)."""
        if self.config.phrasebook_temperature <= 0 or not self.phrasebook:
            return features
        weights, bank, _ = self.phrasebook_weights(features)
        return weights @ bank

    def untrained_colours(self, command: str) -> tuple[list[str], tuple[str, ...]]:
        """(colour words of ``command`` the model cannot read as a trained colour, the trained colour
        terms); ([], ()) without a phrasebook or with model.colour_words off."""
        if not self.config.colour_words or self._colour_words is None:
            return [], ()
        return self._colour_words.untrained(command), self._colour_words.trained

    def understood_as(self, command: str) -> tuple[str, float, float] | None:
        """The known command that ``command`` is read as: (phrase, its weight, cosine similarity);
        None without a phrasebook. For logs and diagnostics (a low cosine: a command unlike any
        the model was trained on)."""
        if self.config.phrasebook_temperature <= 0 or not self.phrasebook:
            return None
        with torch.no_grad():
            weights, _, cos = self.phrasebook_weights(self._text_features([self.reading(command)]))
        j = int(weights[0].argmax())
        return self.phrasebook[j], float(weights[0, j]), float(cos[0, j])

    def encode_text(self, commands: Sequence[str]) -> torch.Tensor:
        """B strings -> (B, d). Each distinct string is encoded once (batches repeat commands)."""
        unique = list(dict.fromkeys(commands))
        enc = self.txt_proj(self.read_as_phrasebook(self._text_features([self.reading(c) for c in unique])))
        if len(unique) == len(commands):
            return enc
        index = {c: i for i, c in enumerate(unique)}
        return enc[torch.tensor([index[c] for c in commands], device=enc.device)]

    # -- the commanded target on the top camera -------------------------------------------
    def newest_top(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """images (B, C, T, H, W, 3) uint8 -> the newest top-camera frames (B, 3, S, S) in [0, 1]."""
        x = torch.as_tensor(images)
        return self.preprocess(x[:, self.config.cameras.index("top"), -1])

    def locate(self, top: torch.Tensor | None, cmd: torch.Tensor) -> Located | None:
        """top (B, 3, S, S) in [0, 1] (``newest_top``), encoded commands (B, d) -> Located, or
        None for a model without the locator."""
        if self.locator is None:
            return None
        if top is None:
            raise ValueError("this model locates the commanded target on the top camera: give it the "
                             "newest top-camera frame of each sample")
        return self.locator(top, cmd)

    # -- fusion -------------------------------------------------------------------------
    def fuse(self, frame_tok: torch.Tensor, grid_tok: torch.Tensor | None, cmd: torch.Tensor,
             odometry: torch.Tensor | np.ndarray | None = None, located: Located | None = None) -> torch.Tensor:
        """frame_tok (B, C, T, d), grid_tok (B, C, G, d) of the newest frames (None without
        spatial tokens), cmd (B, d), odometry (B, 2) or None (see ``odometry_features``; ignored
        by a model without the input), located (``locate``; a model with the locator needs it)
        -> (B, N, d)."""
        if self.fusion is not None:
            return self._fuse_tokens(frame_tok, grid_tok, cmd, odometry, located)[0]
        b = cmd.shape[0]
        if self.target_proj is not None:  # where the command points, relative to the robot
            if located is None:
                raise ValueError("this model needs the located target (SimpleVLA.locate) to fuse")
            cmd = cmd + self.target_proj(located.features())
        if self.odom_proj is not None:  # the measured velocity joins the command in every token
            cmd = cmd + self.odom_proj(self.odometry_features(odometry, b))
        c = cmd[:, None, None, :]
        frames = self.norm(frame_tok + self.cam_emb[None, :, None] + self.frame_emb[None, None] + c)
        tokens = [frames.reshape(b, -1, frames.shape[-1])]
        if self.config.spatial_tokens:
            grid = self.norm(grid_tok + self.cam_emb[None, :, None] + self.grid_emb[None, None] + c)
            tokens.append(grid.reshape(b, -1, grid.shape[-1]))
        tokens.append(self.norm(cmd + self.cmd_emb)[:, None])
        return torch.cat(tokens, 1)

    def _fuse_tokens(self, frame_tok: torch.Tensor, grid_tok: torch.Tensor | None, cmd: torch.Tensor,
                     odometry: torch.Tensor | np.ndarray | None, located: Located | None,
                     goal_label: torch.Tensor | None = None, teacher: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token fusion (model/fusion.py): same arguments as ``fuse`` (+ the training-only goal
        label and teacher mask of ``TokenFusion.forward``) -> (B, N, cond_dim) and the goal
        estimate (B, 2)."""
        visual, target = self.fusion_inputs(frame_tok, grid_tok, located)
        odometry = odometry if self.config.odometry_input else None  # None: "unknown"
        return self.fusion(visual, cmd, self.odometry_features(odometry, cmd.shape[0]), target, goal_label, teacher)

    def fusion_inputs(self, frame_tok: torch.Tensor, grid_tok: torch.Tensor | None, located: Located | None
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token fusion's visual tokens with their camera / frame / grid embeddings (B, V, d) and
        the located target's features (B, 4) (None for a model without the locator)."""
        visual = [(frame_tok + self.cam_emb[None, :, None] + self.frame_emb[None, None]).flatten(1, 2)]
        if self.config.spatial_tokens:
            visual.append((grid_tok + self.cam_emb[None, :, None] + self.grid_emb[None, None]).flatten(1, 2))
        if self.locator is not None and located is None:
            raise ValueError("this model needs the located target (SimpleVLA.locate) to fuse")
        return torch.cat(visual, 1), (located.features() if located is not None else None)

    def condition_from_frozen(self, frozen: torch.Tensor, commands: Sequence[str],
                              odometry: torch.Tensor | np.ndarray | None = None,
                              top: torch.Tensor | None = None) -> torch.Tensor:
        """frozen (B, C, T, ...) per-frame frozen features + B commands (+ odometry (B, 2), + the
        newest top frames (B, 3, S, S) for a model with the locator) -> cond (B, N, d)."""
        return self.condition_from_frozen_text(frozen, self.encode_text(commands), odometry, top)

    def condition_from_frozen_text(self, frozen: torch.Tensor, cmd: torch.Tensor,
                                   odometry: torch.Tensor | np.ndarray | None = None,
                                   top: torch.Tensor | None = None,
                                   located: Located | None = None) -> torch.Tensor:
        """frozen (B, C, T, ...) + encoded commands (B, d) (+ odometry (B, 2), + top (B, 3, S, S)
        or its ``located``) -> cond (B, N, d)."""
        if located is None:
            located = self.locate(top, cmd)
        frame_tok, grid_tok = self._visual_tokens(frozen)
        return self.fuse(frame_tok, grid_tok, cmd, odometry, located)

    def _condition_tokens(self, frozen: torch.Tensor, cmd: torch.Tensor, odometry, located: Located | None,
                          goal_label: torch.Tensor | None = None, teacher: torch.Tensor | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token fusion from frozen features: cond (B, N, cond_dim) and the goal estimate (B, 2)."""
        frame_tok, grid_tok = self._visual_tokens(frozen)
        return self._fuse_tokens(frame_tok, grid_tok, cmd, odometry, located, goal_label, teacher)

    def _visual_tokens(self, frozen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """frozen (B, C, T, ...) -> frame tokens (B, C, T, d), grid tokens of the newest frames (B, C, G, d)."""
        b, n_cam, n_hist = frozen.shape[:3]
        # older frames give one token each; only the newest frame of each camera gives a grid
        old_tok, _ = self.frame_tokens(frozen[:, :, :-1].flatten(0, 2), grid=False)
        new_tok, grid_tok = self.frame_tokens(frozen[:, :, -1].flatten(0, 1))
        frame_tok = torch.cat([old_tok.view(b, n_cam, n_hist - 1, new_tok.shape[-1]), new_tok.view(b, n_cam, 1, -1)], 2)
        if grid_tok is not None:
            grid_tok = grid_tok.view(b, n_cam, *grid_tok.shape[1:])
        return frame_tok, grid_tok

    def condition(self, images: torch.Tensor | np.ndarray, commands: Sequence[str],
                  odometry: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """images (B, C, T, H, W, 3) uint8 (cameras in config order) + B commands (+ odometry
        (B, 2)) -> (B, N, d)."""
        x = torch.as_tensor(images)
        c = self.config
        if x.dim() != 6 or x.shape[1:3] != (len(c.cameras), c.history_length):
            raise ValueError(f"images must be (B, {len(c.cameras)} cameras, {c.history_length} frames, H, W, 3),"
                             f" got {tuple(x.shape)}")
        frozen = self.frame_frozen(x)
        top = self.newest_top(x) if self.locator is not None else None
        return self.condition_from_frozen(frozen.view(*x.shape[:3], *frozen.shape[1:]), commands, odometry, top)

    # -- training and inference ----------------------------------------------------------
    def loss(self, frozen: torch.Tensor, commands: Sequence[str], traj: torch.Tensor,
             generator: torch.Generator | None = None,
             odometry: torch.Tensor | np.ndarray | None = None, top: torch.Tensor | None = None,
             keypoints: dict[str, torch.Tensor] | None = None, goal_teacher_prob: float = 0.0,
             noise: torch.Tensor | None = None, timesteps: torch.Tensor | None = None,
             teacher: torch.Tensor | None = None) -> torch.Tensor:
        """The training loss of a batch: the sum of ``loss_terms``."""
        return sum(self.loss_terms(frozen, commands, traj, generator, odometry, top, keypoints,
                                   goal_teacher_prob, noise, timesteps, teacher).values())

    def loss_terms(self, frozen: torch.Tensor, commands: Sequence[str], traj: torch.Tensor,
                   generator: torch.Generator | None = None,
                   odometry: torch.Tensor | np.ndarray | None = None, top: torch.Tensor | None = None,
                   keypoints: dict[str, torch.Tensor] | None = None, goal_teacher_prob: float = 0.0,
                   noise: torch.Tensor | None = None, timesteps: torch.Tensor | None = None,
                   teacher: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Loss terms of a batch: frozen (B, C, T, ...), commands B, traj (B, 16, 3), odometry
        (B, 2), top (B, 3, S, S) for a model with the locator -> {"denoise": the head's MSE,
        "goal": token fusion's weighted goal-estimate MSE, "locator": the locator's supervision
        when ``keypoints`` (robot, heading, target, target_mask: see ``locator_loss``) are given}.
        ``noise`` / ``timesteps``: the diffusion draws (``action_head.draw_noise``), drawn inside
        if not given. ``teacher`` (B,) bool: samples whose goal token carries the true end, drawn
        inside with probability ``goal_teacher_prob`` if not given (training)."""
        cmd = self.encode_text(commands)
        located = self.locate(top, cmd)
        terms: dict[str, torch.Tensor] = {}
        if self.fusion is None:
            cond = self.condition_from_frozen_text(frozen, cmd, odometry, located=located)
        else:  # hindsight: where the demonstration's trajectory ends
            end = self.action_head.normalizer.normalize(traj)[:, -1, :2]
            if teacher is None:
                where = generator.device if generator is not None else end.device
                teacher = torch.rand(len(end), generator=generator, device=where).to(end.device) < goal_teacher_prob
            cond, goal = self._condition_tokens(frozen, cmd, odometry, located, end, teacher)
            terms["goal"] = self.config.fusion_goal_weight * nn.functional.mse_loss(goal, end)
        terms["denoise"] = self.action_head.loss(cond, traj, generator, noise=noise, timesteps=timesteps)
        if located is not None and keypoints is not None:
            terms["locator"] = locator_loss(located, **keypoints)
        return terms

    @torch.inference_mode()
    def predict(self, images: torch.Tensor | np.ndarray, commands: Sequence[str],
                generator: torch.Generator | None = None, odometry: torch.Tensor | np.ndarray | None = None,
                **sample_kw) -> torch.Tensor:
        """images (B, C, T, H, W, 3) uint8 + B commands (+ odometry (B, 2)) -> trajectories (B, 16, 3)."""
        return self.action_head.sample(self.condition(images, commands, odometry), generator=generator, **sample_kw)

    # -- bookkeeping --------------------------------------------------------------------
    def parameter_summary(self) -> dict[str, int]:
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return {"total": total, "trainable": trainable, "frozen": total - trainable}

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights a checkpoint must carry: every trainable parameter and every buffer we own.

        Frozen pretrained encoder weights come from their packages when the model is rebuilt.
        """
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        state = self.state_dict()
        keep = {}
        for k, v in state.items():
            if k in names or k.startswith("action_head.") or "lora_" in k:
                keep[k] = v
            elif not (k.startswith("vision.") or k.startswith("text.")):
                keep[k] = v
        return keep
