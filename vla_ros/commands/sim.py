"""``vla sim``: closed-loop episodes of the model driving the simulated robot, scored per command.

    vla sim --episodes 16 --seed 0 [--split eval] [--json results.json] [--video vids/]
            [--checkpoint C] [--image-size 128] [--kinds goto_red,stop] [--real-time] [--no-ros]

Main path: ``sim_node`` and ``vla_node`` run as two processes, brought up like ``vla launch``
does (the vla_node description of :func:`vla_ros.launch_description.describe`, plus a
description of sim_node, each run as ``python -m <module> --ros-args ...``), on a private ROS
domain (loopback only) unless ``--domain-id`` is given.  sim_node runs the episodes (a command
per episode, cycling through the kinds) and writes one JSON record per episode; this command
follows its progress, stops vla_node after the last episode, prints the table, and writes the
JSON / videos.  ``--no-ros`` runs the same closed loop in this process, calling the model
directly (no DDS): fast and deterministic, for tests and quality measurements.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from vla_ros import paths
from vla_ros.config import GUIDANCE_MODES, NOISE_MODES

__all__ = ["register", "cmd_sim", "SimOptions", "run_episodes", "sim_descriptions", "missing_checkpoint_message",
           "write_outputs", "print_event"]

STOP_TIMEOUT_S = 10.0


def missing_checkpoint_message(path: Path) -> str:
    return (f"no trained model at {path}. Create the default checkpoint first (about an hour on 2 CPU cores):\n"
            f"  vla data generate --out data/train --episodes 400 --seed 0\n"
            f"  vla train --data data/train --out runs/main\n"
            f"  mkdir -p {path.parent} && cp runs/main/best.pth {path}\n"
            f"or pass --checkpoint /path/to/model.pth")


@dataclass
class SimOptions:
    """Everything ``vla sim`` / ``vla demo`` decide (CLI flags map onto these)."""

    episodes: int = 8
    seed: int = 0
    seeds: list[int] = field(default_factory=list)  # one per episode (overrides seed + i)
    kinds: str = ""  # comma-separated, '' = all, cycled
    command: str = ""
    split: str = "train"
    checkpoint: str = ""
    device: str = "cpu"
    image_size: int = 128
    duration: float = 8.0
    warmup: float = 0.8
    real_time: bool = False
    real_time_factor: float = 1.0
    rate_hz: float | None = None  # vla_node ticks per second (default: 20 in lockstep, the params file's otherwise)
    num_inference_steps: int = 0
    num_samples: int = 1  # diffusion samples averaged per tick (vla_node's num_samples)
    noise: str = "fixed"  # vla_node's noise: fixed | varied
    guidance: str = "none"  # vla_node's guidance: none | target
    odometry: bool = True  # vla_node's use_odometry (the robot's measured velocity for the model)
    cpu_threads: int = 1  # torch threads of the model (0 = torch's default: one per core)
    params_file: str | None = None
    namespace: str = ""
    domain_id: int | None = None
    trajectory_timeout: float = 1.0
    tracker_horizon: float = 0.6  # sim_node's tracker_horizon (s of plan in the feed-forward)
    lockstep_timeout: float = 60.0
    startup_timeout: float = 300.0
    out_dir: str | None = None  # episode records and node logs ('' / None = a temporary folder)
    robot_input: str = "cmd_vel"  # sim_node's control_input: cmd_vel (trajectory_follower drives) | trajectory
    no_ros: bool = False


def _checkpoint(opts: SimOptions) -> Path:
    from vla_ros.cli import UserError

    path = Path(opts.checkpoint).expanduser() if opts.checkpoint else paths.default_checkpoint()
    if not path.is_file():
        if opts.checkpoint:
            raise UserError(f"checkpoint {path} does not exist")
        raise UserError(missing_checkpoint_message(path))
    return path


def _sim_parameters(opts: SimOptions, out_dir: Path) -> dict[str, Any]:
    params: dict[str, Any] = {
        "seed": int(opts.seed), "episodes": int(opts.episodes), "split": opts.split,
        "image_size": int(opts.image_size), "mode": "real_time" if opts.real_time else "lockstep",
        "real_time_factor": float(opts.real_time_factor), "warmup": float(opts.warmup),
        "duration": float(opts.duration), "trajectory_timeout": float(opts.trajectory_timeout),
        "tracker_horizon": float(opts.tracker_horizon), "control_input": opts.robot_input,
        "lockstep_timeout": float(opts.lockstep_timeout), "startup_timeout": float(opts.startup_timeout),
        "output_dir": str(out_dir),
    }
    if opts.seeds:
        params["seeds"] = ",".join(str(int(s)) for s in opts.seeds)
    for name in ("kinds", "command"):  # '' is the default: leave it out of the command line
        if getattr(opts, name):
            params[name] = getattr(opts, name)
    return params


def _follower_parameters(opts: SimOptions) -> dict[str, Any]:
    """trajectory_follower as the simulated robot's driver: one command per odom message (lockstep
    answers), the simulated robot's limits (FollowerConfig's defaults), the sim's control step."""
    from vla_ros.sim.config import WorldConfig

    return {"control_trigger": "odom", "stamped": True, "control_rate": 1.0 / WorldConfig().sim_dt,
            "watchdog_timeout": float(opts.trajectory_timeout), "feedforward_horizon": float(opts.tracker_horizon)}


