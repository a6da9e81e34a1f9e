"""``vla train``: fit SimpleVLA on simulated episodes.

The pretrained part of the vision encoder before its LoRA blocks is a fixed function of each
frame, so its features are computed once per dataset frame (cached next to the run) and every
step trains only what changes: the LoRA blocks, the text LoRA, the fusion and the diffusion
head.  AdamW, linear warm-up then cosine decay, an exponential moving average (EMA) of the
weights (evaluated and saved), validation every ``val_every`` steps (denoising loss and the
ADE of DDIM samples), ``best.pth`` (lowest validation ADE) and ``last.pth`` (everything needed
to resume), a loss curve PNG and a JSON log.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from vla_ros.checkpoint import checkpoint_config, load_checkpoint, read_checkpoint, save_checkpoint
from vla_ros.config import ModelConfig, TrainConfig, to_dict
from vla_ros.data.io import list_episodes, load_episode, load_meta, read_dataset_info
from vla_ros.model.vla import SimpleVLA
from vla_ros.sim.commands import KINDS, phrasings
from vla_ros.sim.layout import TARGET_COLOURS, Layout


@dataclass
class FrameBank:
    """Frozen features of every frame and the samples over them."""

    feats: torch.Tensor  # (E, C, F, ...) float16 frozen features per episode, camera, encoded frame
    traj: torch.Tensor  # (E, T, 16, 3) expert trajectories
    states: np.ndarray  # (E, T, 5) world-frame [x, y, yaw, v, omega]
    kinds: list[str]  # per episode
    texts: list[str]  # per episode: the episode's own command
    samples: np.ndarray  # (S, 2) int: (episode, t) with a full history
    stride: int
    history: int
    frame_slot: np.ndarray | None = None  # (T,) step -> index into feats' frame axis (-1: not encoded)
    # a model with the target locator: the top camera's frames and the keypoint labels
    top: torch.Tensor | None = None  # (E, T, H, W, 3) uint8
    robot_xy: torch.Tensor | None = None  # (E, T, 2) robot centre, top-camera coordinates (locator.py)
    heading: torch.Tensor | None = None  # (E, T, 2) unit vector the robot faces
    cones: dict[str, torch.Tensor] | None = None  # colour -> (E, 2) that cone, top-camera coordinates

    def history_index(self, t: np.ndarray) -> np.ndarray:
        """(S,) newest steps -> (S, L) steps oldest first."""
        offs = np.arange(-(self.history - 1), 1) * self.stride
        return t[:, None] + offs[None]

    def slots(self, steps: np.ndarray) -> np.ndarray:
        """Steps -> positions in ``feats``' frame axis."""
        return steps if self.frame_slot is None else self.frame_slot[steps]


def _hash_files(h: Any, files: list[Path]) -> None:
    """Add each file's name, size and modification time to ``h`` (a cache entry's source files)."""
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())


def _feature_cache_key(model: SimpleVLA, files: list[Path]) -> str:
    h = hashlib.sha1()
    cfg = model.config
    h.update(json.dumps([cfg.backbone, cfg.image_size, cfg.vision_lora_blocks, cfg.hf_vision_path,
                         cfg.pretrained, list(cfg.cameras)]).encode())
    _hash_files(h, files)
    return h.hexdigest()[:16]


