"""``vla data generate`` and ``vla data show``."""

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
                           kinds=[k.strip() for k in args.kinds.split(",") if k.strip()] if args.kinds else None)
    driver = f", driven by {args.policy} and labelled by the expert" if args.policy else ""
    print(f"wrote {args.episodes} {args.split} episodes{driver} to {out} (format: vla_ros/data/FORMAT.md)")
    return 0


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
    g.set_defaults(func=cmd_generate)
    s = dsub.add_parser("show", help="draw a few samples: both cameras and the ground truth over the top view")
    s.add_argument("data", help="dataset directory")
    s.add_argument("--out", required=True, help="PNG to write")
    s.add_argument("--n", type=int, default=4, help="number of samples")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_show)
