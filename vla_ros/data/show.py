"""``show_dataset``: a PNG of a few samples (ego frame, top frame with the ground-truth
trajectory drawn over it, the trajectory in the robot frame). matplotlib only (no pyplot state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..sim.config import WorldConfig
from ..sim.geometry import world_to_robot
from ..sim.render import robot_to_ego_pixel, trajectory_to_top_pixels, world_to_top_pixel
from ..sim.commands import KINDS
from .io import list_episodes, load_episode, load_meta

__all__ = ["show_dataset", "draw_trajectory_top", "draw_trajectory_ego"]

_TRAJECTORY_LINE = {"color": "orange", "lw": 1.5, "marker": ".", "ms": 3}  # a trajectory over a camera frame


def draw_trajectory_top(ax, traj, state, config: WorldConfig, **plot_kwargs):
    """Plot a robot-frame trajectory ``(N, 2|3)`` of a robot at world ``state`` over an
    ``ax.imshow(top)`` image. Returns the matplotlib line."""
    uv = trajectory_to_top_pixels(np.asarray(traj), state, config)
    start = world_to_top_pixel(np.asarray(state)[:2], config)
    uv = np.concatenate([start[None], uv], 0)
    return ax.plot(uv[:, 0], uv[:, 1], **{**_TRAJECTORY_LINE, **plot_kwargs})[0]


def draw_trajectory_ego(ax, traj, config: WorldConfig, **plot_kwargs):
    """Plot a robot-frame trajectory (on the ground) over an ``ax.imshow(ego)`` image."""
    pts = np.concatenate([[[0.0, 0.0]], np.asarray(traj)[:, :2]], 0)
    uv, valid = robot_to_ego_pixel(pts, config)
    uv = np.where(valid[:, None], uv, np.nan)
    return ax.plot(uv[:, 0], uv[:, 1], **{**_TRAJECTORY_LINE, **plot_kwargs})[0]


def _pick_episodes(files: list[Path], n: int, rng: np.random.Generator) -> list[int]:
    """``n`` episodes covering as many command kinds as possible: round-robin over the kinds (a
    robot's commands by their text), a random episode of each."""
    by_kind: dict[str, list[int]] = {}
    for i, f in enumerate(files):
        meta = load_meta(f)
        by_kind.setdefault(meta.get("kind") or meta["command"], []).append(i)
    order = [k for k in KINDS if k in by_kind] + sorted(k for k in by_kind if k not in KINDS)
    pools = {k: list(rng.permutation(v)) for k, v in by_kind.items()}
    picks: list[int] = []
    while len(picks) < n:
        for k in order:
            if len(picks) < n:
                if not pools[k]:
                    pools[k] = list(rng.permutation(by_kind[k]))
                picks.append(int(pools[k].pop()))
    return picks


def _frame_axes(ax, config: WorldConfig, title: str, fontsize: int) -> None:
    ax.set_xlim(-0.5, config.image_size - 0.5)
    ax.set_ylim(config.image_size - 0.5, -0.5)
    ax.set_title(title, fontsize=fontsize)
    ax.axis("off")


def _draw_robot_frame(ax, traj: np.ndarray, past: np.ndarray, simulated: bool, legend: bool) -> None:
    """The history poses and the trajectory in the robot frame (x forward = up), headings as arrows."""
    ax.plot(-past[:, 1], past[:, 0], "o", color="c", ms=3, label="history")
    ax.plot(-traj[:, 1], traj[:, 0], ".-", color="orange", label="expert" if simulated else "recorded")
    L = 0.15
    ax.quiver(-traj[:, 1], traj[:, 0], -np.sin(traj[:, 2]) * L, np.cos(traj[:, 2]) * L, angles="xy",
              scale_units="xy", scale=1, width=0.004, color="k")
    ax.plot([0], [0], "k^")
    lim = max(1.0, float(np.abs(traj[:, :2]).max()) + 0.3, float(np.abs(past[:, :2]).max()) + 0.3)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim * 0.5, lim * 1.5)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.set_xlabel("-y (right) [m]", fontsize=7)
    ax.set_ylabel("x (forward) [m]", fontsize=7)
    ax.tick_params(labelsize=7)
    if legend:
        ax.legend(fontsize=7, loc="upper right")


def _draw_sample(fig, n: int, row: int, path: Path, ei: int, rng: np.random.Generator) -> None:
    """Row ``row`` of the figure: a random step of episode ``path`` (ego, top, robot frame)."""
    arrays, meta = load_episode(path, mmap=True)
    config = WorldConfig.from_dict(meta["config"])
    T = int(meta["num_steps"])
    span = config.history_span
    t = int(rng.integers(span, T)) if T > span else T - 1
    state = np.asarray(arrays["state"][t], dtype=np.float64)
    traj = np.asarray(arrays["traj"][t])
    hist_t = np.clip(t - config.history_stride * np.arange(config.history_length - 1, -1, -1), 0, None)
    hist = np.asarray(arrays["state"][hist_t], dtype=np.float64)
    title = f'"{meta["command"]}" ({meta.get("kind")})  ep {meta.get("episode", ei)} t={t}'
    simulated = "layout" in meta  # a robot's cameras: the simulator's projections do not apply

    ax = fig.add_subplot(n, 3, 3 * row + 1)
    ax.imshow(arrays["ego"][t], interpolation="nearest")
    if simulated:
        draw_trajectory_ego(ax, traj, config)
    _frame_axes(ax, config, "ego", 8)

    ax = fig.add_subplot(n, 3, 3 * row + 2)
    ax.imshow(arrays["top" if "top" in arrays else "ego"][t], interpolation="nearest")
    if simulated:
        huv = world_to_top_pixel(hist[:, :2], config)
        ax.plot(huv[:, 0], huv[:, 1], "o", color="cyan", ms=2.5)
        draw_trajectory_top(ax, traj, state, config)
    _frame_axes(ax, config, title, 9)

    _draw_robot_frame(fig.add_subplot(n, 3, 3 * row + 3), traj, world_to_robot(hist[:, :3], state), simulated,
                      legend=row == 0)


def show_dataset(data_dir, out_png, n: int = 4, seed: int = 0) -> Path:
    """Write a figure of ``n`` samples of the dataset in ``data_dir`` to ``out_png``.

    Each row: the ego frame (trajectory projected onto the ground), the top frame with the
    ground-truth trajectory (orange) and the history poses (cyan), and the trajectory in the
    robot frame (x forward = up). The row title is the command.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    files = list_episodes(data_dir)
    rng = np.random.default_rng(seed)
    n = max(1, int(n))
    picks = _pick_episodes(files, n, rng)
    fig = Figure(figsize=(9.6, 3.2 * n), dpi=100)
    FigureCanvasAgg(fig)
    for row, ei in enumerate(picks):
        _draw_sample(fig, n, row, files[int(ei)], ei, rng)
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out
