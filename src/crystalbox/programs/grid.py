"""Several seeds and a small configuration grid, in parallel processes, selected on validation."""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import Any

from tqdm import tqdm

from crystalbox.programs.config import KindCounts, ProgramConfig
from crystalbox.programs.model import ProgramTransformer
from crystalbox.programs.task_source import load_task
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
    heads: Sequence[KindCounts] = (4, 8),
    mlps: Sequence[KindCounts] = (2, 4),
    **options: Any,
) -> list[ProgramConfig]:
    """The paper's grid for the algorithmic tasks: L x H x M, each count split evenly cat/num
    (or a ``(cat, num)`` pair), each configuration once; ``options`` go to
    ``default_program_config`` (``d_var``, ``count_only``, ``causal_heads``, ``tables``)."""
    configs = [
        default_program_config(task, n, h, m, **options)
        for n, h, m in itertools.product(layers, heads, mlps)
    ]
    return list(dict.fromkeys(configs))  # a value repeated in a list is one configuration


def _run(
    args: tuple[str, dict[str, Any], ProgramConfig, TrainConfig],
) -> tuple[ProgramTransformer, RunResult]:
    """One run in a worker process; returns what pickles (a task's generator may not)."""
    name, settings, config, train_config = args
    if settings.get("custom"):  # a user task with a recorded source (task_source.with_source)
        task = load_task(str(settings["source"]))
    else:
        task = make_task(name, settings.get("vocab_size"), settings.get("max_len"))
    trained = train_program(task, config, train_config)
    return trained.model, trained.result


def run_grid(
    task: Task,
    configs: Sequence[ProgramConfig],
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    train_config: TrainConfig | None = None,
    processes: int | None = None,
    progress: bool = False,
) -> GridResult:
    """Train every (config, seed); one thread per run; ``processes`` defaults to the CPU count.

    Built-in tasks, and user tasks whose source is recorded (``task_source.with_source``),
    run in worker processes; another user task (a local function cannot be sent to another
    process) runs in this one. ``progress``: a bar over finished runs.
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
    portable = not task.settings.get("custom") or "source" in task.settings
    bar = tqdm(total=len(jobs), desc=f"{task.name} grid", disable=not progress)
    trained: list[TrainedProgram] = []
    if workers <= 1 or not portable:
        for _, _, config, tc in jobs:
            trained.append(train_program(task, config, tc))
            bar.update()
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(_run, job) for job in jobs]
            best_val = -1.0
            for future in as_completed(futures):
                best_val = max(best_val, future.result()[1].val_acc)
                bar.update()
                bar.set_postfix(best_val=f"{best_val:.2f}")
        for (_, _, config, tc), future in zip(jobs, futures, strict=True):  # in job order
            model, result = future.result()
            trained.append(TrainedProgram(model, task, config, tc, result))
    bar.close()
    best = max(trained, key=lambda t: t.result.val_acc)
    return GridResult(tuple((t.model_config, t.result) for t in trained), best)
