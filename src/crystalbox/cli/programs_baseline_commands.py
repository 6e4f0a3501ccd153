"""``crystalbox programs baseline``: the standard transformer on a task, for comparison."""

from __future__ import annotations

import argparse
import json
from typing import Any

from crystalbox._files import write_atomically
from crystalbox.cli.common import guard
from crystalbox.cli.programs_commands import (
    add_task_data_arguments,
    task_from_args,
)

__all__ = ["register"]


def register(programs: Any) -> None:
    """Add ``baseline`` to the ``programs`` subparsers."""
    baseline = programs.add_parser(
        "baseline",
        help="train a standard transformer of comparable size on a task (the paper's comparison)",
    )
    add_task_data_arguments(baseline)
    baseline.add_argument("--epochs", type=int, default=50, help="default 50")
    baseline.add_argument("--lr", type=float, default=1e-3, help="Adam (default 1e-3)")
    baseline.add_argument("--batch-size", type=int, default=512)
    baseline.add_argument("--seed", type=int, default=0)
    baseline.add_argument("--d-model", type=int, default=64)
    baseline.add_argument("--layers", type=int, default=3)
    baseline.add_argument("--heads", type=int, default=4)
    baseline.add_argument("--d-mlp", type=int, default=128)
    baseline.add_argument("--threads", type=int, default=None)
    baseline.add_argument(
        "--json", default=None, metavar="FILE", help="also write the result as JSON"
    )
    baseline.add_argument("--quiet", action="store_true", help="no progress bar")
    baseline.set_defaults(func=guard(_baseline))


def _baseline(args: argparse.Namespace) -> int:
    from crystalbox.programs.baseline import BaselineConfig, train_baseline
    from crystalbox.programs.train import TrainConfig

    task = task_from_args(args)
    config = BaselineConfig.for_task(
        task, d_model=args.d_model, n_layers=args.layers, n_heads=args.heads, d_mlp=args.d_mlp
    )
    train_config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        data_seed=args.data_seed,
        n_train=args.n_train,
        n_val=args.n_val,
        n_test=args.n_test,
        threads=args.threads,
        progress=not args.quiet,
    )
    model, result = train_baseline(task, config, train_config, lr=args.lr)
    report = {
        "task": task.name,
        "model": "standard transformer",
        "config": {
            "d_model": config.d_model,
            "n_layers": config.n_layers,
            "n_heads": config.n_heads,
            "d_mlp": config.d_mlp,
            "causal": config.causal,
        },
        "parameters": sum(p.numel() for p in model.parameters()),
        "lr": args.lr,
        **{key: value for key, value in result.to_dict().items() if key != "val_history"},
    }
    text = json.dumps(report)
    print(text)
    if args.json:
        write_atomically(args.json, lambda tmp: tmp.write_text(text + "\n"))
    return 0