@torch.no_grad()
def build_frame_bank(model: SimpleVLA, data_dir: str | Path, cache_dir: str | Path | None = None,
                     progress: bool = True, batch: int = 128, every_frame: bool = True) -> FrameBank:
    """Encode the dataset's frames once with the frozen backbone.

    ``every_frame=False`` keeps only the steps that share the newest step's phase modulo the
    history stride (a sample's history frames are ``stride`` steps apart): half the frames and
    half the samples for stride 2, and the neighbouring samples dropped are near-duplicates.
    """
    files = list_episodes(data_dir)
    info = read_dataset_info(data_dir)
    world = info.get("config") or {}
    stride = int(world.get("history_stride", 2))
    history = model.config.history_length
    if int(world.get("horizon", model.config.trajectory_length)) != model.config.trajectory_length:
        raise ValueError(f"{data_dir}: trajectories have {world.get('horizon')} waypoints, the model "
                         f"predicts {model.config.trajectory_length}")
    # frozen features are cached per episode file, so an interrupted run keeps what it encoded
    cache = Path(cache_dir) / f"frozen_{_feature_cache_key(model, [])}" if cache_dir is not None else None
    kinds, texts, trajs, states, per_ep = [], [], [], [], []
    locate = getattr(model, "locator", None) is not None
    tops, cones = [], []
    half = float(world.get("arena_size", 12.0)) / 2  # the top camera spans the arena (sim/render.py)
    for f in tqdm(files, desc="encoding frames (frozen backbone)", unit="ep", disable=not progress):
        arrays, meta = load_episode(f, mmap=True)
        kinds.append(meta["kind"])
        texts.append(meta["command"])
        trajs.append(torch.from_numpy(np.array(arrays["traj"], dtype=np.float32)))
        states.append(np.array(arrays["state"], dtype=np.float64))
        n_steps = len(arrays["traj"])
        if locate:
            tops.append(torch.from_numpy(np.array(arrays["top"])))
            layout = Layout.from_dict(meta["layout"])
            cones.append({c: [layout.cone(c).x / half, layout.cone(c).y / half] for c in TARGET_COLOURS})
        keep = np.arange(n_steps) if every_frame else np.arange((n_steps - 1) % stride, n_steps, stride)
        tag = "" if every_frame else f"_s{stride}"
        entry = cache / f"{f.stem}{tag}_{_feature_cache_key(model, [f])}.pt" if cache is not None else None
        if entry is not None and entry.exists():
            per_ep.append(torch.load(entry, weights_only=True))
            continue
        cams = []
        for cam in model.config.cameras:
            frames = np.asarray(arrays[cam])[keep]
            out = [model.frame_frozen(frames[i:i + batch]).half().cpu() for i in range(0, len(frames), batch)]
            cams.append(torch.cat(out))
        per_ep.append(torch.stack(cams))  # (C, T, ...)
        if entry is not None:
            entry.parent.mkdir(parents=True, exist_ok=True)
            torch.save(per_ep[-1], entry)
    lengths = {p.shape[1] for p in per_ep}
    if len(lengths) != 1:
        raise ValueError(f"{data_dir}: episodes have different lengths {sorted(lengths)}")
    feats = torch.stack(per_ep)
    traj = torch.stack(trajs)
    T = traj.shape[1]
    first = (history - 1) * stride
    slot = None
    if not every_frame:
        slot = np.full(T, -1, dtype=np.int64)
        slot[keep] = np.arange(len(keep))
    steps = [t for t in range(first, T) if slot is None or slot[t] >= 0]
    samples = np.array([(e, t) for e in range(len(files)) for t in steps], dtype=np.int64)
    bank = FrameBank(feats, traj, np.stack(states), kinds, texts, samples, stride, history, slot)
    if locate:
        st = torch.from_numpy(bank.states).float()
        bank.top = torch.stack(tops)
        bank.robot_xy = st[..., :2] / half
        bank.heading = torch.stack([st[..., 2].cos(), st[..., 2].sin()], -1)
        bank.cones = {c: torch.tensor([ep[c] for ep in cones]) for c in TARGET_COLOURS}
    return bank


def _expert_version() -> str:
    """Hash of the expert's source: labels computed by another version of it are not reused."""
    from vla_ros.sim import expert

    return hashlib.sha1(Path(expert.__file__).read_bytes()).hexdigest()[:12]


