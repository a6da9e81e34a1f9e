"""``vla soak``'s measurement: vla_node as a child process under a robot's camera load from this process.

This process plays the robot (:class:`Robot`): both cameras at ``fps`` (rgb8 Image, or JPEG
CompressedImage), odometry with every frame pair and a latched command; it counts the node's
trajectories by status and samples the node's resident memory (VmRSS) every second. The first
``warmup`` seconds after the node's first answer are left out of both figures. The cameras are
published through ``config/fastdds_large_frames.xml`` unless told otherwise (docs/node.md, "Raw
frames and DDS"); only this process uses the profile. rclpy is imported when the robot starts.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from vla_ros import paths
from vla_ros.errors import UserError
from vla_ros.ros.orchestration import child_setup, ros_env, stop_processes

__all__ = ["run_soak", "soak_frames", "memory_figures", "input_figures", "bar", "summarize_soak", "Robot",
           "BAR_OK_SHARE", "BAR_STEADY_MB_PER_MIN"]

STARTUP_TIMEOUT_S = 300.0
COMMAND = "go forward"
CAMERAS = ("ego", "top")
PUBLISHER_PROFILE = "fastdds_large_frames.xml"  # in config/
# The bar vla_node must meet under this load: the share of OK trajectories after the warm-up, and the
# steady-state memory growth.
BAR_OK_SHARE = 0.95
BAR_STEADY_MB_PER_MIN = 1.0


def soak_frames(width: int, height: int, count: int = 30, jpeg: bool = False) -> list:
    """``count`` frames of a bright square moving over a gradient (uint8 (H, W, 3), or JPEG bytes)."""
    from PIL import Image

    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // max(1, width - 1), yy * 255 // max(1, height - 1), np.full_like(xx, 80)], 2)
    frames = []
    for i in range(count):
        img = base.astype(np.uint8)
        x0, y0 = (i * width) // count, height // 3
        img[y0:y0 + height // 4, x0:x0 + width // 8] = (250, 240, 30)
        if jpeg:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, "JPEG", quality=85)
            frames.append(buf.getvalue())
        else:
            frames.append(img)
    return frames


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


class Robot:
    """The robot's side in this process: cameras, odometry, the command; counts the trajectories."""

    def __init__(self, args) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import Odometry
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import String

        from vla_ros.msg import Trajectory

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("vla_soak_robot", context=self.context)
        self.compressed = args.image_transport == "compressed"
        kind, suffix = (CompressedImage, "/compressed") if self.compressed else (Image, "")
        self.cams = {c: self.node.create_publisher(kind, f"{c}/image_raw{suffix}", qos_profile_sensor_data)
                     for c in CAMERAS}
        self.odom = self.node.create_publisher(Odometry, "odom", 10)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_publisher(String, "command", latched).publish(String(data=COMMAND))
        self.statuses: Counter = Counter()
        self.latencies: list[float] = []
        self.counting = False
        self.answered = False
        self.node.create_subscription(Trajectory, "trajectory", self._on_trajectory, 50)
        self.pairs_published = 0
        self.diagnostics: list[tuple[int, dict[str, str]]] = []  # (pairs published by then, the node's values)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.frames = soak_frames(args.width, args.height, jpeg=self.compressed)
        self.msgs = {"Image": Image, "CompressedImage": CompressedImage, "Odometry": Odometry}
        self.ok = Trajectory.STATUS_OK

    def _on_trajectory(self, msg) -> None:
        self.answered = True
        if self.counting:
            self.statuses[int(msg.status)] += 1
            if msg.status == self.ok:
                self.latencies.append(float(msg.inference_latency))

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if self.counting and status.name.endswith(": inference"):
                self.diagnostics.append((self.pairs_published, {kv.key: kv.value for kv in status.values}))

    def publish(self, i: int) -> None:
        """Frame pair ``i`` and odometry, stamped now."""
        from vla_ros.ros.messages import to_time

        stamp = to_time(self.node.get_clock().now().nanoseconds)
        frame = self.frames[i % len(self.frames)]
        for cam, pub in self.cams.items():
            if self.compressed:
                msg = self.msgs["CompressedImage"](format="jpeg", data=frame)
            else:
                h, w = frame.shape[:2]
                msg = self.msgs["Image"](height=h, width=w, encoding="rgb8", step=w * 3, data=frame.tobytes())
            msg.header.stamp, msg.header.frame_id = stamp, f"{cam}_camera"
            pub.publish(msg)
        odom = self.msgs["Odometry"]()
        odom.header.stamp, odom.header.frame_id, odom.child_frame_id = stamp, "odom", "base_link"
        odom.twist.twist.linear.x = 0.3
        self.odom.publish(odom)
        self.pairs_published += 1

    def spin_until(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=max(0.0, min(0.005, deadline - time.monotonic())))

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def _drive(robot: Robot, args, proc: subprocess.Popen) -> dict:
    """Publish at ``fps`` until the node answers, through the warm-up, then ``duration`` s measured."""
    period, i, t0 = 1.0 / args.fps, 0, time.monotonic()
    rss: list[tuple[float, float]] = []
    phase, phase_start, next_sample, published = "startup", t0, t0, 0
    while True:
        now = time.monotonic()
        if proc.poll() is not None:
            raise UserError(f"vla_node exited with {proc.returncode} during the soak")
        if phase == "startup" and robot.answered:
            phase, phase_start = "warmup", now
        elif phase == "startup" and now - t0 > STARTUP_TIMEOUT_S:
            raise UserError(f"vla_node did not answer within {STARTUP_TIMEOUT_S:g} s")
        elif phase == "warmup" and now - phase_start >= args.warmup:
            phase, phase_start, published, robot.counting = "measure", now, 0, True
        elif phase == "measure" and now - phase_start >= args.duration:
            return {"elapsed_s": now - phase_start, "published": published, "rss": rss}
        if phase == "measure" and now >= next_sample:
            mb = _rss_mb(proc.pid)
            if mb is not None:
                rss.append((now - phase_start, mb))
            next_sample = now + 1.0
        robot.publish(i)
        i, published = i + 1, published + 1
        robot.spin_until(t0 + i * period)


