"""The ``gantune`` command: one subcommand per pipeline module.

Each command module exposes ``register(subparsers)``; heavy libraries are imported inside the
commands so that ``gantune --help`` and config errors answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from trainables.config import ConfigError

COMMAND_MODULES = (
    "pipelines.commands.train",
    "pipelines.commands.evaluator",
    "pipelines.commands.search",
    "pipelines.commands.promote",
    "pipelines.commands.export",
    "pipelines.commands.generate",
    "pipelines.commands.report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gantune", description="Hyperparameter search for GANs: train, search, promote, export, generate, report.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"gantune {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
