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
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from vla_ros.checkpoint import checkpoint_config, load_checkpoint, read_checkpoint, save_checkpoint
from vla_ros.config import ConfigError, ModelConfig, TrainConfig, to_dict
from vla_ros.data.io import list_episodes, load_episode, load_meta, read_dataset_info
from vla_ros.distributed import init_distributed, share
from vla_ros.model.vla import SimpleVLA
from vla_ros.sim.commands import KINDS, phrasings
from vla_ros.sim.layout import TARGET_COLOURS, Layout


@dataclass(frozen=True)
class DataSource:
    """One dataset directory of ``vla train --data`` and the share of each training batch drawn
    from it (``None``: in proportion to its samples, as when it is the only one)."""

    path: Path
    weight: float | None = None


def parse_data(data: str | Path | DataSource | Sequence[str | Path | DataSource]) -> list[DataSource]:
    """``DIR``, ``DIR1,DIR2`` or ``DIR1:W1,DIR2:W2`` (weights: shares of each batch, normalised;
    give all or none) or a list of paths / :class:`DataSource` -> sources."""
    if isinstance(data, DataSource):
        return [data]
    items = str(data).split(",") if isinstance(data, (str, Path)) else list(data)
    out = []
    for item in items:
        if isinstance(item, DataSource):
            out.append(item)
            continue
        text, weight = str(item).strip(), None
        if not text:
            raise ConfigError(f"--data {data!r}: an empty directory name; e.g. sim,bags or sim:0.5,bags:0.5")
        path, sep, tail = text.rpartition(":")
        try:
            weight = float(tail) if sep else None
        except ValueError:
            path = text  # a ':' in the path itself, no weight
        out.append(DataSource(Path(path if sep and weight is not None else text), weight))
    weights = [s.weight for s in out]
    if not out:
        raise ConfigError(f"--data {data!r}: give one or more dataset directories, e.g. sim,bags or sim:0.5,bags:0.5")
    if any(w is None for w in weights) and any(w is not None for w in weights):
        raise ConfigError(f"--data {data!r}: give a weight to every directory or to none")
    if any(w is not None and not (w > 0 and math.isfinite(w)) for w in weights):
        raise ConfigError(f"--data {data!r}: weights must be positive numbers")
    return out


@dataclass
class FrameBank:
    """Frozen features of every frame and the samples over them.

    Steps are stored episode after episode (episodes may differ in length): step ``t`` of
    episode ``e`` is row ``offsets[e] + t`` of the per-step arrays (:meth:`rows`).
    """

    feats: torch.Tensor  # (F, C, ...) float16 frozen features per encoded step (all episodes), camera
    traj: torch.Tensor  # (N, 16, 3) trajectory labels per step
    states: np.ndarray  # (N, 5) world-frame [x, y, yaw, v, omega] per step
    kinds: list[str | None]  # per episode; None: a command outside the simulator's phrasings (a robot's)
    texts: list[str]  # per episode: the episode's own command
    samples: np.ndarray  # (S, 2) int: (episode, t) with a full history
    stride: int
    history: int
    offsets: np.ndarray  # (E + 1,) int: first row of each episode, then N
    frame_slot: np.ndarray | None = None  # (N,) row -> index into feats' first axis (-1: not encoded); None: the row
    files: list[Path] = field(default_factory=list)  # (E,) episode files
    source: np.ndarray | None = None  # (E,) int: which data source each episode came from
    # a model with the target locator: the top camera's frames and the keypoint labels
    top: torch.Tensor | None = None  # (N, H, W, 3) uint8
    robot_xy: torch.Tensor | None = None  # (N, 2) robot centre, top-camera coordinates (locator.py)
    heading: torch.Tensor | None = None  # (N, 2) unit vector the robot faces
    cones: dict[str, torch.Tensor] | None = None  # colour -> (E, 2) that cone, top-camera coordinates
    # (E,) bool: the episode has those labels (a simulated layout); the others' labels are NaN
    labelled: np.ndarray | None = None

    def rows(self, ep: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Episodes and steps (broadcast) -> rows of the per-step arrays."""
        return self.offsets[np.asarray(ep)] + np.asarray(t)

    def history_index(self, t: np.ndarray) -> np.ndarray:
        """(S,) newest steps -> (S, L) steps oldest first."""
        offs = np.arange(-(self.history - 1), 1) * self.stride
        return t[:, None] + offs[None]

    def slots(self, rows: np.ndarray) -> np.ndarray:
        """Rows -> positions in ``feats``' first axis."""
        return rows if self.frame_slot is None else self.frame_slot[rows]

    def command_key(self, e: int) -> str:
        """What baselines and tables group episode ``e`` by: its kind, or its text when it has none."""
        return self.kinds[e] or self.texts[e]

    def sample_rows(self, idx: np.ndarray) -> np.ndarray:
        """Samples ``idx`` -> the rows of their newest steps."""
        return self.rows(self.samples[idx, 0], self.samples[idx, 1])


def _hash_files(h: Any, files: list[Path]) -> None:
    """Add each file's name, size and modification time to ``h`` (a cache entry's source files)."""
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())


