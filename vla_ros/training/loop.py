"""``vla train``: fit SimpleVLA on simulated episodes (or episodes converted from bags).

Every step trains only what changes on top of the frame bank (:mod:`.bank`): the LoRA blocks,
the text LoRA, the fusion and the diffusion head.  AdamW, linear warm-up then cosine decay, an
exponential moving average (EMA) of the weights (evaluated and saved, :mod:`.optim`),
validation every ``val_every`` steps (denoising loss and the ADE of DDIM samples,
:mod:`.metrics`), ``best.pth`` (lowest validation ADE) and ``last.pth`` (everything needed to
resume), a loss curve PNG and a JSON log.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vla_ros.checkpoint import checkpoint_config, load_checkpoint, read_checkpoint, save_checkpoint
from vla_ros.config import ConfigError, ModelConfig, TrainConfig, to_dict
from vla_ros.data.io import read_dataset_info
from vla_ros.model.vla import SimpleVLA
from vla_ros.sim.commands import KINDS, phrasings
from vla_ros.training.bank import FrameBank, build_frame_bank
from vla_ros.training.batch import training_batch, training_phrasebook
from vla_ros.training.distributed import Distributed, init_distributed, share
from vla_ros.training.labels import refresh_labels, relabel_trajectories, require_expert_layouts
from vla_ros.training.locator import LocatorTraining, pretrain_locator
from vla_ros.training.metrics import mean_trajectory_per_kind, validate
from vla_ros.training.optim import EMA, lr_lambda, make_optimizer
from vla_ros.training.sources import DataSource, parse_data, sample_probabilities, split_samples

__all__ = ["train", "plot_curves"]


def plot_curves(history: dict[str, list], out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if history["train"]:
        s, l = zip(*history["train"])
        axes[0].plot(s, l, alpha=0.4, label="train loss")
        if len(l) >= 10:
            k = max(1, len(l) // 20)
            smooth = np.convolve(l, np.ones(k) / k, mode="valid")
            axes[0].plot(s[k - 1:], smooth, label=f"train loss (mean of {k})")
    if history["val"]:
        vs = [v["step"] for v in history["val"]]
        axes[0].plot(vs, [v["val_loss"] for v in history["val"]], "o-", label="val loss (EMA)")
        axes[1].plot(vs, [v["val_ade"] for v in history["val"]], "o-", label="val ADE (EMA, DDIM)")
        axes[1].plot(vs, [v["val_fde"] for v in history["val"]], "s--", label="val FDE")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("loss (val: denoising MSE alone)")
    axes[0].set_yscale("log")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("metres")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("vla train")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


@dataclass(frozen=True)
class _Added:
    """Inputs that ``--init`` just added to a trained model: they start from scratch."""

    odometry: bool = False
    locator: bool = False


def _resume_state(resume: str | Path | None, model_cfg: ModelConfig) -> tuple[dict | None, ModelConfig]:
    """(the training state of ``resume``'s last.pth, the run's own config); (None, ``model_cfg``) without it."""
    if not resume:
        return None, model_cfg
    payload = read_checkpoint(resume)
    state = payload.get("train_state")
    if not state:
        raise ValueError(f"{resume} holds no training state (only last.pth does); cannot resume from it")
    return state, checkpoint_config(payload, resume)  # the run's own config, never flags


def _fine_tune_model(model_cfg: ModelConfig, init: str | Path, data_dir: Any, dev: torch.device,
                     main: bool) -> tuple[SimpleVLA, _Added]:
    """The ``init`` checkpoint's own model and config, never flags, except that a model may gain
    the odometry input or the target locator (zero-initialised, so it starts out predicting
    exactly as the checkpoint did) and may drop its text encoder's LoRA for the pretrained
    encoder (its projection refitted so that the training phrasings encode as before)."""
    model, _ = load_checkpoint(init, device=dev)
    added_odometry = added_locator = False
    if model_cfg.odometry_input and not model.config.odometry_input:
        model.add_odometry_input()
        added_odometry = True
    if model_cfg.target_locator and not model.config.target_locator:
        model.add_target_locator()
        added_locator = True
    if not model_cfg.text_lora and model.has_text_lora:
        split = str(read_dataset_info(parse_data(data_dir)[0].path).get("split") or "train")
        refit = model.freeze_text_encoder([p for k in KINDS for p in phrasings(k, split)])
        if main:
            print(f"text encoder: LoRA dropped for the pretrained MiniLM; projection refitted on the "
                  f"{split} phrasings (relative error {refit['fit_rel_error']:.4f})")
    return model, _Added(added_odometry, added_locator)


@dataclass
class _Data:
    """The run's frame bank and its split: what training draws from and what validation scores."""

    bank: FrameBank
    train_idx: np.ndarray
    val_idx: np.ndarray
    n_val_ep: int
    draw_p: np.ndarray | None  # per training sample (None: alike)
    val_texts: list[str]  # per sample: the episode's own command (validation samples only)
    relabels: torch.Tensor | None  # (N, K, 16, 3) with train.relabel_prob


