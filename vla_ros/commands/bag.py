"""``vla bag``: record simulated episodes as rosbag2, replay bags into the node (or offline), score.

    vla bag record-sim --out BAG --episodes N --seed S [--split train|eval] [--image-size 128]
    vla bag replay BAG [--offline | --stepped | --rate R] [--record OUT] [--report F] [--checkpoint C]
                       [--ego T --top T --command T --truth-topic T] [--no-launch] [--set KEY=VALUE ...]
    vla bag score OUT_BAG [--truth BAG] [--report F]
    vla bag golden (--tiny | BAG --checkpoint C) (--out F | --check F)
    vla bag info BAG

See docs/bags.md.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from vla_ros.runtime.history import NS


def _err(message: str):
    from vla_ros.cli import UserError

    return UserError(message)


def _note(msg: str) -> None:
    print(f"[vla bag] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------

def cmd_record_sim(args) -> int:
    from vla_ros.bag.io import BagError
    from vla_ros.bag.record import record_sim

    t0 = time.perf_counter()
    try:
        s = record_sim(args.out, episodes=args.episodes, seed=args.seed, split=args.split, image_size=args.image_size,
                       steps=args.steps, gap=args.gap, start=args.start, storage=args.storage,
                       overwrite=args.overwrite, progress=None if args.quiet else _note, robot=args.robot,
                       expert_noise=args.expert_noise == "on",
                       kinds=[k.strip() for k in args.kinds.split(",") if k.strip()] if args.kinds else None)
    except (BagError, ValueError) as exc:
        raise _err(str(exc)) from None
    frames = sum(e["frames"] for e in s.episodes)
    print(f"wrote {s.path}: {len(s.episodes)} episodes, {frames} observations, {s.messages} messages, "
          f"{(s.end_ns - s.start_ns) / NS:.1f} s of bag time ({args.storage}) in {time.perf_counter() - t0:.1f} s")
    return 0


# ---------------------------------------------------------------------------------------------

def _parse_sets(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _err(f"--set {item!r}: write KEY=VALUE, e.g. --set num_inference_steps=4")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def node_config(params_file: str | None, namespace: str, sets: dict, checkpoint: str | None = None,
                device: str | None = None, stepped: bool = False):
    """The node's settings for a replay: params file (default config/vla.yaml) + overrides."""
    from vla_ros.launch_description import default_params_file, full_name
    from vla_ros.runtime.config import NODE_NAME, node_config_from_parameters, read_params_file

    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    path = Path(params_file) if params_file else default_params_file()
    values = read_params_file(path, full_name(ns, NODE_NAME))
    values.update(sets)
    if checkpoint:
        values["checkpoint"] = str(Path(checkpoint).expanduser().resolve())
    if device:
        values["device"] = device
    if stepped and "rate_hz" not in sets:
        # stepped replay waits for the node's next tick after every observation: tick often
        values["rate_hz"] = max(float(values.get("rate_hz", 3.0)), 10.0)
    return node_config_from_parameters(values, where=f"{path.name}+--set")


def _checkpoint_path(cfg) -> Path:
    from vla_ros import paths

    return Path(cfg.checkpoint).expanduser() if cfg.checkpoint else paths.default_checkpoint()


def _model_spec(cfg, required: bool):
    from vla_ros.runtime.core import ModelSpec

    path = _checkpoint_path(cfg)
    if not path.is_file():
        if required:
            raise _err(f"checkpoint {path} does not exist: pass --checkpoint (a trained .pth)")
        return ModelSpec()
    from vla_ros.checkpoint import checkpoint_config, read_checkpoint

    return ModelSpec.from_config(checkpoint_config(read_checkpoint(path), path))


def run_replay(args, mode: str, model=None) -> tuple[dict, "object"]:
    """Replay as the arguments say; returns (report, session). Raises UserError for a damaged bag
    after writing the output bag and report of what was read."""
    from vla_ros.bag.io import BagDamagedError, BagError, BagReader

    stepped = mode == "stepped"
    cfg = node_config(args.params_file, args.namespace, _parse_sets(args.set), args.checkpoint, args.device, stepped)
    try:
        reader = BagReader(args.bag)
    except BagError as exc:
        raise _err(str(exc)) from None
    damaged = None
    try:
        roles, session = _open_session(args, mode, cfg, reader, model)
    except BagError as exc:
        reader.close()
        raise _err(str(exc)) from None
    try:
        _replay(args, mode, cfg, reader, roles, session, model)
    except BagDamagedError as exc:
        damaged = exc
        session.damaged = {"error": str(exc), "messages_read": exc.messages_read}
    except KeyboardInterrupt:
        session.interrupted = True
        session.finish(args.report)
        raise
    except BagError as exc:
        session.close_on_error()
        raise _err(str(exc)) from None
    except BaseException:
        session.close_on_error()
        raise
    finally:
        reader.close()
    report = session.finish(args.report)
    if damaged is not None:
        report["_error"] = (f"{damaged}. Wrote the output of the {session.observations} observations read before "
                            "the damage" + (f" to {args.record}" if args.record else "")
                            + (f" and {args.report}" if args.report else ""))
    return report, session


