"""Benchmark: decompiled Transformer Programs — program ≡ model, size, executor throughput.

For each task checkpoint found under the given folders (the best validation accuracy per task),
or, when none is given, a short run trained here (``--train-seconds`` per task, one
thread), decompile with verification and report: agreement counts (executor and rendered
Python vs the torch argmax model, every train/val/test input and the whole input space when
it has at most 1e6 inputs), simplified program size in lines vs the paper's pruned sizes,
and throughput on the 2,000 test inputs (median of repeats) of the executor, the torch
model's forward and the rendered Python. Writes ``docs/decompile-results.md`` (and
``.json``) and the programs to ``--programs-dir``. Example::

    python bench/bench_decompile.py runs/programs
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from _timing import median_seconds
from crystalbox.programs.checkpoint import load_program, save_program
from crystalbox.programs.data import make_data
from crystalbox.programs.decompile import ProgramMismatchError, decompile, execute, load_source
from crystalbox.programs.tasks import make_task
from crystalbox.programs.train import TrainConfig, default_program_config, train_program

ROOT = Path(__file__).resolve().parent.parent
RESULTS_MD = ROOT / "docs" / "decompile-results.md"
RESULTS_JSON = ROOT / "docs" / "decompile-results.json"
TASKS = (
    "reverse",
    "hist",
    "double_hist",
    "sort",
    "most_freq",
    "dyck1",
    "dyck2",
    "dyck2_authors",
    "icl",
)
PAPER_PRUNED = {
    "reverse": 713,
    "hist": 160,
    "double_hist": 423,
    "sort": 635,
    "most_freq": 666,
    "dyck1": 892,
    "dyck2": 733,
    "dyck2_authors": 733,  # the paper's dyck2 program
}


def find_checkpoints(folders: list[Path]) -> dict[str, Path]:
    """The checkpoint with the best recorded validation accuracy per task under ``folders``
    (never chosen on test)."""
    best: dict[str, tuple[float, Path]] = {}
    for folder in folders:
        for config in sorted(folder.rglob("config.json")):
            try:
                data = json.loads(config.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if data.get("format") != "crystalbox.programs" or "task" not in data:
                continue
            name = data["task"]["name"]
            acc = float(data.get("result", {}).get("val_acc", -1.0))
            if name in TASKS and (name not in best or acc > best[name][0]):
                best[name] = (acc, config.parent)
    return {name: path for name, (_, path) in best.items()}


def train_short(name: str, seconds: float, out: Path) -> Path:
    """Train the published configuration for as many epochs as fit in ``seconds`` (data
    generation and a one-epoch probe excluded)."""
    task = make_task(name)
    config = default_program_config(task)
    data = make_data(task, 0)

    def train(epochs: int) -> Any:
        settings = TrainConfig(epochs=epochs, threads=1, compile=False, progress=False)
        return train_program(task, config, settings, data)

    started = time.perf_counter()
    probe = train(1)
    epochs = max(1, int(seconds / max(time.perf_counter() - started, 1e-3)))
    trained = probe if epochs == 1 else train(epochs)
    return save_program(trained, out / name)


def bench_one(name: str, path: Path, programs_dir: Path, repeats: int) -> dict[str, Any]:
    loaded = load_program(path)
    started = time.perf_counter()
    try:
        result = decompile(loaded)
        report = result.report
    except ProgramMismatchError as exc:  # record the disagreement instead of stopping
        report = exc.report
        result = decompile(loaded, check=False)
    decompile_s = time.perf_counter() - started
    assert report is not None
    (programs_dir / f"{name}.py").write_text(result.source)
    test = np.asarray(result.inputs["test"])
    model = loaded.model
    run = load_source(result.source).run
    vocab = loaded.task.input_vocab
    sequences = [[vocab[i] for i in row if i != 0] for row in test]

    def python() -> None:
        for tokens in sequences:
            run(tokens)

    timings = {
        "executor": median_seconds(lambda: execute(result.program, test), repeats),
        "torch": median_seconds(lambda: model.predict(torch.as_tensor(test)), repeats),
        "python": median_seconds(python, max(1, repeats // 3)),
    }
    checks = {
        program: {
            "agree": sum(c.n_agree for c in report.checks if c.program == program),
            "positions": sum(c.n_positions for c in report.checks if c.program == program),
            "inputs": sum(c.n_inputs for c in report.checks if c.program == program),
        }
        for program in ("executor", "python")
    }
    config = loaded.model.config
    return {
        "task": name,
        "checkpoint": str(path),
        "config": f"L={config.n_layers} H={config.n_cat_heads}+{config.n_num_heads} "
        f"M={config.n_cat_mlps}+{config.n_num_mlps}",
        "test_acc": loaded.result.get("test_acc"),
        "epochs": loaded.train_config.get("epochs"),
        "ok": report.ok,
        "exhaustive": report.exhaustive,
        "all_inputs": next((c.n_inputs for c in report.checks if c.inputs == "all"), None),
        "checks": checks,
        "lines_full": result.lines_before,
        "lines": result.lines_after,
        "logic_full": result.size_before.logic,
        "logic": result.size_after.logic,
        "weights": result.size_after.weights,
        "helpers": result.size_after.helpers,
        "steps_full": len(result.full.steps),
        "steps": len(result.program.steps),
        "paper_pruned": PAPER_PRUNED.get(name),
        "decompile_s": round(decompile_s, 1),
        "inputs_per_s": {k: round(len(test) / v) for k, v in timings.items()},
    }


def _percent(check: dict[str, int]) -> str:
    return f"{check['agree']}/{check['positions']} ({100.0 * check['agree'] / max(check['positions'], 1):.3f}%)"


def _ratio(row: dict[str, Any]) -> str:
    return f"{row['logic'] / row['paper_pruned']:.2f}" if row["paper_pruned"] else "—"


def write_markdown(rows: list[dict[str, Any]], note: str) -> str:
    lines = [
        "# Decompiled Transformer Programs: results",
        "",
        "Generated by `bench/bench_decompile.py`. " + note,
        "",
        "Agreement: positions (every non-pad position) where the program's output equals the "
        "torch argmax model's, summed over the train/val/test inputs and, where the task has at "
        "most 1e6 inputs, the whole input space (`all`). The rendered Python is checked on "
        "train/val/test and on the whole space when it has at most 25,000 inputs.",
        "",
        "Size: non-blank lines of the rendered file. *Logic* counts the predicates, lookup "
        "tables and `run` — comparable with the paper's counts, whose programs imported their "
        "helpers and read the classifier weights from a CSV; *file* adds the helpers (the same "
        "in every program) and the inlined classifier weights. Ratio: logic / paper pruned.",
        "",
        "| task | config | test acc | program ≡ model (executor) | program ≡ model (python) "
        "| whole input space | logic lines full → simplified | file lines | paper pruned "
        "| ratio | steps |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        space = f"{r['all_inputs']:,} inputs" if r["exhaustive"] else "too large"
        lines.append(
            f"| {r['task']} | {r['config']} | {r['test_acc']:.2f} | {_percent(r['checks']['executor'])} "
            f"| {_percent(r['checks']['python'])} | {space} | {r['logic_full']} → {r['logic']} "
            f"| {r['lines_full']} → {r['lines']} | {r['paper_pruned'] or '—'} "
            f"| {_ratio(r)} | "
            f"{r['steps_full']} → {r['steps']} |"
        )
    lines += [
        "",
        "Throughput on the 2,000 test inputs (inputs per second, median; one CPU thread):",
        "",
        "| task | executor (numpy) | torch model forward | rendered Python | decompile + verify (s) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        t = r["inputs_per_s"]
        lines.append(
            f"| {r['task']} | {t['executor']:,} | {t['torch']:,} | {t['python']:,} | {r['decompile_s']} |"
        )
    lines += ["", "Checkpoints:", ""]
    lines += [f"- {r['task']}: `{r['checkpoint']}` ({r['epochs']} epochs)" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, help="folders holding checkpoints")
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), help=f"of {TASKS}")
    parser.add_argument("--train-seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--programs-dir", type=Path, default=ROOT / "out" / "decompiled")
    parser.add_argument(
        "--save-trained", type=Path, default=None, help="keep the short runs' checkpoints here"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--note", default="", help="a sentence for the results file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    found = find_checkpoints(args.folders)
    scratch = args.save_trained or Path(tempfile.mkdtemp(prefix="bench-decompile-"))
    args.programs_dir.mkdir(parents=True, exist_ok=True)
    rows, trained = [], []
    for name in args.tasks:
        if name not in found:
            found[name] = train_short(name, args.train_seconds, scratch)
            trained.append(name)
        row = bench_one(name, found[name], args.programs_dir, args.repeats)
        rows.append(row)
        print(json.dumps(row), flush=True)
    note = f"Checkpoints found in {', '.join(str(f) for f in args.folders) or 'no folder'}"
    if trained:
        note += (
            f"; short runs trained by the bench (published configs, one thread, epochs fitting "
            f"{args.train_seconds:.0f} s; far from converged) for: {', '.join(trained)}"
        )
    note += ". " + args.note
    text = write_markdown(rows, note)
    print(text)
    if not args.no_write:
        RESULTS_MD.write_text(text)
        RESULTS_JSON.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
