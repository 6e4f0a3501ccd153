"""Helpers shared by the commands: loading a model, reporting bad input."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["add_model_option", "guard", "kind_counts", "load_model", "model_from_args"]


def load_model(name: str | None, allow_missing_weights: bool = False) -> Any:
    """The ``StandardizedTransformer`` of ``--model`` (offline unless the user says otherwise)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from crystalbox.standard.model import StandardizedTransformer

    return StandardizedTransformer(name, allow_missing_weights=allow_missing_weights)


def add_model_option(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--allow-missing-weights``, for every command that loads a model."""
    parser.add_argument(
        "--model",
        default=None,
        help="hub name, local folder (a HF model or a programs checkpoint), a .gguf file (converted "
        "once into a cached folder), or 'smollm2-135m' "
        "(default: the embedded SmolLM2-135M)",
    )
    parser.add_argument(
        "--allow-missing-weights",
        action="store_true",
        help="load a checkpoint that lacks some weights (e.g. a base encoder without its "
        "language-model head); those parameters are random",
    )


def model_from_args(args: argparse.Namespace) -> Any:
    """``load_model`` of ``add_model_option``'s options."""
    return load_model(args.model, args.allow_missing_weights)


def guard(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn bad-input errors into a one-line message and exit status 2 (``CrystalboxError``
    passes through to ``main``, which reports it the same way). Exit statuses of every
    command: 0 done, 1 a check it ran failed (``validate``, ``demo``, ``programs verify``), 2 bad
    input."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (ValueError, IndexError, TypeError) as exc:
            from crystalbox.errors import CrystalboxError

            if isinstance(exc, CrystalboxError):
                raise
            print(f"crystalbox {args.command}: error: {exc}", file=sys.stderr)
            return 2

    return run


def kind_counts(text: str) -> int | tuple[int, int]:
    """argparse type of a per-layer head/MLP count: ``N`` or ``CAT+NUM``."""
    from crystalbox.programs.config import parse_kind_counts

    try:
        return parse_kind_counts(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
