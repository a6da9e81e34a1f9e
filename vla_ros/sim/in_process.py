"""The closed loop in this process, no ROS: a predictor called directly every replan period (what
``vla sim --no-ros`` runs; deterministic and fast), and the expert driven through the same loop as
the reference a model's success is read against."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vla_ros.control.tracker import STATUS_OK, TrackerConfig
from vla_ros.runtime.config import NodeConfig
from vla_ros.runtime.safety import Status
from vla_ros.runtime.scan_guard import ScanGuard
from vla_ros.sim.config import WorldConfig
from vla_ros.sim.lidar import world_scan
from vla_ros.sim.loop import ClosedLoopSim
from vla_ros.sim.node_config import SimNodeConfig
from vla_ros.sim.options import SimOptions, resolve_checkpoint
from vla_ros.sim.record import EpisodeRecord
from vla_ros.sim.scoring import SuccessCriteria

__all__ = ["Predictor", "api_predictor", "expert_predictor", "run_in_process", "expert_reference",
           "run_in_process_episodes"]

STATUS_NONFINITE = int(Status.STOP_NONFINITE_OUTPUT)

# (ego frames, top frames oldest first, text, odometry (v, omega) or None) -> (K, 3) or .trajectory
Predictor = Callable[[list, list, str, Any], Any]


def api_predictor(api) -> Predictor:
    """A VLAInferenceAPI as a predictor."""
    return lambda ego, top, text, odometry=None: api.predict(ego, top, text, odometry).trajectory


def expert_predictor(sim: ClosedLoopSim) -> Predictor:
    """The expert's trajectory for the current state (reads the world: a reference, not a model)."""
    return lambda ego, top, text, odometry=None: sim.world.expert_trajectory()


def run_in_process(predictor: Predictor, seed: int, kind: str | None = None, split: str = "train",
                   text: str | None = None, world_config: WorldConfig | None = None,
                   warmup: float = 0.8, duration: float = 8.0, replan_period: float = 0.2,
                   history_length: int = 5, history_spacing: float = 0.2, dt: float = 0.2,
                   tracker: TrackerConfig | None = None, criteria: SuccessCriteria | None = None,
                   sim: ClosedLoopSim | None = None, episode: int = 0, render: bool = True,
                   odometry: bool = True, scan_guard: ScanGuard | None = None) -> EpisodeRecord:
    """One episode of the closed loop with ``predictor`` called directly (what ``vla sim --no-ros`` runs).

    The same timing as sim_node in lockstep mode: frames every ``sim_dt``; every
    ``replan_period`` (once ``history_length`` frames ``history_spacing`` apart exist) the
    predictor gets the frames at t, t - spacing, ... (oldest first) and its trajectory is stamped
    t and used from t on (zero latency).  ``render=False`` skips the cameras (expert predictors).
    ``odometry``: pass the robot's measured (v, omega) at t (what sim_node publishes on ``odom``);
    False passes None (a robot without odometry).  ``scan_guard``: every trajectory is cut against
    the simulated laser's scan at t, as vla_node's scan_guard does with sim_node's ``scan``.
    """
    sim = sim or ClosedLoopSim(world_config, tracker, criteria, warmup=warmup, duration=duration)
    sim.reset(seed=seed, kind=kind, split=split, text=text, episode=episode)
    cfg = sim.config
    stride = max(1, int(round(history_spacing / cfg.sim_dt)))
    every = max(1, int(round(replan_period / cfg.sim_dt)))
    span = (history_length - 1) * stride
    ego_frames: list = []
    top_frames: list = []
    t_pred = 0.0
    n_pred = 0
    t0 = time.perf_counter()
    while not sim.done:
        if render:
            ego, top = sim.render()
            ego_frames.append(ego)
            top_frames.append(top)
            if len(ego_frames) > span + 1:
                ego_frames.pop(0)
                top_frames.pop(0)
        if sim.k >= span and sim.k % every == 0:
            idx = [len(ego_frames) - 1 - (history_length - 1 - i) * stride for i in range(history_length)] \
                if render else []
            ta = time.perf_counter()
            odom = (float(sim.world.state[3]), float(sim.world.state[4])) if odometry else None
            out = predictor([ego_frames[i] for i in idx], [top_frames[i] for i in idx], sim.text, odom)
            lat = time.perf_counter() - ta
            t_pred += lat
            n_pred += 1
            traj = np.asarray(getattr(out, "trajectory", out), dtype=np.float64)
            status = STATUS_OK if np.isfinite(traj).all() else STATUS_NONFINITE
            if scan_guard is not None and status == STATUS_OK:  # cut against the laser's scan now
                scan_guard.on_scan(world_scan(sim.world, sim.stamp_ns))
                traj = scan_guard.apply(traj).trajectory
            sim.receive(sim.stamp_ns, traj if status == STATUS_OK else np.zeros_like(traj), dt, status,
                        "" if status == STATUS_OK else "non-finite model output", latency=lat)
        sim.step()
    wall = time.perf_counter() - t0
    extra = {"mode": "in_process", "replan_period": replan_period, "predictions": n_pred, "predict_s": t_pred}
    if scan_guard is not None:
        extra["scan_guard"] = {"cut": scan_guard.cut, "held": scan_guard.held}
    return sim.finish(wall_s=wall, extra=extra)

