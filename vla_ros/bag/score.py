"""Score what the node answered against the ground truth in a bag: ADE/FDE, stops, latency.

Matching is by ``header.stamp``: the node stamps a trajectory with the newest observation it
used, and ``vla bag record-sim`` stamps the ground truth with the frame it belongs to.

The node publishes at its own rate, so one observation may be answered several times (the same
inputs give the same trajectory).  Scoring counts each stamp once: its first OK answer if any,
else its last answer (see :func:`pick_answers`).  ``status_counts`` are over these distinct answer stamps.  ADE/FDE
(x, y in metres, :func:`vla_ros.training.metrics.ade_fde`) are over OK answers that have a ground truth
with the same stamp, per command text, per command kind and overall.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from vla_ros.runtime.safety import Status

__all__ = ["Answer", "Truth", "pick_answers", "score", "format_report", "status_name"]


@dataclass
class Answer:
    stamp_ns: int
    status: int
    command: str
    trajectory: np.ndarray  # (N, 3) x, y, yaw
    dt: float
    inference_latency: float  # seconds (the message's field)
    log_ns: int = 0  # bag time at which it was received / produced
    wall_latency: float | None = None  # seconds from publishing the observation to receiving the answer
    status_reason: str = ""


@dataclass
class Truth:
    stamp_ns: int
    command: str
    trajectory: np.ndarray
    dt: float


def status_name(code: int) -> str:
    try:
        return Status(int(code)).name
    except ValueError:
        return f"STATUS_{int(code)}"


def pick_answers(answers: Iterable[Answer]) -> dict[int, Answer]:
    """One answer per stamp: the first OK one, else the last one (in arrival order).

    OK answers carry the stamp of the newest frame used, so all OK answers of a stamp come from the
    same frames.  Stops carry the node's clock time; while the clock stands still (stepped replay,
    a paused simulation) the node may answer the same time more than once as messages arrive, e.g.
    "stale camera" when /clock arrived before that time's images, then "incomplete history" once
    they are in: the last answer is the one with all the inputs of that time.
    """
    out: dict[int, Answer] = {}
    for a in answers:
        cur = out.get(a.stamp_ns)
        if cur is None or cur.status != Status.OK:
            out[a.stamp_ns] = a
    return dict(sorted(out.items()))


def _stats_ms(values: list[float]) -> dict[str, Any]:
    vals = [v * 1e3 for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return {"n": 0}
    arr = np.asarray(vals)
    return {"n": len(vals), "mean": round(float(arr.mean()), 3), "p50": round(float(np.percentile(arr, 50)), 3),
            "p95": round(float(np.percentile(arr, 95)), 3), "max": round(float(arr.max()), 3)}


def _mean(x: list[float]) -> float | None:
    return round(float(np.mean(x)), 6) if x else None


def score(answers: list[Answer], truths: list[Truth], **meta: Any) -> dict[str, Any]:
    """The report (a JSON-ready dict); ``meta`` entries are copied into it first."""
    picked = pick_answers(answers)
    truth_by_stamp: dict[int, Truth] = {}
    for t in truths:
        truth_by_stamp.setdefault(t.stamp_ns, t)
    tally = _Tally()
    for stamp, a in picked.items():
        tally.add(a, truth_by_stamp.get(stamp))
    ok = [a for a in picked.values() if a.status == Status.OK]
    truth_stamps = set(truth_by_stamp)
    report: dict[str, Any] = dict(meta)
    report.update({
        "answers": len(picked),
        "messages": len(answers),
        "status_counts": dict(sorted(Counter(status_name(a.status) for a in picked.values()).items())),
        "overall": {"scored": len(tally.all_err), "ade_m": _mean([e[0] for e in tally.all_err]),
                    "fde_m": _mean([e[1] for e in tally.all_err])},
        "per_command": tally.per_command(),
        "per_kind": {k: {"scored": len(v), "ade_m": _mean([e[0] for e in v]), "fde_m": _mean([e[1] for e in v])}
                     for k, v in sorted(tally.per_kind.items())},
        "truth": {"stamps": len(truth_stamps), "with_ok_answer": sum(1 for a in ok if a.stamp_ns in truth_stamps),
                  "ok_answers_without_truth": tally.ok_without_truth, "dt_mismatch": tally.dt_mismatch},
        "latency_ms": {"inference": _stats_ms([a.inference_latency for a in ok]),
                       "publish_to_answer": _stats_ms([a.wall_latency for a in ok if a.wall_latency is not None])},
    })
    return report


class _Tally:
    """Answers (one per stamp) grouped by command, with the (ADE, FDE) of the OK ones that have a
    ground truth of the same stamp and step."""

    def __init__(self) -> None:
        self.groups: dict[str, dict[str, Any]] = {}
        self.per_kind: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.all_err: list[tuple[float, float]] = []
        self.dt_mismatch = 0
        self.ok_without_truth = 0

    def add(self, a: Answer, truth: Truth | None) -> None:
        from vla_ros.sim.commands import kind_from_text
        from vla_ros.training.metrics import ade_fde

        text = truth.command if truth is not None else a.command
        g = self.groups.setdefault(text, {"command": text, "kind": kind_from_text(text) if text else None,
                                          "answers": 0, "status_counts": Counter(), "errors": []})
        g["answers"] += 1
        g["status_counts"][status_name(a.status)] += 1
        if a.status != Status.OK:
            return
        if truth is None:
            self.ok_without_truth += 1
            return
        if abs(a.dt - truth.dt) > 1e-6:
            self.dt_mismatch += 1
            return
        n = min(len(a.trajectory), len(truth.trajectory))
        ade, fde = ade_fde(a.trajectory[None, :n], truth.trajectory[None, :n])
        err = (float(ade[0]), float(fde[0]))
        g["errors"].append(err)
        self.all_err.append(err)
        self.per_kind[g["kind"] or "unknown"].append(err)

    def per_command(self) -> list[dict[str, Any]]:
        out = []
        for g in self.groups.values():
            errs = g.pop("errors")
            g["status_counts"] = dict(sorted(g["status_counts"].items()))
            g["scored"] = len(errs)
            g["ade_m"] = _mean([e[0] for e in errs])
            g["fde_m"] = _mean([e[1] for e in errs])
            out.append(g)
        return out


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of a report."""
    lines = []
    head = [f"{k}: {report[k]}" for k in ("mode", "bag", "output") if report.get(k)]
    if head:
        lines.append("  ".join(head))
    w = max([12, *(len(g["command"]) for g in report["per_command"])])
    w = min(w, 48)
    lines.append(f"{'command':<{w}}  {'kind':<11} {'answers':>7} {'OK':>5} {'stops':>5} {'scored':>6} "
                 f"{'ADE [m]':>8} {'FDE [m]':>8}")
    for g in report["per_command"]:
        ok = g["status_counts"].get("OK", 0)
        name = g["command"] or "(no command)"
        lines.append(f"{name[:w]:<{w}}  {(g['kind'] or '-'):<11} {g['answers']:>7} {ok:>5} "
                     f"{g['answers'] - ok:>5} {g['scored']:>6} {_f(g['ade_m']):>8} {_f(g['fde_m']):>8}")
    ov = report["overall"]
    ok = report["status_counts"].get("OK", 0)
    lines.append(f"{'all':<{w}}  {'':<11} {report['answers']:>7} {ok:>5} {report['answers'] - ok:>5} "
                 f"{ov['scored']:>6} {_f(ov['ade_m']):>8} {_f(ov['fde_m']):>8}")
    lines.append("status (distinct answer stamps): " +
                 (", ".join(f"{k} {v}" for k, v in report["status_counts"].items()) or "no answers"))
    lat = report["latency_ms"]

    def stat(s: dict) -> str:
        return f"p50 {s['p50']:.1f} p95 {s['p95']:.1f} max {s['max']:.1f} (n={s['n']})" if s.get("n") else "-"

    lines.append(f"latency [ms]: inference {stat(lat['inference'])}; publish->answer {stat(lat['publish_to_answer'])}")
    tr = report["truth"]
    if tr["stamps"]:
        lines.append(f"ground truth: {tr['stamps']} stamps, {tr['with_ok_answer']} with an OK answer; "
                     f"{tr['ok_answers_without_truth']} OK answers without ground truth")
    else:
        lines.append("ground truth: none in the bag (no ADE/FDE)")
    for key, label in (("observations", "observations"), ("unanswered", "unanswered (stepped, timed out)")):
        if report.get(key) is not None:
            lines.append(f"{label}: {report[key]}")
    if report.get("damaged"):
        lines.append(f"DAMAGED INPUT: {report['damaged']['error']} (report covers what was read)")
    return "\n".join(lines)
