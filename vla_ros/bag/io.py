"""Open rosbag2 bags (MCAP or sqlite3, directory or single file) and write MCAP bags.

:class:`BagReader` wraps ``rosbags``' reader and adds what a replay tool needs:

* one clear :class:`BagError` line for a path that is not a readable bag;
* damaged or truncated bags: every message before the damage is still delivered, then
  :class:`BagDamagedError` says what was wrong and how much was read.  A truncated MCAP file
  (no footer, e.g. a recording that was killed) is read by :mod:`vla_ros.bag.salvage`; an error
  in the middle of any bag (bad chunk, corrupt sqlite page) ends the stream the same way;
* a directory without ``metadata.yaml`` (a crashed ``ros2 bag record``) is read from its storage file.

:class:`BagWriter` writes rosbag2 bags (MCAP by default, metadata.yaml version 8: readable by
``ros2 bag`` from Jazzy on and by Foxglove) with the message definitions of every type.
"""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

from vla_ros.bag import schema

__all__ = ["BagError", "BagDamagedError", "BagMessage", "Topic", "BagReader", "BagWriter", "read_custom_data"]


class BagError(Exception):
    """A bag that cannot be used (missing, not a bag, wrong topics): one line for the user."""


class BagDamagedError(BagError):
    """The bag is damaged or truncated; the messages before the damage were delivered."""

    def __init__(self, message: str, messages_read: int, last_log_ns: int | None) -> None:
        super().__init__(message)
        self.messages_read = messages_read
        self.last_log_ns = last_log_ns


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    log_ns: int
    raw: bytes

    def decode(self) -> Any:
        return schema.deserialize(self.raw, self.msgtype)


@dataclass
class Topic:
    name: str
    msgtype: str
    count: int  # from the bag's index / metadata (may be larger than what a damaged bag yields)
    qos: list = field(default_factory=list)  # offered QoS profiles (rosbags Qos)
    msgdef: str = ""


def _storage_files(path: Path) -> list[Path]:
    return sorted([*path.glob("*.mcap"), *path.glob("*.db3")])


def read_custom_data(path: str | Path) -> dict[str, str]:
    """metadata.yaml's custom_data of a bag directory ({} when absent)."""
    meta = Path(path) / "metadata.yaml"
    try:
        doc = yaml.safe_load(meta.read_text())
        return dict(doc["rosbag2_bagfile_information"].get("custom_data") or {})
    except Exception:  # noqa: BLE001 - no or unreadable metadata: no custom data
        return {}