def _prepare_data(model: SimpleVLA, sources: list[DataSource], cfg: TrainConfig, out: Path, dd: Distributed,
                  progress: bool, every_frame: bool, locator: LocatorTraining) -> _Data:
    """Encode the frames, split the samples and refresh stale labels as ``cfg`` asks (the relabels
    follow once the baselines are taken, :func:`_relabels`). Process 0 fills the caches under
    ``out/cache``, the others read them."""
    require_expert_layouts(sources, cfg)
    with dd.main_first():
        bank = build_frame_bank(model, sources, cache_dir=out / "cache", progress=progress, every_frame=every_frame,
                                locator_labels=locator.needs_labels)
    train_idx, val_idx, n_val_ep = split_samples(bank, len(sources), cfg.val_fraction)
    draw_p = sample_probabilities(bank, train_idx, sources)
    rng_val = np.random.default_rng(0)
    val_idx = np.sort(rng_val.choice(val_idx, min(len(val_idx), cfg.val_batches * cfg.batch_size), replace=False))
    val_texts = {i: bank.texts[bank.samples[i, 0]] for i in val_idx}
    val_text_list = [val_texts.get(i, "") for i in range(len(bank.samples))] if len(val_idx) else []
    if cfg.refresh_labels:
        with dd.main_first():
            changed = refresh_labels(bank, tuple(cfg.refresh_labels), cache_dir=out / "cache", progress=progress)
        if dd.main:
            print(f"labels of {', '.join(cfg.refresh_labels)} episodes recomputed by the current expert: "
                  f"{changed} changed")
    return _Data(bank, train_idx, val_idx, n_val_ep, draw_p, val_text_list, None)


def _relabels(bank: FrameBank, cfg: TrainConfig, out: Path, dd: Distributed, progress: bool) -> torch.Tensor | None:
    """Every sample's expert plan for each of ``cfg.relabel_kinds`` (None without relabelling)."""
    if cfg.relabel_prob <= 0:
        return None
    with dd.main_first():
        return relabel_trajectories(bank, tuple(cfg.relabel_kinds), cache_dir=out / "cache", progress=progress)