def _expert_labels(bank: FrameBank, files: list[Path], episodes: list[int], kinds_of: Callable[[int], Sequence[str]],
                   cache: Path | None, desc: str, progress: bool) -> dict[tuple[int, str], torch.Tensor]:
    """``{(episode, kind): (steps, 16, 3)}``: the current expert's plan for each of ``kinds_of(e)``
    from the recorded state of every sample step of episode ``e``; cached per episode file, kind
    and expert version."""
    from vla_ros.sim.config import WorldConfig
    from vla_ros.sim.expert import expert_trajectory

    steps = np.unique(bank.samples[:, 1])
    version = _expert_version()
    out = {}
    for e in tqdm(episodes, desc=desc, unit="ep", disable=not progress):
        f = files[e]
        h = hashlib.sha1()
        _hash_files(h, [f])
        h.update(str(steps.tolist()).encode())
        h.update(version.encode())
        key = h.hexdigest()[:16]
        meta = None
        for kind in kinds_of(e):
            entry = cache / f"{f.stem}_{kind}_{key}.npy" if cache is not None else None
            if entry is not None and entry.exists():
                out[e, kind] = torch.from_numpy(np.load(entry))
                continue
            if meta is None:
                meta = load_meta(f)
                config, layout = WorldConfig.from_dict(meta["config"]), Layout.from_dict(meta["layout"])
            labels = np.stack([expert_trajectory(kind, bank.states[e, t], layout, config)
                               for t in steps]).astype(np.float32)  # (steps, 16, 3)
            out[e, kind] = torch.from_numpy(labels)
            if entry is not None:
                entry.parent.mkdir(parents=True, exist_ok=True)
                np.save(entry, labels)
    return out


def _episode_files(bank: FrameBank, data_dir: str | Path) -> list[Path]:
    files = list_episodes(data_dir)
    if len(files) != bank.traj.shape[0]:
        raise ValueError(f"{data_dir}: {len(files)} episodes, but the frame bank holds {bank.traj.shape[0]}")
    return files


def relabel_trajectories(bank: FrameBank, data_dir: str | Path, kinds: tuple[str, ...] = KINDS,
                         cache_dir: str | Path | None = None, progress: bool = True) -> torch.Tensor:
    """(E, T, K, 16, 3): the expert's trajectory for each of ``kinds`` (K of them, in that order)
    from the recorded state of every sample step (zeros at steps that are not samples).

    Every episode file keeps its world config, layout and states, so the expert can answer any
    command from any state it recorded; for the episode's own kind this is its stored label
    (unless the expert changed since). Cached per episode file and kind next to the frozen features.
    """
    files = _episode_files(bank, data_dir)
    E, T = bank.traj.shape[:2]
    steps = np.unique(bank.samples[:, 1])
    out = torch.zeros(E, T, len(kinds), *bank.traj.shape[2:])
    cache = Path(cache_dir) / "relabel" if cache_dir is not None else None
    labels = _expert_labels(bank, files, list(range(E)), lambda e: kinds, cache,
                            "labelling every state for every command", progress)
    for (e, kind), lab in labels.items():
        out[e, steps, kinds.index(kind)] = lab
    return out


def refresh_labels(bank: FrameBank, data_dir: str | Path, kinds: tuple[str, ...],
                   cache_dir: str | Path | None = None, progress: bool = True) -> int:
    """Replace the recorded label of every sample of an episode of ``kinds`` with the current
    expert's plan from the same recorded state (data recorded before the expert changed, e.g.
    goto episodes from before it drove around obstacles). Returns how many labels changed."""
    files = _episode_files(bank, data_dir)
    steps = np.unique(bank.samples[:, 1])
    episodes = [e for e, k in enumerate(bank.kinds) if k in kinds]
    cache = Path(cache_dir) / "relabel" if cache_dir is not None else None
    labels = _expert_labels(bank, files, episodes, lambda e: (bank.kinds[e],), cache,
                            "labels from the current expert", progress)
    changed = 0
    for (e, _), lab in labels.items():
        changed += int(((bank.traj[e, steps] - lab).abs().amax(dim=(-1, -2)) > 1e-4).sum())
        bank.traj[e, steps] = lab
    return changed


def validation_episodes(files: list[Path], n: int) -> set[int]:
    """Indices of the ``n`` validation episodes among ``files``: those whose file name hashes
    lowest. Appending episodes (a DAgger round joined to the data so far) keeps most of the
    earlier choice and draws from every source in proportion; taking the last ``n`` files would
    hold out mostly the newest round, the data the round was run for."""
    order = sorted(range(len(files)), key=lambda e: hashlib.sha1(files[e].name.encode()).hexdigest())
    return set(order[:n])