class BagReader:
    """A rosbag2 bag opened for reading. Use as a context manager.

    ``topics``: name -> :class:`Topic`.  ``messages(topics)`` yields :class:`BagMessage` in log
    time order (file order for a salvaged MCAP file); it raises :class:`BagDamagedError` after
    the last readable message of a damaged bag.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.topics: dict[str, Topic] = {}
        self.storage = ""
        self.message_count: int | None = None  # announced by the bag (metadata / index)
        self.damage: str | None = None  # known at open time (salvage mode)
        self._reader = None
        self._salvage_file: Path | None = None
        if not self.path.exists():
            raise BagError(f"{self.path} does not exist")
        self._open()

    # -- opening ---------------------------------------------------------------------------
    def _open(self) -> None:
        from rosbags.rosbag2 import Reader

        target = self.path
        if target.is_dir() and not (target / "metadata.yaml").exists():
            files = _storage_files(target)
            if len(files) != 1:
                raise BagError(f"{target} is not a rosbag2 bag: no metadata.yaml and "
                               f"{'no' if not files else len(files)} .mcap/.db3 storage files")
            target = files[0]
        if target.is_file() and target.suffix not in (".mcap", ".db3"):
            raise BagError(f"{target} is not a rosbag2 bag: give its directory, or an .mcap / .db3 file")
        try:
            reader = Reader(target)
            reader.open()
        except Exception as exc:  # noqa: BLE001 - every reason becomes one line
            mcap = self._mcap_file(target)
            if mcap is None:
                raise BagError(f"{self.path} cannot be read: {_reason(exc)}") from None
            self._open_salvage(mcap, _reason(exc))
            return
        self._reader = reader
        files = [target] if target.is_file() else _storage_files(target)
        self.storage = "mcap" if files and files[0].suffix == ".mcap" else "sqlite3"
        try:
            self.message_count = int(reader.message_count)
        except Exception:  # noqa: BLE001
            self.message_count = None
        for name, info in reader.topics.items():
            conns = info.connections
            qos = list(conns[0].ext.offered_qos_profiles) if conns and hasattr(conns[0].ext, "offered_qos_profiles") \
                else []
            self.topics[name] = Topic(name, info.msgtype or "", int(info.msgcount), qos,
                                      info.msgdef.data if info.msgdef else "")

    def _mcap_file(self, target: Path) -> Path | None:
        if target.is_file():
            return target if target.suffix == ".mcap" else None
        try:
            doc = yaml.safe_load((target / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
            files = [target / Path(p).name for p in doc.get("relative_file_paths") or []]
            if doc.get("storage_identifier") == "mcap" and len(files) == 1 and files[0].is_file():
                self.message_count = int(doc.get("message_count") or 0) or None
                return files[0]
        except Exception:  # noqa: BLE001
            pass
        files = [p for p in _storage_files(target) if p.suffix == ".mcap"]
        return files[0] if len(files) == 1 else None

    def _open_salvage(self, mcap: Path, reason: str) -> None:
        from vla_ros.bag.salvage import scan_mcap

        scan = scan_mcap(mcap)
        counts: dict[str, int] = {}
        for ch, _, _ in scan.messages():
            counts[ch.topic] = counts.get(ch.topic, 0) + 1
        if scan.problem and scan.problem.startswith("not an MCAP file"):
            raise BagError(f"{self.path} cannot be read: {reason.rstrip('.')}; {scan.problem}")
        from rosbags.rosbag2.storage_mcap import get_qos

        for ch in scan.channels.values():
            try:
                qos = get_qos(b"".join(_meta_bytes(ch.metadata)))
            except Exception:  # noqa: BLE001
                qos = []
            self.topics[ch.topic] = Topic(ch.topic, ch.msgtype, counts.get(ch.topic, 0), qos, ch.msgdef)
        self.storage = "mcap"
        self._salvage_file = mcap
        total = f" of the {self.message_count} announced" if self.message_count else ""
        self.damage = (f"{mcap.name} is truncated or damaged: {scan.problem or reason}; "
                       f"{scan.messages_read} messages{total} could be read")

    # -- reading ---------------------------------------------------------------------------
    def messages(self, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
        wanted = set(topics) if topics is not None else set(self.topics)
        read = 0
        last = None
        if self._salvage_file is not None:
            from vla_ros.bag.salvage import scan_mcap

            scan = scan_mcap(self._salvage_file)
            for ch, log_ns, raw in scan.messages(lambda ch: ch.topic in wanted):
                read += 1
                last = log_ns
                yield BagMessage(ch.topic, ch.msgtype, log_ns, raw)
            raise BagDamagedError(f"bag {self.path}: {self.damage}", read, last)
        reader = self._reader
        conns = [c for c in reader.connections if c.topic in wanted]
        if not conns:
            return
        try:
            for conn, log_ns, raw in reader.messages(conns):
                read += 1
                last = log_ns
                yield BagMessage(conn.topic, conn.msgtype, int(log_ns), bytes(raw))
        except BagError:
            raise
        except GeneratorExit:
            raise
        except Exception as exc:  # noqa: BLE001 - damage in the middle of the bag
            raise BagDamagedError(f"bag {self.path} is damaged after {read} messages: {_reason(exc)}",
                                  read, last) from None

    def close(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            except Exception:  # noqa: BLE001
                pass
            self._reader = None

    def __enter__(self) -> "BagReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        rows = [f"{t.name}  [{t.msgtype}]  {t.count} msgs" for t in sorted(self.topics.values(), key=lambda t: t.name)]
        return "\n".join(rows)


def _meta_bytes(meta: dict[str, str]) -> list[bytes]:
    """An MCAP map<string,string> (u32 byte length + entries), for rosbags' get_qos."""
    import struct

    body = b"".join(struct.pack("<I", len(k.encode())) + k.encode() + struct.pack("<I", len(v.encode())) + v.encode()
                    for k, v in meta.items())
    return [struct.pack("<I", len(body)), body]


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


class BagWriter:
    """Write a rosbag2 bag (MCAP by default) message by message; thread-safe; a context manager.

    ``add_topic(name, msgtype, qos)`` before writing a topic's first message (types come from
    :func:`vla_ros.bag.schema.typestore`, so every type's definition is stored).  ``close()``
    writes the index and metadata.yaml; it also runs when the ``with`` block ends with an error,
    so a bag of everything written so far is always left behind.
    """

    def __init__(self, path: str | Path, storage: str = "mcap", overwrite: bool = False,
                 custom_data: dict[str, Any] | None = None) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise BagError(f"{self.path} exists already; choose another path or pass --overwrite")
            if self.path.is_dir():
                shutil.rmtree(self.path)
            else:
                self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
        self._writer = Writer(self.path, version=8, storage_plugin=plugin)
        for k, v in (custom_data or {}).items():
            self._writer.set_custom_data(k, v if isinstance(v, str) else json.dumps(v))
        self._writer.open()
        self._conns: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.count = 0
        self.closed = False

    def set_custom_data(self, key: str, value: Any) -> None:
        with self._lock:
            self._writer.set_custom_data(key, value if isinstance(value, str) else json.dumps(value))

    def add_topic(self, topic: str, msgtype: str, qos=None) -> None:
        with self._lock:
            if topic not in self._conns:
                self._conns[topic] = self._writer.add_connection(
                    topic, msgtype, typestore=schema.typestore(), offered_qos_profiles=[qos] if qos else [])

    def has_topic(self, topic: str) -> bool:
        return topic in self._conns

    def write(self, topic: str, log_ns: int, raw: bytes | memoryview) -> None:
        with self._lock:
            if self.closed:
                return
            self._writer.write(self._conns[topic], int(log_ns), raw)
            self.count += 1

    def write_msg(self, topic: str, log_ns: int, msg: Any) -> None:
        conn = self._conns[topic]
        self.write(topic, log_ns, schema.serialize(msg, conn.msgtype))

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                self._writer.close()

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
