"""The package's nodes as child processes: their environment, starting and stopping them, and the
closed-loop run through ``sim_node`` + ``vla_node`` (+ ``trajectory_follower``) that ``vla sim`` and
``vla demo`` drive.  No rclpy here: the nodes run as ``python -m <module> --ros-args ...``.

* :func:`child_setup` / :func:`ros_env` -- how every child node starts (default signal handling, dies
  with its parent; a private loopback ROS domain unless one is given);
* :func:`run_processes` -- ``vla launch``: run nodes until they exit, forwarding SIGINT / SIGTERM;
* :func:`sim_descriptions` / :func:`run_ros` / :func:`run_episodes` -- the closed-loop run.
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

from vla_ros.errors import UserError
from vla_ros.sim.options import SimOptions, resolve_checkpoint

__all__ = ["child_setup", "ros_env", "stop_processes", "run_processes", "sim_descriptions", "run_ros",
           "run_episodes"]

SIM_STOP_TIMEOUT_S = 10.0  # vla sim: after SIGINT, how long a node gets before SIGKILL
LAUNCH_STOP_TIMEOUT_S = 15.0  # vla launch: after forwarding a signal, how long nodes get before SIGKILL (exiting
# a process that imported torch and diffusers alone takes seconds on a busy machine)


# ---------------------------------------------------------------------------------------------
# child processes
# ---------------------------------------------------------------------------------------------


def child_setup() -> None:  # runs in the child between fork and exec
    """Default signal handling even if we were started with SIGINT ignored (a background job), and
    the child dies with its parent (Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:  # die with the launcher
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: the nodes may outlive a killed launcher
        pass


def ros_env(domain_id: int | None) -> tuple[dict, int]:
    """(environment of the child nodes, its ROS_DOMAIN_ID): unbuffered output; ``domain_id`` None =
    a random private domain, loopback only (nothing leaves this machine, nothing else joins)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
    domain = domain_id if domain_id is not None else random.SystemRandom().randint(1, 101)
    env["ROS_DOMAIN_ID"] = str(domain)
    if domain_id is None:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return env, domain


def stop_processes(procs: list[subprocess.Popen], sig=signal.SIGINT,
                   timeout: float = SIM_STOP_TIMEOUT_S) -> list[int]:
    """Send ``sig`` to the running ones, wait up to ``timeout`` s in all, kill what is left; exit codes."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return [p.returncode for p in procs]


def tail(path: Path, n: int = 40) -> str:
    """The last ``n`` lines of a log ('' when it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def run_processes(commands: list[list[str]], names: list[str] | None = None) -> int:
    """Run the commands until they have all exited; forward SIGINT/SIGTERM to them; when one exits,
    ask the others to stop. Returns the first non-zero exit status (128 + N for signal N)."""
    names = names or [c[0] for c in commands]
    # Own sessions: a Ctrl-C in the terminal reaches the nodes once (forwarded by us), not twice.
    procs = []
    for name, cmd in zip(names, commands):
        procs.append(subprocess.Popen(cmd, start_new_session=True, preexec_fn=child_setup))
        print(f"[vla launch] started {name} (pid {procs[-1].pid}): {shlex.join(cmd)}", file=sys.stderr, flush=True)

    stopping = {"since": None}

    def forward(signum, _frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)
        if stopping["since"] is None:
            stopping["since"] = time.monotonic()

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while any(p.poll() is None for p in procs):
            if stopping["since"] is None and any(p.poll() is not None for p in procs):
                forward(signal.SIGINT, None)  # one node ended: stop the others
            if stopping["since"] is not None and time.monotonic() - stopping["since"] > LAUNCH_STOP_TIMEOUT_S:
                for p in procs:
                    if p.poll() is None:
                        print(f"[vla launch] pid {p.pid} did not stop in {LAUNCH_STOP_TIMEOUT_S:g} s: killing it",
                              file=sys.stderr, flush=True)
                        p.kill()
            time.sleep(0.05)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return _exit_status(names, procs)


def _exit_status(names: list[str], procs: list[subprocess.Popen]) -> int:
    codes = [p.wait() for p in procs]
    for name, p, code in zip(names, procs, codes):
        print(f"[vla launch] {name} (pid {p.pid}) exited with {code}", file=sys.stderr, flush=True)
    bad = [c for c in codes if c != 0]
    if not bad:
        return 0
    return 128 - bad[0] if bad[0] < 0 else bad[0]  # killed by signal N -> 128 + N, like a shell


# ---------------------------------------------------------------------------------------------
# the closed-loop run: what starts
# ---------------------------------------------------------------------------------------------


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


def _vla_node_parameters(opts: SimOptions) -> dict[str, Any]:
    """vla_node's parameters that ``opts`` sets away from the params file's."""
    params: dict[str, Any] = {"on_stop": "publish_stop"}  # lockstep counts stop trajectories as answers too
    if opts.num_inference_steps:
        params["num_inference_steps"] = int(opts.num_inference_steps)
    if opts.num_samples != 1:
        params["num_samples"] = int(opts.num_samples)
    if opts.noise != "fixed":
        params["noise"] = opts.noise
    if opts.guidance != "none":
        params["guidance"] = opts.guidance
    if opts.guidance_settings:
        params["guidance_settings"] = opts.guidance_settings
    if not opts.odometry:
        params["use_odometry"] = False
    if opts.scan_guard:
        params["scan_guard"] = True
    if opts.cpu_threads:
        params["cpu_threads"] = int(opts.cpu_threads)
    return params


def sim_descriptions(opts: SimOptions, out_dir: Path, checkpoint: Path) -> list:
    """What ``vla sim`` starts: the vla_ros launch description (vla_node, with robot_input cmd_vel
    trajectory_follower; sim time) + sim_node, which the shared description does not hold."""
    from vla_ros.launch_description import NodeDescription, describe

    rate = opts.rate_hz if opts.rate_hz is not None else (None if opts.real_time else 20.0)
    descs = describe(params_file=opts.params_file, checkpoint=str(checkpoint), device=opts.device,
                     namespace=opts.namespace, rate_hz=rate, use_sim_time=True,
                     follower=opts.robot_input == "cmd_vel")
    for d in descs[1:]:
        d.parameters.update(_follower_parameters(opts))
    for d in descs[:1]:
        d.parameters.update(_vla_node_parameters(opts))
    ns = descs[0].namespace if descs else ""
    descs.append(NodeDescription(package="vla_ros", executable="sim_node", name="sim_node",
                                 module="vla_ros.ros.sim_node", namespace=ns,
                                 parameters=_sim_parameters(opts, out_dir)))
    return descs


# ---------------------------------------------------------------------------------------------
# the closed-loop run: following it
# ---------------------------------------------------------------------------------------------


def _read_events(path: Path, offset: int) -> tuple[list[dict], int]:
    """The complete JSON lines of sim_node's progress file from ``offset`` on, and the new offset."""
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


@dataclass
class _Run:
    """The node processes of one ``vla sim`` run and their logs."""

    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    files: list = field(default_factory=list)
    vla_died: bool = False
    stopped_sim: bool = False  # sim_node was stopped after the episode in which vla_node died

    def start(self, descs: list, out_dir: Path, env: dict, log, show_commands: bool) -> None:
        from vla_ros.launch_description import process_command

        for d in descs:
            cmd = process_command(d)
            self.logs[d.name] = out_dir / f"{d.name}.log"
            fh = open(self.logs[d.name], "w")
            self.files.append(fh)
            self.procs[d.name] = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                                  start_new_session=True, preexec_fn=child_setup)
            shown = f": {shlex.join(cmd)}" if show_commands else ""
            print(f"[vla sim] started {d.name} (pid {self.procs[d.name].pid}){shown}", file=log, flush=True)

    def log_tail(self, name: str, n: int = 40) -> str:
        return f"its log ({self.logs[name]}):\n{tail(self.logs[name], n)}"


