"""``crystalbox programs curve``: a checkpoint's training run as a plot."""

from __future__ import annotations

import argparse
from typing import Any

from crystalbox.cli.common import guard

__all__ = ["register"]


def register(programs: Any) -> None:
    """Add ``curve`` to the ``programs`` subparsers."""
    curve = programs.add_parser(
        "curve",
        help="plot a checkpoint's validation accuracy per epoch with the temperature",
    )
    curve.add_argument("checkpoint", help="folder written by `programs train`")
    curve.add_argument("-o", "--output", required=True, help="a .png file, or .html")
    curve.set_defaults(func=guard(_curve))


def _curve(args: argparse.Namespace) -> int:
    from crystalbox.plotting.training import epoch_temperatures, training_curve
    from crystalbox.programs.checkpoint import load_program

    loaded = load_program(args.checkpoint)
    result, config = loaded.result, loaded.train_config
    history = list(result.get("val_history", []))
    if not history:
        raise ValueError(
            f"{args.checkpoint} records no validation history (saved without a training run)"
        )
    temperatures = None
    if {"tau_start", "tau_end", "epochs"} <= config.keys():
        temperatures = epoch_temperatures(
            float(config["tau_start"]),
            float(config["tau_end"]),
            int(config["epochs"]),
            len(history),
        )
    best = result.get("best_epoch")
    averaged = list(result.get("average_val_history", []))  # runs with TrainConfig.ema_decay
    title = (
        f"{loaded.task.name} ({loaded.model.config.summary()}), seed {result.get('seed', '?')}: "
        f"val {result.get('val_acc', float('nan')):.2f}, test {result.get('test_acc', float('nan')):.2f}"
    )
    path = training_curve(
        history,
        temperatures=temperatures,
        best_epoch=int(best) if best is not None else None,
        average_history=averaged,
        selected=str(result.get("selected", "trained")),
        title=title,
        path=args.output,
    )
    peak = max(range(len(history)), key=history.__getitem__)
    line = f"{path}: {len(history)} epochs, validation peaks at epoch {peak} ({history[peak]:.2f})"
    if averaged:
        top = max(range(len(averaged)), key=averaged.__getitem__)
        line += f", averaged parameters at epoch {top} ({averaged[top]:.2f})"
    print(line)
    return 0