def sim_descriptions(opts: SimOptions, out_dir: Path, checkpoint: Path) -> list:
    """What ``vla sim`` starts: the vla_ros launch description (vla_node, with robot_input cmd_vel
    trajectory_follower; sim time) + sim_node.

    sim_node is appended here because the shared description does not have it yet.
    """
    from vla_ros.launch_description import NodeDescription, describe

    rate = opts.rate_hz if opts.rate_hz is not None else (None if opts.real_time else 20.0)
    descs = describe(params_file=opts.params_file, checkpoint=str(checkpoint), device=opts.device,
                     namespace=opts.namespace, rate_hz=rate, use_sim_time=True,
                     follower=opts.robot_input == "cmd_vel")
    for d in descs[1:]:
        d.parameters.update(_follower_parameters(opts))
    for d in descs[:1]:
        d.parameters["on_stop"] = "publish_stop"  # lockstep counts stop trajectories as answers too
        if opts.num_inference_steps:
            d.parameters["num_inference_steps"] = int(opts.num_inference_steps)
        if opts.num_samples != 1:
            d.parameters["num_samples"] = int(opts.num_samples)
        if opts.noise != "fixed":
            d.parameters["noise"] = opts.noise
        if opts.guidance != "none":
            d.parameters["guidance"] = opts.guidance
        if not opts.odometry:
            d.parameters["use_odometry"] = False
        if opts.cpu_threads:
            d.parameters["cpu_threads"] = int(opts.cpu_threads)
    ns = descs[0].namespace if descs else ""
    descs.append(NodeDescription(package="vla_ros", executable="sim_node", name="sim_node",
                                 module="vla_ros.ros.sim_node", namespace=ns,
                                 parameters=_sim_parameters(opts, out_dir)))
    return descs


# ---------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------


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


def _child_setup() -> None:
    from vla_ros.commands.launch import _child_setup as setup

    setup()


def _ros_env(opts: SimOptions) -> tuple[dict, int]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
    domain = opts.domain_id if opts.domain_id is not None else random.SystemRandom().randint(1, 101)
    env["ROS_DOMAIN_ID"] = str(domain)
    if opts.domain_id is None:  # private: nothing leaves this machine, nothing else joins
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return env, domain


def _read_events(path: Path, offset: int) -> tuple[list[dict], int]:
    if not path.is_file():
        return [], offset
    with open(path) as f:
        f.seek(offset)
        chunk = f.read()
    lines = chunk.split("\n")
    complete, rest = lines[:-1], lines[-1]
    events = []
    for line in complete:
        if line.strip():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return events, offset + len(chunk) - len(rest)


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _stop(procs: list[subprocess.Popen], sig=signal.SIGINT) -> list[int]:
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return [p.returncode for p in procs]


