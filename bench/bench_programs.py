"""Benchmark: Transformer Programs on the paper's tasks, side by side with the published table.

Runs each task at its published configuration for the given seeds (one process, one thread
by default), appends every run to ``docs/programs-results.json`` (so partial runs add up),
then writes ``docs/programs-results.md`` and prints the table. Tasks never run are marked
"not run". Example::

    python bench/bench_programs.py --tasks hist icl --seeds 0 1 --epochs 40

The best run of each task (highest validation accuracy, ties: the earlier) is saved as a
checkpoint in ``runs/programs/<task>/`` (``--out-dir``), replacing a worse one there.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from crystalbox._files import write_atomically
from crystalbox.cli.common import kind_counts
from crystalbox.programs.baseline import train_baseline
from crystalbox.programs.checkpoint import save_program
from crystalbox.programs.grid import paper_grid
from crystalbox.programs.tasks import PUBLISHED, TASKS, make_task
from crystalbox.programs.train import (
    TrainConfig,
    TrainedProgram,
    default_program_config,
    train_program,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS_JSON = ROOT / "docs" / "programs-results.json"
RESULTS_MD = ROOT / "docs" / "programs-results.md"
PROGRAMS_MD = ROOT / "docs" / "programs.md"  # holds a copy of the table between these markers
TABLE_START, TABLE_END = "<!-- results table: start -->", "<!-- results table: end -->"
CHECKPOINTS = ROOT / "runs" / "programs"
LOCK = ROOT / "runs" / "programs-results.lock"


def load_runs(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text()) if path.is_file() else []


def run_one(
    task_name: str,
    seed: int,
    epochs: int | None,
    threads: int,
    compile_kernels: bool,
    out_dir: Path | None = CHECKPOINTS,
    shape: dict[str, Any] | None = None,
    progress: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """One run; ``shape``: n_layers / n_heads / n_mlps / count_only / causal_heads / tables overriding the published
    configuration; ``progress``: the training bar on stderr;
    ``options``: TrainConfig fields (sampler, num_mlp_init, init, loss, attention_temperature,
    lr_schedule, tau_end, plateau_patience, ema_decay, ordered_below, identity_prior)."""
    task = make_task(task_name)
    published = PUBLISHED[task_name]
    config = default_program_config(task, **(shape or {}))
    train_config = TrainConfig(
        epochs=epochs or published.epochs,
        seed=seed,
        threads=threads,
        compile=compile_kernels,
        progress=progress,
        **options,
    )
    trained = train_program(task, config, train_config)
    result = trained.result
    with _locked():  # parallel runs of one task compare against each other's checkpoints
        saved = _save_if_best(trained, out_dir / task_name) if out_dir is not None else None
    return {
        "task": task_name,
        "seed": seed,
        "epochs": train_config.epochs,
        "epochs_run": result.epochs_run,
        "steps": result.steps,
        "sampler": train_config.sampler,
        "num_mlp_init": train_config.num_mlp_init,
        "init": train_config.init,
        "loss": train_config.loss,
        "attention_temperature": train_config.attention_temperature,
        "lr_schedule": train_config.lr_schedule,
        "tau_end": train_config.tau_end,
        "plateau_patience": train_config.plateau_patience,
        "ema_decay": train_config.ema_decay,
        "ordered_below": train_config.ordered_below,
        "identity_prior": train_config.identity_prior,
        "selected": result.selected,
        "config": config.summary(),
        "val_acc": round(result.val_acc, 2),
        "test_acc": round(result.test_acc, 2),
        "best_epoch": result.best_epoch,
        "wall_s": round(result.wall_s, 1),
        "ms_per_step": round(result.ms_per_step, 1),
        "threads": result.threads,
        "compile": compile_kernels,
        "device": result.device,
        "checkpoint": _shown(saved) if saved is not None else None,
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "_val_history": [round(v, 2) for v in result.val_history],  # for --histories only
    }


def _shown(path: Path) -> str:
    """``path`` relative to the project root where it lies inside it, else absolute."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(resolved)


def _save_if_best(trained: TrainedProgram, folder: Path) -> Path | None:
    """Save ``trained`` into ``folder`` unless a checkpoint there has higher validation."""
    existing = folder / "config.json"
    if existing.is_file():
        previous = json.loads(existing.read_text()).get("result", {}).get("val_acc", -1.0)
        if previous >= trained.result.val_acc:
            return None
    return save_program(trained, folder)


