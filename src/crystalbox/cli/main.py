"""Entry point of the ``crystalbox`` command: builds the parser from the subcommand modules."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from crystalbox.errors import CrystalboxError

# Each module exposes ``register(subparsers)``; its subcommands set ``func(args) -> int``.
# Modules are imported lazily here (not at package import) so ``crystalbox --help`` stays fast.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "crystalbox.cli.model_commands",
    "crystalbox.cli.methods_commands",
    "crystalbox.cli.programs_commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crystalbox",
        description="Look inside transformers through one interface; train transformers that are programs.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet in this checkout
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CrystalboxError as exc:  # bad input: a model, checkpoint or file that cannot be used
        print(f"crystalbox: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
