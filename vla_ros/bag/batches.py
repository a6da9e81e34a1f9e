"""Reading a bag as observations, and feeding them to a NodeCore as the node's callbacks would.

The messages of the chosen topics come in bag (log) time order, grouped by equal log time.  A group
with at least one image is an *observation*.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Any, Iterator

from vla_ros.bag import schema
from vla_ros.bag.io import BagDamagedError, BagMessage, BagReader
from vla_ros.bag.topics import Roles
from vla_ros.runtime.history import NS

__all__ = ["CAMERAS", "Item", "Batch", "iter_batches", "feed", "quiet_logger"]

CAMERAS = ("ego", "top")


@dataclass
class Item:
    role: str  # ego | top | command | truth | odom
    msg: BagMessage
    value: Any  # ImageFields | str | TrajectoryData


@dataclass
class Batch:
    """The bag's messages of one log time."""

    log_ns: int
    items: list[Item] = field(default_factory=list)

    @property
    def has_images(self) -> bool:
        return any(i.role in CAMERAS for i in self.items)


def _decode(role: str, m: BagMessage) -> Any:
    msg = m.decode()
    if role in CAMERAS:
        return schema.image_fields(m.msgtype, msg)
    if role == "command":
        return str(msg.data)
    if role == "odom":
        return schema.odometry_data(msg)
    return schema.trajectory_data(msg)


def iter_batches(reader: BagReader, roles: Roles, command_text: str | None = None) -> Iterator[Batch]:
    """Batches in log time order; on damage, the batch read so far comes out, then BagDamagedError.

    ``command_text``: a command to give before the bag's first message (for bags without one).
    """
    role_of = roles.role_of()
    cur: Batch | None = None
    first = True
    try:
        for m in reader.messages(role_of):
            role = role_of[m.topic]
            try:
                value = _decode(role, m)
            except Exception as exc:  # noqa: BLE001 - corrupt CDR = a damaged bag
                raise BagDamagedError(f"bag {reader.path}: message on {m.topic} at {m.log_ns / NS:.3f} s cannot be "
                                      f"decoded as {m.msgtype} ({type(exc).__name__}: {str(exc)[:120]}): "
                                      "the bag is damaged", -1, m.log_ns) from None
            if first and command_text is not None:
                raw = schema.serialize(schema.typestore().types[schema.STRING](data=command_text), schema.STRING)
                cur = Batch(m.log_ns - 1, [Item("command", BagMessage(roles.command or schema.TOPIC_COMMAND,
                                                                      schema.STRING, m.log_ns - 1, raw), command_text)])
            first = False
            if cur is not None and m.log_ns != cur.log_ns:
                yield cur
                cur = None
            if cur is None:
                cur = Batch(m.log_ns)
            cur.items.append(Item(role, m, value))
    except BagDamagedError:
        if cur is not None:
            yield cur
        raise
    if cur is not None:
        yield cur


def feed(core: Any, batch: Batch) -> None:
    """Give a batch's commands, images and odometry to a NodeCore (what the node's callbacks do)."""
    for it in batch.items:
        if it.role == "command":
            core.on_command(it.value)
        elif it.role == "odom":
            o = it.value
            core.on_odometry(o.stamp_ns, o.v, o.omega)
        elif it.role in CAMERAS:
            f = it.value
            core.on_image(it.role, f.stamp_ns, f.encoding, f.height, f.width, f.step, f.data)


def quiet_logger(name: str, verbose: bool) -> logging.Logger:
    """A logger for a NodeCore run in this process: its own stderr handler, status changes only when ``verbose``."""
    log = logging.getLogger(name)
    if not log.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter(f"[{name}] %(levelname)s %(message)s"))
        log.addHandler(h)
    log.setLevel(logging.INFO if verbose else logging.ERROR)
    log.propagate = False
    return log
