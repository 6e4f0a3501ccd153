"""``crystalbox programs ...``: train and evaluate Transformer Programs.

Other modules add commands to the same group: each of ``EXTENSION_MODULES`` that exists has
its ``register(programs_subparsers)`` called (refit, polish; decompile, verify, explain,
graph; grid; curve; baseline).
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystalbox.cli.common import guard, kind_counts

if TYPE_CHECKING:
    from crystalbox.programs.checkpoint import LoadedProgram
    from crystalbox.programs.data import TaskData
    from crystalbox.programs.tasks import Task
    from crystalbox.programs.train import TrainConfig


__all__ = ["register"]

EXTENSION_MODULES: tuple[str, ...] = (
    "crystalbox.cli.programs_improve_commands",
    "crystalbox.cli.programs_decompile_commands",
    "crystalbox.cli.programs_grid_commands",
    "crystalbox.cli.programs_curve_commands",
    "crystalbox.cli.programs_baseline_commands",
)


def register(subparsers: Any) -> None:
    """Add the ``programs`` group and its subcommands to the top-level ``subparsers``."""
    parser = subparsers.add_parser("programs", help="train and evaluate Transformer Programs")
    programs = parser.add_subparsers(dest="programs_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda args: _help(parser))

    train = programs.add_parser(
        "train", help="train a program on a task (the paper's config by default)"
    )
    add_task_arguments(train)
    train.add_argument(
        "--out", default=None, help="checkpoint folder (default: out/programs/TASK-seedN)"
    )
    add_overwrite_option(train)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--layers", type=int, default=None)
    train.add_argument(
        "--heads",
        type=kind_counts,
        default=None,
        metavar="N|CAT+NUM",
        help="per layer: N split evenly categorical/numerical, or e.g. 1+2",
    )
    train.add_argument(
        "--mlps",
        type=kind_counts,
        default=None,
        metavar="N|CAT+NUM",
        help="per layer: N split evenly categorical/numerical, or e.g. 2+1",
    )
    add_model_arguments(train)
    train.add_argument(
        "--start",
        default=None,
        metavar="CHECKPOINT",
        help="train on from a checkpoint's weights (its model; the same task and data) "
        "instead of a fresh initialisation",
    )
    train.add_argument("--threads", type=int, default=None)
    train.add_argument("--device", default=None)
    train.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the attention kernels (needs a C++ compiler; about 1.1x per step at "
        "k = 16, none at k = 8; rounds differently, so a seed trains another program)",
    )
    train.add_argument(
        "--init",
        choices=("default", "reference"),
        default="default",
        help="parameter scales: crystalbox's (default) or the authors' implementation's",
    )
    train.add_argument(
        "--polish",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="then polish the trained program for ROUNDS rounds into OUT-polish "
        "(as `programs polish OUT --rounds ROUNDS`)",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=guard(_train))

    evaluate = programs.add_parser("eval", help="accuracy of a checkpoint's discrete model")
    evaluate.add_argument("checkpoint", help="folder written by `programs train`")
    evaluate.add_argument(
        "--data-seed", type=int, default=None, help="default: the training data seed"
    )
    evaluate.add_argument("--split", choices=("train", "val", "test"), default="test")
    evaluate.add_argument(
        "--breakdown",
        action="store_true",
        help="also accuracy per position, per target class and per whole sequence",
    )
    add_task_option(evaluate)
    evaluate.set_defaults(func=guard(_eval))

    for name in EXTENSION_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(programs)


def add_task_data_arguments(parser: argparse.ArgumentParser) -> None:
    """TASK, its sizes and its data splits: shared by ``train``, ``grid`` and ``baseline``."""
    from crystalbox.programs.tasks import TASKS  # light import: no torch model code runs

    parser.add_argument(
        "task",
        help=f"one of: {', '.join(TASKS)}; or a user task (custom_task): FILE.py:NAME or "
        "module:NAME (on sys.path or in the working folder), NAME a Task or a function "
        "returning one",
    )
    parser.add_argument("--vocab-size", type=int, default=None, help="specials included")
    parser.add_argument("--max-len", type=int, default=None)
    parser.add_argument("--data-seed", type=int, default=0)
    for split, size in (("train", 16000), ("val", 2000), ("test", 2000)):
        parser.add_argument(
            f"--n-{split}", type=int, default=size, help=f"{split} examples (default {size})"
        )


def add_task_arguments(parser: argparse.ArgumentParser) -> None:
    """TASK, its sizes, its data and the schedule: shared by ``train`` and ``grid``."""
    add_task_data_arguments(parser)
    parser.add_argument(
        "--epochs", type=int, default=None, help="default: the paper's (250; 500 for icl)"
    )
    parser.add_argument("--lr", type=float, default=5e-2)
    parser.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        default=None,
        help="constant (the paper's, default) or a half cosine to 0",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default 512")
    parser.add_argument(
        "--sampler",
        choices=("gumbel_soft", "gumbel_hard", "softmax"),
        default=None,
        help="relaxation in training: gumbel_soft (the paper's, default), gumbel_hard "
        "(straight-through; the benchmark's choice for hist) or softmax (no noise)",
    )
    parser.add_argument(
        "--tau-start", type=float, default=None, help="first temperature (default 3.0)"
    )
    parser.add_argument(
        "--tau-end", type=float, default=None, help="last temperature (default 0.01)"
    )
    parser.add_argument(
        "--patience",
        dest="plateau_patience",
        type=int,
        default=None,
        metavar="EPOCHS",
        help="stop once validation has not reached its best for EPOCHS epochs (default: run "
        "every epoch, the paper's; 40 keeps the selected epoch of every committed run)",
    )
    parser.add_argument(
        "--ema",
        dest="ema_decay",
        type=float,
        default=None,
        metavar="DECAY",
        help="also validate an exponential moving average of the parameters (this decay per "
        "step, e.g. 0.98) every epoch and select the better model (default: off, the paper's)",
    )
    parser.add_argument(
        "--ordered-below",
        dest="ordered_below",
        type=float,
        default=None,
        metavar="TAU",
        help="once the temperature falls below TAU, relax categorical heads as ordered "
        "matching, where the closest match wins as in the program (default: never, the "
        "paper's relaxation throughout)",
    )
    parser.add_argument(
        "--identity-prior",
        dest="identity_prior",
        type=float,
        default=None,
        metavar="BETA",
        help="add BETA to the diagonal of every predicate's initial logits, a prior towards "
        "equality predicates (default 0: the paper's random rows)",
    )


#: ``add_task_arguments``'s schedule options, as ``TrainConfig`` fields (None: its default)
_SCHEDULE_OPTIONS = (
    "lr_schedule",
    "batch_size",
    "sampler",
    "tau_start",
    "tau_end",
    "plateau_patience",
    "ema_decay",
    "ordered_below",
    "identity_prior",
)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Model options beside the head/MLP counts: shared by ``train`` and ``grid``."""
    parser.add_argument("--d-var", type=int, default=None)
    parser.add_argument(
        "--count-only", action="store_true", help="numerical heads count their matches"
    )
    parser.add_argument(
        "--tables",
        action="store_true",
        help="numerical MLPs are lookup tables over count pairs (implies --count-only; an "
        "extension of the paper's model)",
    )
    parser.add_argument(
        "--causal-heads",
        type=kind_counts,
        default=0,
        metavar="N|CAT+NUM",
        help="per layer, N heads of each kind (or CAT+NUM) see only earlier keys (non-causal "
        "tasks; an extension of the paper's model)",
    )