def run_ros(opts: SimOptions, out_dir: Path, on_event: Callable[[dict], None] | None = None,
            log=sys.stderr, failures: list | None = None, show_commands: bool = True) -> list:
    """Run the episodes through sim_node + vla_node processes; returns the EpisodeRecords.

    If vla_node dies after it was up, the episode under way is finished (the robot must stop by
    itself: trajectory_timeout) and recorded, the run ends there and a line goes to ``failures``.
    """
    failures = [] if failures is None else failures
    from vla_ros.cli import UserError
    from vla_ros.closed_loop import EpisodeRecord
    from vla_ros.launch_description import process_command

    checkpoint = _checkpoint(opts)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in list(out_dir.glob("episode_*.json")) + [out_dir / "progress.jsonl"]:
        old.unlink(missing_ok=True)
    descs = sim_descriptions(opts, out_dir, checkpoint)
    env, domain = _ros_env(opts)
    procs: list[subprocess.Popen] = []
    logs: dict[str, Path] = {}
    files = []
    print(f"[vla sim] ROS_DOMAIN_ID={domain}"
          + (" (private, loopback)" if opts.domain_id is None else "") + f"; logs in {out_dir}", file=log, flush=True)
    try:
        for d in descs:
            cmd = process_command(d)
            logs[d.name] = out_dir / f"{d.name}.log"
            fh = open(logs[d.name], "w")
            files.append(fh)
            procs.append(subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                          start_new_session=True, preexec_fn=_child_setup))
            shown = f": {shlex.join(cmd)}" if show_commands else ""
            print(f"[vla sim] started {d.name} (pid {procs[-1].pid}){shown}", file=log, flush=True)
        by_name = dict(zip([d.name for d in descs], procs))
        sim, vla = by_name["sim_node"], by_name["vla_node"]
        follower = by_name.get("trajectory_follower")
        offset = 0
        progress = out_dir / "progress.jsonl"
        ready = False
        vla_died = False
        stopped_sim = False
        while True:
            events, offset = _read_events(progress, offset)
            for ev in events:
                ready = ready or ev.get("event") == "ready"
                if on_event:
                    on_event(ev)
                if vla_died and ev.get("event") == "end" and ev.get("episode", 0) + 1 < opts.episodes:
                    stopped_sim = True  # that episode is recorded: stop there
                    _stop([sim])
            if sim.poll() is not None:
                events, offset = _read_events(progress, offset)
                for ev in events:
                    if on_event:
                        on_event(ev)
                break
            if follower is not None and follower.poll() is not None and not ready:
                _stop([sim, vla])
                raise UserError(f"trajectory_follower exited with {follower.returncode} before the run started; "
                                f"its log ({logs['trajectory_follower']}):\n{_tail(logs['trajectory_follower'])}")
            if vla.poll() is not None and not vla_died:
                if not ready:
                    _stop([sim])
                    raise UserError(f"vla_node exited with {vla.returncode} before it was ready; its log "
                                    f"({logs['vla_node']}):\n{_tail(logs['vla_node'])}")
                vla_died = True
                print(f"[vla sim] vla_node exited with {vla.returncode} during the run: the robot must stop by "
                      f"trajectory_timeout; finishing this episode, then stopping", file=log, flush=True)
            time.sleep(0.1)
        _stop([p for p in procs if p is not sim])
        if sim.returncode != 0 and not (stopped_sim and sim.returncode == -signal.SIGINT):
            raise UserError(f"sim_node exited with {sim.returncode}; its log ({logs['sim_node']}):\n"
                            f"{_tail(logs['sim_node'])}\nvla_node's log ({logs['vla_node']}):\n"
                            f"{_tail(logs['vla_node'], 15)}")
        if vla_died:
            failures.append(f"vla_node exited with {vla.returncode} during the run (see {logs['vla_node']})")
    except BaseException:
        _stop(procs)
        raise
    finally:
        for fh in files:
            fh.close()
    return [EpisodeRecord.load(p) for p in sorted(out_dir.glob("episode_*.json"))]


def run_in_process_episodes(opts: SimOptions, on_event: Callable[[dict], None] | None = None) -> list:
    """--no-ros: the same loop with VLAInferenceAPI called directly."""
    from vla_ros.closed_loop import ClosedLoopSim, SimNodeConfig, TrackerConfig, api_predictor, run_in_process
    from vla_ros.inference import VLAInferenceAPI
    from vla_ros.sim.config import WorldConfig

    checkpoint = _checkpoint(opts)
    if opts.cpu_threads:
        import torch

        torch.set_num_threads(opts.cpu_threads)
    t0 = time.perf_counter()
    api = VLAInferenceAPI(checkpoint, device=opts.device, num_inference_steps=opts.num_inference_steps or None,
                          num_samples=opts.num_samples, noise=opts.noise, guidance=opts.guidance)
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
        rec = run_in_process(api_predictor(api), seed=seed, kind=kind, split=opts.split, text=text, sim=sim,
                             episode=i, history_length=mc.history_length, dt=mc.traj_dt, odometry=opts.odometry)
        records.append(rec)
        if on_event:
            r = rec.result
            on_event({"event": "end", "episode": i, "success": r["success"], "reason": r["reason"],
                      "trajectories": r["trajectories"], "status": rec.received.get("status", {}),
                      "wall_s": r["wall_s"]})
    return records


