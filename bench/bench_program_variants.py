"""Benchmark: how often training variants succeed, over seeds, at one task's published config.

Each variant is a set of ``TrainConfig`` overrides, plus optionally the model's ``n_layers``,
``n_heads`` and ``n_mlps`` (per layer, split evenly categorical/numerical), ``count_only``,
``causal_heads`` and ``tables`` (``default_program_config``'s arguments); every (variant, seed)
run is trained in this process on one thread and printed as one JSON line, then one summary
line per variant (test accuracies of the discrete model, in seed order, and the mean). Nothing is written to disk.
Example (the hist screening in docs/programs.md, also what it runs without arguments)::

    python bench/bench_program_variants.py hist --epochs 100 --seeds 0 1 2 3 \
        --variant default='{}' --variant lr_1e-2='{"lr": 0.01}' \
        --variant reference='{"init": "reference"}'

A model with tables draws every other parameter as the same model without them, so
``--variant relu='{"count_only": true}' --variant tables='{"tables": true}'``
compares the two from the same initial reads, predicates and categorical MLPs, seed by seed
(the training noise that follows differs).
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

import torch

from crystalbox.programs.tasks import TASKS, make_task
from crystalbox.programs.train import TrainConfig, default_program_config, train_program

# run with no arguments: the hist screening of the example above
DEFAULT_VARIANTS = [
    ("default", {}),
    ("lr_1e-2", {"lr": 0.01}),
    ("reference", {"init": "reference"}),
]
MODEL_KEYS = ("n_layers", "n_heads", "n_mlps", "count_only", "causal_heads", "tables")


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``name=JSON`` -> (name, TrainConfig overrides)."""
    name, sep, overrides = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=JSON, got {text!r}")
    try:
        parsed = json.loads(overrides)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"variant {name!r}: invalid JSON ({error})") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"variant {name!r}: overrides must be a JSON object")
    return name, parsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", nargs="?", default="hist", choices=list(TASKS))
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3])
    parser.add_argument(
        "--variant",
        action="append",
        type=parse_variant,
        help="NAME=JSON, repeatable (default: the hist screening of the example above)",
    )
    args = parser.parse_args(argv)
    args.variant = args.variant or DEFAULT_VARIANTS
    torch.set_num_threads(1)
    task = make_task(args.task)
    for name, overrides in args.variant:
        shape = {key: overrides[key] for key in MODEL_KEYS if key in overrides}
        config = default_program_config(task, **shape)
        training = {key: value for key, value in overrides.items() if key not in MODEL_KEYS}
        accuracies = []
        for seed in args.seeds:
            train_config = TrainConfig(
                epochs=args.epochs, seed=seed, threads=1, progress=False, **training
            )
            result = train_program(task, config, train_config).result
            accuracies.append(round(result.test_acc, 2))
            print(
                json.dumps(
                    {
                        "task": args.task,
                        "variant": name,
                        "overrides": overrides,
                        "config": config.summary(),
                        "seed": seed,
                        "epochs": args.epochs,
                        "val_acc": round(result.val_acc, 2),
                        "test_acc": round(result.test_acc, 2),
                        "best_epoch": result.best_epoch,
                        "wall_s": round(result.wall_s, 1),
                    }
                ),
                flush=True,
            )
        print(f"{name}: test {accuracies}, mean {statistics.mean(accuracies):.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
