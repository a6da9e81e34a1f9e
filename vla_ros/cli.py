"""The ``vla`` command: one entry point with subcommands.

Heavy imports (torch, transformers, rclpy) happen inside each subcommand, so ``vla --help``
is instant and a subcommand only pays for what it uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vla_ros import paths
from vla_ros.errors import USER_ERRORS, UserError  # noqa: F401  (UserError: for subcommands)


def _model_config(args):
    from vla_ros.config import ModelConfig, load_yaml

    if getattr(args, "config", None):
        return load_yaml(args.config, ModelConfig, section="model")
    return ModelConfig()


def cmd_info(args) -> int:
    from vla_ros import info

    cfg = _model_config(args)
    data = info.collect(cfg, with_model=not args.no_model)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(info.format_table(data))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vla", description="vla_ros: a vision-language-action model for ROS 2")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    s = sub.add_parser("info", help="model size table (the seed's) and parameter counts")
    s.add_argument("--config", help=f"model YAML (default: built-in = {paths.config_dir() / 'model.yaml'})")
    s.add_argument("--json", action="store_true", help="print JSON instead of tables")
    s.add_argument("--no-model", action="store_true", help="only the head table (skips loading encoders)")
    s.set_defaults(func=cmd_info)

    for register in _registrars():
        register(sub)
    return p


def _registrars():
    """Subcommands that live in their own modules (each exposes ``register(subparsers)``)."""
    import importlib

    out = []
    for name in ("vla_ros.commands.demo", "vla_ros.commands.data", "vla_ros.commands.train",
                 "vla_ros.commands.evaluate", "vla_ros.commands.bench", "vla_ros.commands.launch",
                 "vla_ros.commands.sim", "vla_ros.commands.bag", "vla_ros.commands.scene", "vla_ros.commands.soak"):
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # not part of this build
            raise
        out.append(mod.register)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"vla {args.cmd}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vla {args.cmd}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
