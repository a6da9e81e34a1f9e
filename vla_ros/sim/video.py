"""What a person watches of closed-loop episodes: frames with the plan drawn over the top view, animated
GIFs and a PNG overview (Pillow, imported when drawing)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from vla_ros.runtime.history import NS
from vla_ros.sim.config import WorldConfig
from vla_ros.sim.layout import Layout
from vla_ros.sim.record import EpisodeRecord
from vla_ros.sim.world import World

__all__ = ["render_episode_frames", "write_gif", "write_episode_gif", "write_strip"]


def _world_for(record: EpisodeRecord, size: int) -> World:
    cfg = WorldConfig.from_dict({**record.meta["world_config"], "image_size": int(size)})
    world = World(cfg)
    m = record.meta
    world.reset(seed=m["seed"], kind=m["kind"], split=m.get("split", "train"), text=m["text"],
                layout=Layout.from_dict(m["layout"]), state=record.states[0])
    return world


def render_episode_frames(record: EpisodeRecord, size: int = 192, stride: int = 2, ego: bool = True,
                          steps: Sequence[int] | None = None):
    """Yield (step, PIL.Image) frames (every ``stride``-th step and the last, or ``steps``): the top
    view with the robot's path (white), the plan in use (orange; red while the robot is stopped) and
    the goal radius around the target cone; the ego view beside it."""
    from PIL import Image, ImageDraw

    from vla_ros.sim.render import world_to_top_pixel

    world = _world_for(record, size)
    cfg = world.config
    target = _target_pixel(world, record.meta["kind"])
    radius = record.meta.get("criteria", {}).get("goal_radius", 0.8) * (size / cfg.arena_size)
    n = len(record.states)
    path_px = world_to_top_pixel(record.states[:, :2], cfg)
    if steps is None:
        steps = list(range(0, n, max(1, stride)))
        if steps[-1] != n - 1:
            steps.append(n - 1)
    for k in steps:
        st = record.states[k]
        top = Image.fromarray(world.render_top(st))
        d = ImageDraw.Draw(top)
        if target is not None:
            d.ellipse([target[0] - radius, target[1] - radius, target[0] + radius, target[1] + radius],
                      outline=(255, 255, 255))
        if k > 0:
            d.line([tuple(p) for p in path_px[: k + 1]], fill=(255, 255, 255), width=1)
        ki = min(k, len(record.modes) - 1)
        mode = record.modes[ki] if record.modes else "warmup"
        pid = record.plan_ids[ki] if record.plan_ids else -1
        if 0 <= pid < len(record.plans) and record.plans[pid].get("world"):
            _draw_plan(d, record, pid, mode, cfg)
        panels = [top]
        if ego:
            panels.insert(0, Image.fromarray(world.render_ego(st)))
        yield k, _frame(panels, record, k, mode, size)


def _target_pixel(world: World, kind: str):
    """Top-view pixel of the commanded cone (goto_* kinds), else None."""
    from vla_ros.sim.render import world_to_top_pixel

    if not kind.startswith("goto_"):
        return None
    try:
        cone = world.layout.cone(kind[5:])
    except KeyError:
        return None
    return world_to_top_pixel(np.array([cone.x, cone.y]), world.config)


def _draw_plan(d, record: EpisodeRecord, pid: int, mode: str, cfg: WorldConfig) -> None:
    """The plan ``pid`` from the robot's pose at its stamp: orange while tracked, red once it stopped the robot."""
    from vla_ros.sim.render import world_to_top_pixel

    n = len(record.states)
    wp = np.asarray(record.plans[pid]["world"])
    stamp = record.plans[pid]["stamp_ns"]
    anchor = record.states[max(0, min(n - 1, int(round((stamp - record.stamps_ns[0]) / (cfg.sim_dt * NS)))))]
    pts = world_to_top_pixel(np.concatenate([anchor[None, :2], wp[:, :2]], 0), cfg)
    col = (255, 150, 0) if mode == "track" else (230, 40, 40)
    d.line([tuple(p) for p in pts], fill=col, width=2)
    for p in pts[1:]:
        d.ellipse([p[0] - 1.5, p[1] - 1.5, p[0] + 1.5, p[1] + 1.5], fill=col)


def _frame(panels: list, record: EpisodeRecord, k: int, mode: str, size: int):
    """The panels side by side under a two-line caption: the command, then time, speed, mode (and the
    result on the last step); shorter wording when the frame is narrow."""
    from PIL import Image, ImageDraw

    m, st, n = record.meta, record.states[k], len(record.states)
    w = sum(p.width for p in panels)
    bar = 30
    frame = Image.new("RGB", (w, size + bar), (20, 20, 20))
    x = 0
    for p in panels:
        frame.paste(p, (x, bar))
        x += p.width
    d = ImageDraw.Draw(frame)
    t = (record.stamps_ns[k] - record.stamps_ns[0]) / NS - m.get("warmup", 0.0)
    head = f"'{m['text']}'" + (f"  ({m['kind']}, seed {m['seed']})" if w >= 300 else "")
    d.text((4, 2), head, fill=(255, 255, 255))
    status = "warm-up" if mode == "warmup" else mode
    line2 = f"t={t:+.1f} s  v={st[3]:.2f} m/s  {status}" if w >= 300 else f"t={t:+.1f}s v={st[3]:.2f} {status}"
    if k == n - 1 and record.result:
        line2 += "  SUCCESS" if record.result.get("success") else "  FAILED"
    d.text((4, 15), line2, fill=(255, 220, 120) if mode in ("track", "warmup") else (255, 120, 120))
    return frame


def write_gif(records: Sequence[EpisodeRecord], path: str | Path, size: int = 192, stride: int = 2,
              ego: bool = True, hold_ms: int = 1500) -> Path:
    """An animated GIF of one or more episodes one after the other, at real-time speed (``stride``
    sim steps per frame); each episode's last frame stays ``hold_ms`` on screen."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames, durations = [], []
    for rec in records:
        ep = [f for _, f in render_episode_frames(rec, size=size, stride=stride, ego=ego)]
        frames += ep
        durations += [int(round(rec.meta["sim_dt"] * stride * 1000))] * (len(ep) - 1) + [hold_ms]
    if not frames:
        raise ValueError("no episodes to draw")
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0, optimize=False)
    return path


def write_episode_gif(record: EpisodeRecord, path: str | Path, size: int = 192, stride: int = 2,
                      ego: bool = True) -> Path:
    """An animated GIF of one episode (see :func:`write_gif`)."""
    return write_gif([record], path, size=size, stride=stride, ego=ego)


def write_strip(records: Sequence[EpisodeRecord], path: str | Path, size: int = 160, columns: int = 5) -> Path:
    """A PNG with one row per episode: ``columns`` top views (plan drawn) evenly spread over it."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for rec in records:
        n = len(rec.states)
        wanted = sorted({int(round(x)) for x in np.linspace(0, n - 1, columns)})
        rows.append([f for _, f in render_episode_frames(rec, size=size, ego=False, steps=wanted)])
    if not rows or not rows[0]:
        raise ValueError("no episodes to draw")
    fw, fh = rows[0][0].size
    sheet = Image.new("RGB", (fw * columns, fh * len(rows)), (0, 0, 0))
    for i, row in enumerate(rows):
        for j, f in enumerate(row):
            sheet.paste(f, (j * fw, i * fh))
    sheet.save(path)
    return path
