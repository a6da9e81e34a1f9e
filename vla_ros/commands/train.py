"""``vla train``."""

from __future__ import annotations

import json


def cmd_train(args) -> int:
    import dataclasses

    from vla_ros.config import ModelConfig, TrainConfig, load_yaml
    from vla_ros.training.loop import train

    model_cfg = load_yaml(args.config, ModelConfig, section="model")
    train_cfg = load_yaml(args.config, TrainConfig, section="train")
    overrides = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("seed", args.seed),
                                   ("val_every", args.val_every), ("lr", args.lr),
                                   ("relabel_prob", args.relabel_prob)) if v is not None}
    if args.refresh_labels is not None:
        overrides["refresh_labels"] = tuple(k.strip() for k in args.refresh_labels.split(",") if k.strip())
    train_cfg = dataclasses.replace(train_cfg, **overrides)
    if args.odometry_input is not None:
        model_cfg = dataclasses.replace(model_cfg, odometry_input=args.odometry_input == "on")
    if args.target_locator is not None:
        model_cfg = dataclasses.replace(model_cfg, target_locator=args.target_locator == "on")
    if args.text_lora is not None:
        model_cfg = dataclasses.replace(model_cfg, text_lora=args.text_lora == "on")
    resume = args.resume
    if resume == "auto":
        from pathlib import Path

        resume = Path(args.out) / "last.pth"
    summary = train(model_cfg, train_cfg, args.data, args.out, device=args.device, resume=resume,
                    max_minutes=args.max_minutes, every_frame=not args.half_frames, init=args.init)
    import os

    if os.environ.get("RANK", "0") == "0":  # under torchrun: process 0 reports
        print(json.dumps(summary, indent=1))
    return 0


def register(sub) -> None:
    from vla_ros import paths

    p = sub.add_parser("train", help="train SimpleVLA on a generated dataset")
    p.add_argument("--config", default=str(paths.config_dir() / "model.yaml"), help="YAML with model: and train:")
    p.add_argument("--data", required=True, metavar="DIR[:W],...",
                   help="dataset directory (vla data generate, vla data from-bag), or several, comma-separated, "
                        "optionally each with the share W of every training batch drawn from it: sim:0.5,bags:0.5 "
                        "(weights normalised; without weights every sample is drawn alike). Each directory holds "
                        "out its own validation episodes")
    p.add_argument("--out", required=True, help="run directory: best.pth, last.pth, loss_curve.png, train_log.json")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="resume from last.pth (of --out, or the path given); the stored config is used")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="fine-tune: start from this checkpoint's weights, config and normaliser (new optimiser)")
    p.add_argument("--steps", type=int, help="override train.steps")
    p.add_argument("--batch-size", type=int, help="override train.batch_size")
    p.add_argument("--lr", type=float, help="override train.lr")
    p.add_argument("--val-every", type=int, help="override train.val_every")
    p.add_argument("--seed", type=int, help="override train.seed")
    p.add_argument("--relabel-prob", type=float, metavar="P",
                   help="override train.relabel_prob: share of samples given another command (train.relabel_kinds), "
                        "labelled with the expert's plan for it from the same state (0 = off)")
    p.add_argument("--refresh-labels", metavar="K1,K2",
                   help="override train.refresh_labels: recompute the labels of these kinds' episodes with the "
                        "current expert from the recorded states (data recorded before the expert changed), "
                        "e.g. goto_red,goto_green,goto_blue")
    p.add_argument("--max-minutes", type=float, help="stop (and save last.pth) after this many minutes")
    p.add_argument("--odometry-input", choices=("on", "off"),
                   help="override model.odometry_input (the robot's measured velocity as an input); with --init, "
                        "'on' adds the input to a checkpoint without it (zero-initialised), 'off' keeps the "
                        "checkpoint's own setting")
    p.add_argument("--target-locator", choices=("on", "off"),
                   help="override model.target_locator (find the commanded cone and the robot on the top camera, "
                        "trained with the simulator's positions as extra labels); with --init, 'on' adds it to a "
                        "checkpoint without it (its input zero-initialised), 'off' keeps the checkpoint's setting")
    p.add_argument("--text-lora", choices=("on", "off"),
                   help="override model.text_lora (LoRA on the text encoder as well); with --init, 'off' "
                        "drops a checkpoint's text LoRA for the pretrained encoder (the projection refitted "
                        "so the training phrasings encode as before), 'on' keeps the checkpoint's setting")
    p.add_argument("--half-frames", action="store_true",
                   help="encode and train on every other step only (half the CPU time; neighbours are near-duplicates)")
    p.set_defaults(func=cmd_train)
