"""What a replay produces: the answers, the ground truth read, the output bag and the report.

Everything the node publishes on ``trajectory`` (and ``trajectory/path``) is recorded into the
output bag; the ground truth and the commands of the input bag are copied next to them, so the
output bag scores by itself (``vla bag score``).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from vla_ros.bag import schema
from vla_ros.bag.batches import Batch
from vla_ros.bag.io import BagMessage, BagWriter
from vla_ros.bag.score import Answer, Truth, score

__all__ = ["REPLAY_KEY", "Session", "make_answer"]

REPLAY_KEY = "vla_ros.replay"  # custom_data key of output bags (settings, publish->answer latencies)


def make_answer(raw: bytes, log_ns: int, wall_latency: float | None = None) -> Answer:
    d = schema.trajectory_data(schema.deserialize(raw, schema.TRAJECTORY))
    return Answer(d.stamp_ns, d.status, d.command, d.trajectory, d.dt, d.inference_latency, log_ns, wall_latency,
                  d.status_reason)


class Session:
    """What a replay produces: answers, the ground truth read, the output bag and the report."""

    def __init__(self, record: str | Path | None, overwrite: bool = False, meta: dict | None = None) -> None:
        self.meta = dict(meta or {})
        self.answers: list[Answer] = []
        self.truths: list[Truth] = []
        self.observations = 0
        self.unanswered = 0
        self.damaged: dict | None = None
        self.interrupted = False
        self._lock = threading.Lock()
        self.writer: BagWriter | None = None
        if record:
            self.writer = BagWriter(record, overwrite=overwrite)
            self.writer.add_topic(schema.TOPIC_TRAJECTORY, schema.TRAJECTORY, schema.RELIABLE_QOS())

    # input copies (the output bag scores by itself)
    def add_inputs(self, batch: Batch) -> None:
        for it in batch.items:
            if it.role == "truth":
                self.truths.append(Truth(it.value.stamp_ns, it.value.command, it.value.trajectory, it.value.dt))
                self._copy(schema.TOPIC_TRUTH, schema.TRAJECTORY, schema.RELIABLE_QOS(), it.msg)
            elif it.role == "command":
                self._copy(schema.TOPIC_COMMAND, schema.STRING, schema.LATCHED_QOS(), it.msg)

    def _copy(self, topic: str, msgtype: str, qos, m: BagMessage) -> None:
        if self.writer is not None:
            self.writer.add_topic(topic, msgtype, qos)
            self.writer.write(topic, m.log_ns, m.raw)

    def add_answer(self, raw: bytes, log_ns: int, wall_latency: float | None = None) -> Answer:
        return self.keep(make_answer(raw, log_ns, wall_latency), raw)

    def keep(self, a: Answer, raw: bytes) -> Answer:
        """Record an answer (its serialized message goes to the output bag at ``a.log_ns``)."""
        with self._lock:
            self.answers.append(a)
        if self.writer is not None:
            self.writer.write(schema.TOPIC_TRAJECTORY, a.log_ns, raw)
        return a

    def add_path(self, raw: bytes, log_ns: int) -> None:
        if self.writer is not None:
            self.writer.add_topic(schema.TOPIC_PATH, schema.PATH, schema.RELIABLE_QOS())
            self.writer.write(schema.TOPIC_PATH, log_ns, raw)

    def finish(self, report_path: str | Path | None = None) -> dict:
        """Close the output bag and compute (and write) the report."""
        with self._lock:
            answers = list(self.answers)
        extra = {"observations": self.observations}
        if self.meta.get("mode") == "stepped":
            extra["unanswered"] = self.unanswered
        if self.damaged:
            extra["damaged"] = self.damaged
        if self.interrupted:
            extra["interrupted"] = True
        report = score(answers, self.truths, **self.meta, **extra)
        if self.writer is not None:
            lat = [[a.stamp_ns, a.wall_latency] for a in answers if a.wall_latency is not None]
            self.writer.set_custom_data(REPLAY_KEY, {**{k: v for k, v in self.meta.items() if k != "output"},
                                                    **extra, "publish_to_answer_s": lat})
            self.writer.close()
        if report_path:
            Path(report_path).parent.mkdir(parents=True, exist_ok=True)
            Path(report_path).write_text(json.dumps(report, indent=2) + "\n")
        return report

    def close_on_error(self) -> None:
        if self.writer is not None and not self.writer.closed:
            self.writer.close()
