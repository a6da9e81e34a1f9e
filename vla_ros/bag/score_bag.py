"""Scoring a bag of answers (``vla bag score``): the answers and the ground truth read from bags."""

from __future__ import annotations

import json
from pathlib import Path

from vla_ros.bag import schema
from vla_ros.bag.io import BagDamagedError, BagError, BagReader, read_custom_data
from vla_ros.bag.score import Answer, Truth, score
from vla_ros.bag.session import REPLAY_KEY
from vla_ros.bag.topics import normalize_topic, topic_listing
from vla_ros.runtime.safety import Status

__all__ = ["answers_from_bag", "score_bag", "truths_from_bag"]


def _trajectory_topic(reader: BagReader, given: str | None, default: str, exclude: str | None) -> str | None:
    if given:
        name = normalize_topic(given)
        if name not in reader.topics or reader.topics[name].msgtype != schema.TRAJECTORY:
            raise BagError(f"{name}: not a {schema.TRAJECTORY} topic of {reader.path} "
                           f"(topics: {topic_listing(reader)})")
        return name
    if default in reader.topics and reader.topics[default].msgtype == schema.TRAJECTORY:
        return default
    cands = [t.name for t in reader.topics.values() if t.msgtype == schema.TRAJECTORY and t.name != exclude]
    return cands[0] if len(cands) == 1 else None


def answers_from_bag(reader: BagReader, topic: str) -> tuple[list[Answer], BagDamagedError | None]:
    lat: dict[int, float] = {}
    try:
        for s, v in _replay_info(reader.path).get("publish_to_answer_s", []):
            lat.setdefault(int(s), float(v))  # the first answer to each stamp
    except (ValueError, TypeError):
        pass
    out: list[Answer] = []
    used: set[int] = set()
    try:
        for m in reader.messages([topic]):
            d = schema.trajectory_data(m.decode())
            wall = lat.get(d.stamp_ns) if d.status == Status.OK and d.stamp_ns not in used else None
            if wall is not None:
                used.add(d.stamp_ns)
            out.append(Answer(d.stamp_ns, d.status, d.command, d.trajectory, d.dt, d.inference_latency, m.log_ns, wall,
                              d.status_reason))
    except BagDamagedError as exc:
        return out, exc
    return out, None


def truths_from_bag(reader: BagReader, topic: str) -> tuple[list[Truth], BagDamagedError | None]:
    out: list[Truth] = []
    try:
        for m in reader.messages([topic]):
            d = schema.trajectory_data(m.decode())
            out.append(Truth(d.stamp_ns, d.command, d.trajectory, d.dt))
    except BagDamagedError as exc:
        return out, exc
    return out, None


def score_bag(out_bag: str | Path, truth_bag: str | Path | None = None, pred_topic: str | None = None,
              truth_topic: str | None = None) -> dict:
    """The report of a bag of answers (``vla bag score``); ground truth from ``truth_bag`` or the bag itself."""
    damaged = []
    with BagReader(out_bag) as reader:
        ptopic = _trajectory_topic(reader, pred_topic, schema.TOPIC_TRAJECTORY, schema.TOPIC_TRUTH)
        if ptopic is None:
            raise BagError(f"{out_bag}: which topic holds the answers? pass --pred-topic "
                           f"(topics: {topic_listing(reader)})")
        answers, dmg = answers_from_bag(reader, ptopic)
        if dmg:
            damaged.append(str(dmg))
        truths: list[Truth] = []
        src = None
        if truth_bag is None:
            ttopic = _trajectory_topic(reader, truth_topic, schema.TOPIC_TRUTH, ptopic)
            if ttopic is not None and ttopic != ptopic:
                truths, src = _read_truths(reader, ttopic, f"{out_bag}:{ttopic}", damaged)
        info = _replay_info(reader.path)
    if truth_bag is not None:
        with BagReader(truth_bag) as treader:
            ttopic = _trajectory_topic(treader, truth_topic, schema.TOPIC_TRUTH, None)
            if ttopic is None:
                raise BagError(f"{truth_bag}: no ground truth topic; pass --truth-topic "
                               f"(topics: {topic_listing(treader)})")
            truths, src = _read_truths(treader, ttopic, f"{truth_bag}:{ttopic}", damaged)
    meta = {"mode": "score", "bag": str(out_bag), "answers_topic": ptopic, "truth_source": src,
            "replay": {k: info[k] for k in ("mode", "bag", "checkpoint") if k in info} or None}
    if info.get("observations") is not None:
        meta["observations"] = info["observations"]
    report = score(answers, truths, **meta)
    if damaged:
        report["damaged"] = {"error": "; ".join(damaged)}
    return report


def _read_truths(reader: BagReader, topic: str, source: str, damaged: list[str]) -> tuple[list[Truth], str]:
    """The ground truth on ``topic`` and its source name; a damage message is appended to ``damaged``."""
    truths, dmg = truths_from_bag(reader, topic)
    if dmg:
        damaged.append(str(dmg))
    return truths, source


def _replay_info(path: str | Path) -> dict:
    """The settings a replay wrote into its output bag (empty when there are none or they do not parse)."""
    try:
        return json.loads(read_custom_data(path).get(REPLAY_KEY, "{}"))
    except ValueError:
        return {}