def gather(bank: FrameBank, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples ``idx`` -> frozen (B, C, L, ...) float32 and trajectories (B, 16, 3)."""
    ep, t = bank.samples[idx, 0], bank.samples[idx, 1]
    steps = bank.history_index(t)  # (B, L)
    e = torch.from_numpy(ep)
    frozen = bank.feats[e[:, None], :, torch.from_numpy(bank.slots(steps))]  # (B, L, C, ...)
    frozen = frozen.transpose(1, 2).float().to(device)
    traj = bank.traj[e, torch.from_numpy(t)].to(device)
    return frozen, traj


def gather_top(model: SimpleVLA, bank: FrameBank, idx: np.ndarray) -> torch.Tensor | None:
    """Samples ``idx`` -> their newest top-camera frames (B, 3, S, S) for the locator (None without one)."""
    if model.locator is None:
        return None
    if bank.top is None:
        raise ValueError("the frame bank holds no top-camera frames; build it with the locator model")
    ep, t = torch.from_numpy(bank.samples[idx, 0]), torch.from_numpy(bank.samples[idx, 1])
    return model.preprocess(bank.top[ep, t])


def gather_keypoints(bank: FrameBank, idx: np.ndarray, kinds: list[str],
                     device: torch.device) -> dict[str, torch.Tensor]:
    """The locator's labels of samples ``idx`` answering commands of ``kinds``: robot, heading,
    and the cone a goto command names (target_mask 0 for the other commands)."""
    ep, t = torch.from_numpy(bank.samples[idx, 0]), torch.from_numpy(bank.samples[idx, 1])
    target = torch.zeros(len(idx), 2)
    mask = torch.zeros(len(idx))
    for j, kind in enumerate(kinds):
        if kind.startswith("goto_"):
            target[j] = bank.cones[kind[5:]][ep[j]]
            mask[j] = 1.0
    return {"robot": bank.robot_xy[ep, t].to(device), "heading": bank.heading[ep, t].to(device),
            "target": target.to(device), "target_mask": mask.to(device)}


def gather_odometry(bank: FrameBank, idx: np.ndarray) -> np.ndarray:
    """Samples ``idx`` -> (B, 2) float32 measured (v, omega) at each sample's newest frame."""
    ep, t = bank.samples[idx, 0], bank.samples[idx, 1]
    return np.ascontiguousarray(bank.states[ep, t, 3:5], dtype=np.float32)


def mean_trajectory_per_kind(bank: FrameBank) -> dict[str, list]:
    """The command-only baseline: the mean expert trajectory of each command kind."""
    out = {}
    for kind in KINDS:
        rows = [i for i, (e, _) in enumerate(bank.samples) if bank.kinds[e] == kind]
        if rows:
            e, t = bank.samples[rows, 0], bank.samples[rows, 1]
            out[kind] = bank.traj[torch.from_numpy(e), torch.from_numpy(t)].mean(0).tolist()
    return out


def ade_fde(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pred, gt (N, T, >=2) -> per-sample ADE and FDE (metres, x/y only)."""
    d = np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1)
    return d.mean(-1), d[:, -1]


class EMA:
    """Exponential moving average of the trainable parameters."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))  # warm-up: follow closely at the start
        for n, p in model.named_parameters():
            if n in self.shadow:
                self.shadow[n].mul_(d).add_(p.detach(), alpha=1 - d)

    @torch.no_grad()
    def swap(self, model: torch.nn.Module) -> None:
        """Exchange the model's weights with the EMA weights (call twice to undo)."""
        for n, p in model.named_parameters():
            if n in self.shadow:
                tmp = p.detach().clone()
                p.copy_(self.shadow[n])
                self.shadow[n].copy_(tmp)


def _lr_lambda(cfg: TrainConfig):
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / max(1, cfg.warmup_steps)
        p = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))

    return f


