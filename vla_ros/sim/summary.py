"""What a closed-loop run reports: success per command kind, the table ``vla sim`` prints, one line
per progress event, and the JSON report and videos it writes."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vla_ros.sim.commands import KINDS
from vla_ros.sim.options import SimOptions
from vla_ros.sim.record import EpisodeRecord
from vla_ros.sim.video import write_episode_gif, write_strip

__all__ = ["summarize", "format_summary", "print_event", "write_outputs"]


def summarize(records: Sequence[EpisodeRecord | dict]) -> dict:
    """Success rate per command kind and overall, mean time to goal, trajectory rates."""
    rows = [r.to_dict() if isinstance(r, EpisodeRecord) else r for r in records]
    per_kind: dict[str, dict] = {}
    for kind in [k for k in KINDS if any(r["meta"]["kind"] == k for r in rows)] + sorted(
            {r["meta"]["kind"] for r in rows} - set(KINDS)):
        rs = [r["result"] for r in rows if r["meta"]["kind"] == kind]
        ttg = [x["time_to_goal"] for x in rs if x["success"] and x.get("time_to_goal") is not None]
        per_kind[kind] = {
            "episodes": len(rs),
            "successes": sum(bool(x["success"]) for x in rs),
            "success_rate": sum(bool(x["success"]) for x in rs) / len(rs),
            "collisions": sum(bool(x["collision"]) for x in rs),
            "blocked": sum(bool(r["meta"].get("blocking_obstacle")) for r in rows if r["meta"]["kind"] == kind),
            "mean_time_to_goal": float(np.mean(ttg)) if ttg else None,
        }
    res = [r["result"] for r in rows]
    wall = sum(x["wall_s"] for x in res)
    msgs = sum(x["trajectories"] for x in res)
    sim_s = sum(x["sim_s"] for x in res)
    lat = [x["mean_inference_latency"] for x in res if x.get("mean_inference_latency") is not None]
    goto_ttg = [x["time_to_goal"] for r, x in zip(rows, res)
                if r["meta"]["kind"].startswith("goto_") and x["success"] and x.get("time_to_goal") is not None]
    return {
        "episodes": len(rows),
        "successes": sum(bool(x["success"]) for x in res),
        "success_rate": (sum(bool(x["success"]) for x in res) / len(res)) if res else None,
        "collisions": sum(bool(x["collision"]) for x in res),
        "mean_time_to_goal_goto": float(np.mean(goto_ttg)) if goto_ttg else None,
        "trajectories": msgs,
        "trajectories_per_wall_s": msgs / wall if wall > 0 else None,
        "trajectories_per_sim_s": msgs / sim_s if sim_s > 0 else None,
        "mean_inference_latency": float(np.mean(lat)) if lat else None,
        "wall_s": wall,
        "sim_s": sim_s,
        "mean_episode_wall_s": wall / len(rows) if rows else None,
        "per_kind": per_kind,
    }


def format_summary(summary: dict) -> str:
    """The per-command table ``vla sim`` prints."""
    f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
    expert = summary.get("expert")
    ex = (lambda k: "" if expert is None else f" {k['success_rate']:>7.0%}")  # noqa: E731
    lines = [f"{'command':<12} {'episodes':>8} {'success':>8} {'rate':>6} {'collisions':>10} {'blocked':>8} "
             f"{'time to goal':>13}" + ("" if expert is None else f" {'expert':>7}")]
    for kind, k in summary["per_kind"].items():
        ttg = "-" if k["mean_time_to_goal"] is None else f"{k['mean_time_to_goal']:.1f} s"
        lines.append(f"{kind:<12} {k['episodes']:>8} {k['successes']:>8} {k['success_rate']:>6.0%} "
                     f"{k['collisions']:>10} {k.get('blocked', 0):>8} {ttg:>13}"
                     + (ex(expert["per_kind"][kind]) if expert and kind in expert["per_kind"] else ""))
    s = summary
    if s["episodes"]:
        ttg = "-" if s["mean_time_to_goal_goto"] is None else f"{s['mean_time_to_goal_goto']:.1f} s"
        blocked = sum(k.get("blocked", 0) for k in s["per_kind"].values())
        lines.append(f"{'all':<12} {s['episodes']:>8} {s['successes']:>8} {s['success_rate']:>6.0%} "
                     f"{s['collisions']:>10} {blocked:>8} {ttg:>13}" + (ex(expert) if expert else ""))
    if expert:
        lines.append("expert: the rule-based expert (true state, no cameras) on the same episodes through the "
                     "same loop; an obstacle across the way fails goto / lane episodes even for it")
    lat = s.get("mean_inference_latency")
    lines.append(f"trajectories: {s['trajectories']} in {s['wall_s']:.1f} s wall = "
                 f"{f(s['trajectories_per_wall_s'], '.2f')}/s (per simulated second: "
                 f"{f(s['trajectories_per_sim_s'], '.2f')}); mean inference latency "
                 + ("-" if lat is None else f"{lat * 1e3:.0f} ms")
                 + f"; {f(s['mean_episode_wall_s'], '.1f')} s wall per episode")
    return "\n".join(lines)


def print_event(event: dict, episodes: int, out=sys.stdout) -> None:
    """One line per episode start / end and per change of what the robot does."""
    ev = event.get("event")
    if ev == "ready":
        print(f"  VLA node up after {event['wait_s']:.1f} s", file=out, flush=True)
    elif ev == "start":
        print(f"episode {event['episode'] + 1}/{episodes or '-'} (seed {event['seed']}): "
              f"\"{event['text']}\"  [{event['kind']}]", file=out, flush=True)
    elif ev == "mode" and event.get("mode") != "warmup":
        what = {"track": "following the model's trajectory", "stop": "stopped by the node",
                "timeout": "no trajectories: stopped", "expired": "trajectory ran out: stopped",
                "idle": "no trajectory yet"}.get(event["mode"], event["mode"])
        reason = f" ({event['reason']})" if event.get("reason") and event["mode"] != "track" else ""
        print(f"  t={event['t']:+5.1f} s  {what}{reason}", file=out, flush=True)
    elif ev == "end":
        statuses = ", ".join(f"{k} x{v}" for k, v in sorted(event.get("status", {}).items()))
        print(f"  -> {'SUCCESS' if event['success'] else 'FAILED '}: {event['reason']}  "
              f"[{event['trajectories']} trajectories: {statuses or 'none'}; {event['wall_s']:.1f} s wall]",
              file=out, flush=True)


def write_outputs(records: list, summary: dict, opts: SimOptions, json_path: str | None = None,
                  video_dir: str | None = None, video_size: int = 192, out=sys.stdout) -> dict:
    """The JSON report and the videos; returns {"json": path, "gifs": [...], "strip": path}."""
    written: dict[str, Any] = {}
    if json_path:
        settings = {k: v for k, v in asdict(opts).items()}
        episodes = []
        for r in records:
            meta = {k: v for k, v in r.meta.items() if k not in ("layout", "world_config", "tracker", "criteria")}
            episodes.append({**meta, "result": r.result, "received": r.received})
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"summary": summary, "settings": settings, "episodes": episodes}, indent=1))
        written["json"] = str(path)
        print(f"wrote {path}", file=out)
    if video_dir and records:
        vdir = Path(video_dir)
        gifs = []
        for r in records:
            name = f"episode_{r.meta['episode']:03d}_{r.meta['kind']}.gif"
            gifs.append(str(write_episode_gif(r, vdir / name, size=video_size)))
        strip = write_strip(records, vdir / "episodes.png")
        written["gifs"], written["strip"] = gifs, str(strip)
        print(f"wrote {len(gifs)} GIFs and {strip} (one row per episode) to {vdir}", file=out)
    return written