def _open_session(args, mode: str, cfg, reader, model):
    """The bag's topics (said unless --quiet) and the replay's Session (its output bag opened)."""
    from vla_ros.bag.session import Session
    from vla_ros.bag.topics import resolve_topics

    roles = resolve_topics(reader, args.ego, args.top, args.command, args.truth_topic, getattr(args, "odom", None))
    if not args.quiet:
        _note_topics(args, mode, reader, roles)
    ckpt = _checkpoint_path(cfg)
    if model is None and not (mode != "offline" and args.no_launch) and not ckpt.is_file():
        raise _err(f"checkpoint {ckpt} does not exist: pass --checkpoint (a trained .pth)")
    meta = {"mode": mode, "bag": str(args.bag), "output": args.record, "checkpoint": str(ckpt),
            "topics": roles.to_dict(),
            "node": {k: getattr(cfg, k) for k in ("history_spacing", "history_tolerance", "max_age", "max_skew",
                                                    "num_inference_steps", "rate_hz", "device")}}
    if mode == "timed":
        meta["rate"] = args.rate
    return roles, Session(args.record, overwrite=args.overwrite, meta=meta)


def _note_topics(args, mode: str, reader, roles) -> None:
    _note(f"{mode} replay of {args.bag}: ego {roles.ego}, top {roles.top}, command "
          f"{roles.command or '(none' + (', --command-text' if args.command_text else '') + ')'}, "
          f"ground truth {roles.truth or '(none: no ADE/FDE)'}, "
          f"odometry {roles.odom or '(none: the model is told the velocity is unknown)'}")
    if reader.damage:
        _note(f"warning: {reader.damage}; replaying what is readable")
    if not roles.command and not args.command_text:
        _note("warning: no command topic: the node will stop (STOP_NO_COMMAND) on every observation; "
              "pass --command TOPIC or --command-text TEXT")


def _replay(args, mode: str, cfg, reader, roles, session, model) -> None:
    """The replay itself: offline in this process, or through the node."""
    if mode == "offline":
        from vla_ros.bag.offline import replay_offline

        replay_offline(reader, roles, cfg, session, command_text=args.command_text, verbose=args.verbose,
                       model=model)
        return
    from vla_ros.bag.dds_replay import replay_dds

    spec = _model_spec(cfg, required=not args.no_launch)
    replay_dds(reader, roles, cfg, spec, session, stepped=mode == "stepped", rate=args.rate,
               namespace=args.namespace, launch=not args.no_launch, command_text=args.command_text,
               step_timeout=args.step_timeout, startup_timeout=args.startup_timeout, node_log=args.node_log,
               verbose=args.verbose, status=(lambda s: None) if args.quiet else _note)


def cmd_replay(args) -> int:
    from vla_ros.bag.score import format_report

    modes = [m for m, on in (("offline", args.offline), ("stepped", args.stepped)) if on]
    if len(modes) > 1:
        raise _err("choose one of --offline and --stepped (without either: timed replay through the node)")
    mode = modes[0] if modes else "timed"
    if args.no_launch and mode == "offline":
        raise _err("--no-launch is for replay through a running node; --offline uses no node")
    report, _ = run_replay(args, mode)
    error = report.pop("_error", None)
    print(format_report(report))
    for path in (args.record, args.report):
        if path:
            print(f"wrote {path}")
    if error:
        raise _err(error)
    return 0


# ---------------------------------------------------------------------------------------------

def cmd_score(args) -> int:
    from vla_ros.bag.io import BagError
    from vla_ros.bag.score_bag import score_bag
    from vla_ros.bag.score import format_report

    try:
        report = score_bag(args.out_bag, args.truth, args.pred_topic, args.truth_topic)
    except BagError as exc:
        raise _err(str(exc)) from None
    print(format_report(report))
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.report}")
    if report.get("damaged"):
        raise _err(f"{report['damaged']['error']} (scored what was readable)")
    return 0


# ---------------------------------------------------------------------------------------------

