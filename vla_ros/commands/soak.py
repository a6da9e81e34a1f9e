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
the soak's bar is met (OK share >= 0.95 and steady-state growth <= 1 MB/min), and from the node's
diagnostics the share of the published frames its callbacks received, the frames the middleware
reported lost, those its decode threads dropped for a newer one (superseded) and the input delay
(header.stamp to callback, p95); ``--json`` writes them.

The cameras are published the way a robot's camera driver should publish them on one machine:
with Fast DDS, through ``config/fastdds_large_frames.xml`` (a shared-memory segment that holds
whole VGA frames; ``--dds-profile none`` publishes with Fast DDS's defaults, which lose most raw
640x480 frames: docs/node.md, "Raw frames and DDS"). Only this process uses the profile.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from vla_ros.ros.soak import run_soak

__all__ = ["register", "cmd_soak"]


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