def expert_reference(records: Sequence[EpisodeRecord | dict], world_config: WorldConfig | None = None) -> dict:
    """The expert (reading the true state) driven through the same loop on the same episodes:
    the success a perfect copy of it would reach here. Worlds with an obstacle across the way
    make lane / forward episodes fail even for it (it stops before the obstacle; a goto expert
    drives around it), so this is the figure to read a model's against.

    Returns ``{"episodes", "successes", "success_rate", "per_kind": {kind: {"episodes",
    "successes", "success_rate"}}}``; cheap (no rendering, no model).
    """
    rows = [r.to_dict() if isinstance(r, EpisodeRecord) else r for r in records]
    per_kind: dict[str, dict] = {}
    sims: dict[tuple, ClosedLoopSim] = {}
    ok_all = 0
    for r in rows:
        m = r["meta"]
        cfg = WorldConfig.from_dict(m["world_config"]) if "world_config" in m else (world_config or WorldConfig())
        key = (m.get("warmup", 0.8), m.get("duration", 8.0))
        sim = sims.get(key)
        if sim is None or sim.config != cfg:
            sim = sims[key] = ClosedLoopSim(cfg, warmup=key[0], duration=key[1])
        rec = run_in_process(expert_predictor(sim), seed=m["seed"], kind=m["kind"], split=m.get("split", "train"),
                             text=m.get("text"), sim=sim, render=False)
        ok = bool(rec.result["success"])
        ok_all += ok
        k = per_kind.setdefault(m["kind"], {"episodes": 0, "successes": 0})
        k["episodes"] += 1
        k["successes"] += ok
    for k in per_kind.values():
        k["success_rate"] = k["successes"] / k["episodes"]
    return {"episodes": len(rows), "successes": ok_all, "success_rate": ok_all / len(rows) if rows else None,
            "per_kind": per_kind}




def run_in_process_episodes(opts: SimOptions, on_event: Callable[[dict], None] | None = None) -> list:
    """``vla sim --no-ros``: the episodes of ``opts`` with VLAInferenceAPI called directly; ``on_event``
    gets the same ready / start / end events sim_node writes to its progress file."""
    from vla_ros.inference import VLAInferenceAPI

    checkpoint = resolve_checkpoint(opts.checkpoint)
    if opts.cpu_threads:
        import torch

        torch.set_num_threads(opts.cpu_threads)
    t0 = time.perf_counter()
    api = VLAInferenceAPI(checkpoint, device=opts.device, num_inference_steps=opts.num_inference_steps or None,
                          num_samples=opts.num_samples, noise=opts.noise, guidance=opts.guidance,
                          guidance_settings=opts.guidance_settings or None)
    if on_event:
        on_event({"event": "ready", "wait_s": time.perf_counter() - t0})
    cfg = SimNodeConfig(seed=opts.seed, seeds=",".join(map(str, opts.seeds)), episodes=opts.episodes,
                        kinds=opts.kinds, command=opts.command, split=opts.split)
    mc = api.config
    sim = ClosedLoopSim(WorldConfig(image_size=opts.image_size),
                        TrackerConfig(timeout=opts.trajectory_timeout, feedforward_horizon=opts.tracker_horizon),
                        warmup=opts.warmup, duration=opts.duration)
    records = []
    for i in range(opts.episodes):
        seed, kind, text = cfg.episode(i)
        sim.world.reset(seed=seed, kind=kind, split=opts.split, text=text)  # for the start event's text
        if on_event:
            on_event({"event": "start", "episode": i, "seed": seed, "kind": sim.kind, "text": sim.text})
        guard = ScanGuard.from_config(NodeConfig(scan_guard=True)) if opts.scan_guard else None
        rec = run_in_process(api_predictor(api), seed=seed, kind=kind, split=opts.split, text=text, sim=sim,
                             episode=i, history_length=mc.history_length, dt=mc.traj_dt, odometry=opts.odometry,
                             scan_guard=guard)
        records.append(rec)
        if opts.out_dir:  # the same record files as sim_node writes
            rec.save(Path(opts.out_dir) / f"episode_{i:03d}.json")
        if on_event:
            r = rec.result
            on_event({"event": "end", "episode": i, "success": r["success"], "reason": r["reason"],
                      "trajectories": r["trajectories"], "status": rec.received.get("status", {}),
                      "wall_s": r["wall_s"]})
    return records