def _follow(run: _Run, progress: Path, episodes: int, on_event: Callable[[dict], None] | None, log) -> None:
    """Pass sim_node's progress events on until it exits; a node that dies before the run is ready
    ends it (UserError); vla_node dying later ends it after the episode under way."""
    sim, vla = run.procs["sim_node"], run.procs["vla_node"]
    follower = run.procs.get("trajectory_follower")
    offset, ready = 0, False
    while True:
        events, offset = _read_events(progress, offset)
        for ev in events:
            ready = ready or ev.get("event") == "ready"
            if on_event:
                on_event(ev)
            if run.vla_died and ev.get("event") == "end" and ev.get("episode", 0) + 1 < episodes:
                run.stopped_sim = True  # that episode is recorded: stop there
                stop_processes([sim])
        if sim.poll() is not None:
            events, offset = _read_events(progress, offset)
            for ev in events:
                if on_event:
                    on_event(ev)
            return
        if follower is not None and follower.poll() is not None and not ready:
            stop_processes([sim, vla])
            raise UserError(f"trajectory_follower exited with {follower.returncode} before the run started; "
                            + run.log_tail("trajectory_follower"))
        if vla.poll() is not None and not run.vla_died:
            if not ready:
                stop_processes([sim])
                raise UserError(f"vla_node exited with {vla.returncode} before it was ready; "
                                + run.log_tail("vla_node"))
            run.vla_died = True
            print(f"[vla sim] vla_node exited with {vla.returncode} during the run: the robot must stop by "
                  f"trajectory_timeout; finishing this episode, then stopping", file=log, flush=True)
        time.sleep(0.1)


