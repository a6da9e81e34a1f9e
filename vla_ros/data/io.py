"""Reading and writing episode files (numpy + json only; see FORMAT.md)."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DATASET_FILE",
    "LATEST_FORMAT_VERSION",
    "check_format_version",
    "episode_stem",
    "save_episode",
    "load_episode",
    "load_meta",
    "list_episodes",
    "read_dataset_info",
    "open_npz",
]

DATASET_FILE = "dataset.json"
# The newest dataset format this vla_ros reads (FORMAT.md): 1 = simulated episodes (what
# `vla data generate` writes), 2 = version 1 plus episodes from recordings (`vla data from-bag`).
LATEST_FORMAT_VERSION = 2


def check_format_version(info: dict, where: str | Path) -> None:
    """ValueError for a dataset (or episode) written in a format newer than this vla_ros reads."""
    version = info.get("format_version")
    if version is not None and int(version) > LATEST_FORMAT_VERSION:
        raise ValueError(f"{where} has dataset format version {version}; this vla_ros reads versions up to "
                         f"{LATEST_FORMAT_VERSION}: upgrade vla_ros")


def episode_stem(index: int) -> str:
    return f"episode_{index:04d}"


def _atomic_write_bytes(path: Path, write) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_episode(out_dir: str | Path, index: int, arrays: dict, meta: dict, compress: bool = False) -> Path:
    """Write ``episode_NNNN.npz`` (uncompressed unless ``compress``; uncompressed files can be
    memory-mapped) and ``episode_NNNN.json``. Returns the npz path."""
    out_dir = Path(out_dir)
    stem = episode_stem(index)
    npz = out_dir / f"{stem}.npz"
    saver = np.savez_compressed if compress else np.savez
    _atomic_write_bytes(npz, lambda f: saver(f, **arrays))
    text = json.dumps(meta, indent=1)
    _atomic_write_bytes(out_dir / f"{stem}.json", lambda f: f.write(text.encode()))
    return npz


def load_meta(path: str | Path) -> dict:
    """Metadata of an episode, from its ``.json`` (give the ``.npz`` or the ``.json`` path)."""
    path = Path(path)
    return json.loads(path.with_suffix(".json").read_text())


def open_npz(path: str | Path, mmap: bool = True) -> dict[str, np.ndarray]:
    """Arrays of an ``.npz``: read-only views into one memory map of the file where the member is
    stored uncompressed (``np.savez``), otherwise loaded into memory.

    The whole file is mapped once (one file descriptor per open episode, released when the
    arrays are garbage-collected).
    """
    import mmap as _mmap

    path = Path(path)
    out: dict[str, np.ndarray] = {}
    if mmap:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
            mm = None
            for info in zf.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if info.compress_type != zipfile.ZIP_STORED:
                    continue
                # local file header: 30 bytes + file name + extra field, then the .npy bytes
                raw.seek(info.header_offset)
                header = raw.read(30)
                if header[:4] != b"PK\x03\x04":
                    continue
                n_name = int.from_bytes(header[26:28], "little")
                n_extra = int.from_bytes(header[28:30], "little")
                raw.seek(info.header_offset + 30 + n_name + n_extra)
                version = np.lib.format.read_magic(raw)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(raw)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(raw)
                else:
                    continue
                if dtype.hasobject:
                    continue
                count = int(np.prod(shape))
                if count == 0:
                    out[name] = np.zeros(shape, dtype)
                    continue
                if mm is None:
                    mm = _mmap.mmap(raw.fileno(), 0, access=_mmap.ACCESS_READ)
                arr = np.frombuffer(mm, dtype=dtype, count=count, offset=raw.tell())
                out[name] = arr.reshape(shape, order="F" if fortran else "C")
    missing = [k for k in _npz_names(path) if k not in out]
    if missing:
        with np.load(path, allow_pickle=False) as z:
            for name in missing:
                out[name] = z[name]
    return out


def _npz_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return [n[:-4] if n.endswith(".npy") else n for n in zf.namelist()]


def load_episode(path: str | Path, mmap: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """``(arrays, meta)`` of one episode (``mmap=True``: memory-map the arrays where possible)."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    return open_npz(path, mmap=mmap), load_meta(path)


def list_episodes(data_dir: str | Path) -> list[Path]:
    """The ``episode_*.npz`` files of a dataset directory, sorted."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"dataset directory {data_dir} does not exist; create one with "
                                "`vla data generate --out DIR --episodes N --seed S`")
    files = sorted(data_dir.glob("episode_*.npz"))
    if not files:
        raise FileNotFoundError(f"no episode_*.npz files in {data_dir}; generate a dataset there with "
                                "`vla data generate --out DIR --episodes N --seed S`")
    return files


def read_dataset_info(data_dir: str | Path) -> dict[str, Any]:
    """``dataset.json`` of a dataset directory (or, without it, what the first episode says)."""
    data_dir = Path(data_dir)
    p = data_dir / DATASET_FILE
    if p.exists():
        info = json.loads(p.read_text())
    else:
        first = list_episodes(data_dir)[0]
        meta = load_meta(first)
        info = {"format_version": meta.get("format_version"), "split": meta.get("split"),
                "config": meta.get("config"), "episodes": len(list_episodes(data_dir))}
    check_format_version(info, data_dir)
    return info