def _save_atomic(path: Path, write: Callable[[Any], None]) -> None:
    """Write a cache entry through a temporary file and a rename: processes of a data-parallel run
    on several machines may fill the same cache at once, and a reader never sees half a file."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def _feature_cache_key(model: SimpleVLA, files: list[Path]) -> str:
    h = hashlib.sha1()
    cfg = model.config
    h.update(json.dumps([cfg.backbone, cfg.image_size, cfg.vision_lora_blocks, cfg.hf_vision_path,
                         cfg.pretrained, list(cfg.cameras)]).encode())
    _hash_files(h, files)
    return h.hexdigest()[:16]


def _check_world(model: SimpleVLA, sources: list[DataSource]) -> dict:
    """The sources' world configs must share the model's grid; returns the first one's."""
    worlds = [read_dataset_info(s.path).get("config") or {} for s in sources]
    for src, world in zip(sources, worlds):
        if int(world.get("horizon", model.config.trajectory_length)) != model.config.trajectory_length:
            raise ConfigError(f"{src.path}: trajectories have {world.get('horizon')} waypoints, the model "
                             f"predicts {model.config.trajectory_length}")
        for key, default in (("history_stride", 2), ("sim_dt", 0.1), ("traj_dt", 0.2)):
            if world.get(key, default) != worlds[0].get(key, default):
                raise ConfigError(f"{src.path}: world.{key}={world.get(key, default)} but {sources[0].path} has "
                                 f"{worlds[0].get(key, default)}: datasets trained together need the same grid")
    return worlds[0]


def _encode_episode(model: SimpleVLA, f: Path, arrays: dict, keep: np.ndarray, cache: Path | None, tag: str,
                    batch: int) -> torch.Tensor:
    """Frozen features (len(keep), C, ...) of the kept steps of one episode (cached per file)."""
    for cam in model.config.cameras:
        if cam not in arrays:
            raise ConfigError(f"{f}: the episode has no '{cam}' frames, but the model's cameras are "
                             f"{list(model.config.cameras)} (vla data from-bag --top TOPIC, or model.cameras: [ego])")
    entry = cache / f"{f.stem}{tag}_{_feature_cache_key(model, [f])}.pt" if cache is not None else None
    if entry is not None and entry.exists():
        return torch.load(entry, weights_only=True).transpose(0, 1)
    cams = []
    for cam in model.config.cameras:
        frames = np.asarray(arrays[cam])[keep]
        out = [model.frame_frozen(frames[i:i + batch]).half().cpu() for i in range(0, len(frames), batch)]
        cams.append(torch.cat(out))
    per_ep = torch.stack(cams)  # (C, T, ...): the cache's layout
    if entry is not None:
        entry.parent.mkdir(parents=True, exist_ok=True)
        _save_atomic(entry, lambda f: torch.save(per_ep, f))
    return per_ep.transpose(0, 1)


def _source_cache(cache_dir: str | Path | None, sources: list[DataSource], i: int, model: SimpleVLA) -> Path | None:
    """Frozen-feature cache folder of source ``i`` (one source: as before sources existed)."""
    if cache_dir is None:
        return None
    root = Path(cache_dir) / f"frozen_{_feature_cache_key(model, [])}"
    if len(sources) == 1:
        return root
    return root / hashlib.sha1(str(sources[i].path.resolve()).encode()).hexdigest()[:10]