def run_episodes(opts: SimOptions, on_event: Callable[[dict], None] | None = None,
                 failures: list | None = None, show_commands: bool = True) -> tuple[list, Path | None]:
    """Run the episodes (ROS processes, or in process with ``no_ros``) -> (records, folder of the
    records and logs, None when it was temporary and is gone)."""
    if opts.no_ros:
        return run_in_process_episodes(opts, on_event), None
    if opts.out_dir:
        out = Path(opts.out_dir)
        return run_ros(opts, out, on_event, failures=failures, show_commands=show_commands), out
    with tempfile.TemporaryDirectory(prefix="vla_sim_") as tmp:
        return run_ros(opts, Path(tmp), on_event, failures=failures, show_commands=show_commands), None


def write_outputs(records: list, summary: dict, opts: SimOptions, json_path: str | None = None,
                  video_dir: str | None = None, video_size: int = 192, out=sys.stdout) -> dict:
    """The JSON report and the videos; returns {"json": path, "gifs": [...], "strip": path}."""
    from dataclasses import asdict

    from vla_ros.closed_loop import write_episode_gif, write_strip

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


def options_from_args(args) -> SimOptions:
    return SimOptions(
        episodes=args.episodes, seed=args.seed, kinds=args.kinds or "", command=args.command or "",
        split=args.split, checkpoint=args.checkpoint or "", device=args.device, image_size=args.image_size,
        duration=args.duration, warmup=args.warmup, real_time=args.real_time, real_time_factor=args.real_time_factor,
        rate_hz=args.rate_hz, num_inference_steps=args.num_inference_steps, num_samples=args.num_samples,
        noise=args.noise, guidance=args.guidance, odometry=not args.no_odometry, cpu_threads=args.cpu_threads,
        params_file=args.params_file, namespace=args.namespace, domain_id=args.domain_id,
        trajectory_timeout=args.trajectory_timeout, tracker_horizon=args.tracker_horizon,
        lockstep_timeout=args.lockstep_timeout, out_dir=args.out,
        no_ros=args.no_ros, robot_input=args.robot_input)


def cmd_sim(args) -> int:
    from vla_ros.cli import UserError
    from vla_ros.closed_loop import SimNodeConfig, expert_reference, format_summary, summarize
    from vla_ros.config import ConfigError

    opts = options_from_args(args)
    if opts.episodes < 1:
        raise UserError("--episodes must be >= 1")
    try:  # the sim node's settings, checked before anything starts
        SimNodeConfig(seed=opts.seed, episodes=opts.episodes, kinds=opts.kinds, command=opts.command,
                      split=opts.split, image_size=opts.image_size, duration=opts.duration, warmup=opts.warmup,
                      real_time_factor=opts.real_time_factor, trajectory_timeout=opts.trajectory_timeout,
                      tracker_horizon=opts.tracker_horizon,
                      mode="real_time" if opts.real_time else "lockstep")
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    if opts.no_ros and opts.real_time:
        raise UserError("--real-time needs the ROS path (drop --no-ros)")
    mode = "in process (no ROS)" if opts.no_ros else ("real time" if opts.real_time else "lockstep") + \
        " through sim_node + vla_node"
    print(f"vla sim: {opts.episodes} episode(s), seed {opts.seed}, split {opts.split}, {mode}", flush=True)
    failures: list[str] = []
    try:
        records, kept = run_episodes(opts, on_event=lambda ev: print_event(ev, opts.episodes), failures=failures)
    except KeyboardInterrupt:
        print("vla sim: interrupted", file=sys.stderr)
        return 130
    if not records:
        raise UserError("no episode finished")
    summary = summarize(records)
    summary["mode"] = "in_process" if opts.no_ros else ("real_time" if opts.real_time else "lockstep")
    if not opts.command:  # free text has no expert
        summary["expert"] = expert_reference(records)
    print()
    print(format_summary(summary))
    write_outputs(records, summary, opts, json_path=args.json, video_dir=args.video, video_size=args.video_size)
    if kept:
        print(f"episode records and node logs: {kept}")
    for line in failures:
        print(f"vla sim: error: {line}", file=sys.stderr)
    return 1 if failures else 0


