"""VLAInferenceAPI: load a checkpoint, predict trajectories fast, time it.

The fast path (on by default):

* the command's text encoding is computed once per new command and cached;
* each frame's image tokens are cached, keyed by the frame's content, so a new observation
  (one new frame per camera) encodes only the new frames;
* a warm-up at load time, so the first real call is as fast as the rest;
* the DDIM loop is a fixed sequence of tensor operations
  (:class:`~vla_ros.model.fast.ddim.DDIMSampler`, equal to diffusers' ``DDIMScheduler`` with
  eta 0) through the lean UNet; on CUDA the whole loop -- every UNet call and update -- is
  captured in one CUDA graph with static buffers (captured again when the step count or batch
  size changes); on the CPU it runs under ``inference_mode``;
* on the CPU the image encoder and each lean UNet step run as frozen TorchScript graphs
  (:mod:`vla_ros.model.fast.cpu_graph`, checked against eager when built), and a small DDIM
  batch runs on one thread (its operators are too small to share).

``fast=False`` gives the plain path: everything recomputed, a diffusers UNet call per step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vla_ros import paths
from vla_ros.checkpoint import load_checkpoint
from vla_ros.config import NOISE_MODES, ModelConfig
from vla_ros.errors import InputError
from vla_ros.inference import checks
from vla_ros.model.fast.condition import ConditionGraph
from vla_ros.model.fast.cpu_graph import freeze_graph, param_versions
from vla_ros.model.fast.cuda_graph import CudaGraphSampler
from vla_ros.model.fast.ddim import DDIMSampler
from vla_ros.model.fast.threads import SINGLE_THREAD_MAX_BATCH, SplitBatch, intra_op_threads
from vla_ros.model.locator import Located

__all__ = ["Prediction", "VLAInferenceAPI"]


@dataclasses.dataclass
class Prediction:
    trajectory: np.ndarray  # (T, 3) float32: x, y, heading in the robot frame
    timing: dict[str, float]  # milliseconds per stage
    finite: bool = True


def _frame_key(cam: int, frame: np.ndarray) -> tuple:
    # SHA-256 runs on the CPU's SHA instructions where it has them: 2x faster than BLAKE2b here
    return (cam, frame.shape, hashlib.sha256(frame.tobytes()).digest())


class VLAInferenceAPI:
    """Predict 16-step trajectories from two cameras' frame histories and a command.

    Args:
        checkpoint: path of a checkpoint (``None``: the packaged default).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        fast: the fast path (caches, DDIM as fixed ops, CUDA graph); ``False`` = plain path.
        warmup: run a few predictions at load time so the first real call is fast.
        num_inference_steps / use_ddim: sampling settings (default: the checkpoint's).
        seed: with ``noise="fixed"`` the initial noise is drawn from this seed on every call, so
            the same observation always gives the same trajectory; with ``"varied"`` it seeds
            one generator that every call draws from (a reproducible sequence).
        noise: ``"fixed"`` (default), ``"varied"`` or ``"zero"``. In a closed loop a fixed draw
            repeats its bias at every replan (a slight drift, a slow start); varied draws make the
            errors of successive replans independent, so they average out along the path;
            ``"zero"`` starts DDIM from x_T = 0, the deterministic path through the middle of the
            noise distribution (no draw, so no draw's bias).
        compile: ``torch.compile`` the fast path's lean UNet step (on CUDA inside the graph) and
            the plain path's UNet (default: off). On the CPU the frozen graphs take precedence
            (``cpu_graphs=False`` to use it).
        cpu_graphs: on the CPU fast path, run the image encoder and each lean UNet step as
            frozen TorchScript graphs (built at warm-up, checked against eager; default on).
        guidance: ``"none"`` (default), ``"target"`` or ``"scene"``: with a target-locator
            checkpoint, ``"target"`` turns the trajectories of commands that name a target toward
            the located target and ends them short of it; ``"scene"`` (a checkpoint that also has
            the scene map) aims them beside a mapped obstacle on the way, keeps lane-following
            trajectories on the mapped road and cuts any moving trajectory before a mapped
            obstacle (:mod:`vla_ros.guidance`; ``guidance_settings``: a dict or
            ``"max_turn=0.6,stop_distance=0.4"``, names in ``vla_ros.guidance.GUIDANCE_SETTINGS``).
        num_samples: K > 1 draws K samples (K seeded noises, one batch) and returns their mean
            (circular mean for the heading): a steadier estimate of the expected trajectory for
            closed-loop control, at the cost of a K times larger diffusion batch.
    """

    def __init__(self, checkpoint: str | Path | None = None, device: str = "cpu", fast: bool = True,
                 warmup: bool = True, num_inference_steps: int | None = None, use_ddim: bool | None = None,
                 seed: int = 0, compile: bool = False, cache_size: int = 64, num_samples: int = 1,
                 cpu_graphs: bool = True, noise: str = "fixed", guidance: str = "none",
                 guidance_settings: dict | str | None = None) -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(f"device={device!r} asked for, but CUDA is not available here; use device='cpu'")
        self.checkpoint = Path(checkpoint) if checkpoint else paths.default_checkpoint()
        self.device = torch.device(device)
        self._load(num_inference_steps, use_ddim)
        self.fast = fast
        self.cpu_graphs = bool(cpu_graphs and fast and self.device.type == "cpu")
        self._vision_graph: Any = None  # frozen graph of the image encoder (None: eager)
        self._vision_versions: tuple[int, ...] = ()
        self._split = SplitBatch()  # a few new frames: half of them on a second core
        self._vision_params = [*self.model.vision.parameters(), *self.model.img_proj.parameters()]
        # locator + token fusion + cond_proj as one frozen graph (a token-fusion model on the CPU fast path)
        self._condition_graph = ConditionGraph(self.model)
        self._init_noise(seed, noise, num_samples)
        self.cache_size = cache_size
        self._text_cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._frame_cache: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._samplers: dict[int, DDIMSampler] = {}
        self._graphs: dict[tuple, CudaGraphSampler] = {}
        self.cache_stats = {"frame_hits": 0, "frame_misses": 0, "text_hits": 0, "text_misses": 0}
        self.compile = bool(compile)
        self.guidance = guidance
        self._guide = None  # a vla_ros.guidance.Guidance, or None: the model's own trajectories
        if guidance != "none" or guidance_settings:
            from vla_ros.guidance.build import build_guidance  # optional feature, imported only when asked for

            self._guide = build_guidance(self.model, self.payload, self.checkpoint, guidance, guidance_settings)
        if compile:
            self.model.action_head.unet = torch.compile(self.model.action_head.unet)
        self.warmed_up = False
        self.warmup_seconds = 0.0
        if warmup:
            self.warmup()

    def _load(self, num_inference_steps: int | None, use_ddim: bool | None) -> None:
        """The checkpoint's model (frozen) and payload, with the sampling settings overridden."""
        overrides = {}
        if num_inference_steps is not None:
            overrides["num_inference_steps"] = int(num_inference_steps)
        if use_ddim is not None:
            overrides["use_ddim"] = bool(use_ddim)
        self.model, self.payload = load_checkpoint(self.checkpoint, device=self.device, **overrides)
        self.model.requires_grad_(False)  # inference only (and frozen graphs take no grad tensors)
        self.config: ModelConfig = self.model.config

    def _init_noise(self, seed: int, noise: str, num_samples: int) -> None:
        self.seed = seed
        if noise not in NOISE_MODES:
            raise InputError(f"noise={noise!r}: choose one of {NOISE_MODES}")
        self.noise = noise
        self._noise_generator = torch.Generator().manual_seed(seed)
        if not 1 <= int(num_samples) <= 64:
            raise InputError(f"num_samples={num_samples}: must be within [1, 64] (1 = one sample, the default)")
        self.num_samples = int(num_samples)

    # -- sampling settings --------------------------------------------------------------
    @property
    def num_inference_steps(self) -> int:
        return self.model.action_head.num_inference_steps

    @num_inference_steps.setter
    def num_inference_steps(self, steps: int) -> None:
        if not 1 <= int(steps) <= self.config.num_timesteps:
            raise InputError(f"num_inference_steps={steps} must be within [1, {self.config.num_timesteps}]")
        self.model.action_head.num_inference_steps = int(steps)

    @property
    def use_ddim(self) -> bool:
        return self.model.action_head.use_ddim

    @use_ddim.setter
    def use_ddim(self, value: bool) -> None:
        self.model.action_head.use_ddim = bool(value)

    def reset(self) -> None:
        """Forget cached frames and commands and restart the varied-noise sequence from ``seed``
        (e.g. when a bag loops, so the second pass repeats the first; warm-up ends with it)."""
        self._text_cache.clear()
        self._frame_cache.clear()
        self._noise_generator.manual_seed(self.seed)

    def warmup(self, runs: int = 3) -> None:
        """Exercise every stage as a stream does (allocations, lazy inits, graph building and
        capture): a fresh history (every frame encoded), then ``runs - 1`` observations with one
        new frame per camera (the steady state, which frozen graphs specialise for on their
        first two calls)."""
        t0 = time.perf_counter()
        s = self.config.image_size
        rng = np.random.default_rng(0)
        new = lambda: rng.integers(0, 255, (s, s, 3), dtype=np.uint8)  # noqa: E731
        cams = [[new() for _ in range(self.config.history_length)] for _ in self.config.cameras]
        for i in range(max(1, runs)):
            if i:
                cams = [frames[1:] + [new()] for frames in cams]
            self.predict_cameras(cams, f"warm up {i}")
        self.reset()
        self.cache_stats = dict.fromkeys(self.cache_stats, 0)
        self.warmed_up = True
        self.warmup_seconds = time.perf_counter() - t0

    # -- input checks -------------------------------------------------------------------
    def _check_frames(self, frames: Any, name: str) -> list[np.ndarray]:
        """-> list of history_length contiguous uint8 (H, W, 3) arrays, oldest first."""
        return checks.check_frames(frames, name, self.config.history_length)

    _check_command = staticmethod(checks.check_command)
    _check_odometry = staticmethod(checks.check_odometry)

    def understood_as(self, instruction: str) -> tuple[str, float, float] | None:
        """The trained command that ``instruction`` is read as (phrase, weight, cosine similarity),
        or None when the model has no phrasebook (model.phrasebook_temperature)."""
        return self.model.understood_as(self._check_command(instruction))

    def untrained_colours(self, instruction: str) -> tuple[list[str], tuple[str, ...]]:
        """(colour words of ``instruction`` the model was not trained on and cannot read as a trained
        colour, e.g. ["orange"]; the colours it knows, e.g. ("red", "green", "blue"))."""
        return self.model.untrained_colours(self._check_command(instruction))

    # -- stages -------------------------------------------------------------------------
    def _encode_text(self, text: str) -> torch.Tensor:
        """-> (1, d). Cached per command on the fast path."""
        if self.fast and text in self._text_cache:
            self.cache_stats["text_hits"] += 1
            self._text_cache.move_to_end(text)
            return self._text_cache[text]
        self.cache_stats["text_misses"] += 1
        enc = self.model.encode_text([text])
        if self.fast:
            self._text_cache[text] = enc
            while len(self._text_cache) > self.cache_size:
                self._text_cache.popitem(last=False)
        return enc

    def _encode_frames(self, cams: list[list[np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
        """cams: C lists of T frames -> frame tokens (1, C, T, d), newest grid tokens (1, C, G, d)."""
        C, T = len(cams), len(cams[0])
        keys = [[_frame_key(c, f) for f in frames] for c, frames in enumerate(cams)] if self.fast else None
        todo = []
        for c in range(C):
            for t in range(T):
                if self.fast and keys[c][t] in self._frame_cache:
                    continue
                todo.append((c, t))
        fresh: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        if todo:
            # frames of different sizes are encoded in groups of equal shape
            by_shape: dict[tuple, list[tuple[int, int]]] = {}
            for c, t in todo:
                by_shape.setdefault(cams[c][t].shape, []).append((c, t))
            for group in by_shape.values():
                frame_tok, grid_tok = self._frame_tokens(np.stack([cams[c][t] for c, t in group]))
                for j, ct in enumerate(group):
                    fresh[ct] = (frame_tok[j], None if grid_tok is None else grid_tok[j])
        self.cache_stats["frame_misses"] += len(todo)
        self.cache_stats["frame_hits"] += C * T - len(todo)
        frame_rows, grid_rows = [], []
        for c in range(C):
            row = []
            for t in range(T):
                if (c, t) in fresh:
                    tok = fresh[(c, t)]
                    if self.fast:
                        self._frame_cache[keys[c][t]] = tok
                else:
                    tok = self._frame_cache[keys[c][t]]
                    self._frame_cache.move_to_end(keys[c][t])
                row.append(tok)
            frame_rows.append(torch.stack([r[0] for r in row]))
            grid_rows.append(row[-1][1])
        if self.fast:
            while len(self._frame_cache) > self.cache_size * C:
                self._frame_cache.popitem(last=False)
        grid = torch.stack(grid_rows)[None] if grid_rows[0] is not None else None
        return torch.stack(frame_rows)[None], grid

    def _locate(self, top: Any, cmd: torch.Tensor):
        """The newest top frames (B, H, W, 3) uint8 + encoded commands (B, d) -> the locator's Located."""
        x = self.model.preprocess(np.stack(top) if isinstance(top, list) else top)
        return self.model.locate(x.to(cmd.dtype), cmd)

    def _frame_tokens(self, images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        """images (N, H, W, 3) uint8 -> frame tokens (N, d), grid tokens (N, G, d) or None."""
        model = self.model
        if not self.cpu_graphs:
            return model.frame_tokens(model.frame_frozen(images))
        # channels-last, frozen without optimize_for_inference: 1.3x faster than oneDNN's layout
        # for EfficientNet-Lite0 at 128 px on one core (docs/results.md, "Halving the CPU latency")
        x = model.preprocess(images).contiguous(memory_format=torch.channels_last)  # (N, 3, S, S)
        if self._vision_graph is None or self._vision_versions != param_versions(self._vision_params):
            grid = bool(model.config.spatial_tokens)
            self._vision_graph = freeze_graph(
                lambda im: model.frame_tokens(model.vision.frozen(im), grid=grid)[: 1 + grid], (x,),
                owner=model, name="image encoder", optimize=False) or False  # False: refused, keep eager
            self._vision_versions = param_versions(self._vision_params)
        if self._vision_graph is False:
            return model.frame_tokens(model.vision.frozen(x))
        if 1 < x.shape[0] <= SINGLE_THREAD_MAX_BATCH and torch.get_num_threads() > 1:
            out = self._split(self._vision_graph, x)
        else:
            out = self._vision_graph(x)
        return out[0], (out[1] if len(out) > 1 else None)

    def _noise(self, batch: int) -> torch.Tensor:
        """x_T (B*K, D, T, 1) for K = num_samples. Fixed: the same K seeded draws for every row
        and call, so a robot's trajectory does not depend on which batch it was served in.
        Varied: new draws for every row from the API's generator."""
        head = self.model.action_head
        if self.noise == "varied":
            return head.initial_noise(batch * self.num_samples, self._noise_generator, self.device)
        if self.noise == "zero":
            return head.initial_noise(batch * self.num_samples, torch.Generator(), self.device).zero_()
        return head.seeded_noise(batch, self.seed, self.num_samples, self.device)


    @staticmethod
    def _average(traj: torch.Tensor, k: int) -> torch.Tensor:
        """(B*K, T, 3) samples -> (B, T, 3): mean x, y and circular mean of the heading."""
        if k == 1:
            return traj
        t = traj.view(-1, k, *traj.shape[1:])  # (B, K, T, 3)
        xy = t[..., :2].mean(1)
        heading = torch.atan2(torch.sin(t[..., 2]).mean(1), torch.cos(t[..., 2]).mean(1))
        return torch.cat([xy, heading[..., None]], dim=-1)

    def _diffuse(self, cond: torch.Tensor) -> torch.Tensor:
        """cond (B, N, d) -> trajectories (B, T, D) in robot-frame units (the mean of
        ``num_samples`` samples per row)."""
        head = self.model.action_head
        if self.fast and head.use_ddim:
            return self._diffuse_context(head.cond_proj(cond))
        k = self.num_samples
        noise = self._noise(cond.shape[0])
        if k > 1:
            cond = cond.repeat_interleave(k, dim=0)  # (B*K, N, d)
        traj = head.sample(cond, generator=torch.Generator().manual_seed(self.seed), noise=noise)
        return self._average(traj, k)

    def _diffuse_context(self, context: torch.Tensor) -> torch.Tensor:
        """The fast DDIM path from the head's projected condition (B, N, cross_attention_dim)
        -> trajectories (B, T, D) in robot-frame units."""
        head = self.model.action_head
        k = self.num_samples
        noise = self._noise(context.shape[0])
        if k > 1:
            context = context.repeat_interleave(k, dim=0)  # (B*K, N, cross_dim)
        steps = head.num_inference_steps
        sampler = self._samplers.get(steps)
        if sampler is None:
            sampler = self._samplers[steps] = DDIMSampler(head, steps, cpu_graph=self.cpu_graphs,
                                                          compile=self.compile)
        if self.device.type == "cuda":
            key = (steps, tuple(context.shape))
            graph = self._graphs.get(key)
            if graph is None:
                graph = self._graphs[key] = CudaGraphSampler(sampler, context, noise)
            x0 = graph(context, noise)
        elif self.cpu_graphs and noise.shape[0] <= SINGLE_THREAD_MAX_BATCH:
            with intra_op_threads(1):
                x0 = sampler(context, noise)
        else:
            x0 = sampler(context, noise)
        return self._average(head.normalizer.unnormalize(head.from_unet(x0)), k)

    def _condition_graph_applies(self) -> bool:
        """Whether the condition runs as one graph (the CPU fast path, DDIM, a token-fusion model)."""
        return self.cpu_graphs and self.model.fusion is not None and self.model.action_head.use_ddim

    def _condition(self, top: list[np.ndarray] | None, frame_tok: torch.Tensor, grid_tok: torch.Tensor | None,
                   cmd: torch.Tensor, odometry: np.ndarray | None) -> tuple[torch.Tensor, Located | None]:
        """Locator + token fusion + cond_proj (:mod:`vla_ros.model.fast.condition`) as one frozen
        graph per batch size -> the head's context (B, N, cross_attention_dim) and the located target."""
        model = self.model
        odom = model.odometry_features(odometry if self.config.odometry_input else None, cmd.shape[0])
        x = model.preprocess(np.stack(top)).to(cmd.dtype) if top is not None else None
        return self._condition_graph(x, frame_tok, grid_tok, cmd, odom)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # -- public API ---------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, ego_images: Any, top_images: Any, instruction: str, odometry: Any = None) -> Prediction:
        """One trajectory from the ego and top frame histories (oldest first) and a command.

        ego_images / top_images: ``history_length`` uint8 (H, W, 3) RGB frames as a list or a
        ``(T, H, W, 3)`` array; a single frame is taken as a still history.
        odometry: the robot's measured ``(v m/s, omega rad/s)`` at the newest frame, or None
        when unknown (the model was trained for both; a checkpoint without the odometry input
        ignores it).
        Returns a :class:`Prediction` whose ``trajectory`` is ``(trajectory_length, 3)``
        (x, y, heading) in the robot frame at the newest frame's time.
        """
        if len(self.config.cameras) != 2:
            raise InputError(f"this checkpoint has cameras {self.config.cameras}; use predict_cameras()")
        return self.predict_cameras([ego_images, top_images], instruction, odometry)

    @torch.inference_mode()
    def predict_cameras(self, cameras: Sequence[Any], instruction: str, odometry: Any = None) -> Prediction:
        names = self.config.cameras
        if len(cameras) != len(names):
            raise InputError(f"expected {len(names)} cameras {names}, got {len(cameras)}")
        t0 = time.perf_counter()
        cams = [self._check_frames(frames, name) for frames, name in zip(cameras, names)]
        text = self._check_command(instruction)
        odom = self._check_odometry(odometry)
        self._sync()
        t1 = time.perf_counter()
        frame_tok, grid_tok = self._encode_frames(cams)
        self._sync()
        t2 = time.perf_counter()
        cmd = self._encode_text(text)
        self._sync()
        t3 = time.perf_counter()
        newest_top = [cams[self.config.cameras.index("top")][-1]] if self.model.locator is not None else None
        if self._condition_graph_applies():
            context, located = self._condition(newest_top, frame_tok, grid_tok, cmd, odom)
            t4 = time.perf_counter()
            traj = self._diffuse_context(context)
        else:
            located = self._locate(newest_top, cmd) if newest_top is not None else None
            cond = self.model.fuse(frame_tok, grid_tok, cmd, odom, located)  # (1, N, d)
            self._sync()
            t4 = time.perf_counter()
            traj = self._diffuse(cond)
        if self._guide is not None:
            traj = self._guide.apply(traj, located, cmd, newest_top)
        traj_np = traj[0].float().cpu().numpy()
        t5 = time.perf_counter()
        ms = lambda a, b: (b - a) * 1e3  # noqa: E731
        timing = {"input_checks": ms(t0, t1), "image_encoding": ms(t1, t2), "text_encoding": ms(t2, t3),
                  "fusion": ms(t3, t4), "diffusion": ms(t4, t5), "total": ms(t0, t5)}
        return Prediction(traj_np.astype(np.float32), timing, bool(np.isfinite(traj_np).all()))

    @torch.inference_mode()
    def predict_batch(self, images: np.ndarray, instructions: Sequence[str], odometry: Any = None) -> np.ndarray:
        """Many robots at once: images (B, C, T, H, W, 3) uint8, B commands (and odometry (B, 2)
        or None) -> (B, 16, 3).

        No frame cache (each robot's frames differ); text encodings are cached.
        """
        images = np.asarray(images)
        c = self.config
        if images.dtype != np.uint8 or images.ndim != 6 or images.shape[1:3] != (len(c.cameras), c.history_length) \
                or images.shape[-1] != 3:
            raise InputError(f"images: expected uint8 (B, {len(c.cameras)}, {c.history_length}, H, W, 3), "
                             f"got {images.dtype} {images.shape}")
        if len(instructions) != images.shape[0]:
            raise InputError(f"got {images.shape[0]} observations but {len(instructions)} instructions")
        cmd = torch.cat([self._encode_text(self._check_command(t)) for t in instructions])
        B, C, T = images.shape[:3]
        odom = self._check_odometry(odometry, B)
        # located once: the condition and the guidance both use it
        located = self._locate(images[:, c.cameras.index("top"), -1], cmd) \
            if self.model.locator is not None else None
        if self.cpu_graphs:  # every frame through the frozen encoder graph, all with grid tokens
            frame_tok, grid_tok = self._frame_tokens(images.reshape(-1, *images.shape[3:]))
            frame_tok = frame_tok.view(B, C, T, -1)
            if grid_tok is not None:
                grid_tok = grid_tok.view(B, C, T, *grid_tok.shape[1:])[:, :, -1]
            cond = self.model.fuse(frame_tok, grid_tok, cmd, odom, located)
        else:
            frozen = self.model.frame_frozen(images)
            cond = self.model.condition_from_frozen_text(frozen.view(B, C, T, *frozen.shape[1:]), cmd, odom,
                                                         located=located)
        traj = self._diffuse(cond)
        if self._guide is not None:
            traj = self._guide.apply(traj, located, cmd, images[:, c.cameras.index("top"), -1])
        return traj.float().cpu().numpy()

    def benchmark(self, ego_images: Any, top_images: Any, instruction: str, num_runs: int = 10,
                  new_frame_each_run: bool = True) -> dict[str, Any]:
        """Latency of ``predict`` as a robot sees it: each run shifts in one new frame per camera.

        Returns ``mean_fps``, ``p50_ms``, ``p95_ms``, ``mean_ms`` and per-stage p50/p95.
        """
        ego = self._check_frames(ego_images, "ego_images")
        top = self._check_frames(top_images, "top_images")
        totals, stages = [], {}
        rng = np.random.default_rng(1)
        for i in range(num_runs):
            if new_frame_each_run:  # a new observation: one new frame per camera, the rest cached
                noise = rng.integers(0, 3, ego[-1].shape, dtype=np.uint8)
                ego = ego[1:] + [ego[-1] ^ noise]
                top = top[1:] + [top[-1] ^ noise[: top[-1].shape[0], : top[-1].shape[1]]]
            pred = self.predict(ego, top, instruction)
            totals.append(pred.timing["total"])
            for k, v in pred.timing.items():
                stages.setdefault(k, []).append(v)
        arr = np.array(totals)
        return {
            "num_runs": num_runs,
            "device": str(self.device),
            "fast": self.fast,
            "num_inference_steps": self.num_inference_steps,
            "num_samples": self.num_samples,
            "scheduler": "DDIM" if self.use_ddim else "DDPM",
            "mean_ms": float(arr.mean()),
            "p50_ms": float(np.percentile(arr, 50)),
            "p95_ms": float(np.percentile(arr, 95)),
            "mean_fps": float(1000.0 / arr.mean()),
            "stages": {k: {"p50_ms": float(np.percentile(v, 50)), "p95_ms": float(np.percentile(v, 95))}
                       for k, v in stages.items()},
        }