def _cone_labels(meta: dict, half: float) -> dict[str, list[float]]:
    """Colour -> the episode's target cone in top-camera coordinates (the locator's target
    label); NaN without a layout (an episode recorded on a robot: no cone positions known)."""
    if "layout" not in meta:
        return {c: [math.nan, math.nan] for c in TARGET_COLOURS}
    layout = Layout.from_dict(meta["layout"])
    return {c: [layout.cone(c).x / half, layout.cone(c).y / half] for c in TARGET_COLOURS}


def _require_layouts(files: list[Path]) -> None:
    """Every episode must carry the simulator's layout: the locator is trained on its cone
    positions (:class:`LocatorTraining`). Checked on the metadata, before any frame is encoded."""
    for f in files:
        if "layout" not in load_meta(f):
            raise ConfigError(
                f"{f}: no layout (an episode recorded on a robot), but the target locator would be trained "
                "here on the simulator's cone positions (its pre-training, or with the whole model under "
                "additive fusion). Fine-tune a token-fusion checkpoint that already has its locator "
                "(--init checkpoints/default.pth: the locator stays frozen and needs no labels), or train "
                "without model.target_locator (--target-locator off, or --config config/model.yaml)")


@torch.no_grad()
def build_frame_bank(model: SimpleVLA, data_dir: str | Path | Sequence, cache_dir: str | Path | None = None,
                     progress: bool = True, batch: int = 128, every_frame: bool = True,
                     locator_labels: bool = False) -> FrameBank:
    """Encode the frames of one or more datasets (``data_dir``: see :func:`parse_data`) once with
    the frozen backbone; episodes of any length, from ``vla data generate`` or ``vla data from-bag``.

    ``every_frame=False`` keeps only the steps that share the newest step's phase modulo the
    history stride (a sample's history frames are ``stride`` steps apart): half the frames and
    half the samples for stride 2, and the neighbouring samples dropped are near-duplicates.

    A model with the target locator gets its labels where an episode has a layout (``labelled``);
    ``locator_labels=True``: every episode must have them (the locator is trained on them).
    """
    sources = parse_data(data_dir)
    world = _check_world(model, sources)
    stride = int(world.get("history_stride", 2))
    history = model.config.history_length
    first = (history - 1) * stride
    locate = getattr(model, "locator", None) is not None
    half = float(world.get("arena_size", 12.0)) / 2  # the top camera spans the arena (sim/render.py)
    ep = {"kinds": [], "texts": [], "files": [], "source": [], "cones": [], "labelled": []}
    trajs, states, feats, tops, slots, samples, offsets = [], [], [], [], [], [], [0]
    n_slots = 0
    files = [(i, f) for i, s in enumerate(sources) for f in list_episodes(s.path)]
    if locate and locator_labels:
        _require_layouts([f for _, f in files])
    for i, f in tqdm(files, desc="encoding frames (frozen backbone)", unit="ep", disable=not progress):
        arrays, meta = load_episode(f, mmap=True)
        e, n_steps = len(ep["files"]), len(arrays["traj"])
        ep["kinds"].append(meta.get("kind"))
        ep["texts"].append(meta["command"])
        ep["files"].append(f)
        ep["source"].append(i)
        trajs.append(torch.from_numpy(np.array(arrays["traj"], dtype=np.float32)))
        states.append(np.array(arrays["state"], dtype=np.float64))
        keep = np.arange(n_steps) if every_frame else np.arange((n_steps - 1) % stride, n_steps, stride)
        feats.append(_encode_episode(model, f, arrays, keep, _source_cache(cache_dir, sources, i, model),
                                     "" if every_frame else f"_s{stride}", batch))
        if locate:  # after the encoding, which says clearly when a camera is missing
            tops.append(torch.from_numpy(np.array(arrays["top"])))
            ep["cones"].append(_cone_labels(meta, half))
            ep["labelled"].append("layout" in meta)
        slot = np.full(n_steps, -1, np.int64)
        slot[keep] = n_slots + np.arange(len(keep))
        n_slots += len(keep)
        slots.append(slot)
        samples.extend((e, t) for t in range(first, n_steps) if slot[t] >= 0)
        offsets.append(offsets[-1] + n_steps)
    bank = FrameBank(torch.cat(feats), torch.cat(trajs), np.concatenate(states), ep["kinds"], ep["texts"],
                     np.array(samples, dtype=np.int64).reshape(-1, 2), stride, history, np.array(offsets),
                     None if every_frame else np.concatenate(slots), ep["files"], np.array(ep["source"]))
    if locate:
        st = torch.from_numpy(bank.states).float()
        bank.top = torch.cat(tops)
        bank.robot_xy = st[..., :2] / half
        bank.heading = torch.stack([st[..., 2].cos(), st[..., 2].sin()], -1)
        bank.cones = {c: torch.tensor([row[c] for row in ep["cones"]]) for c in TARGET_COLOURS}
        bank.labelled = np.array(ep["labelled"], dtype=bool)
        # a robot's odometry frame is not the overhead camera's: its robot pose is no label either
        unlabelled = torch.from_numpy(np.repeat(~bank.labelled, np.diff(bank.offsets)))
        bank.robot_xy[unlabelled] = math.nan
        bank.heading[unlabelled] = math.nan
    return bank


