"""Which bag topic plays which part of a replay: the given names, the standard ones, or a guess."""

from __future__ import annotations

from dataclasses import dataclass, field

from vla_ros.bag import schema
from vla_ros.bag.io import BagError, BagReader

__all__ = ["Roles", "normalize_topic", "resolve_topics", "topic_listing"]


@dataclass
class Roles:
    """Which bag topic plays which part."""

    ego: str
    top: str
    command: str | None
    truth: str | None
    types: dict[str, str] = field(default_factory=dict)
    odom: str | None = None  # nav_msgs/Odometry: the measured velocity for the model

    def role_of(self) -> dict[str, str]:
        out = {self.ego: "ego", self.top: "top"}
        if self.command:
            out[self.command] = "command"
        if self.truth:
            out[self.truth] = "truth"
        if self.odom:
            out[self.odom] = "odom"
        return out

    def to_dict(self) -> dict[str, str | None]:
        return {"ego": self.ego, "top": self.top, "command": self.command, "truth": self.truth, "odom": self.odom}


def normalize_topic(topic: str) -> str:
    return topic if topic.startswith("/") else "/" + topic


def topic_listing(reader: BagReader, types: tuple[str, ...] | None = None) -> str:
    rows = [f"{t.name} [{t.msgtype}]" for t in sorted(reader.topics.values(), key=lambda t: t.name)
            if types is None or t.msgtype in types]
    return ", ".join(rows) or "none"


def resolve_topics(reader: BagReader, ego: str | None = None, top: str | None = None, command: str | None = None,
                   truth: str | None = None, odom: str | None = None) -> Roles:
    """Pick the topics: the given names, else the standard ones, else an unambiguous guess.
    ``odom="none"`` replays without odometry even when the bag has it."""
    topics = reader.topics

    def check(role: str, flag: str, name: str, types: tuple[str, ...]) -> str:
        name = normalize_topic(name)
        if name not in topics:
            raise BagError(f"{flag} {name}: the bag has no such topic (topics: {topic_listing(reader)})")
        if topics[name].msgtype not in types:
            raise BagError(f"{flag} {name} is {topics[name].msgtype}, not {' or '.join(types)}")
        return name

    def pick(role: str, flag: str, given: str | None, default: str, types: tuple[str, ...], words: tuple[str, ...],
             required: bool) -> str | None:
        if given:
            return check(role, flag, given, types)
        if default in topics and topics[default].msgtype in types:
            return default
        cands = [t.name for t in topics.values() if t.msgtype in types]
        named = [n for n in cands if any(w in n.lower() for w in words)]
        if len(named) == 1:
            return named[0]
        if not required:
            return cands[0] if len(cands) == 1 and role == "command" else None
        raise BagError(f"which topic is the {role} camera? pass {flag} TOPIC "
                       f"(image topics in the bag: {topic_listing(reader, schema.IMAGE_TYPES)})")

    ego_t = pick("ego", "--ego", ego, schema.TOPIC_EGO, schema.IMAGE_TYPES, ("ego", "front"), True)
    top_t = pick("top", "--top", top, schema.TOPIC_TOP, schema.IMAGE_TYPES, ("top", "overhead", "bird"), True)
    if ego_t == top_t:
        raise BagError(f"ego and top are both {ego_t}: pass --ego and --top with two different image topics")
    cmd_t = pick("command", "--command", command, schema.TOPIC_COMMAND, (schema.STRING,), ("command", "instruction"),
                 False)
    truth_t = pick("truth", "--truth-topic", truth, schema.TOPIC_TRUTH, (schema.TRAJECTORY,), ("truth", "gt", "expert"),
                   False)
    odom_t = None if odom == "none" else pick("odom", "--odom", odom, schema.TOPIC_ODOM, (schema.ODOMETRY,),
                                               ("odom",), False)
    roles = Roles(ego_t, top_t, cmd_t, truth_t, odom=odom_t)
    roles.types = {t: topics[t].msgtype for t in roles.role_of()}
    return roles
