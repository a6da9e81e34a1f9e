"""``vla soak``: vla_node under a robot's camera load for a while -- does it keep answering, does it grow?

    vla soak [--duration 120] [--fps 30] [--width 640 --height 480] [--image-transport raw|compressed]
             [--checkpoint C] [--device D] [--rate-hz R] [--warmup 20] [--dds-profile F|none] [--json F]

vla_node runs as its own process (the vla_ros launch description, as ``vla launch`` starts it) on a
private ROS domain. This process plays the robot: both cameras at ``--fps`` (rgb8 Image, or JPEG
CompressedImage with ``--image-transport compressed``), odometry with every frame pair and a latched
command. It counts the node's trajectories by status and samples the node's resident memory
(VmRSS) every second. The first ``--warmup`` seconds after the node's first answer (history
filling, caches, allocator) are left out of both figures. Prints the share of OK trajectories and
the memory growth (MB, and MB per minute by a least-squares fit over the whole measured phase and
over its second half, the steady state: the allocator may still settle early in the run), whether
issue 19's bar is met (OK share >= 0.95 and steady-state growth <= 1 MB/min), and from the node's
diagnostics the share of the published frames its callbacks received, the frames the middleware
reported lost, those its decode threads dropped for a newer one (superseded) and the input delay
(header.stamp to callback, p95); ``--json`` writes them.

The cameras are published the way a robot's camera driver should publish them on one machine:
with Fast DDS, through ``config/fastdds_large_frames.xml`` (a shared-memory segment that holds
whole VGA frames; ``--dds-profile none`` publishes with Fast DDS's defaults, which lose most raw
640x480 frames: docs/node.md, "Raw frames and DDS"). Only this process uses the profile.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

__all__ = ["register", "cmd_soak", "run_soak", "soak_frames", "memory_figures", "bar"]

STARTUP_TIMEOUT_S = 300.0
COMMAND = "go forward"
CAMERAS = ("ego", "top")
PUBLISHER_PROFILE = "fastdds_large_frames.xml"  # in config/
# Issue 19's bar: the share of OK trajectories after the warm-up, and the steady-state memory growth.
BAR_OK_SHARE = 0.95
BAR_STEADY_MB_PER_MIN = 1.0


def register(subparsers) -> None:
    p = subparsers.add_parser("soak", help="vla_node under both cameras at 30 Hz 640x480 from another process: "
                                           "OK-trajectory share and memory growth", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=120.0, help="seconds measured after the warm-up (default 120)")
    p.add_argument("--warmup", type=float, default=20.0,
                   help="seconds after the node's first answer left out of the figures (default 20)")
    p.add_argument("--fps", type=float, default=30.0, help="frames per second per camera (default 30)")
    p.add_argument("--width", type=int, default=640, help="camera width (default 640)")
    p.add_argument("--height", type=int, default=480, help="camera height (default 480)")
    p.add_argument("--image-transport", choices=("raw", "compressed"), default="raw",
                   help="raw: sensor_msgs/Image rgb8; compressed: JPEG sensor_msgs/CompressedImage")
    p.add_argument("--checkpoint", help="model checkpoint (default: the packaged one)")
    p.add_argument("--device", default="cpu", help="torch device of vla_node: cpu | cuda | cuda:N")
    p.add_argument("--rate-hz", type=float, help="vla_node ticks per second (default: the params file's, 3)")
    p.add_argument("--cpu-threads", type=int, default=1, help="vla_node's torch threads (default 1; 0 = one per core)")
    p.add_argument("--domain-id", type=int, help="ROS_DOMAIN_ID (default: a random private one, loopback only)")
    p.add_argument("--dds-profile", default="",
                   help="Fast DDS XML profile of the camera publisher (this process): default "
                        "config/fastdds_large_frames.xml; 'none' = Fast DDS's defaults")
    p.add_argument("--json", help="write the figures to this JSON file")
    p.set_defaults(func=cmd_soak)


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
    from vla_ros.cli import UserError

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
    """Issue 19's bar: OK share >= BAR_OK_SHARE and steady-state growth <= BAR_STEADY_MB_PER_MIN.
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
    import os

    from vla_ros.launch_description import describe, process_command
    from vla_ros.ros.orchestration import child_setup, ros_env, stop_processes

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
    import os

    from vla_ros import paths
    from vla_ros.cli import UserError

    if option == "none":
        return None
    path = Path(option).expanduser() if option else paths.config_dir() / PUBLISHER_PROFILE
    if not path.is_file():
        raise UserError(f"--dds-profile {option or '(packaged)'}: {path} does not exist")
    for var in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):  # Fast DDS 3, 2
        os.environ[var] = str(path)
    return str(path)


def cmd_soak(args) -> int:
    from vla_ros.cli import UserError

    for name in ("duration", "fps"):
        if not getattr(args, name) > 0:
            raise UserError(f"--{name} must be > 0")
    if args.warmup < 0 or args.width < 16 or args.height < 16:
        raise UserError("--warmup must be >= 0 and the image at least 16x16 pixels")
    print(f"vla soak: {args.width}x{args.height} {args.image_transport} cameras at {args.fps:g} Hz, "
          f"{args.warmup:g} s warm-up + {args.duration:g} s measured", flush=True)
    with tempfile.TemporaryDirectory(prefix="vla_soak_") as tmp:
        try:
            res = run_soak(args, Path(tmp))
        except UserError as exc:
            tail = "\n".join((Path(tmp) / "vla_node.log").read_text(errors="replace").splitlines()[-20:])
            raise UserError(f"{exc}; vla_node's log ends:\n{tail}") from None
    rss = res["rss_mb"] or {}
    print(f"trajectories: {res['trajectories']} ({res['trajectories_per_s']}/s), OK share "
          f"{res['ok_share']}, statuses {res['statuses']}; cameras published at {res['publish_rate_hz']} Hz")
    print(f"vla_node resident memory: {rss.get('start')} -> {rss.get('end')} MB (max {rss.get('max')}; growth "
          f"{rss.get('growth')} MB; {rss.get('growth_per_min')} MB/min over the run, "
          f"{rss.get('growth_per_min_steady')} MB/min steady state, from {rss.get('steady_from_s')} s); "
          f"mean inference latency {res['mean_inference_latency_ms']} ms")
    inputs = res["inputs"] or {}
    print("frames received by the node (share of published), lost in transport, superseded before decoding, "
          "input delay p95 (median, worst of the node's reports): " +
          ("; ".join(f"{cam} {v['received_share']}, {v['lost_in_transport']}, {v['superseded']}, "
                     f"{v['input_delay_p95_ms']} ({v['input_delay_p95_ms_max']}) ms"
                     for cam, v in inputs.items()) or "no diagnostics from the node") +
          f" (camera publisher's DDS profile: {res['dds_profile'] or 'Fast DDS defaults'})")
    print(res["bar"]["line"])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1))
        print(f"wrote {args.json}")
    return 0
