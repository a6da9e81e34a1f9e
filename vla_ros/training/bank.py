"""The frame bank: every dataset frame encoded once by the frozen part of the vision encoder.

The pretrained part of the encoder before its LoRA blocks is a fixed function of each frame,
so its features are computed once per dataset frame (cached next to the run, :mod:`.cache`) and
every training step trains only what changes.  ``gather*`` cut a batch of samples out of it.

With a cache folder (every ``vla train`` run) the bank's two big arrays, the features and (for a
model with the target locator) the top-camera frames, live in ``.npy`` files there and are
memory-mapped (:class:`_DiskArrays`): they are written one episode at a time, a batch reads the
rows it needs, and the operating system keeps in RAM what fits, so a dataset larger than the
machine's memory still trains. Without a cache folder they are ordinary tensors in memory.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from vla_ros.config import ConfigError
from vla_ros.data.io import list_episodes, load_meta, open_npz, read_dataset_info
from vla_ros.model.vla import SimpleVLA
from vla_ros.sim.layout import TARGET_COLOURS, Layout
from vla_ros.training.cache import feature_cache_key, save_atomic, source_cache, temporary_path
from vla_ros.training.sources import DataSource, parse_data


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
    robot_xy: torch.Tensor | None = None  # (N, 2) robot centre, top-camera coordinates (model/locator.py)
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
    entry = cache / f"{f.stem}{tag}_{feature_cache_key(model, [f])}.pt" if cache is not None else None
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
        save_atomic(entry, lambda f: torch.save(per_ep, f))
    return per_ep.transpose(0, 1)


def _cone_labels(meta: dict, half: float) -> dict[str, list[float]]:
    """Colour -> the episode's target cone in top-camera coordinates (the locator's target
    label); NaN without a layout (an episode recorded on a robot: no cone positions known)."""
    if "layout" not in meta:
        return {c: [math.nan, math.nan] for c in TARGET_COLOURS}
    layout = Layout.from_dict(meta["layout"])
    return {c: [layout.cone(c).x / half, layout.cone(c).y / half] for c in TARGET_COLOURS}


def _require_layouts(files: list[Path], metas: list[dict]) -> None:
    """Every episode must carry the simulator's layout: the locator is trained on its cone
    positions (:class:`LocatorTraining`). Checked on the metadata, before any frame is encoded."""
    for f, meta in zip(files, metas):
        if "layout" not in meta:
            raise ConfigError(
                f"{f}: no layout (an episode recorded on a robot), but the target locator would be trained "
                "here on the simulator's cone positions (its pre-training, or with the whole model under "
                "additive fusion). Fine-tune a token-fusion checkpoint that already has its locator "
                "(--init checkpoints/default.pth: the locator stays frozen and needs no labels), or train "
                "without model.target_locator (--target-locator off, or --config config/model.yaml)")


class _DiskArrays:
    """The bank's features (slots, C, ...) float16 and top frames (rows, H, W, 3) uint8 as .npy
    files named by what they hold (``key``), filled episode by episode through a temporary file
    and a rename; a later build with the same key (another run, another process of this one) maps
    them without encoding or loading an episode's frames."""

    def __init__(self, folder: Path, key: str, n_slots: int, n_rows: int, with_top: bool) -> None:
        self.paths = {"feats": folder / f"bank_{key}_feats.npy"} | ({"top": folder / f"bank_{key}_top.npy"}
                                                                   if with_top else {})
        self.sizes = {"feats": n_slots, "top": n_rows}
        self.complete = all(p.exists() for p in self.paths.values())
        self._open: dict[str, np.ndarray] = {}
        self._filled = {"feats": 0, "top": 0}

    def append(self, name: str, rows: np.ndarray) -> None:
        """Write the next ``rows`` of array ``name`` (created at the first call, its row shape from them)."""
        if name not in self._open:
            self.paths[name].parent.mkdir(parents=True, exist_ok=True)
            self._open[name] = np.lib.format.open_memmap(temporary_path(self.paths[name]), mode="w+", dtype=rows.dtype,
                                                         shape=(self.sizes[name], *rows.shape[1:]))
        at = self._filled[name]
        self._open[name][at:at + len(rows)] = rows
        self._filled[name] = at + len(rows)

    def finish(self) -> dict[str, torch.Tensor]:
        """The arrays, memory-mapped copy-on-write (nothing writes to them; torch wants them writable)."""
        for name, arr in self._open.items():
            if self._filled[name] != self.sizes[name]:
                raise RuntimeError(f"frame bank {name}: {self._filled[name]} of {self.sizes[name]} rows written")
            arr.flush()
            tmp = Path(arr.filename)
            del arr
            os.replace(tmp, self.paths[name])
        self._open.clear()
        return {name: torch.from_numpy(np.load(p, mmap_mode="c")) for name, p in self.paths.items()}


def _num_steps(f: Path, meta: dict) -> int:
    """Steps of an episode without reading its frames (the metadata's count, else the labels' length)."""
    n = meta.get("num_steps")
    return int(n) if n is not None else len(open_npz(f, mmap=True)["traj"])


def _disk_arrays(cache_dir: str | Path | None, model: SimpleVLA, files: list[Path], keeps: list[np.ndarray],
                 steps: list[int], with_top: bool) -> _DiskArrays | None:
    """The bank's arrays on disk under ``cache_dir`` (None without one: in memory), named by the
    episode files, the encoder and the kept steps of each episode."""
    if cache_dir is None:
        return None
    h = hashlib.sha1(f"{feature_cache_key(model, files)}:{with_top}".encode())
    for keep in keeps:
        h.update(keep.tobytes())
    return _DiskArrays(Path(cache_dir), h.hexdigest()[:16], sum(len(k) for k in keeps), sum(steps), with_top)


