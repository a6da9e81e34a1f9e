"""Load the model the node runs (``VLAInferenceAPI``) and adapt it to NodeCore's predictor contract.

Torch is imported only when :func:`load_model` is called, so the node validates its parameters
(and fails fast on a bad one) before paying for the import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vla_ros.runtime.config import NodeConfig
from vla_ros.runtime.core import ModelSpec, Predictor

__all__ = ["load_model", "make_predictor"]


def load_model(cfg: NodeConfig) -> tuple[Any, ModelSpec]:
    """VLAInferenceAPI for ``cfg`` (checkpoint, device, fast, warmup, num_inference_steps) and its spec.

    Raises CheckpointError (missing/damaged checkpoint) or InputError (e.g. CUDA not available,
    num_inference_steps above the checkpoint's training timesteps) with a message for the user.
    """
    from vla_ros import paths
    from vla_ros.config import ConfigError

    # Fail fast, before the seconds of importing torch, on the most common mistake.
    path = Path(cfg.checkpoint).expanduser() if cfg.checkpoint else paths.default_checkpoint()
    if not path.is_file():
        raise ConfigError(f"checkpoint={cfg.checkpoint!r}: {path} does not exist" if cfg.checkpoint else
                          f"checkpoint='': the packaged default {path} does not exist; set the checkpoint "
                          "parameter to a trained model (.pth)")

    import torch

    from vla_ros.inference import VLAInferenceAPI

    if cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    api = VLAInferenceAPI(
        checkpoint=path,
        device=cfg.device,
        fast=cfg.fast,
        warmup=cfg.warmup,
        num_inference_steps=cfg.num_inference_steps or None,
        num_samples=cfg.num_samples,
        noise=cfg.noise,
        guidance=cfg.guidance,
        guidance_settings=cfg.guidance_settings,
    )
    return api, ModelSpec.from_config(api.config)


def make_predictor(api: Any) -> Predictor:
    """NodeCore's predictor: (frames per camera in config order, command, odometry) -> Prediction."""
    if hasattr(api, "predict_cameras"):
        return lambda cams, command, odometry=None: api.predict_cameras(list(cams), command, odometry)

    def predict(cams: Sequence[Sequence[np.ndarray]], command: str, odometry=None) -> Any:
        return api.predict(*cams, command, odometry)

    return predict
