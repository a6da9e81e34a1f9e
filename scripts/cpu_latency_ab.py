#!/usr/bin/env python3
"""Before / after of the CPU fast path in one process: the same observations, interleaved.

"before" is this tree's API set back to the CPU path of commit ``--base`` (default 6438cef, the
commit before docs/results.md's "Halving the CPU latency"): that commit's lean UNet (read from
git), locator + fusion + cond_proj eager, the image encoder frozen with optimize_for_inference
on a batch of both new frames with the process's intra-op threads (the frame cache's hashing is
this tree's in both). "after" is the tree as it is.
Both predict the same observation streams (one new frame per camera per call, as ``vla bench``)
in alternating order; per stage it prints the p50 wall time and the p50 CPU time of the calling
thread (on a machine others load, the thread's CPU time of single-thread work stays close to its
wall time on an idle machine; the encoder's worker thread is not counted in it).

``--parts``: instead, each changed part alone on one thread, as the p50 CPU time of the thread
(the image encoder per batch of 1 and 2 frames as frozen before / after; locator + fusion +
cond_proj eager / as the condition graph; DDIM-20 with the base's / this lean UNet).

Usage: PYTHONPATH=. .venv/bin/python scripts/cpu_latency_ab.py [--runs 40] [--threads N] [--base COMMIT] [--parts]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

STAGES = ("image_encoding", "fusion", "diffusion", "total")


def _old_unet_module(base: str):
    """The lean UNet module of commit ``base``, imported from a temporary file."""
    src = subprocess.run(["git", "show", f"{base}:vla_ros/model/fast/unet.py"], check=True, capture_output=True,
                         text=True).stdout
    path = Path(tempfile.mkdtemp()) / "unet_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("unet_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _set_back(api, base: str) -> None:
    """``api`` computes as commit ``base``'s CPU fast path did."""
    from vla_ros.model.fast.cpu_graph import freeze_graph

    unet = _old_unet_module(base)
    api._condition_graph_applies = lambda: False
    for sampler in api._samplers.values():
        sampler.lean, sampler._rows = unet.FastUNet(api.model.action_head.unet), None
        sampler._graphs.clear()
    model, grid = api.model, bool(api.model.config.spatial_tokens)

    def frame_tokens(images):
        x = model.preprocess(images)
        if getattr(api, "_before_graph", None) is None:
            api._before_graph = freeze_graph(
                lambda im: model.frame_tokens(model.vision.frozen(im), grid=grid)[: 1 + grid], (x,),
                owner=model, name="image encoder (before)")
        out = api._before_graph(x)
        return out[0], (out[1] if len(out) > 1 else None)

    api._frame_tokens = frame_tokens
    api.warmup()


def _cpu_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.thread_time()
        fn()
        times.append(time.thread_time() - t0)
    return float(np.median(times)) * 1e3


@torch.inference_mode()
def parts(api, base: str, runs: int) -> None:
    """Each changed part alone, on one thread: p50 thread CPU time, before / after."""
    from vla_ros.inference.bench import _observation
    from vla_ros.model.fast.cpu_graph import freeze_graph
    from vla_ros.model.fast.ddim import DDIMSampler

    torch.set_num_threads(1)
    model, head = api.model, api.model.action_head
    ego, top = _observation(api.config.image_size, api.config.history_length)
    fn = lambda im: model.frame_tokens(model.vision.frozen(im), grid=True)[:2]  # noqa: E731
    rows = []
    for n in (1, 2):
        x = model.preprocess(np.stack([ego[-1], top[-1]][:n]))
        xcl = x.contiguous(memory_format=torch.channels_last)
        old = freeze_graph(fn, (x,), owner=model, name="encoder before")
        new = freeze_graph(fn, (xcl,), owner=model, name="encoder after", optimize=False)
        rows.append((f"image encoder, {n} frame{'s' if n > 1 else ''}", _cpu_ms(lambda: old(x), runs),
                     _cpu_ms(lambda: new(xcl), runs)))
    frame_tok, grid_tok = api._encode_frames([ego, top])
    cmd = api._encode_text("go to the red cone")
    def plain():
        return head.cond_proj(model.fuse(frame_tok, grid_tok, cmd, None, api._locate([top[-1]], cmd)))

    rows.append(("locator + fusion + cond_proj", _cpu_ms(plain, runs),
                 _cpu_ms(lambda: api._condition([top[-1]], frame_tok, grid_tok, cmd, None), runs)))
    context, noise = plain(), torch.randn(1, head.config.action_dim, head.config.trajectory_length, 1)
    before = DDIMSampler(head, head.num_inference_steps, cpu_graph=True)
    before.lean = _old_unet_module(base).FastUNet(head.unet)
    after = DDIMSampler(head, head.num_inference_steps, cpu_graph=True)
    rows.append((f"DDIM-{head.num_inference_steps} (lean UNet)", _cpu_ms(lambda: before(context, noise), runs),
                 _cpu_ms(lambda: after(context, noise), runs)))
    print(f"{'one thread, p50 thread CPU ms':36s} {'before':>8s} {'after':>8s} {'ratio':>6s}")
    for name, b, a in rows:
        print(f"{name:36s} {b:8.2f} {a:8.2f} {b / a:6.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default="checkpoints/default.pth")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--base", default="6438cef")
    ap.add_argument("--parts", action="store_true", help="each changed part alone, on one thread")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from vla_ros.inference.api import VLAInferenceAPI
    from vla_ros.inference.bench import _observation

    t0 = time.perf_counter()
    after = VLAInferenceAPI(args.checkpoint)
    if args.parts:
        parts(after, args.base, args.runs)
        return 0
    load_s = time.perf_counter() - t0
    before = VLAInferenceAPI(args.checkpoint)
    _set_back(before, args.base)
    print(f"torch threads {torch.get_num_threads()}, load + warm-up (after) {load_s:.2f} s")
    ego, top = _observation(after.config.image_size, after.config.history_length)
    rng = np.random.default_rng(1)
    wall = {"before": {}, "after": {}}
    cpu = {"before": [], "after": []}
    for i in range(args.runs + 2):
        noise = rng.integers(0, 3, ego[-1].shape, dtype=np.uint8)
        ego, top = ego[1:] + [ego[-1] ^ noise], top[1:] + [top[-1] ^ noise]
        order = (("before", before), ("after", after)) if i % 2 else (("after", after), ("before", before))
        preds = {}
        for name, api in order:
            c0 = time.thread_time()
            preds[name] = api.predict(ego, top, "go to the red cone", odometry=(0.3, 0.1))
            if i >= 2:  # the first two: the new observation shape's graphs settle
                cpu[name].append((time.thread_time() - c0) * 1e3)
                for k in STAGES:
                    wall[name].setdefault(k, []).append(preds[name].timing[k])
        if i == 0:
            diff = np.abs(preds["before"].trajectory - preds["after"].trajectory).max()
            print(f"max |trajectory before - after| {diff:.2e} m")
    print(f"{'p50 ms':16s} {'before':>8s} {'after':>8s} {'ratio':>6s}")
    for k in STAGES:
        b, a = np.median(wall["before"][k]), np.median(wall["after"][k])
        print(f"{k:16s} {b:8.2f} {a:8.2f} {b / a:6.2f}")
    b, a = np.median(cpu["before"]), np.median(cpu["after"])
    print(f"{'thread CPU':16s} {b:8.2f} {a:8.2f} {b / a:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
