"""``vla data generate``, ``vla data from-bag`` and ``vla data show``."""

from __future__ import annotations

from vla_ros.config import GUIDANCE_MODES, NOISE_MODES


def cmd_generate(args) -> int:
    from vla_ros.data.generate import generate_dataset
    from vla_ros.sim.config import WorldConfig

    extra = {} if args.blocking_obstacle_prob is None else {"blocking_obstacle_prob": args.blocking_obstacle_prob}
    cfg = WorldConfig(image_size=args.image_size, episode_steps=args.steps, **extra)
    out = generate_dataset(args.out, episodes=args.episodes, seed=args.seed, config=cfg, split=args.split,
                           workers=args.workers, overwrite=args.overwrite, first_index=args.first_index,
                           policy=args.policy, replan_period=args.replan_period,
                           policy_noise=args.policy_noise, policy_guidance=args.policy_guidance,
                           policy_scan_guard=args.policy_scan_guard,
                           kinds=[k.strip() for k in args.kinds.split(",") if k.strip()] if args.kinds else None)
    driver = f", driven by {args.policy} and labelled by the expert" if args.policy else ""
    print(f"wrote {args.episodes} {args.split} episodes{driver} to {out} (format: vla_ros/data/FORMAT.md)")
    return 0


def cmd_from_bag(args) -> int:
    import json
    import sys

    from vla_ros.bag.io import BagError
    from vla_ros.data.from_bag import FromBagConfig, convert_bags, format_summary
    from vla_ros.errors import UserError

    cfg = FromBagConfig(ego=args.ego, top=args.top, command=args.command, command_text=args.command_text,
                        odom=args.odom, tf=args.tf, tf_topic=args.tf_topic, image_size=args.image_size,
                        frame_tolerance=args.frame_tolerance, max_skew=args.max_skew,
                        max_odometry_gap=args.max_odometry_gap)
    try:
        summary = convert_bags(args.bags, args.out, cfg, overwrite=args.overwrite, progress=not args.quiet,
                               log=lambda line: print(line, file=sys.stderr), truth_bag=args.truth_bag)
    except BagError as exc:
        raise UserError(str(exc)) from None
    print(format_summary(summary))
    if args.truth_bag:
        print(f"wrote {args.truth_bag}: the labels as /ground_truth/trajectory (vla bag score ANSWERS --truth "
              f"{args.truth_bag})")
    if args.summary:
        from pathlib import Path

        Path(args.summary).write_text(json.dumps(summary, indent=1))
        print(f"wrote {args.summary}")
    return 0


def _register_from_bag(dsub) -> None:
    from vla_ros.data.from_bag import FromBagConfig

    d = FromBagConfig.__dataclass_fields__
    b = dsub.add_parser("from-bag", help="convert a robot's rosbag2 recordings (cameras, odometry, command) "
                                         "into a dataset for vla train / vla eval (docs/train_on_robot.md)")
    b.add_argument("bags", nargs="+", metavar="BAG", help="rosbag2 directories or .mcap / .db3 files")
    b.add_argument("--out", required=True, help="dataset directory to create (must be empty unless --overwrite)")
    b.add_argument("--ego", required=True, metavar="TOPIC",
                   help="the robot's forward camera: sensor_msgs/Image (rgb8, bgr8, mono8) or CompressedImage "
                        "(JPEG, PNG), any resolution (centre-cropped and resized to --image-size)")
    b.add_argument("--top", metavar="TOPIC", help="the second camera (the default model has two: ego and top)")
    cmd = b.add_mutually_exclusive_group(required=True)
    cmd.add_argument("--command", metavar="TOPIC", help="std_msgs/String command topic; a new episode at each change")
    cmd.add_argument("--command-text", metavar="TEXT", help="or: the one command of every bag, verbatim")
    odo = b.add_mutually_exclusive_group(required=True)
    odo.add_argument("--odom", metavar="TOPIC", help="nav_msgs/Odometry topic (pose for the labels, twist for v, omega)")
    odo.add_argument("--tf", metavar="PARENT:CHILD", help="or: odometry from the transforms PARENT -> CHILD "
                                                          "(e.g. odom:base_link; v, omega differentiated)")
    b.add_argument("--tf-topic", default=d["tf_topic"].default, metavar="TOPIC", help="tf2_msgs/TFMessage topic")
    b.add_argument("--image-size", type=int, default=d["image_size"].default, help="the model's image size")
    b.add_argument("--frame-tolerance", type=float, default=d["frame_tolerance"].default, metavar="S",
                   help="a step uses each camera's newest frame at or before it, at most this old (the node's "
                        "history_tolerance)")
    b.add_argument("--max-skew", type=float, default=d["max_skew"].default, metavar="S",
                   help="the cameras' frames of a step at most this far apart (the node's max_skew)")
    b.add_argument("--max-odometry-gap", type=float, default=d["max_odometry_gap"].default, metavar="S",
                   help="odometry messages further apart are a gap: never interpolated across")
    b.add_argument("--truth-bag", metavar="BAG", help="also write the labels as a ground-truth bag "
                   "(/ground_truth/trajectory, stamped like the node's answers) to score a replay against: "
                   "vla bag score ANSWERS --truth BAG")
    b.add_argument("--summary", metavar="F", help="also write the summary JSON here (it is always in OUT/from_bag.json)")
    b.add_argument("--overwrite", action="store_true", help="replace OUT (only once the conversion succeeded)")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=cmd_from_bag)