def add_common_arguments(p, episodes: int, duration: float) -> None:
    p.add_argument("--episodes", type=int, default=episodes, help=f"episodes to run (default {episodes})")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode; episode i uses seed + i")
    p.add_argument("--checkpoint", help=f"model checkpoint (default: {paths.default_checkpoint()})")
    p.add_argument("--device", default="cpu", help="torch device of vla_node: cpu | cuda | cuda:N")
    p.add_argument("--split", choices=("train", "eval"), default="train",
                   help="command phrasings: 'eval' = held-out phrasings the model never saw in training")
    p.add_argument("--image-size", type=int, default=128, help="camera image side in pixels (default 128)")
    p.add_argument("--duration", type=float, default=duration,
                   help=f"seconds of control per episode after the {0.8:g} s warm-up (default {duration:g})")
    p.add_argument("--no-ros", action="store_true",
                   help="run the closed loop in this process with the model called directly (no DDS; "
                        "deterministic and faster; the main path goes through the nodes)")
    p.add_argument("--out", help="keep episode records (episode_NNN.json) and node logs in this folder")
    p.add_argument("--domain-id", type=int,
                   help="ROS_DOMAIN_ID for the nodes (default: a random private one, loopback only); give "
                        "yours to watch the run in rviz")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sim", help="closed-loop episodes: the model drives the simulated robot (sim_node + vla_node); "
                    "success per command", description=__doc__.split("\n\n")[0])
    add_common_arguments(p, episodes=8, duration=8.0)
    p.add_argument("--kinds", help="comma-separated command kinds to cycle through (default: all)")
    p.add_argument("--command", help="one command text for every episode (its kind is guessed for scoring "
                                     "unless --kinds is given)")
    p.add_argument("--json", help="write the summary and per-episode results to this JSON file")
    p.add_argument("--video", metavar="DIR", help="write a GIF per episode and a PNG overview to DIR")
    p.add_argument("--video-size", type=int, default=192, help="side of each view in the GIFs (default 192)")
    p.add_argument("--warmup", type=float, default=0.8,
                   help="seconds the robot keeps its start velocity while the node fills its history")
    p.add_argument("--real-time", action="store_true",
                   help="run the simulation on the wall clock instead of lockstep (results then depend on "
                        "CPU speed)")
    p.add_argument("--real-time-factor", type=float, default=1.0, help="with --real-time: sim seconds per wall s")
    p.add_argument("--rate-hz", type=float,
                   help="vla_node inference ticks per second (default: 20 in lockstep, the params file's "
                        "value with --real-time)")
    p.add_argument("--num-inference-steps", type=int, default=0, help="DDIM steps (0 = the checkpoint's)")
    p.add_argument("--num-samples", type=int, default=1,
                   help="diffusion samples vla_node averages per tick (default 1)")
    p.add_argument("--noise", choices=NOISE_MODES, default="fixed",
                   help="vla_node's initial noise: one draw every tick (fixed, default), a new draw per tick (varied) "
                        "or x_T = 0 (zero)")
    p.add_argument("--guidance", choices=GUIDANCE_MODES, default="none",
                   help="vla_node's guidance: target steers goto trajectories toward the cone the checkpoint's "
                        "target locator finds (needs a locator checkpoint); scene also steers around the obstacles "
                        "and along the road of its scene map (checkpoints/scene.pth); none (default) = as sampled")
    p.add_argument("--no-odometry", action="store_true",
                   help="vla_node without the odom input (use_odometry false): the model is told the robot's "
                        "velocity is unknown, as on a robot without odometry")
    p.add_argument("--cpu-threads", type=int, default=1,
                   help="torch CPU threads of the model (default 1: the simulation shares the CPU, and torch's "
                        "default of one thread per core slows down badly on a busy machine; 0 = torch's default)")
    p.add_argument("--params-file", help="vla_node params file (default: share/vla_ros/config/vla.yaml)")
    p.add_argument("--namespace", default="", help="namespace of both nodes")
    p.add_argument("--trajectory-timeout", type=float, default=1.0,
                   help="sim_node stops the robot after this long without a trajectory (s)")
    p.add_argument("--tracker-horizon", type=float, default=0.6,
                   help="seconds of each trajectory the robot's tracker follows in its feed-forward velocity "
                        "(default 0.6; 0 = the coming 0.1 s step only)")
    p.add_argument("--robot-input", choices=("cmd_vel", "trajectory"), default="cmd_vel",
                   help="what drives the simulated robot: cmd_vel from trajectory_follower (default: vla_node -> "
                        "trajectory_follower -> sim_node, as on a robot) or the trajectories through sim_node's own "
                        "tracker (the same tracker code; no follower process)")
    p.add_argument("--lockstep-timeout", type=float, default=60.0,
                   help="wall seconds sim_node waits for an answer before running on without the node")
    p.set_defaults(func=cmd_sim)
