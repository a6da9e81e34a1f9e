"""`vla train` under torchrun: two CPU processes (gloo), each with half of every batch, train the
same model as one process with the whole batch.

Tolerance: every trained weight within 1e-5 (absolute) and every logged loss within 1e-5 after
6 steps (measured: 2.2e-6, while every parameter moved at least 3.9e-3 from its start). The two runs differ only in the order of floating-point sums (two half-batch means
averaged by DDP's all-reduce instead of one mean), not in any random draw: the global batch,
phrasings, odometry dropout, diffusion noise and timesteps are drawn alike in every process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import yaml

from vla_ros.config import ModelConfig, TrainConfig, to_dict
from vla_ros.data.generate import generate_dataset
from vla_ros.sim.config import WorldConfig

MODEL = ModelConfig(backbone="tiny", image_size=32, cond_dim=64, num_timesteps=100, num_inference_steps=4)
TRAIN = TrainConfig(steps=6, batch_size=8, lr=2e-3, warmup_steps=2, val_every=3, val_batches=1, log_every=1,
                    val_fraction=0.25)
TOL = 1e-5


def _run(cmd: list[str], cwd) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


def _weights(run) -> tuple[dict[str, torch.Tensor], list]:
    state = torch.load(run / "last.pth", map_location="cpu", weights_only=False)["train_state"]
    return state["raw_weights"], state["history"]["train"]


def test_two_gloo_processes_train_the_same_model_as_one_process(tmp_path):
    data = generate_dataset(tmp_path / "data", episodes=4, seed=3,
                            config=WorldConfig(image_size=32, episode_steps=16), progress=False)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"model": to_dict(MODEL), "train": to_dict(TRAIN)}))
    args = ["-m", "vla_ros.cli", "train", "--config", str(config), "--data", str(data)]
    _run([sys.executable, *args, "--out", str(tmp_path / "one")], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args,
          "--out", str(tmp_path / "two")], tmp_path)
    one, loss_one = _weights(tmp_path / "one")
    two, loss_two = _weights(tmp_path / "two")
    assert one.keys() == two.keys() and len(loss_one) == len(loss_two) == 6
    worst = max(float((one[k].float() - two[k].float()).abs().max()) for k in one)
    # every trained parameter moved far more than the runs differ (measured: >= 3.9e-3 vs 2.2e-6)
    least_moved = min(float((one[k] - w).abs().max()) for k, w in _initial_parameters().items())
    assert worst < TOL and least_moved > 100 * TOL
    assert max(abs(a[1] - b[1]) for a, b in zip(loss_one, loss_two)) < TOL
    with pytest.raises(AssertionError, match="must be divisible"):  # a global batch the processes cannot share
        _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args,
              "--batch-size", "7", "--out", str(tmp_path / "odd")], tmp_path)


def _initial_parameters() -> dict[str, torch.Tensor]:
    """The untrained model's trainable parameters (the runs' common start)."""
    from vla_ros.model.vla import SimpleVLA

    torch.manual_seed(TRAIN.seed)
    return {k: p.detach().clone() for k, p in SimpleVLA(MODEL).named_parameters() if p.requires_grad}