def run_baseline(
    task_name: str, seed: int, epochs: int | None, threads: int, progress: bool = False
) -> dict[str, Any]:
    """The standard transformer (d_model 64, 4 heads, 3 layers) with the same data and budget."""
    train_config = TrainConfig(
        epochs=epochs or PUBLISHED[task_name].epochs, seed=seed, threads=threads, progress=progress
    )
    _, result = train_baseline(make_task(task_name), train_config=train_config)
    return {
        "task": task_name,
        "model": "baseline",
        "seed": seed,
        "epochs": train_config.epochs,
        "epochs_run": result.epochs_run,
        "val_acc": round(result.val_acc, 2),
        "test_acc": round(result.test_acc, 2),
        "best_epoch": result.best_epoch,
        "wall_s": round(result.wall_s, 1),
        "ms_per_step": round(result.ms_per_step, 1),
        "threads": result.threads,
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


def _series(
    run: dict[str, Any],
) -> tuple[
    int, str, str, str, str, str, float, str, float, int | None, float | None, bool, float, float
]:
    """Runs of one series share epochs, sampler, initialisations, loss, configuration,
    attention temperature, learning-rate schedule, end temperature, plateau patience,
    parameter averaging, compiled kernels (which round differently, so train other programs),
    the temperature below which categorical heads select by ordered matching and the
    identity prior of the predicates."""
    return (
        run["epochs"],
        run.get("sampler", "gumbel_hard"),
        run.get("num_mlp_init", "normal"),
        run.get("init", "default"),
        run.get("loss", "token"),
        run.get("config", ""),
        run.get("attention_temperature", 1.0),
        run.get("lr_schedule", "constant"),
        run.get("tau_end", 0.01),
        run.get("plateau_patience"),
        run.get("ema_decay"),
        bool(run.get("compile", False)),
        run.get("ordered_below", 0.0),
        run.get("identity_prior", 0.0),
    )


def table(runs: list[dict[str, Any]]) -> str:
    """Per task: a row for the published configuration and, when a run of another configuration
    of the paper's grid (or an extension: count-only, tables, causal heads) has the best
    validation accuracy, a row for that configuration. A row
    aggregates the runs of the series (see ``_series``) holding its best validation run."""
    lines = [
        "| task | config (cat+num) | sampler | epochs (max / mean run) | seeds | best-val seed: val / test "
        "| test mean ± std | wall s/run | ms/step | paper | reproduction | standard transformer (test) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in TASKS:
        published = PUBLISHED[name]
        paper = f"{published.paper:.2f}" if published.paper is not None else "—"
        repro = f"{published.reproduction:.2f}" if published.reproduction is not None else "—"
        base = [r for r in runs if r["task"] == name and r.get("model") == "baseline"]
        base_cell = "not run"
        if base:
            top_base = max(base, key=lambda r: r["val_acc"])
            base_cell = (
                f"{top_base['test_acc']:.2f} ({len(base)} seed{'s' if len(base) > 1 else ''}, "
                f"{top_base.get('epochs_run', top_base['epochs'])} of {top_base['epochs']} ep, "
                f"{top_base['wall_s']:.0f} s)"
            )
        tail = f"{paper} | {repro} | {base_cell} |"
        mine = [r for r in runs if r["task"] == name and r.get("model") != "baseline"]
        if not mine:
            lines.append(f"| {name} | — | — | — | — | not run | not run | — | — | {tail}")
            continue
        shape = default_program_config(make_task(name)).summary()
        at_published = [r for r in mine if r.get("config", shape) == shape]
        if at_published:
            lines.append(f"| {name} | {_row(at_published)} | {tail}")
        top = max(mine, key=lambda r: r["val_acc"])
        if top.get("config", shape) != shape:
            config = top["config"]
            label = (
                "causal heads"
                if " causal=" in config
                else "tables"
                if " tables" in config
                else "count-only"
                if config.endswith("count-only")
                else "grid"
            )
            grid = {shape} | {c.summary() for c in paper_grid(make_task(name))}
            grid = {" ".join(c.split()[:4]) for c in grid}  # k, L, H, M
            if " ".join(config.split()[:4]) not in grid:
                label += ", beyond the grid"
            lines.append(f"| {name} ({label}) | {_row(mine)} | {tail}")
    return "\n".join(lines)


def _row(runs: list[dict[str, Any]]) -> str:
    """Table cells of the series holding the best validation run among ``runs``."""
    series = _series(max(runs, key=lambda r: r["val_acc"]))
    mine = [r for r in runs if _series(r) == series]
    best = max(mine, key=lambda r: r["val_acc"])
    tests = [r["test_acc"] for r in mine]
    std = statistics.stdev(tests) if len(tests) > 1 else 0.0
    walls = statistics.mean(r["wall_s"] for r in mine)
    ran = statistics.mean(r.get("epochs_run", r["epochs"]) for r in mine)
    steps = [r["ms_per_step"] for r in mine if r.get("ms_per_step")]
    ms = f"{statistics.median(steps):.0f}" if steps else "—"
    init = f", numerical-MLP init {series[2]}" if series[2] != "normal" else ""
    init += f", {series[3]} init" if series[3] != "default" else ""
    init += f", {series[4]} loss" if series[4] != "token" else ""
    init += f", attention temperature {series[6]:.3g}" if series[6] != 1.0 else ""
    init += f", {series[7]} lr" if series[7] != "constant" else ""
    init += f", tau_end {series[8]:.3g}" if series[8] != 0.01 else ""
    init += f", patience {series[9]}" if series[9] is not None else ""
    init += f", averaged parameters {series[10]:g}" if series[10] is not None else ""
    init += ", compiled kernels" if series[11] else ""
    init += f", ordered matching below τ {series[12]:g}" if series[12] else ""
    init += f", identity prior {series[13]:g}" if series[13] else ""
    return (
        f"{best['config']} | {series[1]}{init} | {series[0]} / {ran:.0f} | {len(mine)} | "
        f"{best['val_acc']:.2f} / {best['test_acc']:.2f} | {statistics.mean(tests):.2f} ± {std:.2f} | "
        f"{walls:.0f} | {ms}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: the paper's per task")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compile", action="store_true", help="torch.compile the kernels")
    parser.add_argument("--sampler", default="gumbel_soft", choices=["gumbel_soft", "gumbel_hard"])
    parser.add_argument("--num-mlp-init", default="normal", choices=["normal", "domain", "origin"])
    parser.add_argument("--init", default="default", choices=["default", "reference"])
    parser.add_argument("--loss", default="token", choices=["token", "sequence"])
    parser.add_argument(
        "--ordered-below",
        type=float,
        default=0.0,
        metavar="TAU",
        help="relax categorical heads as ordered matching once tau < TAU (default 0: never)",
    )
    parser.add_argument(
        "--identity-prior",
        type=float,
        default=0.0,
        metavar="BETA",
        help="add BETA to the diagonal of every predicate's initial logits (default 0: none)",
    )
    parser.add_argument(
        "--attention-temperature", type=float, default=1.0, help="the authors': sqrt(k)"
    )
    parser.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"])
    parser.add_argument("--tau-end", type=float, default=0.01, help="end of the tau schedule")
    parser.add_argument(
        "--patience",
        type=int,
        default=None,
        help="stop after this many epochs without a new best validation (default: none)",
    )
    parser.add_argument(
        "--ema",
        type=float,
        default=None,
        metavar="DECAY",
        help="also validate an average of the parameters (TrainConfig.ema_decay; default: off)",
    )
    parser.add_argument("--layers", type=int, default=None, help="default: the paper's")
    parser.add_argument(
        "--heads", type=kind_counts, default=None, help="per layer: N split cat/num, or CAT+NUM"
    )
    parser.add_argument(
        "--mlps", type=kind_counts, default=None, help="per layer: N split cat/num, or CAT+NUM"
    )
    parser.add_argument(
        "--count-only", action="store_true", help="numerical heads count their matches"
    )
    parser.add_argument(
        "--causal-heads",
        type=kind_counts,
        default=0,
        help="per layer, this many heads of each kind (or CAT+NUM) causal (non-causal tasks; "
        "an extension)",
    )
    parser.add_argument(
        "--tables",
        action="store_true",
        help="numerical MLPs are lookup tables over count pairs (implies --count-only; an "
        "extension)",
    )
    parser.add_argument("--out-dir", type=Path, default=CHECKPOINTS, help="best checkpoints")
    parser.add_argument(
        "--histories",
        type=Path,
        default=None,
        metavar="FILE",
        help="append each run's per-epoch validation accuracy to FILE (JSON lines)",
    )
    parser.add_argument(
        "--baseline", action="store_true", help="train the standard transformer instead"
    )
    parser.add_argument("--table-only", action="store_true", help="rewrite the table from the JSON")
    parser.add_argument(
        "--progress", action="store_true", help="a bar per run on stderr (epoch, tau, validation)"
    )
    args = parser.parse_args(argv)
    shape = {
        f"n_{flag}": getattr(args, flag)
        for flag in ("layers", "heads", "mlps")
        if getattr(args, flag) is not None
    }
    if args.count_only:
        shape["count_only"] = True
    if args.causal_heads:
        shape["causal_heads"] = args.causal_heads
    if args.tables:
        shape["tables"] = True  # implies count_only
    if not args.table_only:
        torch.set_num_threads(args.threads)
        for name in args.tasks:
            for seed in args.seeds:
                if args.baseline:
                    run = run_baseline(name, seed, args.epochs, args.threads, args.progress)
                else:
                    run = run_one(
                        name,
                        seed,
                        args.epochs,
                        args.threads,
                        args.compile,
                        args.out_dir,
                        shape=shape,
                        progress=args.progress,
                        sampler=args.sampler,
                        num_mlp_init=args.num_mlp_init,
                        init=args.init,
                        loss=args.loss,
                        attention_temperature=args.attention_temperature,
                        lr_schedule=args.lr_schedule,
                        tau_end=args.tau_end,
                        plateau_patience=args.patience,
                        ema_decay=args.ema,
                        ordered_below=args.ordered_below,
                        identity_prior=args.identity_prior,
                    )
                history = run.pop("_val_history", None)
                if args.histories is not None and history is not None:
                    line = {k: run[k] for k in ("task", "seed", "config", "val_acc", "test_acc")}
                    with args.histories.open("a") as out:
                        out.write(json.dumps({**line, "val_history": history}) + "\n")
                print(json.dumps(run), flush=True)
                runs = _record(run)
    with _locked():
        runs = load_runs(RESULTS_JSON)
        _write_docs(runs)
    print(table(runs))
    return 0


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialise updates of the results and checkpoints between benchmark processes."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _record(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Append ``run`` to the JSON (re-read under the lock, replaced atomically); all runs."""
    with _locked():
        runs = [*load_runs(RESULTS_JSON), run]
        _replace_text(RESULTS_JSON, json.dumps(runs, indent=1) + "\n")
        _write_docs(runs)
    return runs


def _write_docs(runs: list[dict[str, Any]]) -> None:
    """The results page, and the copy of its table in programs.md (between the markers)."""
    _replace_text(RESULTS_MD, _markdown(runs))
    if not PROGRAMS_MD.is_file():
        return
    text = PROGRAMS_MD.read_text()
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if 0 <= start < end:
        head, tail = text[: start + len(TABLE_START)], text[end:]
        _replace_text(PROGRAMS_MD, f"{head}\n{table(runs)}\n{tail}")


def _replace_text(path: Path, text: str) -> None:
    """Write ``path`` atomically (a crash never leaves it half written)."""
    write_atomically(path, lambda tmp: tmp.write_text(text))


def _markdown(runs: list[dict[str, Any]]) -> str:
    return (
        "# Transformer Programs: measured results\n\n"
        "Written by `bench/bench_programs.py` from `docs/programs-results.json` (every run listed "
        "there). Accuracy: token-level test accuracy (%) of the discrete (argmax) model; the epoch "
        "and the seed are chosen on validation; runs stop early once validation has been 100% for "
        "5 epochs. Wall time per run and median ms per optimisation step (batch 512) on the "
        "shared 2-core CPU, one thread (two for the runs whose `threads` in the JSON says 2). "
        "Each task has a row for its published configuration and, "
        "where a run of another configuration of the paper's grid (L in {2, 3}, H in {4, 8}, "
        'M in {2, 4}) has the best validation accuracy, a "(grid)" row for it, as the paper '
        'selected over that grid ("(count-only)" when that run\'s numerical heads only count, '
        '"(tables)" when its numerical MLPs are also tables, "(causal heads)" when some heads '
        "of a non-causal task are causal: extensions of the paper's model; "
        '", beyond the grid" when its layers, heads or MLPs lie outside the grid and the published configuration). '
        "Each row aggregates the runs of one series (same epochs, "
        "sampler, initialisation, loss, configuration, attention temperature, learning-rate schedule, end temperature, plateau patience, parameter averaging, compiled kernels, ordered matching and identity prior): the series holding the task's best validation run (selection on validation "
        "only); every run is kept in the JSON.\n\n" + table(runs) + "\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
