"""Several seeds and a small configuration grid, in parallel processes, selected on validation."""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

from crystalbox.programs.config import ProgramConfig
from crystalbox.programs.tasks import Task, make_task
from crystalbox.programs.train import (
    RunResult,
    TrainConfig,
    TrainedProgram,
    default_program_config,
    train_program,
)

__all__ = ["GridResult", "paper_grid", "run_grid"]


@dataclass(frozen=True, eq=False)
class GridResult:
    """Every run's result; ``best`` is the run with the highest validation accuracy."""

    runs: tuple[tuple[ProgramConfig, RunResult], ...]
    best: TrainedProgram


def paper_grid(
    task: Task,
    layers: Sequence[int] = (2, 3),
    heads: Sequence[int] = (4, 8),
    mlps: Sequence[int] = (2, 4),
) -> list[ProgramConfig]:
    """The paper's grid for the algorithmic tasks: L x H x M, split evenly cat/num."""
    return [
        default_program_config(task, n, h, m) for n, h, m in itertools.product(layers, heads, mlps)
    ]


def _run(args: tuple[str, dict[str, int | None], ProgramConfig, TrainConfig]) -> TrainedProgram:
    name, settings, config, train_config = args
    return train_program(
        make_task(name, settings.get("vocab_size"), settings.get("max_len")), config, train_config
    )


def run_grid(
    task: Task,
    configs: Sequence[ProgramConfig],
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    train_config: TrainConfig | None = None,
    processes: int | None = None,
) -> GridResult:
    """Train every (config, seed); one thread per run; ``processes`` defaults to the CPU count.

    Built-in tasks run in worker processes; a custom task (a local function cannot be sent
    to another process) runs in this one.
    """
    if not configs or not seeds:
        raise ValueError("run_grid needs at least one configuration and one seed")
    base = train_config or TrainConfig()
    jobs = [
        (
            task.name,
            dict(task.settings),
            config,
            replace(base, seed=seed, threads=1, progress=False),
        )
        for config in configs
        for seed in seeds
    ]
    workers = min(processes or os.cpu_count() or 1, len(jobs))
    if workers <= 1 or task.settings.get("custom"):
        trained = [train_program(task, config, tc) for _, _, config, tc in jobs]
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            trained = list(pool.map(_run, jobs))
    best = max(trained, key=lambda t: t.result.val_acc)
    return GridResult(tuple((t.model_config, t.result) for t in trained), best)