def cmd_show(args) -> int:
    from vla_ros.data.show import show_dataset

    out = show_dataset(args.data, args.out, n=args.n, seed=args.seed)
    print(f"wrote {out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("data", help="generate or look at simulated datasets")
    dsub = p.add_subparsers(dest="data_cmd", required=True, metavar="ACTION")
    g = dsub.add_parser("generate", help="render simulated episodes (both cameras, commands, expert trajectories)")
    g.add_argument("--out", required=True, help="output directory (must be empty unless --overwrite)")
    g.add_argument("--episodes", type=int, required=True)
    g.add_argument("--seed", type=int, required=True, help="dataset seed (episode i uses a seed derived from it)")
    g.add_argument("--split", choices=("train", "eval"), default="train",
                   help="phrasing set: 'eval' uses held-out phrasings the model never saw")
    g.add_argument("--image-size", type=int, default=128)
    g.add_argument("--steps", type=int, default=40, help="recorded steps per episode")
    g.add_argument("--workers", type=int, default=1, help="worker processes (same output)")
    g.add_argument("--overwrite", action="store_true")
    g.add_argument("--kinds", metavar="K1,K2",
                   help="only these command kinds, comma-separated (cycled, balanced; default all), e.g. "
                        "follow_lane for more on-policy data of one weak command")
    g.add_argument("--blocking-obstacle-prob", type=float, metavar="P",
                   help="chance that a world puts an obstacle on the expert's path (world.blocking_obstacle_prob, "
                        "default 0.25; not for stop), e.g. 1 for more data of driving around obstacles")
    g.add_argument("--first-index", type=int, default=0,
                   help="number episodes from here (to join datasets in one directory)")
    g.add_argument("--policy", metavar="CHECKPOINT",
                   help="on-policy data (DAgger): this model drives after each episode's prelude, the expert "
                        "still labels every step")
    g.add_argument("--replan-period", type=float, default=0.2, help="seconds between the policy's predictions")
    g.add_argument("--policy-noise", choices=NOISE_MODES, default="fixed",
                   help="fixed: one noise draw for every prediction (what the node does); varied: a new draw "
                        "per prediction, seeded by episode and step (visits what the model's samples do); zero: x_T = 0")
    g.add_argument("--policy-guidance", choices=GUIDANCE_MODES, default="none",
                   help="target / scene: the policy drives with that guidance (a model with the locator; scene: "
                        "and the scene map), as `vla sim --guidance target|scene` runs it")
    g.add_argument("--policy-scan-guard", action="store_true",
                   help="the policy's plans are cut by the scan guard (vla sim --scan-guard): on-policy states "
                        "where the guard stopped the model, labelled by the expert")
    g.set_defaults(func=cmd_generate)
    _register_from_bag(dsub)
    s = dsub.add_parser("show", help="draw a few samples: both cameras and the ground truth over the top view")
    s.add_argument("data", help="dataset directory")
    s.add_argument("--out", required=True, help="PNG to write")
    s.add_argument("--n", type=int, default=4, help="number of samples")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_show)
