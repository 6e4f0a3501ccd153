"""Helpers shared by the model and methods commands: loading a model, reporting bad input."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["guard", "load_model"]


def load_model(name: str | None) -> Any:
    """The ``StandardizedTransformer`` of ``--model`` (offline unless the user says otherwise)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from crystalbox.standard.model import StandardizedTransformer

    return StandardizedTransformer(name)


def guard(
    func: Callable[[argparse.Namespace], int], status: int = 2
) -> Callable[[argparse.Namespace], int]:
    """Turn bad-input errors into a one-line message and exit code ``status`` (2 for the model
    and methods commands, 1 for ``programs``); ``CrystalboxError`` passes through to ``main``,
    which reports it the same way with exit code 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (ValueError, IndexError, TypeError) as exc:
            from crystalbox.errors import CrystalboxError

            if isinstance(exc, CrystalboxError):
                raise
            print(f"crystalbox {args.command}: error: {exc}", file=sys.stderr)
            return status

    return run