def model_options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``default_program_config``'s options from ``add_model_arguments``."""
    return {
        "d_var": args.d_var,
        "count_only": args.count_only,
        "causal_heads": args.causal_heads,
        "tables": args.tables,
    }


def task_from_args(args: argparse.Namespace) -> Task:
    """The task of ``add_task_arguments``; a user task records its source (``with_source``)."""
    from crystalbox.programs.task_source import is_task_reference, load_task, with_source

    task = load_task(args.task, vocab_size=args.vocab_size, max_len=args.max_len)
    return with_source(task, args.task) if is_task_reference(args.task) else task


def train_config_from_args(args: argparse.Namespace, **settings: Any) -> TrainConfig:
    """The ``TrainConfig`` of ``add_task_arguments``'s options (epochs: the paper's)."""
    from crystalbox.programs.tasks import PUBLISHED
    from crystalbox.programs.train import TrainConfig

    published = PUBLISHED.get(args.task)
    schedule = {name: getattr(args, name) for name in _SCHEDULE_OPTIONS}
    schedule = {name: value for name, value in schedule.items() if value is not None}
    return TrainConfig(
        epochs=args.epochs if args.epochs is not None else (published.epochs if published else 250),
        lr=args.lr,
        data_seed=args.data_seed,
        n_train=args.n_train,
        n_val=args.n_val,
        n_test=args.n_test,
        **schedule,
        **settings,
    )


def add_task_option(parser: argparse.ArgumentParser) -> None:
    """``--task``: where a checkpoint's user task is defined, when it does not record it."""
    parser.add_argument(
        "--task",
        default=None,
        metavar="FILE.py:NAME",
        help="the checkpoint's user task (custom_task), to regenerate its data when the "
        "checkpoint does not record where it is defined (or the file has moved)",
    )


