"""``vla bench``: the seed's baseline, its optimised path and our fast path, side by side.

One process, one machine, the same inputs:

1. ``before``: the seed's "before" head (channels (64, 128), head dim 4, 1000 training steps)
   sampled with DDPM over all 1000 steps, plain path (the seed's ~5.6 s baseline);
2. ``after/diffusers``: the seed's "after" head with DDIM-20 through a plain diffusers
   scheduler loop, every input encoded on every call (the seed's optimised path);
3. ``after/fast``: the same model through our fast path (cached command and frame
   encodings, fixed-op DDIM, CUDA graph on GPU), optionally ``torch.compile``.

Each ``predict`` sees a new observation: one new frame per camera, as on a robot.  Reported:
per-stage p50/p95 latency, Hz, speed-ups, peak memory, and batched throughput at B = 1, 8,
64 (several robots served by one process).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_ros.checkpoint import load_checkpoint, save_checkpoint
from vla_ros.config import seed_before_config
from vla_ros.inference.api import VLAInferenceAPI


def machine_info(device: str) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "device": device}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _observation(size: int, history: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    ego = list(rng.integers(0, 255, (history, size, size, 3), dtype=np.uint8))
    top = list(rng.integers(0, 255, (history, size, size, 3), dtype=np.uint8))
    return ego, top


def _summ(stats: dict[str, Any], name: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    row = {"name": name, "p50_ms": stats["p50_ms"], "p95_ms": stats["p95_ms"], "mean_ms": stats["mean_ms"],
           "hz": 1000.0 / stats["p50_ms"], "steps": stats["num_inference_steps"], "scheduler": stats["scheduler"],
           "stages": stats["stages"]}
    row.update(extra or {})
    return row


@torch.inference_mode()
def batched_throughput(api: VLAInferenceAPI, batch_sizes: tuple[int, ...], runs: int,
                       end_to_end_max: int) -> list[dict[str, Any]]:
    """Trajectories per second at several batch sizes.

    ``diffusion``: condition -> trajectories (the fast sampler) for B robots at once.
    ``end_to_end``: B robots' full observations (every frame encoded, no cache) -> trajectories.
    """
    cfg = api.config
    out = []
    for b in batch_sizes:
        cond = torch.randn(b, api.model.num_tokens, cfg.cond_dim, device=api.device)
        api._diffuse(cond)  # capture / warm up this shape
        times = []
        for _ in range(runs):
            api._sync()
            t0 = time.perf_counter()
            api._diffuse(cond)
            api._sync()
            times.append(time.perf_counter() - t0)
        p50 = float(np.median(times)) * 1e3
        row = {"batch": b, "diffusion_p50_ms": p50, "diffusion_traj_per_s": b / (p50 / 1e3)}
        if b <= end_to_end_max:
            rng = np.random.default_rng(b)
            imgs = rng.integers(0, 255, (b, len(cfg.cameras), cfg.history_length, cfg.image_size, cfg.image_size, 3),
                                dtype=np.uint8)
            cmds = ["go to the red cone"] * b
            api.predict_batch(imgs, cmds)
            times = []
            # every frame of every robot is encoded: seconds per call at B = 64 on a CPU, so
            # large batches get 2 timed calls (the bench stays within ~3 min on 2 cores)
            for _ in range(max(1, runs // 2) if b <= 8 else 2):
                api._sync()
                t0 = time.perf_counter()
                api.predict_batch(imgs, cmds)
                api._sync()
                times.append(time.perf_counter() - t0)
            p50 = float(np.median(times)) * 1e3
            row.update({"end_to_end_p50_ms": p50, "end_to_end_traj_per_s": b / (p50 / 1e3)})
        out.append(row)
    return out


def _before_row(model, device: str, ego, top, cmd: str, runs: int, log) -> dict[str, Any]:
    """1. The seed's "before" head, DDPM over all 1000 training steps, plain path. Weights are
    irrelevant to latency: the same encoders, the before head's architecture, random head weights."""
    from vla_ros.model.vla import SimpleVLA

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        before_cfg = dataclasses.replace(model.config, **{k: getattr(seed_before_config(), k) for k in (
            "num_timesteps", "num_inference_steps", "use_ddim", "unet_channels", "attention_head_dim")})
        before_model = SimpleVLA(before_cfg)
        before_model.load_state_dict({k: v for k, v in model.state_dict().items()
                                      if not k.startswith("action_head.")}, strict=False)
        before_path = save_checkpoint(before_model, Path(tmp) / "before.pth")
        del before_model
        log(f"[1/3] before: DDPM-{before_cfg.num_timesteps}, channels {before_cfg.unet_channels}, plain path "
            f"({runs} run{'s' if runs > 1 else ''})")
        api = VLAInferenceAPI(before_path, device=device, fast=False, warmup=False)
        api.predict(ego, top, cmd)  # one warm-up call
        return _summ(api.benchmark(ego, top, cmd, num_runs=runs), "before: DDPM-1000, diffusers loop",
                     {"head": "before", "path": "plain"})