@torch.no_grad()
def validate(model: SimpleVLA, bank: FrameBank, idx: np.ndarray, cfg: TrainConfig, device: torch.device,
             texts: list[str]) -> dict[str, float]:
    model.eval()
    g = torch.Generator().manual_seed(1234)
    losses, goals, ades, fdes, located = [], [], [], [], []
    for b in range(0, len(idx), cfg.batch_size):
        sel = idx[b:b + cfg.batch_size]
        frozen, traj = gather(bank, sel, device)
        cmds = [texts[i] for i in sel]
        odom = gather_odometry(bank, sel)
        top = gather_top(model, bank, sel)
        terms = model.loss_terms(frozen, cmds, traj, generator=g, odometry=odom, top=top)
        losses.append(float(terms["denoise"]))
        if "goal" in terms:
            goals.append(float(terms["goal"]))
        cmd = model.encode_text(cmds)
        loc = model.locate(top, cmd)
        pred = model.action_head.sample(model.condition_from_frozen_text(frozen, cmd, odom, located=loc),
                                        generator=torch.Generator().manual_seed(0))
        if loc is not None:
            located.append((loc, gather_keypoints(bank, sel, [bank.kinds[e] for e in bank.samples[sel, 0]], device)))
        a, f = ade_fde(pred.cpu().numpy(), traj.cpu().numpy())
        ades.append(a)
        fdes.append(f)
    model.train()
    out = {"val_loss": float(np.mean(losses)), "val_ade": float(np.concatenate(ades).mean()),
           "val_fde": float(np.concatenate(fdes).mean())}
    if goals:  # token fusion's goal estimate (weighted MSE, normalised units); val_loss is the head's alone
        out["val_goal_loss"] = float(np.mean(goals))
    if located:  # the locator's errors (top-camera units: half the image side)
        err_t = torch.cat([(loc.target - kp["target"]).norm(dim=-1)[kp["target_mask"] > 0] for loc, kp in located])
        err_r = torch.cat([(loc.robot - kp["robot"]).norm(dim=-1) for loc, kp in located])
        cos = torch.cat([(loc.heading * kp["heading"]).sum(-1) for loc, kp in located]).clamp(-1, 1)
        if len(err_t):
            out["val_target_err"] = float(err_t.median())
        out["val_robot_err"] = float(err_r.median())
        out["val_heading_err_deg"] = float(torch.rad2deg(torch.acos(cos)).median())
    return out