@dataclass
class _Run:
    """What a training run changes as it goes (and ``last.pth`` keeps to resume): the model, its
    optimiser, schedule and EMA, the step, the best validation ADE and the history."""

    model: SimpleVLA
    cfg: TrainConfig
    out: Path
    params: list[torch.nn.Parameter]
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    ema: EMA
    odom_scale: float
    loc_scale: float
    rng: np.random.Generator
    meta_base: dict  # the run's description in every checkpoint (_meta_base)
    history: dict[str, list] = field(default_factory=lambda: {"train": [], "val": []})
    step: int = 0
    best_ade: float = float("inf")

    @classmethod
    def start(cls, model: SimpleVLA, cfg: TrainConfig, out: Path, state: dict | None, added: _Added,
              dev: torch.device, meta_base: dict) -> _Run:
        """A fresh optimiser, schedule and EMA over the trainable parameters, or ``state``'s (resume).
        A just-added odometry layer or locator learns at 10 times the rate (kept on resume)."""
        params = [p for p in model.parameters() if p.requires_grad]
        odom_scale = float(state.get("odometry_lr_scale", 1.0)) if state else (10.0 if added.odometry else 1.0)
        loc_scale = float(state.get("locator_lr_scale", 1.0)) if state else (10.0 if added.locator else 1.0)
        opt = make_optimizer(model, params, cfg, odom_scale, loc_scale)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
        ema = EMA(model, cfg.ema_decay)  # after the locator's pre-training: the EMA starts from it
        run = cls(model, cfg, out, params, opt, sched, ema, odom_scale, loc_scale, np.random.default_rng(cfg.seed),
                  meta_base)
        if state:
            run.load_state(state, dev)
        return run

    def load_state(self, state: dict, dev: torch.device) -> None:
        self.model.load_state_dict({k: v.to(dev) for k, v in state["raw_weights"].items()}, strict=False)
        self.ema.shadow = {k: v.to(dev) for k, v in state["ema"].items()}
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.step, self.best_ade = int(state["step"]), float(state["best_ade"])
        self.history = {"train": [tuple(x) for x in state["history"]["train"]], "val": list(state["history"]["val"])}
        self.rng = np.random.default_rng([self.cfg.seed, self.step])

    def train_state(self, raw: dict[str, torch.Tensor]) -> dict[str, Any]:
        """What ``last.pth`` keeps to resume, with the raw (not EMA) trainable weights ``raw``."""
        return {"step": self.step, "best_ade": self.best_ade, "raw_weights": raw, "odometry_lr_scale": self.odom_scale,
                "locator_lr_scale": self.loc_scale,
                "ema": {k: v.cpu() for k, v in self.ema.shadow.items()}, "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(),
                "history": {"train": [list(x) for x in self.history["train"]], "val": self.history["val"]}}

    def validate(self, data: _Data, dev: torch.device) -> dict[str, float]:
        """Validation figures of the EMA weights."""
        self.ema.swap(self.model)
        metrics = validate(self.model, data.bank, data.val_idx, self.cfg, dev, data.val_texts)
        self.ema.swap(self.model)
        return metrics

    def save(self, metrics: dict[str, float] | None) -> None:
        """best.pth (on a new lowest validation ADE) and last.pth with the EMA weights, the curve and the log."""
        model, ema, out = self.model, self.ema, self.out
        raw = {k: v.detach().cpu().clone() for k, v in model.trainable_state_dict().items()}
        ema.swap(model)  # checkpoints hold the EMA weights
        meta = {**self.meta_base, "step": self.step, "metrics": metrics or {}, "history_tail": self.history["val"][-5:]}
        if metrics and metrics["val_ade"] < self.best_ade:
            self.best_ade = metrics["val_ade"]
            save_checkpoint(model, out / "best.pth", meta=meta)
        ema.swap(model)
        train_state = self.train_state(raw)
        ema.swap(model)
        save_checkpoint(model, out / "last.pth", meta=meta, extra={"train_state": train_state})
        ema.swap(model)
        plot_curves(self.history, out / "loss_curve.png")
        (out / "train_log.json").write_text(json.dumps(
            {"step": self.step, "best_val_ade": self.best_ade,
             "history": {"train": self.history["train"], "val": self.history["val"]},
             "model_config": to_dict(model.config), "train_config": to_dict(self.cfg)}, indent=1))


def _meta_base(sources: list[DataSource], init: str | Path | None, cfg: TrainConfig, data: _Data) -> dict[str, Any]:
    """The run's description stored in every checkpoint's meta (with the command-only baseline)."""
    return {"data": ",".join(f"{s.path}:{s.weight:g}" if s.weight else str(s.path) for s in sources),
            "init": str(init) if init else None,
            "train_config": to_dict(cfg), "baselines": {"mean_per_kind": mean_trajectory_per_kind(data.bank)},
            "dataset": {"episodes": len(data.bank.files), "samples": len(data.bank.samples),
                        "val_episodes": data.n_val_ep},
            "world_config": read_dataset_info(sources[0].path).get("config")}


def _prepare_run(cfg: TrainConfig, dd: Distributed, out_dir: str | Path, device: str) -> tuple[Path, torch.device]:
    """Check the batch and the device, make the run directory and seed torch."""
    if cfg.batch_size % dd.world:
        raise ConfigError(f"train.batch_size={cfg.batch_size} (the global batch) must be divisible by the "
                          f"{dd.world} processes")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but CUDA is not available here; use --device cpu")
    torch.manual_seed(cfg.seed)
    return out, dev