def run_ros(opts: SimOptions, out_dir: Path, on_event: Callable[[dict], None] | None = None,
            log=sys.stderr, failures: list | None = None, show_commands: bool = True) -> list:
    """Run the episodes through sim_node + vla_node processes; returns the EpisodeRecords.

    If vla_node dies after it was up, the episode under way is finished (the robot must stop by
    itself: trajectory_timeout) and recorded, the run ends there and a line goes to ``failures``.
    """
    from vla_ros.sim.record import EpisodeRecord

    failures = [] if failures is None else failures
    checkpoint = resolve_checkpoint(opts.checkpoint)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in list(out_dir.glob("episode_*.json")) + [out_dir / "progress.jsonl"]:
        old.unlink(missing_ok=True)
    descs = sim_descriptions(opts, out_dir, checkpoint)
    env, domain = ros_env(opts.domain_id)
    run = _Run()
    print(f"[vla sim] ROS_DOMAIN_ID={domain}"
          + (" (private, loopback)" if opts.domain_id is None else "") + f"; logs in {out_dir}", file=log, flush=True)
    try:
        run.start(descs, out_dir, env, log, show_commands)
        _follow(run, out_dir / "progress.jsonl", opts.episodes, on_event, log)
        sim, vla = run.procs["sim_node"], run.procs["vla_node"]
        stop_processes([p for p in run.procs.values() if p is not sim])
        if sim.returncode != 0 and not (run.stopped_sim and sim.returncode == -signal.SIGINT):
            raise UserError(f"sim_node exited with {sim.returncode}; {run.log_tail('sim_node')}\nvla_node's "
                            f"log ({run.logs['vla_node']}):\n{tail(run.logs['vla_node'], 15)}")
        if run.vla_died:
            failures.append(f"vla_node exited with {vla.returncode} during the run (see {run.logs['vla_node']})")
    except BaseException:
        stop_processes(list(run.procs.values()))
        raise
    finally:
        for fh in run.files:
            fh.close()
    return [EpisodeRecord.load(p) for p in sorted(out_dir.glob("episode_*.json"))]


def run_episodes(opts: SimOptions, on_event: Callable[[dict], None] | None = None,
                 failures: list | None = None, show_commands: bool = True) -> tuple[list, Path | None]:
    """Run the episodes (ROS processes, or in process with ``no_ros``) -> (records, folder of the
    records and logs, None when it was temporary and is gone)."""
    if opts.no_ros:
        from vla_ros.sim.in_process import run_in_process_episodes

        return run_in_process_episodes(opts, on_event), None
    if opts.out_dir:
        out = Path(opts.out_dir)
        return run_ros(opts, out, on_event, failures=failures, show_commands=show_commands), out
    with tempfile.TemporaryDirectory(prefix="vla_sim_") as tmp:
        return run_ros(opts, Path(tmp), on_event, failures=failures, show_commands=show_commands), None