def _expert_version() -> str:
    """Hash of the expert's source: labels computed by another version of it are not reused."""
    from vla_ros.sim import expert

    return hashlib.sha1(Path(expert.__file__).read_bytes()).hexdigest()[:12]


def _episode_steps(bank: FrameBank, e: int) -> np.ndarray:
    """The sample steps of episode ``e`` (ascending)."""
    return bank.samples[bank.samples[:, 0] == e, 1]


def _expert_labels(bank: FrameBank, episodes: list[int], kinds_of: Callable[[int], Sequence[str]],
                   cache: Path | None, desc: str, progress: bool) -> dict[tuple[int, str], torch.Tensor]:
    """``{(episode, kind): (steps, 16, 3)}``: the current expert's plan for each of ``kinds_of(e)``
    from the recorded state of every sample step of episode ``e``; cached per episode file, kind
    and expert version. Only simulated episodes: the expert needs the world's layout."""
    from vla_ros.sim.config import WorldConfig
    from vla_ros.sim.expert import expert_trajectory

    version = _expert_version()
    out = {}
    for e in tqdm(episodes, desc=desc, unit="ep", disable=not progress):
        f, steps = bank.files[e], _episode_steps(bank, e)
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
                if "layout" not in meta:
                    raise ConfigError(f"{f}: no layout (an episode recorded on a robot): the simulator's expert "
                                     "cannot relabel it; train on it without relabel_prob / refresh_labels")
                config, layout = WorldConfig.from_dict(meta["config"]), Layout.from_dict(meta["layout"])
            labels = np.stack([expert_trajectory(kind, bank.states[r], layout, config)
                               for r in bank.rows(e, steps)]).astype(np.float32)  # (steps, 16, 3)
            out[e, kind] = torch.from_numpy(labels)
            if entry is not None:
                entry.parent.mkdir(parents=True, exist_ok=True)
                _save_atomic(entry, lambda f: np.save(f, labels))
    return out


def relabel_trajectories(bank: FrameBank, kinds: tuple[str, ...] = KINDS, cache_dir: str | Path | None = None,
                         progress: bool = True) -> torch.Tensor:
    """(N, K, 16, 3): the expert's trajectory for each of ``kinds`` (K of them, in that order)
    from the recorded state of every sample step (zeros at steps that are not samples).

    Every simulated episode file keeps its world config, layout and states, so the expert can
    answer any command from any state it recorded; for the episode's own kind this is its stored
    label (unless the expert changed since). Cached per episode file and kind next to the frozen features.
    """
    out = torch.zeros(bank.traj.shape[0], len(kinds), *bank.traj.shape[1:])
    cache = Path(cache_dir) / "relabel" if cache_dir is not None else None
    labels = _expert_labels(bank, list(range(len(bank.files))), lambda e: kinds, cache,
                            "labelling every state for every command", progress)
    for (e, kind), lab in labels.items():
        out[bank.rows(e, _episode_steps(bank, e)), kinds.index(kind)] = lab
    return out


