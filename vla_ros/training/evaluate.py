"""``vla eval``: trajectory quality against baselines, and quality against sampling steps.

* ADE / FDE (metres, x-y) overall and per command kind for the model (its head's own
  sampler: DDIM with the checkpoint's step count, or DDPM with every step) and two non-learned baselines:
  (i) ``mean_per_command``: the mean expert trajectory of the command's kind over the
      training set (stored in the checkpoint) -- uses the command, ignores the cameras;
  (ii) ``constant_velocity``: the robot's last motion over the history frames, continued.
* The seed's open question: DDIM with 1, 2, 5, 10, 20 and 50 steps and DDPM with all
  training steps -- ADE beside the latency of one sampling (batch 1) -- as a table and a plot.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from vla_ros.checkpoint import load_checkpoint
from vla_ros.data.io import read_dataset_info
from vla_ros.training.bank import FrameBank, build_frame_bank, gather, gather_odometry, gather_top
from vla_ros.training.metrics import ade_fde
from vla_ros.training.sources import parse_data

SWEEP_DDIM = (1, 2, 5, 10, 20, 50)


def constant_velocity(bank: FrameBank, idx: np.ndarray, traj_dt: float, sim_dt: float) -> np.ndarray:
    """(S,) samples -> (S, 16, 3): the twist between the last two history frames, continued."""
    ep, t = bank.samples[idx, 0], bank.samples[idx, 1]
    prev = bank.states[bank.rows(ep, t - bank.stride)]  # (S, 5) world frame
    cur = bank.states[bank.rows(ep, t)]
    gap = bank.stride * sim_dt
    dx, dy = prev[:, 0] - cur[:, 0], prev[:, 1] - cur[:, 1]
    c, s = np.cos(cur[:, 2]), np.sin(cur[:, 2])
    px, py = c * dx + s * dy, -s * dx + c * dy  # previous position in the current robot frame
    dyaw = np.angle(np.exp(1j * (cur[:, 2] - prev[:, 2])))
    v = np.hypot(px, py) / gap * np.where(px <= 0, 1.0, -1.0)  # the robot was behind: moving forward
    w = dyaw / gap
    horizon = bank.traj.shape[1]
    out = np.zeros((len(idx), horizon, 3))
    x = np.zeros(len(idx))
    y = np.zeros(len(idx))
    yaw = np.zeros(len(idx))
    sub = 10  # integrate the unicycle finely between waypoints
    for k in range(horizon):
        for _ in range(sub):
            h = traj_dt / sub
            x += v * np.cos(yaw) * h
            y += v * np.sin(yaw) * h
            yaw += w * h
        out[:, k] = np.stack([x, y, yaw], -1)
    return out.astype(np.float32)


def _table(pred: np.ndarray, gt: np.ndarray, kinds: list[str]) -> dict[str, Any]:
    ade, fde = ade_fde(pred, gt)
    rows = {"overall": {"ade": float(ade.mean()), "fde": float(fde.mean()), "n": len(ade)}}
    for k in sorted(set(kinds)):
        m = np.array([x == k for x in kinds])
        rows[k] = {"ade": float(ade[m].mean()), "fde": float(fde[m].mean()), "n": int(m.sum())}
    return rows


@torch.inference_mode()
def _sample_all(model, bank: FrameBank, idx: np.ndarray, texts: list[str], batch: int, steps: int | None,
                use_ddim: bool, seed: int, desc: str, progress: bool, odometry: bool = True) -> np.ndarray:
    out = []
    dev = model.device
    for b in tqdm(range(0, len(idx), batch), desc=desc, unit="batch", disable=not progress, leave=False):
        sel = idx[b:b + batch]
        frozen, _ = gather(bank, sel, dev)
        odom = gather_odometry(bank, sel) if odometry else None
        cond = model.condition_from_frozen(frozen, [texts[i] for i in sel], odom, gather_top(model, bank, sel))
        head = model.action_head
        noise = head.seeded_noise(len(sel), seed, device=dev)
        out.append(head.sample(cond, num_inference_steps=steps, use_ddim=use_ddim, noise=noise,
                               generator=torch.Generator().manual_seed(seed)).cpu().numpy())
    return np.concatenate(out)


@torch.inference_mode()
def _latency_ms(model, bank: FrameBank, steps: int | None, use_ddim: bool, reps: int) -> float:
    """Median time of one sampling (batch 1) with the diffusers scheduler loop."""
    first = np.array([0])
    frozen, _ = gather(bank, first, model.device)
    cond = model.condition_from_frozen(frozen, ["go"], None, gather_top(model, bank, first))
    times = []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        model.action_head.sample(cond, num_inference_steps=steps, use_ddim=use_ddim,
                                 generator=torch.Generator().manual_seed(0))
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times[1:]))


def _baselines(checkpoint: str | Path, payload: dict, cfg, bank: FrameBank, idx: np.ndarray, kinds: list[str],
               data_dir: str | Path) -> dict[str, np.ndarray]:
    """The two baselines' predictions for samples ``idx``: the mean trajectory of each command
    (stored in the checkpoint by ``vla train``) and the last motion continued."""
    world = payload["meta"].get("world_config") or {}
    data_world = read_dataset_info(parse_data(data_dir)[0].path).get("config") or {}
    sim_dt = float(data_world.get("sim_dt", world.get("sim_dt", 0.1)))
    means = payload["meta"].get("baselines", {}).get("mean_per_kind", {})
    if not means:
        raise ValueError(f"{checkpoint} carries no per-command mean trajectories (train it with `vla train`)")
    zero = np.zeros((cfg.trajectory_length, cfg.action_dim), np.float32)
    return {"mean_per_command": np.stack([np.asarray(means.get(k, zero), np.float32) for k in kinds]),
            "constant_velocity": constant_velocity(bank, idx, cfg.traj_dt, sim_dt)}


def _steps_sweep(model, bank: FrameBank, idx: np.ndarray, texts: dict[int, str], batch: int, seed: int,
                 sweep_samples: int, progress: bool, odometry: bool) -> dict[str, Any]:
    """ADE / FDE and the latency of one sampling for each DDIM step count of ``SWEEP_DDIM`` (up to
    the training timesteps) and DDPM with every step, on at most ``sweep_samples`` samples."""
    cfg = model.config
    sidx = idx if len(idx) <= sweep_samples else np.sort(
        np.random.default_rng(seed + 1).choice(idx, sweep_samples, replace=False))
    sgt = bank.traj[torch.from_numpy(bank.sample_rows(sidx))].numpy()
    rows = []
    settings = [(f"DDIM-{s}", s, True) for s in SWEEP_DDIM if s <= cfg.num_timesteps]
    settings.append((f"DDPM-{cfg.num_timesteps}", None, False))
    for name, steps, ddim in settings:
        pred = _sample_all(model, bank, sidx, texts, batch, steps, ddim, seed, name, progress, odometry)
        ade, fde = ade_fde(pred, sgt)
        lat = _latency_ms(model, bank, steps, ddim, reps=1 if not ddim else 3)
        rows.append({"sampler": name, "steps": steps or cfg.num_timesteps, "ade": float(ade.mean()),
                     "fde": float(fde.mean()), "latency_ms_b1": lat})
        if progress:
            tqdm.write(f"  {name:>9}: ADE {ade.mean():.3f} m  FDE {fde.mean():.3f} m  {lat:8.1f} ms")
    return {"samples": len(sidx), "rows": rows}


def evaluate(checkpoint: str | Path, data_dir: str | Path, device: str = "cpu", max_samples: int | None = None,
             sweep_samples: int = 256, sweep: bool = True, batch: int = 64, seed: int = 0,
             cache_dir: str | Path | None = None, progress: bool = True, every_frame: bool = True,
             odometry: bool = True) -> dict[str, Any]:
    """ADE/FDE of ``checkpoint`` on ``data_dir`` against two baselines (and a sampling-steps sweep).

    ``odometry``: give a model with the odometry input the recorded (v, omega) of each sample
    (as the node does from ``odom``); False evaluates it as if no odometry arrived.
    """
    model, payload = load_checkpoint(checkpoint, device=device)
    cfg = model.config
    bank = build_frame_bank(model, data_dir, cache_dir=cache_dir, progress=progress, every_frame=every_frame)
    idx = np.arange(len(bank.samples))
    if max_samples and len(idx) > max_samples:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_samples, replace=False))
    kinds = [bank.command_key(e) for e in bank.samples[idx, 0]]  # a robot's command without a kind: its text
    texts = {int(i): bank.texts[bank.samples[i, 0]] for i in idx}
    gt = bank.traj[torch.from_numpy(bank.sample_rows(idx))].numpy()
    baselines = _baselines(checkpoint, payload, cfg, bank, idx, kinds, data_dir)
    # the head's own sampler: DDIM-20 for the design document's head, DDPM-1000 for its "before" head
    sampler = f"{'DDIM' if cfg.use_ddim else 'DDPM'}-{cfg.num_inference_steps if cfg.use_ddim else cfg.num_timesteps}"
    model_pred = _sample_all(model, bank, idx, texts, batch, None, cfg.use_ddim, seed, f"model {sampler}",
                             progress, odometry)
    result: dict[str, Any] = {
        "checkpoint": str(checkpoint), "data": str(data_dir), "samples": len(idx),
        "episodes": int(len(set(bank.samples[idx, 0].tolist()))),
        "phrasings": sorted(set(texts.values())),
        "model": _table(model_pred, gt, kinds),
        "baselines": {name: _table(pred, gt, kinds) for name, pred in baselines.items()},
        "sampler": sampler,
        "odometry": bool(odometry and cfg.odometry_input),
    }
    best = min(result["baselines"].values(), key=lambda r: r["overall"]["ade"])
    result["ade_ratio_to_best_baseline"] = result["model"]["overall"]["ade"] / best["overall"]["ade"]
    if sweep:
        result["steps_sweep"] = _steps_sweep(model, bank, idx, texts, batch, seed, sweep_samples, progress, odometry)
        rows = result["steps_sweep"]["rows"]
        d20 = next((r["ade"] for r in rows if r["sampler"] == "DDIM-20"), None)
        if d20 is not None:
            result["ddim20_vs_ddpm_ade_ratio"] = d20 / rows[-1]["ade"]
    return result


def format_report(r: dict[str, Any]) -> str:
    kinds = [k for k in r["model"] if k != "overall"]
    cols = [("model (" + r["sampler"] + ")", r["model"]), ("mean per command", r["baselines"]["mean_per_command"]),
            ("constant velocity", r["baselines"]["constant_velocity"])]
    lines = [f"{r['samples']} samples from {r['episodes']} episodes of {r['data']}", "",
             f"| {'command':<12} | {'n':>5} | " + " | ".join(f"{c[0]:^21}" for c in cols) + " |",
             f"| {'':<12} | {'':>5} | " + " | ".join(f"{'ADE':>10} {'FDE':>10}" for _ in cols) + " |",
             "|" + "-" * 14 + "|" + "-" * 7 + "|" + "|".join("-" * 23 for _ in cols) + "|"]
    for k in ["overall"] + kinds:
        lines.append(f"| {k:<12} | {r['model'][k]['n']:>5} | " + " | ".join(
            f"{c[1][k]['ade']:>10.3f} {c[1][k]['fde']:>10.3f}" for c in cols) + " |")
    lines.append("")
    lines.append(f"model ADE / best baseline ADE = {r['ade_ratio_to_best_baseline']:.2f} (quality bar: <= 0.5)")
    if "steps_sweep" in r:
        lines += ["", f"Quality against sampling steps ({r['steps_sweep']['samples']} samples; latency = one "
                      "sampling, batch 1, diffusers loop, this machine):", "",
                  f"| {'sampler':<10} | {'ADE (m)':>8} | {'FDE (m)':>8} | {'latency (ms)':>12} |",
                  f"|{'-' * 12}|{'-' * 10}|{'-' * 10}|{'-' * 14}|"]
        for row in r["steps_sweep"]["rows"]:
            lines.append(f"| {row['sampler']:<10} | {row['ade']:>8.3f} | {row['fde']:>8.3f} | "
                         f"{row['latency_ms_b1']:>12.1f} |")
        if "ddim20_vs_ddpm_ade_ratio" in r:
            lines.append("")
            lines.append(f"DDIM-20 ADE / DDPM ADE = {r['ddim20_vs_ddpm_ade_ratio']:.3f} (quality bar: <= 1.10)")
    return "\n".join(lines)


def plot_report(r: dict[str, Any], out_png: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    kinds = ["overall"] + [k for k in r["model"] if k != "overall"]
    x = np.arange(len(kinds))
    series = [("model", r["model"]), ("mean per command", r["baselines"]["mean_per_command"]),
              ("constant velocity", r["baselines"]["constant_velocity"])]
    for i, (name, tab) in enumerate(series):
        axes[0].bar(x + (i - 1) * 0.27, [tab[k]["ade"] for k in kinds], 0.27, label=name)
    axes[0].set_xticks(x, kinds, rotation=30, ha="right")
    axes[0].set_ylabel("ADE (m)")
    axes[0].set_title("ADE per command (lower is better)")
    axes[0].legend()
    axes[0].grid(axis="y", alpha=0.3)
    if "steps_sweep" in r:
        rows = r["steps_sweep"]["rows"]
        ddim = [row for row in rows if row["sampler"].startswith("DDIM")]
        ddpm = [row for row in rows if row["sampler"].startswith("DDPM")]
        ax = axes[1]
        ax.plot([d["steps"] for d in ddim], [d["ade"] for d in ddim], "o-", label="DDIM ADE")
        for d in ddpm:
            ax.axhline(d["ade"], color="C3", ls="--", label=f"{d['sampler']} ADE")
        ax.set_xscale("log")
        ax.set_xlabel("inference steps")
        ax.set_ylabel("ADE (m)")
        ax2 = ax.twinx()
        ax2.plot([d["steps"] for d in ddim + ddpm], [d["latency_ms_b1"] for d in ddim + ddpm], "s:", color="C2",
                 label="latency (ms, B=1)")
        ax2.set_yscale("log")
        ax2.set_ylabel("latency per sampling (ms)")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="upper center")
        ax.set_title("quality and latency against sampling steps")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


GROUNDING_COLOURS = ("red", "green", "blue")


def colour_grounding(predict, data_dir: str | Path, steps: tuple[int, ...] = (8, 20),
                     history_length: int = 5, progress: bool = True, phrase: str = "go to the {} cone",
                     words: dict[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """Does the model go to the cone whose colour the command names?

    For every unblocked goto episode of ``data_dir`` and each of ``steps``, ``predict(ego, top,
    text, odometry) -> (16, 3)`` answers ``phrase`` with each colour's words (``words[colour]``,
    default the colour's own name; the same number per colour) from the *same* frames and
    velocity, and the expert plans the three colours from the recorded state (every layout has one
    cone of each colour). Returns:

    * ``identified``: share of answers closer (mean waypoint distance) to the expert's trajectory
      for the colour asked than to the expert's for the other two (1/3 = chance, and exactly 1/3
      for a model that ignores the colour); ``identified_by_word`` the same per word;
    * ``model_spread_m`` / ``expert_spread_m``: mean distance between the endpoints of the three
      colours' trajectories (a model that ignores the colour has 0);
    * ``bearing_error_deg``: mean angle between the answer's and the expert's endpoint directions.
    """
    from vla_ros.data.io import list_episodes, load_episode, load_meta
    from vla_ros.sim.config import WorldConfig
    from vla_ros.sim.layout import Layout

    words = {c: tuple(words[c]) if words else (c,) for c in GROUNDING_COLOURS}
    if len({len(w) for w in words.values()}) != 1:
        raise ValueError(f"give each colour the same number of words, got {words}")
    found: dict[str, list[bool]] = {w: [] for ws in words.values() for w in ws}
    bearing, model_spread, expert_spread = [], [], []
    for path in tqdm(list_episodes(data_dir), desc="colour grounding", unit="ep", disable=not progress):
        meta = load_meta(path)  # the arrays only of the episodes tested
        if not (meta.get("kind") or "").startswith("goto_") or meta.get("blocking_obstacle", True):
            continue
        arrays, _ = load_episode(path, mmap=True)
        config, layout = WorldConfig.from_dict(meta["config"]), Layout.from_dict(meta["layout"])
        span = (history_length - 1) * config.history_stride
        for t in steps:
            if not span <= t < len(arrays["state"]):
                raise ValueError(f"step {t} has no full history in {path.name} (need {span} <= t < "
                                 f"{len(arrays['state'])})")
            idx = list(range(t - span, t + 1, config.history_stride))
            frames = ([np.asarray(arrays["ego"][i]) for i in idx], [np.asarray(arrays["top"][i]) for i in idx])
            spreads = _grounding_answers(predict, frames, np.asarray(arrays["state"][t], dtype=np.float64),
                                         layout, config, phrase, words, found, bearing)
            model_spread += spreads[0]
            expert_spread += spreads[1]
    if not model_spread:
        raise ValueError(f"{data_dir}: no unblocked goto episode to test the colours on")
    answers = [a for v in found.values() for a in v]
    return {"data": str(data_dir), "samples": len(model_spread) // len(words["red"]), "answers": len(answers),
            "phrase": phrase, "identified": float(np.mean(answers)), "chance": 1.0 / len(GROUNDING_COLOURS),
            "identified_by_word": {w: float(np.mean(v)) for w, v in found.items()},
            "model_spread_m": float(np.mean(model_spread)), "expert_spread_m": float(np.mean(expert_spread)),
            "bearing_error_deg": float(np.mean(bearing))}


def _grounding_answers(predict, frames, state, layout, config, phrase, words, found, bearing):
    """One sample of colour_grounding: ask every word, score each answer (appended to ``found``
    and ``bearing``); -> (model endpoint spreads, expert endpoint spreads), one per word index."""
    import math

    from vla_ros.sim.expert import expert_trajectory

    expert = {c: expert_trajectory(f"goto_{c}", state, layout, config) for c in GROUNDING_COLOURS}
    pairs = [(a, b) for i, a in enumerate(GROUNDING_COLOURS) for b in GROUNDING_COLOURS[i + 1:]]
    spreads: tuple[list[float], list[float]] = ([], [])
    for k in range(len(words["red"])):
        model = {c: np.asarray(predict(*frames, phrase.format(words[c][k]), (float(state[3]), float(state[4]))))
                 for c in GROUNDING_COLOURS}
        for c in GROUNDING_COLOURS:
            dist = {c2: float(np.linalg.norm(model[c][:, :2] - expert[c2][:, :2], axis=1).mean())
                    for c2 in GROUNDING_COLOURS}
            found[words[c][k]].append(min(dist, key=dist.get) == c)
            a, b = model[c][-1], expert[c][-1]
            bearing.append(abs(math.degrees(math.atan2(a[1], max(a[0], 1e-3)) - math.atan2(b[1], max(b[0], 1e-3)))))
        spreads[0].append(np.mean([np.linalg.norm(model[a][-1, :2] - model[b][-1, :2]) for a, b in pairs]))
        spreads[1].append(np.mean([np.linalg.norm(expert[a][-1, :2] - expert[b][-1, :2]) for a, b in pairs]))
    return spreads
