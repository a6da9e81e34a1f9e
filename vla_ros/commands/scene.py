"""``vla scene-map``: add the scene map (obstacles and road on the top camera) to a checkpoint and train it."""

from __future__ import annotations

import json


def cmd_scene_map(args) -> int:
    from vla_ros.training.scene import train_scene_map

    data = [d.strip() for d in args.data.split(",") if d.strip()]
    summary = train_scene_map(args.init, data, args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                              seed=args.seed, frames_per_episode=args.frames_per_episode, device=args.device,
                              json_path=args.json)
    v = summary["validation"]
    print(f"scene map on {summary['frames']['validation']} held-out frames of {summary['validation_episodes']} "
          f"episodes: obstacle precision {v['obstacle_precision']:.3f} recall {v['obstacle_recall']:.3f} "
          f"IoU {v['obstacle_iou']:.3f}; road accuracy {v['road_accuracy']:.3f} IoU {v['road_iou']:.3f}")
    print(f"wrote {summary['out']} ({summary['seconds']:.0f} s); use it with --guidance scene")
    if args.json is None:
        print(json.dumps(summary, indent=1))
    return 0


def register(sub) -> None:
    p = sub.add_parser("scene-map", help="add the scene map (obstacles, road) to a checkpoint and train it alone",
                       description="Copies --init to --out with a scene map trained on the top-camera frames of "
                                   "--data against each episode's recorded layout; the other weights are "
                                   "unchanged. Guidance 'scene' (vla sim --guidance scene, the node's guidance "
                                   "parameter) uses it.")
    p.add_argument("--init", required=True, help="checkpoint with the target locator (e.g. checkpoints/locator.pth)")
    p.add_argument("--data", required=True, help="dataset directories (vla data generate), comma-separated")
    p.add_argument("--out", required=True, help="checkpoint to write (not --init)")
    p.add_argument("--steps", type=int, default=1500, help="training steps (default 1500)")
    p.add_argument("--batch-size", type=int, default=32, help="frames per step (default 32)")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate, cosine-annealed (default 2e-3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames-per-episode", type=int, default=4, help="top frames read per episode (default 4)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--json", help="write the summary (held-out figures) to this JSON file")
    p.set_defaults(func=cmd_scene_map)