def cmd_golden(args) -> int:
    import argparse
    import tempfile

    from vla_ros.bag import golden

    if bool(args.tiny) == bool(args.bag):
        raise _err("give a BAG (with --checkpoint) or --tiny (the test fixture)")
    if bool(args.out) == bool(args.check):
        raise _err("give --out F (write a golden file) or --check F (compare with one)")
    with tempfile.TemporaryDirectory(prefix="vla_bag_golden_") as tmp:
        sets = list(args.set)
        if args.tiny:
            bag, ckpt = golden.make_tiny_inputs(tmp)
            sets = [f"{k}={v}" for k, v in golden.TINY_NODE_PARAMS.items()] + sets
            command = "vla bag golden --tiny --out " + (args.out or args.check)
        else:
            bag, ckpt = Path(args.bag), args.checkpoint
            if not ckpt:
                raise _err("--checkpoint is required with a BAG")
            command = f"vla bag golden {args.bag} --checkpoint {ckpt} " + " ".join(f"--set {s}" for s in sets) + \
                      f" --out {args.out or args.check}"
        rargs = argparse.Namespace(bag=str(bag), params_file=args.params_file, namespace="", set=sets,
                                   checkpoint=str(ckpt), device=None, record=None, report=None, overwrite=False,
                                   ego=args.ego, top=args.top, command=args.command, truth_topic=None,
                                   command_text=None, quiet=True, verbose=False, no_launch=False)
        report, session = run_replay(rargs, "offline")
        if report.pop("_error", None):
            raise _err(f"{bag} is damaged: no golden outputs from it")

        inputs = {"bag_frames_sha256": golden.frames_fingerprint(bag),
                  "checkpoint_sha256": golden.checkpoint_fingerprint(ckpt),
                  "node_params": _parse_sets(sets)}
        if args.tiny:
            inputs["fixture"] = golden.TINY
        if args.out:
            doc = golden.golden_doc(session.answers, inputs, command.strip())
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(golden.dumps(doc))
            ok = sum(1 for a in doc["answers"] if a["status"] == "OK")
            print(f"wrote {args.out}: {len(doc['answers'])} answers ({ok} OK)")
            return 0
        doc = json.loads(Path(args.check).read_text())
        problems = golden.compare_golden(session.answers, doc, inputs)
        if problems:
            print("\n".join(problems))
            print(f"{len(problems)} difference(s) from {args.check}")
            return 1
        print(f"matches {args.check} ({len(doc['answers'])} answers, tolerance {doc.get('tolerance_m')})")
        return 0


def cmd_info(args) -> int:
    from vla_ros.bag.io import BagError, BagReader

    try:
        with BagReader(args.bag) as reader:
            print(f"{args.bag}: {reader.storage}, {reader.message_count if reader.message_count is not None else '?'} "
                  "messages")
            print(reader.describe())
            if reader.damage:
                print(f"DAMAGED: {reader.damage}")
    except BagError as exc:
        raise _err(str(exc)) from None
    return 0


# ---------------------------------------------------------------------------------------------

def _topic_args(p) -> None:
    p.add_argument("--ego", metavar="TOPIC", help="the bag's ego camera topic (default /ego/image_raw or a guess)")
    p.add_argument("--top", metavar="TOPIC", help="the bag's top camera topic (default /top/image_raw or a guess)")
    p.add_argument("--command", metavar="TOPIC", help="the bag's command topic, std_msgs/String (default /command)")


def _node_args(p) -> None:
    p.add_argument("--checkpoint", help="model checkpoint (.pth); default: the params file's, else the packaged one")
    p.add_argument("--params-file", help="node parameters (default config/vla.yaml); the launched node gets them")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a node parameter, repeatable, e.g. --set num_inference_steps=4")


def register(sub) -> None:
    p = sub.add_parser("bag", help="rosbag2: record simulated episodes, replay bags into the node, score",
                       description="rosbag2 tools (see docs/bags.md)")
    bsub = p.add_subparsers(dest="bag_cmd", required=True, metavar="ACTION")
    _register_record_sim(bsub)
    _register_replay(bsub)
    _register_score(bsub)
    _register_golden(bsub)
    i = bsub.add_parser("info", help="topics, types and message counts of a bag")
    i.add_argument("bag")
    i.set_defaults(func=cmd_info)


