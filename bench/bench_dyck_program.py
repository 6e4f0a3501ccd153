"""Benchmark: the hand-written Dyck depth program, and whether training keeps it.

``crystalbox.programs.handwritten.dyck_depth_model`` sets a four-layer causal model by hand
(k = 16, H = 1+2, M = 2+1, count-only): the depth before each bracket, a categorical head that
finds a close's matching open, a table that flags a close it does not match, and a count of
flags. This script scores it on each Dyck task's splits (the data of ``--data-seed``),
decompiles it with verification, and with ``--retrain TAU ...`` trains from it (sharpened:
the same program, far from every decision boundary) with the paper's optimiser while the
temperature falls from each TAU to 0.01, selecting the epoch on validation as always; with
``--scratch SEED ...`` it trains the same shape from a fresh initialisation. Example::

    python bench/bench_dyck_program.py --tasks dyck2 --retrain 0.1 1 --scratch 0 1
"""

from __future__ import annotations

import argparse
import time

import torch

from crystalbox.programs.checkpoint import check_checkpoint_folder, save_program
from crystalbox.programs.data import TaskData, make_data
from crystalbox.programs.decompile import decompile
from crystalbox.programs.handwritten import dyck_depth_model, sharpened
from crystalbox.programs.model import ProgramTransformer
from crystalbox.programs.tasks import make_task
from crystalbox.programs.train import TrainConfig, accuracy, train_program

TASKS = ("dyck1", "dyck2", "dyck2_authors")


def score(name: str, model: ProgramTransformer, data: TaskData) -> None:
    """Print the model's token accuracy on each split and verify its decompiled program."""
    figures = ", ".join(
        f"{split} {accuracy(model, getattr(data, split)):.2f}%"
        for split in ("train", "val", "test")
    )
    print(f"  {name}: {figures}")
    started = time.perf_counter()
    inputs = {split: getattr(data, split).inputs for split in ("train", "val", "test")}
    task = data.task
    result = decompile(
        model, input_vocab=task.input_vocab, output_vocab=task.output_vocab, inputs=inputs
    )
    verified = result.report is not None and result.report.ok
    print(
        f"  decompiled: {len(result.source.splitlines())} lines, program == model on every "
        f"split: {verified} ({time.perf_counter() - started:.1f} s)"
    )


def train(
    data: TaskData,
    model: ProgramTransformer,
    start: bool,
    tau: float,
    epochs: int,
    seed: int,
    out: str | None = None,
    threads: int = 1,
    data_seed: int = 0,
) -> None:
    """Train in the model's shape (from it, sharpened, when ``start``) and print the result;
    a run from scratch is saved as a checkpoint under ``out`` when given."""
    config = TrainConfig(
        epochs=epochs,
        tau_start=tau,
        seed=seed,
        threads=threads,
        progress=False,
        stop_patience=None,
        data_seed=data_seed,  # recorded in a checkpoint, which regenerates its data from it
    )
    folder = f"{out}/{data.task.name}-seed{seed}" if out and not start else None
    if folder:
        check_checkpoint_folder(folder)  # before training, not after it
    origin = sharpened(model) if start else None
    run = train_program(data.task, model.config, config, data, start=origin)
    trained = run.result
    if folder:
        print(f"  saved {save_program(run, folder)}")
    what = "from the program" if start else "from scratch"
    print(
        f"  {what}, tau {tau:g} -> 0.01, {epochs} epochs, seed {seed}: val "
        f"{trained.val_acc:.2f}, test {trained.test_acc:.2f} (best epoch "
        f"{trained.best_epoch}, {trained.wall_s:.0f} s)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--tables", action="store_true", help="the numerical MLP is a lookup table")
    parser.add_argument("--retrain", type=float, nargs="*", default=[], metavar="TAU")
    parser.add_argument("--retrain-epochs", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="for --retrain")
    parser.add_argument("--scratch", type=int, nargs="*", default=[], metavar="SEED")
    parser.add_argument("--scratch-epochs", type=int, default=250)
    parser.add_argument("--out", default=None, help="save --scratch runs under this folder")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, also in training")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.tasks:
        task = make_task(name)
        data = make_data(task, args.data_seed)
        started = time.perf_counter()
        model = dyck_depth_model(task, tables=args.tables)
        print(
            f"{name}: dyck_depth_model ({model.config.summary()}, built in "
            f"{time.perf_counter() - started:.1f} s)"
        )
        score(name, model, data)
        for tau in args.retrain:
            for seed in args.seeds:
                train(
                    data,
                    model,
                    True,
                    tau,
                    args.retrain_epochs,
                    seed,
                    None,
                    args.threads,
                    args.data_seed,
                )
        for seed in args.scratch:
            train(
                data,
                model,
                False,
                3.0,
                args.scratch_epochs,
                seed,
                args.out,
                args.threads,
                args.data_seed,
            )


if __name__ == "__main__":
    main()
