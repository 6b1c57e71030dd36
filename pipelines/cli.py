"""The ``gantune`` command: one subcommand per module of ``pipelines.commands``.

Each command module exposes ``register(subparsers)`` and a ``run(args)`` that returns the exit
code; heavy libraries (torch, Ray, MLflow) are imported inside ``run`` so that ``gantune --help``
answers at once. A ``UsageError`` from any command is printed as one line and exits with 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from trainables.errors import UsageError

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
    except UsageError as err:
        print(f"gantune {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
