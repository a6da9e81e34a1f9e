"""GPU check: the CUDA paths give the CPU's trajectories, training runs on the GPU, and the
benchmark's GPU figures.

CI has no GPU, so these checks run by hand on a machine with one:

    python scripts/gpu_check.py --json gpu_check.json [--bench-json bench_cuda.json]

1. For a tiny model, a tiny model with the target locator, and the packaged default: the
   CUDA fast path (cached encodings, DDIM as fixed ops, one CUDA graph over the loop) and the
   CUDA plain path against the CPU plain path (the reference), over a stream of observations
   with one new frame per camera; batched against single; the ``varied`` and ``zero`` noise
   modes; ``torch.compile`` inside the graph (default model).
2. ``vla train --device cuda`` on a tiny generated set: the loss falls, and the checkpoint
   loads and predicts on the CPU.
3. ``vla bench --device cuda`` (and with ``--compile``): latency, throughput, peak memory.

Exits 1 if a trajectory differs by more than the tolerance (or a step fails); prints a table
last and writes every figure as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from vla_ros.checkpoint import save_checkpoint
from vla_ros.config import ModelConfig, TrainConfig
from vla_ros.inference import VLAInferenceAPI
from vla_ros.model.vla import SimpleVLA

# cuDNN convolutions on Ampere+ use TF32 by default (10-bit mantissa, ~5e-4 relative); over 20
# DDIM steps and the normaliser's range that is ~1e-3 m on a trajectory. Well under a centimetre.
TOL_M = 1e-2
COMMANDS = ("go to the red cone", "turn left", "stop", "go to the red cone", "follow the lane")


def _frames(rng: np.random.Generator, n: int, size: int) -> list[np.ndarray]:
    return list(rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8))


def _stream(api: VLAInferenceAPI, steps: int = 5, seed: int = 0) -> np.ndarray:
    """Trajectories for a stream of observations, one new frame per camera each step: (steps, 16, 3)."""
    cfg = api.config
    rng = np.random.default_rng(seed)
    cams = [_frames(rng, cfg.history_length, cfg.image_size) for _ in cfg.cameras]
    out = []
    for i in range(steps):
        odom = (0.3 + 0.05 * i, -0.1) if cfg.odometry_input else None
        out.append(api.predict_cameras(cams, COMMANDS[i % len(COMMANDS)], odometry=odom).trajectory)
        cams = [c[1:] + _frames(rng, 1, cfg.image_size) for c in cams]
    return np.stack(out)


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


def check_paths(name: str, ckpt: Path, device: str, compile_too: bool) -> dict:
    """CUDA (fast, plain, batched, noise modes) against the CPU plain reference."""
    r: dict = {"model": name}
    t0 = time.perf_counter()
    ref = _stream(VLAInferenceAPI(ckpt, device="cpu", fast=False, warmup=False))
    cpu_fast = _stream(VLAInferenceAPI(ckpt, device="cpu"))
    fast = VLAInferenceAPI(ckpt, device=device)
    gpu_fast = _stream(fast)
    r["cuda_graphs"] = len(fast._graphs)
    gpu_plain = _stream(VLAInferenceAPI(ckpt, device=device, fast=False, warmup=False))
    r["max_abs_m"] = {"cpu_fast_vs_cpu_plain": _diff(cpu_fast, ref), "gpu_fast_vs_cpu_plain": _diff(gpu_fast, ref),
                      "gpu_plain_vs_cpu_plain": _diff(gpu_plain, ref)}
    r["traj_scale_m"] = float(np.abs(ref).max())

    cfg = fast.config
    rng = np.random.default_rng(7)
    b = 4
    images = rng.integers(0, 255, (b, len(cfg.cameras), cfg.history_length, cfg.image_size, cfg.image_size, 3),
                          dtype=np.uint8)
    cmds = [COMMANDS[i % len(COMMANDS)] for i in range(b)]
    odom = np.tile(np.array([[0.3, 0.0]], np.float32), (b, 1)) if cfg.odometry_input else None
    batched = fast.predict_batch(images, cmds, odometry=odom)
    single = np.stack([fast.predict_cameras(list(images[i]), cmds[i],
                                            odometry=None if odom is None else odom[i]).trajectory
                       for i in range(b)])
    r["max_abs_m"]["gpu_batch_vs_gpu_single"] = _diff(batched, single)

    for mode in ("varied", "zero"):
        cpu = _stream(VLAInferenceAPI(ckpt, device="cpu", fast=False, warmup=False, noise=mode))
        gpu = _stream(VLAInferenceAPI(ckpt, device=device, noise=mode))
        r["max_abs_m"][f"gpu_vs_cpu_noise_{mode}"] = _diff(gpu, cpu)

    if compile_too:
        t1 = time.perf_counter()
        comp = VLAInferenceAPI(ckpt, device=device, compile=True)
        r["compile_warmup_s"] = round(time.perf_counter() - t1, 1)
        r["max_abs_m"]["gpu_compiled_vs_cpu_plain"] = _diff(_stream(comp), ref)
    r["ok"] = all(v <= TOL_M for v in r["max_abs_m"].values()) and (r["cuda_graphs"] > 0 or device == "cpu")
    r["seconds"] = round(time.perf_counter() - t0, 1)
    return r


def check_training(device: str, tmp: Path) -> dict:
    """A tiny run on the GPU lowers the loss; its checkpoint predicts on the CPU."""
    from vla_ros.data.generate import generate_dataset
    from vla_ros.training.evaluate import evaluate
    from vla_ros.sim.config import WorldConfig
    from vla_ros.training.loop import train

    t0 = time.perf_counter()
    world = WorldConfig(image_size=64, episode_steps=16)
    data = generate_dataset(tmp / "data", episodes=8, seed=3, config=world, progress=False)
    model = ModelConfig(backbone="tiny", image_size=64, cond_dim=64, num_timesteps=100, num_inference_steps=10,
                        target_locator=True)
    cfg = TrainConfig(steps=60, batch_size=16, lr=2e-3, warmup_steps=5, val_every=30, val_batches=2, log_every=5,
                      val_fraction=0.25, locator_pretrain_steps=20)
    summary = train(model, cfg, data, tmp / "run", device=device, progress=False)
    log = json.loads((tmp / "run" / "train_log.json").read_text())
    losses = [loss for _step, loss in log["history"]["train"]]
    api = VLAInferenceAPI(tmp / "run" / "last.pth", device="cpu")
    traj = _stream(api, steps=2)
    first, last = float(np.mean(losses[:3])), float(np.mean(losses[-3:]))
    # `vla eval` of that checkpoint on the device against the CPU (same seeded noise)
    ades = {d: evaluate(tmp / "run" / "last.pth", data, device=d, sweep=False, progress=False)["model"]["overall"]["ade"]
            for d in ("cpu", device)}
    ade_diff = abs(ades["cpu"] - ades[device])
    return {"first_loss": first, "last_loss": last, "best_val_ade_m": summary.get("best_val_ade"),
            "eval_ade_m": ades, "ok": bool(last < first and np.isfinite(traj).all() and ade_diff <= TOL_M),
            "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default), or cpu to try the script without a GPU")
    p.add_argument("--checkpoint", help="the full-size model to check (default: the packaged default)")
    p.add_argument("--json", help="write the check's figures here")
    p.add_argument("--bench-json", help="also run `vla bench` on the device (and with --compile) and write it here")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile checks (slow to compile)")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: this script checks the GPU paths (use --device cpu to try it)", file=sys.stderr)
        return 2
    from vla_ros import paths
    from vla_ros.inference.bench import machine_info

    report: dict = {"machine": machine_info(args.device), "tolerance_m": TOL_M, "checks": []}
    failed = False
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        torch.manual_seed(0)
        tiny = dict(backbone="tiny", image_size=64, cond_dim=64, num_timesteps=100, num_inference_steps=10)
        models = {"tiny": save_checkpoint(SimpleVLA(**tiny), tmp / "tiny.pth"),
                  "tiny+locator": save_checkpoint(SimpleVLA(**tiny, target_locator=True), tmp / "loc.pth"),
                  "default": Path(args.checkpoint) if args.checkpoint else paths.default_checkpoint()}
        for name, ckpt in models.items():
            print(f"== paths: {name}", flush=True)
            try:
                report["checks"].append(check_paths(name, ckpt, args.device,
                                                    compile_too=name == "default" and not args.no_compile))
            except Exception:  # report every check, then fail
                traceback.print_exc()
                report["checks"].append({"model": name, "ok": False, "error": traceback.format_exc(limit=3)})
        print("== training", flush=True)
        try:
            report["training"] = check_training(args.device, tmp)
        except Exception:
            traceback.print_exc()
            report["training"] = {"ok": False, "error": traceback.format_exc(limit=3)}
        if args.bench_json:
            from vla_ros.inference.bench import format_bench, run_bench

            bench = {}
            for compile_ in (False, True) if not args.no_compile else (False,):
                print(f"== bench (compile={compile_})", flush=True)
                try:
                    bench["compile" if compile_ else "eager"] = r = run_bench(models["default"], device=args.device,
                                                                              compile=compile_)
                    print(format_bench(r), flush=True)
                except Exception:
                    traceback.print_exc()
                    failed = True
            Path(args.bench_json).write_text(json.dumps(bench, indent=1))
    print("\n| check | figures | ok |\n|---|---|---|")
    for c in report["checks"]:
        figs = ", ".join(f"{k} {v:.2g}" for k, v in c.get("max_abs_m", {}).items())
        print(f"| {c['model']} | graphs {c.get('cuda_graphs')}, {figs} (m) | {c['ok']} |")
        failed |= not c["ok"]
    t = report["training"]
    print(f"| training on {args.device} | loss {t.get('first_loss', float('nan')):.3f} -> "
          f"{t.get('last_loss', float('nan')):.3f}, eval ADE {t.get('eval_ade_m')} | {t['ok']} |")
    failed |= not t["ok"]
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