def add_overwrite_option(parser: argparse.ArgumentParser) -> None:
    """``--overwrite``: allow replacing a checkpoint already in the output folder."""
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a checkpoint already in the output folder (default: refuse)",
    )


def check_output_folder(directory: str | Path, overwrite: bool) -> None:
    """``ValueError`` unless a checkpoint may be written to ``directory``: a new or empty
    folder, or (with ``--overwrite``) one holding an earlier checkpoint."""
    from crystalbox.programs.checkpoint import check_checkpoint_folder

    check_checkpoint_folder(directory)
    path = Path(directory)
    if not overwrite and path.is_dir() and any(path.iterdir()):
        raise ValueError(
            f"{path} already holds a checkpoint; pass --overwrite to replace it, or choose "
            "another folder with --out"
        )


def task_argument(spec: str | None) -> Task | None:
    """The task a ``--task`` option names (None when not given)."""
    from crystalbox.programs.task_source import load_task

    return load_task(spec) if spec else None


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _train(args: argparse.Namespace) -> int:
    import time

    from crystalbox.cli.programs_start import (
        check_start_data,
        describe_accuracies,
        start_checkpoint,
        start_record,
    )
    from crystalbox.programs.checkpoint import save_program
    from crystalbox.programs.train import default_program_config, train_program

    started = time.perf_counter()
    if args.polish < 0:
        raise ValueError(f"--polish takes a number of rounds (0: no polish), got {args.polish}")
    task = task_from_args(args)
    out = args.out or f"out/programs/{task.name}-seed{args.seed}"
    check_output_folder(out, args.overwrite)  # before training, not after
    if args.polish:
        check_output_folder(f"{out}-polish", args.overwrite)
    start = start_checkpoint(args, task) if args.start else None
    model_config = (
        start.model.config
        if start
        else default_program_config(
            task, args.layers, args.heads, args.mlps, **model_options_from_args(args)
        )
    )
    train_config = train_config_from_args(
        args,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        compile=args.compile,
        init=args.init,
        progress=not args.quiet,
    )
    if start:
        check_start_data(start, args.start, train_config)
    trained = train_program(task, model_config, train_config, start=start.model if start else None)
    lineage = start_record(start, args.start) if start else {}
    save_program(trained, out, **lineage)
    result = trained.result
    print(
        f"{task.name}: val {result.val_acc:.2f}  test {result.test_acc:.2f}  "
        f"(epoch {result.best_epoch}{', averaged' if result.selected == 'average' else ''}, "
        f"{result.wall_s:.0f}s, {result.threads} "
        f"thread{'' if result.threads == 1 else 's'}) -> {out}"
    )
    if lineage:
        begun = lineage["start"]
        print(f"started from {args.start}: {describe_accuracies(begun)}")
    if args.polish:
        from crystalbox.cli.programs_improve_commands import improve, polisher
        from crystalbox.programs.polish import PolishConfig

        config = PolishConfig(rounds=args.polish, progress=not args.quiet)
        improve(out, None, args.threads, "polish", polisher(config), overwrite=args.overwrite)
        print(f"train and polish: {time.perf_counter() - started:.0f}s")
    return 0


def load_checkpoint_data(
    loaded: LoadedProgram, data_seed: int | None, task: str | None
) -> TaskData:
    """A checkpoint's splits (``--data-seed`` and ``--task`` where given)."""
    from crystalbox.programs.checkpoint import checkpoint_data

    return checkpoint_data(loaded.task, loaded.train_config, data_seed, task_argument(task))


def _eval(args: argparse.Namespace) -> int:
    from crystalbox.programs.checkpoint import load_program
    from crystalbox.programs.train import accuracy

    loaded = load_program(args.checkpoint)
    info = loaded.task
    data = load_checkpoint_data(loaded, args.data_seed, args.task)
    split = getattr(data, args.split)
    report: dict[str, Any] = {
        "task": info.name,
        "split": args.split,
        "examples": len(split),
        "accuracy": round(accuracy(loaded.model, split), 4),
    }
    if args.breakdown:
        from crystalbox.programs.breakdown import accuracy_breakdown

        breakdown = accuracy_breakdown(loaded.model, split, info.output_vocab)
        report["sequence_accuracy"] = round(breakdown.sequence_accuracy, 4)
        for name, cells in (
            ("by_position", breakdown.by_position),
            ("by_class", breakdown.by_class),
        ):
            report[name] = {c.label: [c.scored, round(c.accuracy, 2)] for c in cells}
    print(json.dumps(report))
    return 0