def refresh_labels(bank: FrameBank, kinds: tuple[str, ...], cache_dir: str | Path | None = None,
                   progress: bool = True) -> int:
    """Replace the recorded label of every sample of an episode of ``kinds`` with the current
    expert's plan from the same recorded state (data recorded before the expert changed, e.g.
    goto episodes from before it drove around obstacles). Returns how many labels changed."""
    episodes = [e for e, k in enumerate(bank.kinds) if k in kinds]
    cache = Path(cache_dir) / "relabel" if cache_dir is not None else None
    labels = _expert_labels(bank, episodes, lambda e: (bank.kinds[e],), cache,
                            "labels from the current expert", progress)
    changed = 0
    for (e, _), lab in labels.items():
        rows = torch.from_numpy(bank.rows(e, _episode_steps(bank, e)))
        changed += int(((bank.traj[rows] - lab).abs().amax(dim=(-1, -2)) > 1e-4).sum())
        bank.traj[rows] = lab
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
    rows = bank.rows(ep[:, None], bank.history_index(t))  # (B, L)
    frozen = bank.feats[torch.from_numpy(bank.slots(rows))]  # (B, L, C, ...)
    frozen = frozen.transpose(1, 2).float().to(device)
    traj = bank.traj[torch.from_numpy(bank.sample_rows(idx))].to(device)
    return frozen, traj


def gather_top(model: SimpleVLA, bank: FrameBank, idx: np.ndarray) -> torch.Tensor | None:
    """Samples ``idx`` -> their newest top-camera frames (B, 3, S, S) for the locator (None without one)."""
    if model.locator is None:
        return None
    if bank.top is None:
        raise ValueError("the frame bank holds no top-camera frames; build it with the locator model")
    return model.preprocess(bank.top[torch.from_numpy(bank.sample_rows(idx))])


def gather_keypoints(bank: FrameBank, idx: np.ndarray, kinds: list[str | None],
                     device: torch.device) -> dict[str, torch.Tensor]:
    """The locator's labels of samples ``idx`` answering commands of ``kinds``: robot, heading,
    and the cone a goto command names (target_mask 0 for the other commands). NaN for samples of
    an episode without labels (``bank.labelled``)."""
    ep = torch.from_numpy(bank.samples[idx, 0])
    rows = torch.from_numpy(bank.sample_rows(idx))
    target = torch.zeros(len(idx), 2)
    mask = torch.zeros(len(idx))
    for j, kind in enumerate(kinds):
        if kind and kind.startswith("goto_"):
            target[j] = bank.cones[kind[5:]][ep[j]]
            mask[j] = 1.0
    return {"robot": bank.robot_xy[rows].to(device), "heading": bank.heading[rows].to(device),
            "target": target.to(device), "target_mask": mask.to(device)}


def gather_odometry(bank: FrameBank, idx: np.ndarray) -> np.ndarray:
    """Samples ``idx`` -> (B, 2) float32 measured (v, omega) at each sample's newest frame."""
    return np.ascontiguousarray(bank.states[bank.sample_rows(idx), 3:5], dtype=np.float32)