def run_bench(checkpoint: str | Path, device: str = "cpu", quick: bool = False, compile: bool = False,
              log=print) -> dict[str, Any]:
    runs = 8 if quick else 30
    ddpm_runs = 1 if quick else 2  # ~16 s each on the 2-core CPU
    model, _ = load_checkpoint(checkpoint)
    cfg = model.config
    ego, top = _observation(cfg.image_size, cfg.history_length)
    cmd = "go to the red cone"
    rows = [_before_row(model, device, ego, top, cmd, ddpm_runs, log)]
    log(f"[2/3] after: DDIM-{cfg.num_inference_steps}, plain diffusers loop ({runs} runs)")
    api = VLAInferenceAPI(checkpoint, device=device, fast=False, warmup=True)
    rows.append(_summ(api.benchmark(ego, top, cmd, num_runs=runs),
                      f"after: DDIM-{cfg.num_inference_steps}, diffusers loop", {"head": "after", "path": "plain"}))
    del api
    log(f"[3/3] after: DDIM-{cfg.num_inference_steps}, fast path{' + torch.compile' if compile else ''} ({runs} runs)")
    t0 = time.perf_counter()
    fast = VLAInferenceAPI(checkpoint, device=device, fast=True, warmup=True, compile=compile)
    load_s = time.perf_counter() - t0
    rows.append(_summ(fast.benchmark(ego, top, cmd, num_runs=runs),
                      f"after: DDIM-{cfg.num_inference_steps}, fast path" + (" + compile" if compile else ""),
                      {"head": "after", "path": "fast", "load_and_warmup_s": load_s,
                       "first_call_ms": None}))
    first = fast.predict(*_observation(cfg.image_size, cfg.history_length, seed=7), "a new command").timing["total"]
    rows[-1]["first_call_after_load_ms"] = first
    log("batched throughput")
    sizes = (1, 8, 64)
    batched = batched_throughput(fast, sizes, runs=max(3, runs // 3), end_to_end_max=8 if quick else 64)
    before, plain, fastrow = rows
    result = {
        "machine": machine_info(device),
        "checkpoint": str(checkpoint),
        "rows": rows,
        "speedup": {"fast_vs_diffusers_loop": plain["p50_ms"] / fastrow["p50_ms"],
                    "fast_vs_before_ddpm": before["p50_ms"] / fastrow["p50_ms"],
                    "diffusers_loop_vs_before_ddpm": before["p50_ms"] / plain["p50_ms"]},
        "batched": batched,
        "peak_memory_mb": _peak_memory_mb(device),
        "quick": quick,
    }
    return result


def format_bench(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [f"machine: {m['cpu']} ({m['cores']} cores, torch {m['torch']}, {m['torch_threads']} threads)"
             + (f", GPU {m['gpu']}" if "gpu" in m else "") + f", device {m['device']}", ""]
    stages = ["image_encoding", "text_encoding", "fusion", "diffusion", "total"]
    lines.append(f"| {'path':<40} | " + " | ".join(f"{s:>15}" for s in stages) + f" | {'Hz':>6} |")
    lines.append(f"| {'':<40} | " + " | ".join(f"{'p50 / p95 ms':>15}" for _ in stages) + f" | {'':>6} |")
    lines.append("|" + "-" * 42 + "|" + "|".join("-" * 17 for _ in stages) + "|--------|")
    for row in r["rows"]:
        cells = [f"{row['stages'][s]['p50_ms']:7.1f}/{row['stages'][s]['p95_ms']:7.1f}" for s in stages]
        lines.append(f"| {row['name']:<40} | " + " | ".join(f"{c:>15}" for c in cells) + f" | {row['hz']:6.1f} |")
    s = r["speedup"]
    lines += ["", f"speed-up of the fast path: {s['fast_vs_diffusers_loop']:.2f}x over the diffusers DDIM loop, "
                  f"{s['fast_vs_before_ddpm']:.0f}x over the seed's DDPM-1000 baseline "
                  f"(the diffusers DDIM loop alone: {s['diffusers_loop_vs_before_ddpm']:.0f}x)",
              f"first call after load: {r['rows'][-1]['first_call_after_load_ms']:.1f} ms "
              f"(load + warm-up {r['rows'][-1]['load_and_warmup_s']:.1f} s)",
              f"peak memory: {r['peak_memory_mb']:.0f} MB", "",
              "batched (one process serving B robots):",
              f"| {'B':>3} | {'diffusion p50 ms':>16} | {'diffusion traj/s':>16} | {'end-to-end p50 ms':>17} | "
              f"{'end-to-end traj/s':>17} |", "|-----|" + "-" * 18 + "|" + "-" * 18 + "|" + "-" * 19 + "|" + "-" * 19 + "|"]
    for b in r["batched"]:
        e2e = (f"{b['end_to_end_p50_ms']:>17.1f} | {b['end_to_end_traj_per_s']:>17.1f}"
               if "end_to_end_p50_ms" in b else f"{'-':>17} | {'-':>17}")
        lines.append(f"| {b['batch']:>3} | {b['diffusion_p50_ms']:>16.1f} | {b['diffusion_traj_per_s']:>16.1f} | {e2e} |")
    return "\n".join(lines)
