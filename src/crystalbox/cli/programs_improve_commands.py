"""``crystalbox programs refit`` and ``polish``: improve a checkpoint's program, kept only if
validation rises, into a new checkpoint that records every improvement it has been through."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystalbox.cli.common import guard
from crystalbox.cli.programs_commands import (
    add_overwrite_option,
    add_task_option,
    check_output_folder,
    load_checkpoint_data,
)

if TYPE_CHECKING:
    from crystalbox.programs.checkpoint import LoadedProgram
    from crystalbox.programs.data import TaskData
    from crystalbox.programs.polish import PolishConfig

    # edits a checkpoint's model in place: (kept, validation after, details for the record)
    Improvement = Callable[[LoadedProgram, TaskData], tuple[bool, float, dict[str, Any]]]

__all__ = ["improve", "polisher", "register"]


def register(programs: Any) -> None:
    """Add ``refit`` and ``polish`` to the ``programs`` subparsers."""
    refit = programs.add_parser(
        "refit",
        help="refit a checkpoint's classifier on its discrete stream (kept if validation rises)",
    )
    refit.add_argument("checkpoint", help="folder written by `programs train`")
    refit.add_argument(
        "-o", "--out", default=None, help="new checkpoint folder (default: CHECKPOINT-refit)"
    )
    add_overwrite_option(refit)
    refit.add_argument("--max-iter", type=int, default=200, help="L-BFGS iterations")
    refit.add_argument("--threads", type=int, default=None)
    add_task_option(refit)
    refit.set_defaults(func=guard(_refit))

    polish = programs.add_parser(
        "polish",
        help="local search over a checkpoint's predicates, reads and MLP tables "
        "(kept if validation rises)",
    )
    polish.add_argument("checkpoint", help="folder written by `programs train`")
    polish.add_argument(
        "-o", "--out", default=None, help="new checkpoint folder (default: CHECKPOINT-polish)"
    )
    add_overwrite_option(polish)
    polish.add_argument("--rounds", type=int, default=2, help="passes over every choice")
    polish.add_argument(
        "--search-examples",
        type=int,
        default=4000,
        help="training examples scoring each alternative (0: all); gains are confirmed on all",
    )
    polish.add_argument("--no-reads", action="store_true", help="do not search reads")
    polish.add_argument(
        "--no-tables",
        action="store_true",
        help="do not search MLP tables (categorical, and numerical table MLPs)",
    )
    polish.add_argument("--no-refit", action="store_true", help="keep the classifier as is")
    polish.add_argument("--seed", type=int, default=0, help="draws the search examples")
    polish.add_argument("--threads", type=int, default=None)
    polish.add_argument("--quiet", action="store_true", help="no progress bar")
    add_task_option(polish)
    polish.set_defaults(func=guard(_polish))


def _refit(args: argparse.Namespace) -> int:
    from crystalbox.programs.refit import refit_classifier

    def run(loaded: LoadedProgram, data: TaskData) -> tuple[bool, float, dict[str, Any]]:
        result = refit_classifier(loaded.model, data.train, data.val, max_iter=args.max_iter)
        return result.kept, result.val_after, result.to_dict()

    return improve(args.checkpoint, args.out, args.threads, "refit", run, args.task, args.overwrite)


def _polish(args: argparse.Namespace) -> int:
    from crystalbox.programs.polish import PolishConfig

    config = PolishConfig(
        rounds=args.rounds,
        search_examples=args.search_examples,
        reads=not args.no_reads,
        tables=not args.no_tables,
        refit=not args.no_refit,
        seed=args.seed,
        progress=not args.quiet,
    )
    return improve(
        args.checkpoint,
        args.out,
        args.threads,
        "polish",
        polisher(config),
        args.task,
        args.overwrite,
    )


def polisher(config: PolishConfig) -> Improvement:
    """The ``_improve`` step that polishes a checkpoint's model with ``config``."""
    from crystalbox.programs.polish import polish_program

    def run(loaded: LoadedProgram, data: TaskData) -> tuple[bool, float, dict[str, Any]]:
        result = polish_program(loaded.model, data.train, data.val, config)
        return result.kept, result.val_after, result.to_dict()

    return run


def improve(
    checkpoint: str,
    out_arg: str | None,
    threads: int | None,
    step: str,
    run: Improvement,
    task: str | None = None,
    overwrite: bool = False,
) -> int:
    """Run ``run`` (which edits the model in place and says whether it kept the edit) on a
    checkpoint and write a new checkpoint ``out_arg`` (default CHECKPOINT-<step>) if it did."""
    import torch

    from crystalbox.programs.checkpoint import load_program, save_loaded
    from crystalbox.programs.train import accuracy

    source = Path(checkpoint)
    out = Path(out_arg) if out_arg else source.with_name(f"{source.name}-{step}")
    if out.resolve() == source.resolve():
        raise ValueError(f"--out {out} is the checkpoint itself; choose a new folder")
    check_output_folder(out, overwrite)
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be positive, got {threads}")
        torch.set_num_threads(threads)
    loaded = load_program(source)
    data = load_checkpoint_data(loaded, None, task)
    test_before = accuracy(loaded.model, data.test)
    kept, val_after, details = run(loaded, data)
    report = {"checkpoint": str(source), **details, "test_before": test_before}
    report["test_after"] = accuracy(loaded.model, data.test) if kept else test_before
    if kept:
        tests = {name: report[name] for name in ("test_before", "test_after")}
        history = [*_improvements(loaded.result), {"step": step, **details, **tests}]
        save_loaded(
            loaded,
            out,
            **{step: details},
            improvements=history,
            val_acc=val_after,
            test_acc=report["test_after"],
        )
        report["out"] = str(out)
    if isinstance(report.get("edits"), list):  # every edit is in the checkpoint's result
        report["edits"] = _edit_counts(report["edits"])
    print(
        json.dumps({key: round(v, 4) if isinstance(v, float) else v for key, v in report.items()})
    )
    return 0


def _improvements(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every refit and polish a checkpoint has been through, oldest first (``result["refit"]``
    and ``result["polish"]`` hold only the latest of each); checkpoints written before the
    list was kept give their recorded steps in the order they were first recorded."""
    recorded = result.get("improvements")
    if isinstance(recorded, list):
        return list(recorded)
    return [
        {"step": key, **value}
        for key, value in result.items()
        if key in ("refit", "polish") and isinstance(value, dict)
    ]


def _edit_counts(edits: list[dict[str, Any]]) -> dict[str, int]:
    """The number of kept edits, in all and per kind of parameter."""
    counts = Counter(str(edit["param"]) for edit in edits)
    return {"total": len(edits), **dict(sorted(counts.items()))}