def _register_record_sim(bsub) -> None:
    r = bsub.add_parser("record-sim", help="write simulated episodes as a rosbag2 (MCAP) with ground truth "
                                           "(--robot: as a robot publishes them, without)")
    r.add_argument("--out", required=True, help="bag directory to create")
    r.add_argument("--episodes", type=int, required=True)
    r.add_argument("--seed", type=int, required=True, help="episode i = the dataset's episode i for this seed")
    r.add_argument("--split", choices=("train", "eval"), default="train", help="phrasing set of the commands")
    r.add_argument("--image-size", type=int, default=128)
    r.add_argument("--steps", type=int, default=40, help="frames per episode (sim_dt = 0.1 s apart)")
    r.add_argument("--gap", type=float, default=2.0,
                   help="seconds between one episode's last frame and the next one's first")
    r.add_argument("--start", type=float, default=10.0, help="bag time (s) of the first frame")
    r.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    r.add_argument("--overwrite", action="store_true")
    r.add_argument("--quiet", action="store_true")
    r.add_argument("--robot", action="store_true",
                   help="record as a robot would: cameras, /odom and /command only (no /clock, no ground truth), "
                        "each episode driven 3.2 s longer so vla data from-bag labels all --steps frames")
    r.add_argument("--expert-noise", choices=("on", "off"), default="on",
                   help="off: the expert drives exactly its plan (the recorded motion equals the simulator's labels)")
    r.add_argument("--kinds", metavar="K1,K2", help="only these command kinds, comma-separated (cycled; default all)")
    r.set_defaults(func=cmd_record_sim)


def _register_replay(bsub) -> None:
    rp = bsub.add_parser("replay", help="play a bag into vla_node (or --offline), record and score its answers")
    rp.add_argument("bag", help="rosbag2 directory, or an .mcap / .db3 file")
    mode = rp.add_argument_group("mode (default: through the node at the bag's pace)")
    mode.add_argument("--offline", action="store_true", help="no DDS: the node's core and model in this process")
    mode.add_argument("--stepped", action="store_true",
                      help="through the node, one observation at a time: wait for its answer (deterministic)")
    mode.add_argument("--rate", type=float, default=1.0, help="playback speed factor (timed mode)")
    rp.add_argument("--record", metavar="OUT", help="output bag (MCAP) of the answers (+ ground truth, commands)")
    rp.add_argument("--report", metavar="F", help="write the report as JSON")
    rp.add_argument("--overwrite", action="store_true", help="replace an existing output bag")
    _node_args(rp)
    rp.add_argument("--device", help="torch device of the model (cpu, cuda, cuda:N)")
    _topic_args(rp)
    rp.add_argument("--truth-topic", metavar="TOPIC", help="ground truth (vla_ros/msg/Trajectory), default "
                                                           "/ground_truth/trajectory")
    rp.add_argument("--odom", metavar="TOPIC", help="odometry (nav_msgs/msg/Odometry) for the model's velocity "
                                                    "input, default /odom when the bag has it; 'none' = without")
    rp.add_argument("--command-text", metavar="TEXT", help="a command given before the bag's first message")
    rp.add_argument("--no-launch", action="store_true",
                    help="use a vla_node that is already running (with use_sim_time:=true) instead of starting one")
    rp.add_argument("--namespace", default="", help="namespace of the node's topics")
    rp.add_argument("--step-timeout", type=float, default=10.0, help="stepped: seconds to wait for each answer")
    rp.add_argument("--startup-timeout", type=float, default=180.0, help="seconds to wait for the node to be ready")
    rp.add_argument("--node-log", metavar="F", help="write the launched node's output here")
    rp.add_argument("--quiet", action="store_true")
    rp.add_argument("--verbose", action="store_true", help="show the node core's status changes")
    rp.set_defaults(func=cmd_replay)


def _register_score(bsub) -> None:
    s = bsub.add_parser("score", help="score a bag of answers against ground truth (ADE/FDE, stops, latency)")
    s.add_argument("out_bag", help="bag with vla_ros/msg/Trajectory answers (e.g. from vla bag replay --record)")
    s.add_argument("--truth", metavar="BAG", help="bag with the ground truth (default: the answers bag itself)")
    s.add_argument("--pred-topic", metavar="TOPIC", help="answers topic (default /trajectory)")
    s.add_argument("--truth-topic", metavar="TOPIC", help="ground truth topic (default /ground_truth/trajectory)")
    s.add_argument("--report", metavar="F", help="write the report as JSON")
    s.set_defaults(func=cmd_score)


def _register_golden(bsub) -> None:
    g = bsub.add_parser("golden", help="write or check golden outputs (offline replay) of a bag")
    g.add_argument("bag", nargs="?", help="bag (or use --tiny)")
    g.add_argument("--tiny", action="store_true",
                   help="the test fixture: tiny seeded checkpoint + tiny simulated bag (test/test_bag.py)")
    g.add_argument("--out", metavar="F", help="write the golden JSON")
    g.add_argument("--check", metavar="F", help="compare with a golden JSON (exit 1 on a difference)")
    _node_args(g)
    _topic_args(g)
    g.set_defaults(func=cmd_golden)