class _BankParts:
    """The per-episode pieces of a frame bank while its episodes are read, in episode order."""

    def __init__(self, first: int, disk: _DiskArrays | None = None) -> None:
        self.first = first  # the first step with a full history
        self.disk = disk  # the features and top frames go there instead of into the lists below
        self.kinds, self.texts, self.files, self.source, self.cones, self.labelled = [], [], [], [], [], []
        self.trajs, self.states, self.feats, self.tops, self.slots, self.samples = [], [], [], [], [], []
        self.offsets, self.n_slots = [0], 0

    def add(self, source: int, f: Path, arrays: dict, meta: dict, keep: np.ndarray, feats: torch.Tensor | None,
            half: float | None) -> None:
        """One episode: its labels, states and the features of its ``keep`` steps (None: already on
        disk); ``half`` (half the arena side): also its top frames and locator labels."""
        e, n_steps = len(self.files), len(arrays["traj"])
        self.kinds.append(meta.get("kind"))
        self.texts.append(meta["command"])
        self.files.append(f)
        self.source.append(source)
        self.trajs.append(torch.from_numpy(np.array(arrays["traj"], dtype=np.float32)))
        self.states.append(np.array(arrays["state"], dtype=np.float64))
        self._keep_frames(arrays, feats, half is not None)
        if half is not None:
            self.cones.append(_cone_labels(meta, half))
            self.labelled.append("layout" in meta)
        slot = np.full(n_steps, -1, np.int64)
        slot[keep] = self.n_slots + np.arange(len(keep))
        self.n_slots += len(keep)
        self.slots.append(slot)
        self.samples.extend((e, t) for t in range(self.first, n_steps) if slot[t] >= 0)
        self.offsets.append(self.offsets[-1] + n_steps)

    def _keep_frames(self, arrays: dict, feats: torch.Tensor | None, with_top: bool) -> None:
        if self.disk is None:
            self.feats.append(feats)
            if with_top:
                self.tops.append(torch.from_numpy(np.array(arrays["top"])))
        elif not self.disk.complete:
            self.disk.append("feats", feats.numpy())
            if with_top:
                self.disk.append("top", np.asarray(arrays["top"]))

    def bank(self, stride: int, history: int, every_frame: bool) -> FrameBank:
        if self.disk is not None:
            big = self.disk.finish()
            feats, self.tops = big["feats"], [big["top"]] if "top" in big else []
        else:
            feats = torch.cat(self.feats)
        return FrameBank(feats, torch.cat(self.trajs), np.concatenate(self.states), self.kinds,
                         self.texts, np.array(self.samples, dtype=np.int64).reshape(-1, 2), stride, history,
                         np.array(self.offsets), None if every_frame else np.concatenate(self.slots), self.files,
                         np.array(self.source))


def _add_locator_labels(bank: FrameBank, parts: _BankParts, half: float) -> None:
    """The target locator's inputs and labels: top frames, robot pose and cones in top-camera units."""
    st = torch.from_numpy(bank.states).float()
    bank.top = parts.tops[0] if len(parts.tops) == 1 else torch.cat(parts.tops)  # one: memory-mapped, no copy
    bank.robot_xy = st[..., :2] / half
    bank.heading = torch.stack([st[..., 2].cos(), st[..., 2].sin()], -1)
    bank.cones = {c: torch.tensor([row[c] for row in parts.cones]) for c in TARGET_COLOURS}
    bank.labelled = np.array(parts.labelled, dtype=bool)
    # a robot's odometry frame is not the overhead camera's: its robot pose is no label either
    unlabelled = torch.from_numpy(np.repeat(~bank.labelled, np.diff(bank.offsets)))
    bank.robot_xy[unlabelled] = math.nan
    bank.heading[unlabelled] = math.nan


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
    locate = getattr(model, "locator", None) is not None
    half = float(world.get("arena_size", 12.0)) / 2  # the top camera spans the arena (sim/render.py)
    files = [(i, f) for i, s in enumerate(sources) for f in list_episodes(s.path)]
    metas = [load_meta(f) for _, f in files]
    if locate and locator_labels:
        _require_layouts([f for _, f in files], metas)
    steps = [_num_steps(f, meta) for (_, f), meta in zip(files, metas)]
    keeps = [np.arange(n) if every_frame else np.arange((n - 1) % stride, n, stride) for n in steps]
    disk = _disk_arrays(cache_dir, model, [f for _, f in files], keeps, steps, locate)
    parts = _BankParts(first=(history - 1) * stride, disk=disk)
    for (i, f), meta, keep, n_steps in tqdm(list(zip(files, metas, keeps, steps)), unit="ep",
                                            desc="encoding frames (frozen backbone)", disable=not progress):
        arrays = open_npz(f, mmap=True)
        if len(arrays["traj"]) != n_steps:
            raise ConfigError(f"{f}: {len(arrays['traj'])} steps, but its metadata says num_steps={n_steps}")
        feats = None if disk is not None and disk.complete else _encode_episode(
            model, f, arrays, keep, source_cache(cache_dir, sources, i, model), "" if every_frame else f"_s{stride}",
            batch)
        # the top frames after the encoding, which says clearly when a camera is missing
        parts.add(i, f, arrays, meta, keep, feats, half if locate else None)
    bank = parts.bank(stride, history, every_frame)
    if locate:
        _add_locator_labels(bank, parts, half)
    return bank


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