def mean_trajectory_per_kind(bank: FrameBank) -> dict[str, list]:
    """The command-only baseline: the mean trajectory of each command kind (of each command
    text, for a robot's commands that are no known phrasing)."""
    keys = np.array([bank.command_key(e) for e in bank.samples[:, 0]], dtype=object)
    out = {}
    for key in [k for k in KINDS if k in set(keys)] + sorted(set(keys) - set(KINDS)):
        rows = bank.sample_rows(np.flatnonzero(keys == key))
        out[key] = bank.traj[torch.from_numpy(rows)].mean(0).tolist()
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
        if loc is not None:  # its errors on the samples with labels (none from a robot's episodes)
            lab = np.flatnonzero(bank.labelled[bank.samples[sel, 0]])
            if len(lab):
                kinds = [bank.kinds[e] for e in bank.samples[sel[lab], 0]]
                found = torch.from_numpy(lab).to(device)
                located.append(({k: getattr(loc, k)[found] for k in ("target", "robot", "heading")},
                                gather_keypoints(bank, sel[lab], kinds, device)))
        a, f = ade_fde(pred.cpu().numpy(), traj.cpu().numpy())
        ades.append(a)
        fdes.append(f)
    model.train()
    out = {"val_loss": float(np.mean(losses)), "val_ade": float(np.concatenate(ades).mean()),
           "val_fde": float(np.concatenate(fdes).mean())}
    if goals:  # token fusion's goal estimate (weighted MSE, normalised units); val_loss is the head's alone
        out["val_goal_loss"] = float(np.mean(goals))
    if located:  # the locator's errors (top-camera units: half the image side)
        err_t = torch.cat([(loc["target"] - kp["target"]).norm(dim=-1)[kp["target_mask"] > 0] for loc, kp in located])
        err_r = torch.cat([(loc["robot"] - kp["robot"]).norm(dim=-1) for loc, kp in located])
        cos = torch.cat([(loc["heading"] * kp["heading"]).sum(-1) for loc, kp in located]).clamp(-1, 1)
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
    # a token-fusion model learns its command projection here too; both are then frozen (LocatorTraining)
    learn_text = model.fusion is not None
    params = list(model.locator.parameters()) + (list(model.txt_proj.parameters()) if learn_text else [])
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=cfg.locator_pretrain_lr)
    # cosine decay to a tenth: at a constant 2e-3 a 3,200-step run found the cones, then lost them
    # (target error 0.002 at step 700, 0.22 at the end; docs/results.md)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.1 + 0.45 * (1 + math.cos(math.pi * min(i, cfg.locator_pretrain_steps) / max(1, cfg.locator_pretrain_steps))))
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
        sched.step()
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