def input_figures(diagnostics: list[tuple[int, dict[str, str]]]) -> dict | None:
    """Per camera, between the node's first and last diagnostics of the measured phase: the share
    of the published frames its callbacks received, the frames the middleware reported lost, and
    the input delay (ms, header.stamp to callback): the median and the largest of the p95s the node
    reported once a second (each over its last 100 frames of that camera)."""
    if len(diagnostics) < 2 or diagnostics[-1][0] <= diagnostics[0][0]:
        return None
    (p0, first), (p1, last) = diagnostics[0], diagnostics[-1]
    count = lambda values, key: int(values.get(key, 0))  # noqa: E731
    out = {}
    for cam in CAMERAS:
        received = count(last, f"frames_received_{cam}") - count(first, f"frames_received_{cam}")
        delays = [float(v.get(f"input_delay_p95_ms_{cam}", "nan")) for _, v in diagnostics]
        delays = [d for d in delays if d == d]  # NaN: no frame yet
        out[cam] = {"published": p1 - p0, "received_share": round(received / (p1 - p0), 4),
                    "lost_in_transport": count(last, f"frames_lost_{cam}") - count(first, f"frames_lost_{cam}"),
                    "superseded": count(last, f"frames_superseded_{cam}") - count(first, f"frames_superseded_{cam}"),
                    "input_delay_p95_ms": round(float(np.median(delays)), 1) if delays else None,
                    "input_delay_p95_ms_max": max(delays) if delays else None}
    return out


def _slope_mb_per_min(t: np.ndarray, mb: np.ndarray) -> float | None:
    return float(np.polyfit(t, mb, 1)[0]) * 60.0 if len(t) >= 3 else None


def memory_figures(rss: list[tuple[float, float]]) -> dict | None:
    """(seconds into the measured phase, MB) samples -> start, end, max, growth (MB) and the
    least-squares growth in MB/min over the whole phase and over its second half (``_steady``)."""
    if not rss:
        return None
    t, mb = (np.array([r[i] for r in rss], dtype=float) for i in (0, 1))
    half = t >= (t[0] + t[-1]) / 2
    whole, steady = _slope_mb_per_min(t, mb), _slope_mb_per_min(t[half], mb[half])
    return {"start": round(float(mb[0]), 1), "end": round(float(mb[-1]), 1), "max": round(float(mb.max()), 1),
            "growth": round(float(mb[-1] - mb[0]), 1),
            "growth_per_min": None if whole is None else round(whole, 2),
            "growth_per_min_steady": None if steady is None else round(steady, 2),
            "steady_from_s": round(float(t[half][0]), 1)}