def _train_steps(run: _Run, data: _Data, dd: Distributed, locator: LocatorTraining, dev: torch.device,
                 progress: bool, max_minutes: float | None) -> tuple[dict[str, float] | None, float]:
    """The training loop, from ``run.step`` to ``train.steps`` or ``max_minutes``; process 0
    validates and saves every ``val_every`` steps and at the end. -> (last metrics, start time)."""
    cfg, model = run.cfg, run.model
    loss_fn = dd.loss_fn(model, dev)  # DDP after the locator's pre-training and the resume: all start equal
    if run.step == 0 and dd.main:  # the untrained model's validation figures start the curve
        run.history["val"].append({"step": 0, **run.validate(data, dev)})
    model.train()
    t_start = time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=run.step, desc="training", unit="step", disable=not progress)
    metrics = None
    while run.step < cfg.steps:
        sel = run.rng.choice(data.train_idx, cfg.batch_size, replace=len(data.train_idx) < cfg.batch_size,
                             p=data.draw_p)
        batch = training_batch(model, data.bank, sel, cfg, run.rng, data.relabels, locator.joint, dev)
        loss = loss_fn(**share(batch, dd.part(len(sel))))
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.params, cfg.grad_clip)
        run.opt.step()
        run.sched.step()
        run.ema.update(model, run.step)
        run.step += 1
        step = run.step
        out_of_time = max_minutes is not None and (time.perf_counter() - t_start) / 60 > max_minutes
        loss_value, out_of_time = dd.step_figures(float(loss.item()), out_of_time)  # the same on every process
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"training diverged at step {step} (loss {loss_value}); lower train.lr")
        if step % cfg.log_every == 0 or step == 1:
            run.history["train"].append((step, loss_value))
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{run.sched.get_last_lr()[0]:.1e}",
                            best_ade=f"{run.best_ade:.3f}")
        bar.update(1)
        if dd.main and (step % cfg.val_every == 0 or step == cfg.steps or out_of_time):
            metrics = run.validate(data, dev)
            run.history["val"].append({"step": step, **metrics})
            bar.write(f"step {step}: val loss {metrics['val_loss']:.4f}  ADE {metrics['val_ade']:.3f} m  "
                      f"FDE {metrics['val_fde']:.3f} m")
            run.save(metrics)
        if out_of_time:
            if dd.main:
                bar.write(f"stopping after {max_minutes} minutes at step {step} (resume with --resume)")
            break
    bar.close()
    return metrics, t_start


def train(model_cfg: ModelConfig, train_cfg: TrainConfig, data_dir: str | Path, out_dir: str | Path,
          device: str = "cpu", resume: str | Path | None = None, progress: bool = True,
          max_minutes: float | None = None, every_frame: bool = True,
          init: str | Path | None = None) -> dict[str, Any]:
    """Train and return a summary; writes best.pth, last.pth, curve PNG and log JSON to ``out_dir``.

    ``data_dir``: one dataset directory, or several with the share of each batch drawn from each
    (:func:`parse_data`: ``sim,bags`` or ``sim:0.5,bags:0.5``), simulated or converted from bags.

    ``init``: fine-tune a checkpoint: its config, weights and normaliser (kept, so the outputs
    keep their meaning), with a fresh optimiser and schedule. ``resume`` wins over ``init``.

    Under ``torchrun --nproc_per_node N`` the processes share each batch of ``batch_size``
    (:mod:`vla_ros.training.distributed`); process 0 validates, saves and reports.
    """
    dd, device = init_distributed(device)
    progress = progress and dd.main
    out, dev = _prepare_run(train_cfg, dd, out_dir, device)
    state, model_cfg = _resume_state(resume, model_cfg)
    fine_tune = bool(init) and not state
    if fine_tune:
        model, added = _fine_tune_model(model_cfg, init, data_dir, dev, dd.main)
    else:
        model, added = SimpleVLA(model_cfg).to(dev), _Added()
    if model.scene_map is not None:  # trained alone, on layouts (vla scene-map); kept as it is here
        model.scene_map.requires_grad_(False)
    sources = parse_data(data_dir)
    locator = LocatorTraining.plan(model, train_cfg, bool(state), fine_tune, added.locator)
    data = _prepare_data(model, sources, train_cfg, out, dd, progress, every_frame, locator)
    model.set_phrasebook([*model.phrasebook, *training_phrasebook(data.bank)])  # a fine-tuned model keeps its own
    if not fine_tune:  # normalise with the training trajectories (stored); fine-tuning keeps the checkpoint's
        model.action_head.normalizer.fit(data.bank.traj[torch.from_numpy(data.bank.sample_rows(data.train_idx))].to(dev))
    meta_base = _meta_base(sources, init if fine_tune else None, train_cfg, data)
    data.relabels = _relabels(data.bank, train_cfg, out, dd, progress)
    if locator.pretrain:
        pretrain_locator(model, data.bank, data.train_idx, train_cfg, dev, progress)
    if model.locator is not None and not locator.joint:
        # token fusion: the pre-trained locator and command projection stay as they are
        for m in (model.locator, model.txt_proj):
            m.requires_grad_(False)
    run = _Run.start(model, train_cfg, out, state, added, dev, meta_base)
    metrics, t_start = _train_steps(run, data, dd, locator, dev, progress, max_minutes)
    dd.finish()
    return {"step": run.step, "best_val_ade": run.best_ade, "out": str(out),
            "minutes": (time.perf_counter() - t_start) / 60, "last_metrics": metrics}