def split_samples(bank: FrameBank, n_sources: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(training sample indices, validation sample indices, validation episodes): each source
    holds out ``val_fraction`` of its episodes (:func:`validation_episodes`, at least one of two
    or more), so every source is validated; with one episode in all, it trains and validates."""
    val_eps: set[int] = set()
    for i in range(n_sources):
        mine = np.flatnonzero(bank.source == i)
        n = max(1, int(round(len(mine) * val_fraction))) if len(mine) > 1 else 0
        val_eps |= {int(mine[j]) for j in validation_episodes([bank.files[e] for e in mine], n)}
    is_val = np.array([e in val_eps for e in bank.samples[:, 0]], dtype=bool)
    train_idx = np.flatnonzero(~is_val) if val_eps else np.arange(len(bank.samples))
    val_idx = np.flatnonzero(is_val) if val_eps else train_idx
    return train_idx, val_idx, len(val_eps)


def sample_probabilities(bank: FrameBank, train_idx: np.ndarray, sources: list[DataSource]) -> np.ndarray | None:
    """How likely each training sample is drawn: source weight / that source's training samples
    (None without weights: every sample alike)."""
    if sources[0].weight is None:
        return None
    src = bank.source[bank.samples[train_idx, 0]]
    p = np.zeros(len(train_idx))
    for i, s in enumerate(sources):
        mine = src == i
        if not mine.any():
            raise ConfigError(f"--data {s.path}:{s.weight:g}: this source has no training samples")
        p[mine] = s.weight / mine.sum()
    return p / p.sum()


def batch_commands(bank: FrameBank, sel: np.ndarray, kinds: list[str | None], rng: np.random.Generator) -> list[str]:
    """Language variety: a random training phrasing of each sample's command kind; a robot's own
    command (no known kind) verbatim."""
    return [str(rng.choice(phrasings(k, "train"))) if k else bank.texts[bank.samples[i, 0]]
            for i, k in zip(sel, kinds)]


def training_phrasebook(bank: FrameBank) -> list[str]:
    """Every command a training batch can hold (batch_commands; relabelling draws from the same
    training phrasings): each known kind's training phrasings, and a robot's commands verbatim."""
    known = [p for k in KINDS for p in phrasings(k, "train")] if any(bank.kinds) else []
    return known + [t for k, t in zip(bank.kinds, bank.texts) if not k]


def training_batch(model: SimpleVLA, bank: FrameBank, sel: np.ndarray, cfg: TrainConfig, rng: np.random.Generator,
                   relabels: torch.Tensor | None, with_keypoints: bool, device: torch.device) -> dict[str, Any]:
    """The loss's inputs for the global batch ``sel``, every random choice made for all of it
    (relabels, phrasings, odometry dropout, diffusion noise and timesteps), so that each process
    of a data-parallel run draws the same batch and takes its share (:mod:`vla_ros.distributed`)."""
    frozen, traj = gather(bank, sel, device)
    kinds = [bank.kinds[e] for e in bank.samples[sel, 0]]
    if relabels is not None:  # some samples answer another command from the same state
        swap = np.flatnonzero(rng.random(len(sel)) < cfg.relabel_prob)
        new_k = rng.integers(len(cfg.relabel_kinds), size=len(swap))
        for j, k in zip(swap, new_k):
            kinds[j] = cfg.relabel_kinds[k]
            traj[j] = relabels[bank.sample_rows(sel[j:j + 1])[0], k].to(device)
    cmds = batch_commands(bank, sel, kinds, rng)
    odom = gather_odometry(bank, sel)
    odom[rng.random(len(sel)) < cfg.odometry_dropout] = np.nan  # "no odometry" is an input too
    top = gather_top(model, bank, sel)
    keypoints = gather_keypoints(bank, sel, kinds, device) if top is not None and with_keypoints else None
    noise, timesteps = model.action_head.draw_noise(traj)
    # token fusion's goal token: which samples carry the demonstration's true end (model/fusion.py)
    teacher = torch.from_numpy(rng.random(len(sel)) < cfg.goal_teacher_prob).to(device)
    return {"frozen": frozen, "commands": cmds, "traj": traj, "odometry": odom, "top": top, "keypoints": keypoints,
            "noise": noise, "timesteps": timesteps, "teacher": teacher}


@dataclass(frozen=True)
class LocatorTraining:
    """What a run does with the target locator (both False without one): the one place that
    decides whether it needs its keypoint labels, i.e. the simulator's layouts."""

    pretrain: bool  # trained alone first: it starts from scratch (a new model, or one --init just gave it)
    joint: bool  # trained with the whole model (additive fusion); token fusion freezes it after its pre-training

    @classmethod
    def plan(cls, model: SimpleVLA, cfg: TrainConfig, resumed: bool, fine_tune: bool,
             added_locator: bool) -> LocatorTraining:
        if model.locator is None:
            return cls(False, False)
        return cls(pretrain=not resumed and (added_locator or not fine_tune) and cfg.locator_pretrain_steps > 0,
                   joint=model.fusion is None)

    @property
    def needs_labels(self) -> bool:
        """A locator that is trained needs labels in every episode; a frozen one reads its input alone."""
        return self.pretrain or self.joint


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
    (:mod:`vla_ros.distributed`); process 0 validates, saves and reports.
    """
    dd, device = init_distributed(device)
    progress = progress and dd.main
    if train_cfg.batch_size % dd.world:
        raise ConfigError(f"train.batch_size={train_cfg.batch_size} (the global batch) must be divisible by the "
                          f"{dd.world} processes")
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
            split = str(read_dataset_info(parse_data(data_dir)[0].path).get("split") or "train")
            refit = model.freeze_text_encoder([p for k in KINDS for p in phrasings(k, split)])
            if dd.main:
                print(f"text encoder: LoRA dropped for the pretrained MiniLM; projection refitted on the "
                      f"{split} phrasings (relative error {refit['fit_rel_error']:.4f})")
        model_cfg = model.config
    else:
        model = SimpleVLA(model_cfg).to(dev)
    if model.scene_map is not None:  # trained alone, on layouts (vla scene-map); kept as it is here
        model.scene_map.requires_grad_(False)
    sources = parse_data(data_dir)
    locator = LocatorTraining.plan(model, train_cfg, bool(state), fine_tune, added_locator)
    with dd.main_first():  # process 0 fills the feature cache, the others read it
        bank = build_frame_bank(model, sources, cache_dir=out / "cache", progress=progress, every_frame=every_frame,
                                locator_labels=locator.needs_labels)
    n_ep = len(bank.files)
    train_idx, val_idx, n_val_ep = split_samples(bank, len(sources), train_cfg.val_fraction)
    draw_p = sample_probabilities(bank, train_idx, sources)
    rng_val = np.random.default_rng(0)
    val_idx = np.sort(rng_val.choice(val_idx, min(len(val_idx), train_cfg.val_batches * train_cfg.batch_size),
                                     replace=False))
    val_texts = {i: bank.texts[bank.samples[i, 0]] for i in val_idx}
    val_text_list = [val_texts.get(i, "") for i in range(len(bank.samples))] if len(val_idx) else []

    if train_cfg.refresh_labels:
        with dd.main_first():
            changed = refresh_labels(bank, tuple(train_cfg.refresh_labels), cache_dir=out / "cache",
                                     progress=progress)
        if dd.main:
            print(f"labels of {', '.join(train_cfg.refresh_labels)} episodes recomputed by the current expert: "
                  f"{changed} changed")
    model.set_phrasebook([*model.phrasebook, *training_phrasebook(bank)])  # a fine-tuned model keeps its own
    # normalise with the training trajectories (stored in the checkpoint)
    if not fine_tune:  # fine-tuning keeps the checkpoint's normaliser
        model.action_head.normalizer.fit(bank.traj[torch.from_numpy(bank.sample_rows(train_idx))].to(dev))
    baselines = {"mean_per_kind": mean_trajectory_per_kind(bank)}
    relabels = None
    if train_cfg.relabel_prob > 0:
        with dd.main_first():
            relabels = relabel_trajectories(bank, tuple(train_cfg.relabel_kinds), cache_dir=out / "cache",
                                            progress=progress)

    if locator.pretrain:
        pretrain_locator(model, bank, train_idx, train_cfg, dev, progress)
    if model.locator is not None and not locator.joint:
        # token fusion: the pre-trained locator and command projection stay as they are
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

    meta_base = {"data": ",".join(f"{s.path}:{s.weight:g}" if s.weight else str(s.path) for s in sources),
                 "init": str(init) if fine_tune else None,
                 "train_config": to_dict(train_cfg), "baselines": baselines,
                 "dataset": {"episodes": n_ep, "samples": len(bank.samples), "val_episodes": n_val_ep},
                 "world_config": read_dataset_info(sources[0].path).get("config")}

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

    loss_fn = dd.loss_fn(model, dev)  # DDP after the locator's pre-training and the resume: all start equal
    if step == 0 and dd.main:  # the untrained model's validation figures start the curve
        ema.swap(model)
        history["val"].append({"step": 0, **validate(model, bank, val_idx, train_cfg, dev, val_text_list)})
        ema.swap(model)
    model.train()
    t_start = time.perf_counter()
    bar = tqdm(total=train_cfg.steps, initial=step, desc="training", unit="step", disable=not progress)
    metrics = None
    while step < train_cfg.steps:
        sel = rng.choice(train_idx, train_cfg.batch_size, replace=len(train_idx) < train_cfg.batch_size, p=draw_p)
        batch = training_batch(model, bank, sel, train_cfg, rng, relabels, locator.joint, dev)
        loss = loss_fn(**share(batch, dd.part(len(sel))))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, train_cfg.grad_clip)
        opt.step()
        sched.step()
        ema.update(model, step)
        step += 1
        out_of_time = max_minutes is not None and (time.perf_counter() - t_start) / 60 > max_minutes
        loss_value, out_of_time = dd.step_figures(float(loss.item()), out_of_time)  # the same on every process
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"training diverged at step {step} (loss {loss_value}); lower train.lr")
        if step % train_cfg.log_every == 0 or step == 1:
            history["train"].append((step, loss_value))
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{sched.get_last_lr()[0]:.1e}",
                            best_ade=f"{best_ade:.3f}")
        bar.update(1)
        if dd.main and (step % train_cfg.val_every == 0 or step == train_cfg.steps or out_of_time):
            ema.swap(model)
            metrics = validate(model, bank, val_idx, train_cfg, dev, val_text_list)
            ema.swap(model)
            history["val"].append({"step": step, **metrics})
            bar.write(f"step {step}: val loss {metrics['val_loss']:.4f}  ADE {metrics['val_ade']:.3f} m  "
                      f"FDE {metrics['val_fde']:.3f} m")
            save_all(metrics)
        if out_of_time:
            if dd.main:
                bar.write(f"stopping after {max_minutes} minutes at step {step} (resume with --resume)")
            break
    bar.close()
    dd.finish()
    return {"step": step, "best_val_ade": best_ade, "out": str(out), "minutes": (time.perf_counter() - t_start) / 60,
            "last_metrics": metrics}