def bar(ok_share: float | None, rss: dict | None) -> dict:
    """The soak's bar: OK share >= BAR_OK_SHARE and steady-state growth <= BAR_STEADY_MB_PER_MIN.
    -> {"met": bool, "line": "bar: met (...)" or "bar: NOT met (what failed)", and the two limits}."""
    steady = (rss or {}).get("growth_per_min_steady")
    share_ok = ok_share is not None and ok_share >= BAR_OK_SHARE
    memory_ok = steady is not None and steady <= BAR_STEADY_MB_PER_MIN
    shown = "none" if ok_share is None else f"{ok_share:.4f}"
    share = f"OK share {shown} {'>=' if share_ok else '<'} {BAR_OK_SHARE:g}"
    memory = (f"steady-state growth {steady} MB/min {'<=' if memory_ok else '>'} {BAR_STEADY_MB_PER_MIN:g}"
              if steady is not None else "too few memory samples for the steady-state growth")
    if share_ok and memory_ok:
        line = f"bar: met ({share}; {memory})"
    else:
        line = "bar: NOT met (" + "; ".join(w for w, ok in ((share, share_ok), (memory, memory_ok)) if not ok) + ")"
    return {"met": share_ok and memory_ok, "line": line, "ok_share_min": BAR_OK_SHARE,
            "steady_growth_max_mb_per_min": BAR_STEADY_MB_PER_MIN}


def summarize_soak(args, run: dict, robot: Robot) -> dict:
    """The figures: OK share, statuses, publish rate, node latency, resident memory, its growth, the bar."""
    from vla_ros.runtime.safety import Status

    total = sum(robot.statuses.values())
    ok_share = robot.statuses.get(Status.OK, 0) / total if total else None
    rss = memory_figures(run["rss"])
    return {
        "duration_s": round(run["elapsed_s"], 2), "warmup_s": args.warmup, "fps_target": args.fps,
        "width": args.width, "height": args.height, "image_transport": args.image_transport,
        "publish_rate_hz": round(run["published"] / run["elapsed_s"], 2),
        "trajectories": total, "trajectories_per_s": round(total / run["elapsed_s"], 2),
        "ok": robot.statuses.get(Status.OK, 0),
        "ok_share": None if ok_share is None else round(ok_share, 4),
        "statuses": {Status(k).name: v for k, v in sorted(robot.statuses.items())},
        "mean_inference_latency_ms": round(1e3 * float(np.mean(robot.latencies)), 1) if robot.latencies else None,
        "dds_profile": args.dds_profile_path, "inputs": input_figures(robot.diagnostics),
        "rss_mb": rss, "bar": bar(ok_share, rss),  # the share unrounded: 0.94996 is not 0.95
    }


def run_soak(args, log_dir: Path, node_module: str | None = None) -> dict:
    """Start vla_node, drive it, stop it; returns :func:`summarize_soak`'s figures. ``node_module``
    replaces the module ``python -m`` runs (a test's instrumented node; the same parameters)."""
    from vla_ros.launch_description import describe, process_command

    (desc,) = describe(checkpoint=args.checkpoint, device=args.device, rate_hz=args.rate_hz)
    desc.parameters.update({"image_transport": args.image_transport, "cpu_threads": int(args.cpu_threads)})
    desc.module = node_module or desc.module
    env, domain = ros_env(args.domain_id)
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE") if k in env})
    log = log_dir / "vla_node.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(process_command(desc), stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, preexec_fn=child_setup)
    print(f"[vla soak] vla_node (pid {proc.pid}) on ROS_DOMAIN_ID={domain}; its log: {log}", file=sys.stderr)
    robot = None
    try:
        args.dds_profile_path = _use_publisher_profile(args.dds_profile)  # the cameras' process, not the node's
        robot = Robot(args)
        run = _drive(robot, args, proc)
        return summarize_soak(args, run, robot)
    finally:
        stop_processes([proc])
        if robot is not None:
            robot.close()


def _use_publisher_profile(option: str) -> str | None:
    """Point this process's Fast DDS at the camera publisher's profile (before its first participant);
    ``option`` '' = the packaged one, 'none' = Fast DDS's defaults. Returns the path used, or None."""
    if option == "none":
        return None
    path = Path(option).expanduser() if option else paths.config_dir() / PUBLISHER_PROFILE
    if not path.is_file():
        raise UserError(f"--dds-profile {option or '(packaged)'}: {path} does not exist")
    for var in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):  # Fast DDS 3, 2
        os.environ[var] = str(path)
    return str(path)
