"""One-file checkpoints: config + weights + normaliser, loaded without unpickling objects.

Layout of ``best.pth`` (a ``torch.save`` of plain containers, readable with
``torch.load(path, weights_only=True)``)::

    {
      "format": "vla_ros.checkpoint", "format_version": 1,
      "model_config": {...ModelConfig as a dict...},
      "state_dict": {name: tensor},   # trainable parts, LoRA, buffers (normaliser) --
                                      # frozen pretrained encoder weights come from their packages
      "full": bool,                   # True when every weight is stored (random-init backbones)
      "meta": {...}                   # training step, metrics, data description, version
    }

Loading rebuilds the model from the stored config (never from flags).  A checkpoint whose
architecture differs from the one asked for fails with a message naming each setting that
differs -- the seed's "retraining required" case.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from vla_ros.config import ConfigError, ModelConfig, from_dict, to_dict
from vla_ros.errors import CheckpointError

FORMAT = "vla_ros.checkpoint"
FORMAT_VERSION = 1


def _needs_full_weights(cfg: ModelConfig) -> bool:
    # Frozen weights can be re-created from a package only when they are pretrained ones.
    return cfg.backbone == "tiny" or not cfg.pretrained


def save_checkpoint(model, path: str | Path, meta: dict[str, Any] | None = None,
                    half: bool = False, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (a SimpleVLA) to ``path`` atomically (a crash never leaves half a file).

    ``half=True`` stores floating weights as float16 (half the size; for the shipped default).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    full = _needs_full_weights(model.config)
    state = model.state_dict() if full else model.trainable_state_dict()
    # half: weights only; the normaliser's statistics keep float32 (they scale every output)
    state = {k: (v.detach().cpu().half() if half and v.is_floating_point() and "normalizer." not in k
                 else v.detach().cpu()) for k, v in state.items()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": to_dict(model.config),
        "state_dict": state,
        "full": full,
        "meta": dict(meta or {}),
        "phrasebook": list(getattr(model, "phrasebook", ())),  # the commands trained on (strings)
        **(extra or {}),  # e.g. last.pth's "train_state" (optimizer, EMA, step) for resuming
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load the raw payload with ``weights_only=True`` and check its format."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or contains pickled objects
        raise CheckpointError(
            f"{path} is not a readable vla_ros checkpoint ({type(exc).__name__}: {str(exc)[:200]}). "
            "It may be truncated, or it holds arbitrary Python objects, which are never unpickled."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a vla_ros checkpoint (no 'format: {FORMAT}' entry); train one with `vla train`"
        )
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {payload['format_version']}; this vla_ros reads "
                              f"up to {FORMAT_VERSION}: upgrade vla_ros")
    return payload


def checkpoint_config(payload: dict[str, Any], path: str | Path = "checkpoint") -> ModelConfig:
    try:
        stored = dict(payload["model_config"])
        # written before the odometry input existed: those models have none
        stored.setdefault("odometry_input", False)
        stored.setdefault("text_lora", True)  # ... nor the choice of a frozen text encoder
        stored.setdefault("fusion", "additive")  # ... nor token fusion
        stored.setdefault("frame_token_source", "tuned")
        stored.setdefault("fusion_goal_token", False)
        stored.setdefault("target_locator", False)  # ... nor the target locator
        stored.setdefault("scene_map", False)
        return from_dict(ModelConfig, stored, where=f"{path}:model_config")
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its model config is not valid for this vla_ros: {exc}") from None


def architecture_diff(a: ModelConfig, b: ModelConfig) -> dict[str, tuple[Any, Any]]:
    """Settings that change the weights' shapes or meaning and differ between ``a`` and ``b``."""
    return {f: (getattr(a, f), getattr(b, f)) for f in ModelConfig.ARCHITECTURE_FIELDS
            if getattr(a, f) != getattr(b, f)}


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                    expect: ModelConfig | None = None, **runtime_overrides):
    """Rebuild the SimpleVLA stored in ``path``; returns ``(model, payload)``.

    ``expect``: the architecture the caller needs; a mismatch raises :class:`CheckpointError`
    naming every differing setting.  ``runtime_overrides`` may change settings that do not
    affect the weights (``num_inference_steps``, ``use_ddim``).
    """
    from vla_ros.model.vla import SimpleVLA

    payload = read_checkpoint(path)
    cfg = checkpoint_config(payload, path)
    if expect is not None:
        diff = architecture_diff(cfg, expect)
        if diff:
            lines = ", ".join(f"{k}: checkpoint {v[0]!r} vs expected {v[1]!r}" for k, v in diff.items())
            raise CheckpointError(
                f"{path} was trained with a different architecture ({lines}). Its weights cannot be "
                "used with these settings: retrain with `vla train`, or use the checkpoint's settings."
            )
    bad = sorted(set(runtime_overrides) - {"num_inference_steps", "use_ddim", "phrasebook_temperature", "colour_words"})
    if bad:
        raise CheckpointError(f"cannot override {bad} at load time: they change the architecture")
    if runtime_overrides:
        import dataclasses

        cfg = dataclasses.replace(cfg, **runtime_overrides)
    model = SimpleVLA(cfg)
    state = payload["state_dict"]
    own = model.state_dict()
    unexpected = sorted(set(state) - set(own))
    shape_bad = sorted(k for k in state if k in own and state[k].shape != own[k].shape)
    expected_keys = set(own) if payload.get("full") else set(model.trainable_state_dict())
    missing = sorted(expected_keys - set(state))
    if unexpected or shape_bad or missing:
        detail = []
        if shape_bad:
            detail.append("shape differs for " + ", ".join(
                f"{k} ({tuple(state[k].shape)} vs {tuple(own[k].shape)})" for k in shape_bad[:5]))
        if missing:
            detail.append(f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}")
        if unexpected:
            detail.append(f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        raise CheckpointError(f"{path}: weights do not fit the architecture in its own config "
                              f"({'; '.join(detail)}); the file is damaged or from another version")
    state = {k: v.to(own[k].dtype) for k, v in state.items()}
    model.load_state_dict(state, strict=False)
    phrasebook = payload.get("phrasebook") or []
    if not isinstance(phrasebook, list) or not all(isinstance(t, str) for t in phrasebook):
        raise CheckpointError(f"{path}: its phrasebook is not a list of strings; the file is damaged")
    model.set_phrasebook(phrasebook)
    model.to(device).eval()
    return model, payload