def pretrain_locator(model: SimpleVLA, bank: FrameBank, train_idx: np.ndarray, cfg: TrainConfig,
                     device: torch.device, progress: bool = True) -> dict[str, float]:
    """Train the target locator alone on its keypoint labels (``cfg.locator_pretrain_steps``).

    Every layout has a cone of each colour, so each sample is asked for a random one ("go to
    the green cone" from a forward episode's frame as well): three times the target labels of
    the goto episodes. The command encodings are fixed here (no gradient into the text layers).
    Returns the last batch's losses.
    """
    from vla_ros.model.locator import locator_loss

    rng = np.random.default_rng([cfg.seed, 7])
    # a token-fusion model learns its command projection here too; both are then frozen (locator_frozen)
    learn_text = model.fusion is not None
    params = list(model.locator.parameters()) + (list(model.txt_proj.parameters()) if learn_text else [])
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=cfg.locator_pretrain_lr)
    bar = tqdm(range(cfg.locator_pretrain_steps), desc="pre-training the target locator", unit="step",
               disable=not progress)
    model.train()
    last: dict[str, float] = {}
    for i in bar:
        sel = rng.choice(train_idx, cfg.batch_size, replace=len(train_idx) < cfg.batch_size)
        kinds = [f"goto_{TARGET_COLOURS[c]}" for c in rng.integers(len(TARGET_COLOURS), size=len(sel))]
        with torch.set_grad_enabled(learn_text):
            cmd = model.encode_text([str(rng.choice(phrasings(k, "train"))) for k in kinds])
        kp = gather_keypoints(bank, sel, kinds, device)
        located = model.locator(gather_top(model, bank, sel), cmd)
        loss = locator_loss(located, **kp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i % 25 == 0 or i == len(bar) - 1:
            with torch.no_grad():
                last = {"loss": float(loss), "target_err": float((located.target - kp["target"]).norm(dim=-1).median()),
                        "robot_err": float((located.robot - kp["robot"]).norm(dim=-1).median())}
            bar.set_postfix(last)
    bar.close()
    return last


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


def _optimizer(model: SimpleVLA, params: list[torch.nn.Parameter], cfg: TrainConfig,
               odom_scale: float, loc_scale: float) -> torch.optim.AdamW:
    """AdamW over ``params``; the odometry layer and the target locator have parameter groups of
    their own: when one was just added to a trained model it starts from scratch and learns at
    ``*_scale`` times the rate (kept on resume)."""
    odom_ids = {id(p) for p in model.odom_proj.parameters()} if model.odom_proj is not None else set()
    loc_ids = {id(p) for m in (model.locator, model.target_proj) if m is not None for p in m.parameters()}
    groups = [{"params": [p for p in params if id(p) not in odom_ids | loc_ids]}]
    for ids, scale in ((odom_ids, odom_scale), (loc_ids, loc_scale)):
        own = [p for p in params if id(p) in ids]
        if own:
            groups.append({"params": own, "lr": cfg.lr * scale})
    # fused: one kernel over all tensors (CPU and CUDA); per-tensor loops cost ~0.1 s a step here
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def train(model_cfg: ModelConfig, train_cfg: TrainConfig, data_dir: str | Path, out_dir: str | Path,
          device: str = "cpu", resume: str | Path | None = None, progress: bool = True,
          max_minutes: float | None = None, every_frame: bool = True,
          init: str | Path | None = None) -> dict[str, Any]:
    """Train and return a summary; writes best.pth, last.pth, curve PNG and log JSON to ``out_dir``.

    ``init``: fine-tune a checkpoint: its config, weights and normaliser (kept, so the outputs
    keep their meaning), with a fresh optimiser and schedule. ``resume`` wins over ``init``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but CUDA is not available here; use --device cpu")
    torch.manual_seed(train_cfg.seed)
    state = None
    if resume:
        payload = read_checkpoint(resume)
        state = payload.get("train_state")
        if not state:
            raise ValueError(f"{resume} holds no training state (only last.pth does); cannot resume from it")
        model_cfg = checkpoint_config(payload, resume)  # the run's own config, never flags
    fine_tune = bool(init) and not state
    added_odometry = added_locator = False
    if fine_tune:  # the checkpoint's own model and config, never flags ...
        model, _ = load_checkpoint(init, device=dev)
        if model_cfg.odometry_input and not model.config.odometry_input:
            # ... except that a model without the odometry input may gain it (zero-initialised,
            # so it starts out predicting exactly as the checkpoint did)
            model.add_odometry_input()
            added_odometry = True
        if model_cfg.target_locator and not model.config.target_locator:  # likewise the target locator
            model.add_target_locator()
            added_locator = True
        if not model_cfg.text_lora and model.has_text_lora:
            # ... and a model may drop its text encoder's LoRA for the pretrained encoder (its
            # projection refitted so that the training phrasings encode as before)
            split = str(read_dataset_info(data_dir).get("split") or "train")
            refit = model.freeze_text_encoder([p for k in KINDS for p in phrasings(k, split)])
            print(f"text encoder: LoRA dropped for the pretrained MiniLM; projection refitted on the "
                  f"{split} phrasings (relative error {refit['fit_rel_error']:.4f})")
        model_cfg = model.config
    else:
        model = SimpleVLA(model_cfg).to(dev)
    if model.scene_map is not None:  # trained alone, on layouts (vla scene-map); kept as it is here
        model.scene_map.requires_grad_(False)
    bank = build_frame_bank(model, data_dir, cache_dir=out / "cache", progress=progress, every_frame=every_frame)
    n_ep = bank.feats.shape[0]
    n_val_ep = max(1, int(round(n_ep * train_cfg.val_fraction))) if n_ep > 1 else 0
    val_eps = validation_episodes(list_episodes(data_dir), n_val_ep)
    is_val = np.array([e in val_eps for e in bank.samples[:, 0]])
    train_idx = np.flatnonzero(~is_val) if n_val_ep else np.arange(len(bank.samples))
    val_idx = np.flatnonzero(is_val) if n_val_ep else train_idx
    rng_val = np.random.default_rng(0)
    val_idx = np.sort(rng_val.choice(val_idx, min(len(val_idx), train_cfg.val_batches * train_cfg.batch_size),
                                     replace=False))
    val_texts = {i: bank.texts[bank.samples[i, 0]] for i in val_idx}
    val_text_list = [val_texts.get(i, "") for i in range(len(bank.samples))] if len(val_idx) else []

    if train_cfg.refresh_labels:
        changed = refresh_labels(bank, data_dir, tuple(train_cfg.refresh_labels), cache_dir=out / "cache",
                                 progress=progress)
        print(f"labels of {', '.join(train_cfg.refresh_labels)} episodes recomputed by the current expert: "
              f"{changed} changed")
    # normalise with the training trajectories (stored in the checkpoint)
    e, t = bank.samples[train_idx, 0], bank.samples[train_idx, 1]
    if not fine_tune:  # fine-tuning keeps the checkpoint's normaliser
        model.action_head.normalizer.fit(bank.traj[torch.from_numpy(e), torch.from_numpy(t)].to(dev))
    baselines = {"mean_per_kind": mean_trajectory_per_kind(bank)}
    relabels = relabel_trajectories(bank, data_dir, tuple(train_cfg.relabel_kinds), cache_dir=out / "cache",
                                    progress=progress) if train_cfg.relabel_prob > 0 else None

    pretrain = not state and model.locator is not None and (added_locator or not fine_tune) \
        and train_cfg.locator_pretrain_steps > 0
    if pretrain:
        pretrain_locator(model, bank, train_idx, train_cfg, dev, progress)
    locator_frozen = model.fusion is not None and model.locator is not None
    if locator_frozen:  # token fusion: the pre-trained locator and command projection stay as they are
        for m in (model.locator, model.txt_proj):
            m.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    odom_scale = float(state.get("odometry_lr_scale", 1.0)) if state else (10.0 if added_odometry else 1.0)
    loc_scale = float(state.get("locator_lr_scale", 1.0)) if state else (10.0 if added_locator else 1.0)
    opt = _optimizer(model, params, train_cfg, odom_scale, loc_scale)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(train_cfg))
    ema = EMA(model, train_cfg.ema_decay)  # after the locator's pre-training: the EMA starts from it
    history: dict[str, list] = {"train": [], "val": []}
    step, best_ade = 0, float("inf")
    rng = np.random.default_rng(train_cfg.seed)
    if state:
        model.load_state_dict({k: v.to(dev) for k, v in state["raw_weights"].items()}, strict=False)
        ema.shadow = {k: v.to(dev) for k, v in state["ema"].items()}
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, best_ade = int(state["step"]), float(state["best_ade"])
        history = {"train": [tuple(x) for x in state["history"]["train"]], "val": list(state["history"]["val"])}
        rng = np.random.default_rng([train_cfg.seed, step])

    meta_base = {"data": str(data_dir), "init": str(init) if fine_tune else None,
                 "train_config": to_dict(train_cfg), "baselines": baselines,
                 "dataset": {"episodes": n_ep, "samples": len(bank.samples), "val_episodes": n_val_ep},
                 "world_config": read_dataset_info(data_dir).get("config")}

    def save_all(metrics: dict[str, float] | None) -> None:
        nonlocal best_ade
        raw = {k: v.detach().cpu().clone() for k, v in model.trainable_state_dict().items()}
        ema.swap(model)  # checkpoints hold the EMA weights
        meta = {**meta_base, "step": step, "metrics": metrics or {}, "history_tail": history["val"][-5:]}
        if metrics and metrics["val_ade"] < best_ade:
            best_ade = metrics["val_ade"]
            save_checkpoint(model, out / "best.pth", meta=meta)
        ema.swap(model)
        train_state = {"step": step, "best_ade": best_ade, "raw_weights": raw, "odometry_lr_scale": odom_scale,
                       "locator_lr_scale": loc_scale,
                       "ema": {k: v.cpu() for k, v in ema.shadow.items()}, "optimizer": opt.state_dict(),
                       "scheduler": sched.state_dict(),
                       "history": {"train": [list(x) for x in history["train"]], "val": history["val"]}}
        ema.swap(model)
        save_checkpoint(model, out / "last.pth", meta=meta, extra={"train_state": train_state})
        ema.swap(model)
        plot_curves(history, out / "loss_curve.png")
        (out / "train_log.json").write_text(json.dumps(
            {"step": step, "best_val_ade": best_ade, "history": {"train": history["train"], "val": history["val"]},
             "model_config": to_dict(model.config), "train_config": to_dict(train_cfg)}, indent=1))

    if step == 0:  # the untrained model's validation figures start the curve
        ema.swap(model)
        history["val"].append({"step": 0, **validate(model, bank, val_idx, train_cfg, dev, val_text_list)})
        ema.swap(model)
    model.train()
    t_start = time.perf_counter()
    bar = tqdm(total=train_cfg.steps, initial=step, desc="training", unit="step", disable=not progress)
    train_kinds = [bank.kinds[e] for e in bank.samples[:, 0]]
    metrics = None
    while step < train_cfg.steps:
        sel = rng.choice(train_idx, train_cfg.batch_size, replace=len(train_idx) < train_cfg.batch_size)
        frozen, traj = gather(bank, sel, dev)
        kinds = [train_kinds[i] for i in sel]
        if relabels is not None:  # some samples answer another command from the same state
            swap = np.flatnonzero(rng.random(len(sel)) < train_cfg.relabel_prob)
            new_k = rng.integers(len(train_cfg.relabel_kinds), size=len(swap))
            for j, k in zip(swap, new_k):
                kinds[j] = train_cfg.relabel_kinds[k]
                traj[j] = relabels[bank.samples[sel[j], 0], bank.samples[sel[j], 1], k].to(dev)
        # language variety: a random training phrasing of the sample's command kind
        cmds = [str(rng.choice(phrasings(k, "train"))) for k in kinds]
        odom = gather_odometry(bank, sel)
        odom[rng.random(len(sel)) < train_cfg.odometry_dropout] = np.nan  # "no odometry" is an input too
        top = gather_top(model, bank, sel)
        keypoints = gather_keypoints(bank, sel, kinds, dev) if top is not None and not locator_frozen else None
        loss = model.loss(frozen, cmds, traj, odometry=odom, top=top, keypoints=keypoints,
                          goal_teacher_prob=train_cfg.goal_teacher_prob)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, train_cfg.grad_clip)
        opt.step()
        sched.step()
        ema.update(model, step)
        step += 1
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"training diverged at step {step} (loss {loss.item()}); lower train.lr")
        if step % train_cfg.log_every == 0 or step == 1:
            history["train"].append((step, float(loss.item())))
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{sched.get_last_lr()[0]:.1e}",
                            best_ade=f"{best_ade:.3f}")
        bar.update(1)
        out_of_time = max_minutes is not None and (time.perf_counter() - t_start) / 60 > max_minutes
        if step % train_cfg.val_every == 0 or step == train_cfg.steps or out_of_time:
            ema.swap(model)
            metrics = validate(model, bank, val_idx, train_cfg, dev, val_text_list)
            ema.swap(model)
            history["val"].append({"step": step, **metrics})
            bar.write(f"step {step}: val loss {metrics['val_loss']:.4f}  ADE {metrics['val_ade']:.3f} m  "
                      f"FDE {metrics['val_fde']:.3f} m")
            save_all(metrics)
        if out_of_time:
            bar.write(f"stopping after {max_minutes} minutes at step {step} (resume with --resume)")
            break
    bar.close()
    return {"step": step, "best_val_ade": best_ade, "out": str(out), "minutes": (time.perf_counter() - t_start) / 60,
            "last_metrics": metrics}
