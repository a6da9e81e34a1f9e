"""The on-disk caches of a run (``OUT/cache``): frozen frame features and expert labels, keyed
by what they were computed from, written so that several processes may fill them at once."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from vla_ros.model.vla import SimpleVLA
    from vla_ros.training.sources import DataSource


def hash_files(h: Any, files: list[Path]) -> None:
    """Add each file's name, size and modification time to ``h`` (a cache entry's source files)."""
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())


def temporary_path(path: Path) -> Path:
    """This process's temporary file for cache entry ``path``, renamed onto it once complete."""
    return path.with_name(f"{path.name}.tmp{os.getpid()}")


def save_atomic(path: Path, write: Callable[[Any], None]) -> None:
    """Write a cache entry through a temporary file and a rename: processes of a data-parallel run
    on several machines may fill the same cache at once, and a reader never sees half a file."""
    tmp = temporary_path(path)
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def feature_cache_key(model: SimpleVLA, files: list[Path]) -> str:
    """What the frozen features depend on: the encoder's settings and the episode ``files``."""
    h = hashlib.sha1()
    cfg = model.config
    h.update(json.dumps([cfg.backbone, cfg.image_size, cfg.vision_lora_blocks, cfg.hf_vision_path,
                         cfg.pretrained, list(cfg.cameras)]).encode())
    hash_files(h, files)
    return h.hexdigest()[:16]


def source_cache(cache_dir: str | Path | None, sources: list[DataSource], i: int, model: SimpleVLA) -> Path | None:
    """Frozen-feature cache folder of source ``i``: the cache root itself for a single source, a
    folder per source path when there are several."""
    if cache_dir is None:
        return None
    root = Path(cache_dir) / f"frozen_{feature_cache_key(model, [])}"
    if len(sources) == 1:
        return root
    return root / hashlib.sha1(str(sources[i].path.resolve()).encode()).hexdigest()[:10]
