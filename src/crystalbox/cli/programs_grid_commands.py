"""``crystalbox programs grid``: seeds x a configuration grid in parallel, selected on validation."""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

from crystalbox._files import write_atomically
from crystalbox.cli.common import guard, kind_counts
from crystalbox.cli.programs_commands import (
    add_model_arguments,
    add_overwrite_option,
    add_task_arguments,
    check_output_folder,
    model_options_from_args,
    task_from_args,
    train_config_from_args,
)

__all__ = ["register"]


def register(programs: Any) -> None:
    """Add ``grid`` to the ``programs`` subparsers."""
    grid = programs.add_parser(
        "grid",
        help="train seeds x the paper's grid (L, H, M) in parallel; keep the best on validation",
    )
    add_task_arguments(grid)
    grid.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    grid.add_argument("--layers", type=int, nargs="+", default=[2, 3])
    for flag, default, example in (("--heads", [4, 8], "1+2"), ("--mlps", [2, 4], "2+1")):
        grid.add_argument(
            flag,
            type=kind_counts,
            nargs="+",
            default=default,
            metavar="N|CAT+NUM",
            help=f"per layer: N split evenly cat/num, or e.g. {example}",
        )
    add_model_arguments(grid)
    grid.add_argument(
        "--processes", type=int, default=None, help="parallel runs (default: the CPU count)"
    )
    grid.add_argument(
        "--out", default=None, help="the best run's checkpoint (default: out/programs/TASK-grid)"
    )
    add_overwrite_option(grid)
    grid.add_argument(
        "--json", default=None, metavar="FILE", help="also write every run's result as JSON"
    )
    grid.add_argument("--quiet", action="store_true", help="no progress bar")
    grid.set_defaults(func=guard(_grid))


def _grid(args: argparse.Namespace) -> int:
    from crystalbox.programs.checkpoint import save_program
    from crystalbox.programs.grid import paper_grid, run_grid

    task = task_from_args(args)
    out = args.out or f"out/programs/{task.name}-grid"
    check_output_folder(out, args.overwrite)  # before training, not after
    if args.processes is not None and args.processes < 1:
        raise ValueError(f"--processes must be at least 1, got {args.processes}")
    configs = paper_grid(task, args.layers, args.heads, args.mlps, **model_options_from_args(args))
    result = run_grid(
        task,
        configs,
        seeds=list(dict.fromkeys(args.seeds)),
        train_config=train_config_from_args(args),
        processes=args.processes,
        progress=not args.quiet,
    )
    save_program(result.best, out)
    print(_table(result.runs, result.best))
    if args.json:
        runs = [
            {"config": config.to_dict(), "summary": config.summary(), **run.to_dict()}
            for config, run in result.runs
        ]
        text = json.dumps({"task": task.name, "best": out, "runs": runs}, indent=1)
        write_atomically(args.json, lambda tmp: tmp.write_text(text + "\n"))
        print(f"every run -> {args.json}")
    print(f"best on validation -> {out}")
    return 0


def _table(runs: Any, best: Any) -> str:
    """One row per configuration: its best-validation seed, test mean ± std and per seed."""
    rows = [
        "| config | seeds | val (best seed) | test (best seed) | test mean ± std | test per seed "
        "| s per run |"
    ]
    rows.append("| --- | --- | --- | --- | --- | --- | --- |")
    by_config: dict[Any, list[Any]] = {}
    for config, result in runs:
        by_config.setdefault(config, []).append(result)
    for config, results in by_config.items():
        top = max(results, key=lambda r: r.val_acc)
        tests = [r.test_acc for r in results]
        spread = statistics.stdev(tests) if len(tests) > 1 else 0.0
        mark = " **best**" if top is best.result else ""
        rows.append(
            f"| {config.summary()}{mark} | {len(results)} | {top.val_acc:.2f} (seed {top.seed}) "
            f"| {top.test_acc:.2f} | {statistics.mean(tests):.2f} ± {spread:.2f} "
            f"| {', '.join(f'{r.seed}: {r.test_acc:.2f}' for r in results)} "
            f"| {statistics.median(r.wall_s for r in results):.1f} |"
        )
    return "\n".join(rows)
