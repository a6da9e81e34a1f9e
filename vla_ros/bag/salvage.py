"""Read what is left of a damaged or truncated MCAP file (a recording that crashed or was cut off).

``rosbags`` refuses an MCAP file without its footer/summary ("File end magic is invalid"), so
nothing of a truncated recording could be replayed.  This scanner walks the records from the
start of the file (MCAP spec: opcode u8, length u64, content) and yields every complete message,
including the complete messages of a cut-off chunk when the chunk is uncompressed (rosbags and
rosbag2's default) or zstd-compressed, and stops at the first record it cannot read.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

__all__ = ["MAGIC", "McapScan", "SalvageChannel", "scan_mcap"]

MAGIC = b"\x89MCAP0\r\n"
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
OP_DATA_END = 0x0F


@dataclass
class SalvageChannel:
    id: int
    topic: str
    msgtype: str
    encoding: str
    msgdef: str = ""
    metadata: dict = field(default_factory=dict)


class _Buf:
    """A cursor over bytes; every read raises EOFError when the bytes run out."""

    def __init__(self, data: bytes | memoryview, pos: int = 0) -> None:
        self.data = memoryview(data)
        self.pos = pos

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise EOFError
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> str:
        return bytes(self.take(self.u32())).decode("utf-8", "replace")


class McapScan:
    """Scan an MCAP file: ``channels`` (filled while scanning) and ``messages()``.

    After ``messages()`` is exhausted, ``problem`` says why the scan stopped early (``None`` when
    the file was read to its end) and ``bytes_read`` how far it got.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.channels: dict[int, SalvageChannel] = {}
        self.schemas: dict[int, tuple[str, str, str]] = {}  # id -> (name, encoding, definition)
        self.problem: str | None = None
        self.bytes_read = 0
        self.messages_read = 0

    def _record(self, op: int, body: memoryview, log_filter) -> Iterator[tuple[SalvageChannel, int, bytes]]:
        b = _Buf(body)
        if op == OP_SCHEMA:
            sid = b.u16()
            name, enc = b.string(), b.string()
            data = bytes(b.take(b.u32())).decode("utf-8", "replace")
            self.schemas[sid] = (name, enc, data)
        elif op == OP_CHANNEL:
            cid, sid = b.u16(), b.u16()
            topic, enc = b.string(), b.string()
            meta: dict[str, str] = {}
            mb = _Buf(b.take(b.u32()))
            while mb.left():
                k = mb.string()
                meta[k] = mb.string()
            name, _, msgdef = self.schemas.get(sid, ("", "", ""))
            self.channels[cid] = SalvageChannel(cid, topic, name, enc, msgdef, meta)
        elif op == OP_MESSAGE:
            cid = b.u16()
            b.u32()  # sequence
            log_time = b.u64()
            b.u64()  # publish time
            ch = self.channels.get(cid)
            if ch is None:
                raise ValueError(f"message on unknown channel {cid}")
            if log_filter(ch):
                self.messages_read += 1
                yield ch, log_time, bytes(b.take(b.left()))
        elif op == OP_CHUNK:
            yield from self._chunk(body, log_filter, complete=True)

    def _chunk(self, body: memoryview, log_filter, complete: bool) -> Iterator[tuple[SalvageChannel, int, bytes]]:
        b = _Buf(body)
        b.u64(), b.u64()  # message start / end time
        size = b.u64()
        b.u32()  # crc (not checked: a cut-off chunk cannot match it)
        compression = b.string()
        length = b.u64()
        records = b.take(min(length, b.left()))
        if len(records) < length and complete:
            raise ValueError("chunk shorter than its length field")
        partial = len(records) < length
        if compression == "":
            inner = records
        elif compression == "zstd":
            inner = _zstd(bytes(records), size, partial)
        elif compression == "lz4" and not partial:
            from lz4.frame import decompress

            inner = decompress(bytes(records))
        else:
            raise ValueError(f"cut-off chunk compressed with {compression!r} cannot be read")
        ib = _Buf(inner)
        while ib.left():
            start = ib.pos
            try:
                op = ib.take(1)[0]
                rec = ib.take(ib.u64())
            except EOFError:
                if partial or complete is False:
                    ib.pos = start
                    return
                raise ValueError("chunk records end in the middle of a record") from None
            yield from self._record(op, rec, log_filter)

    def messages(self, log_filter=lambda ch: True) -> Iterator[tuple[SalvageChannel, int, bytes]]:
        """Every readable message (channel, log time ns, raw CDR), in file order."""
        with self.path.open("rb") as f:  # mapped, not read: a damaged recording may be gigabytes
            size = os.fstat(f.fileno()).st_size
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        b = _Buf(data)
        if bytes(data[:8]) != MAGIC:
            self.problem = "not an MCAP file (no MCAP magic at its start)"
            return
        b.pos = 8
        while b.left():
            start = b.pos
            try:
                op = b.take(1)[0]
                length = b.u64()
            except EOFError:
                self.problem = f"file ends inside a record header at byte {start}"
                return
            if op == OP_FOOTER or op == OP_DATA_END:
                self.bytes_read = b.pos + min(length, b.left())
                return
            if length > b.left():
                self.problem = (f"file ends inside a record (opcode 0x{op:02x}) at byte {start}: "
                                f"{length} bytes announced, {b.left()} left (truncated)")
                if op == OP_CHUNK:
                    try:
                        yield from self._chunk(b.data[b.pos:], log_filter, complete=False)
                    except (EOFError, ValueError, struct.error):
                        pass
                return
            body = b.take(length)
            try:
                yield from self._record(op, body, log_filter)
            except (EOFError, ValueError, struct.error) as exc:
                self.problem = f"unreadable record (opcode 0x{op:02x}) at byte {start}: {exc or 'too short'}"
                return
            self.bytes_read = b.pos
        self.problem = "file ends without an MCAP footer (truncated)"


def _zstd(data: bytes, size: int, partial: bool) -> bytes:
    try:
        from compression import zstd  # Python >= 3.14
    except ImportError:
        from backports import zstd
    if not partial:
        return zstd.decompress(data)
    d = zstd.ZstdDecompressor()
    try:
        return d.decompress(data)
    except Exception:  # noqa: BLE001 - a cut-off frame: keep nothing of it
        return b""


def scan_mcap(path: str | Path) -> McapScan:
    return McapScan(path)
