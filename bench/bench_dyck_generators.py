"""Benchmark: Dyck checkpoints on our generator and on the authors' data distribution.

Our ``dyck1``/``dyck2`` draw, half of the time, a balanced string of random even length
(a random walk) followed by uniformly random tokens, else 15 random tokens. The authors'
generator (as described by their public code) instead builds, half of the time, a balanced
string from 8 steps that each either append a pair or wrap the string in one, cut to 15
tokens, so every prefix of that half is valid; the other half is 15 uniform tokens. This
script re-implements that distribution and reports, for each checkpoint, token accuracy,
whole-sequence accuracy and the label mix on both, so the comparison with the paper's
figures can be read with the difference in mind. Example (the default folder)::

    python bench/bench_dyck_generators.py docs/programs-checkpoints
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from crystalbox.programs.breakdown import AccuracyBreakdown, accuracy_breakdown
from crystalbox.programs.checkpoint import load_program
from crystalbox.programs.data import Split, _encode_targets, encode_inputs, make_data
from crystalbox.programs.tasks import Task, dyck_task, make_task


def authors_style(
    n_pairs: int, n: int, seed: int, max_len: int = 16
) -> list[tuple[list[str], list[str | None]]]:
    """``n`` draws of the authors' Dyck distribution (duplicates kept), as (inputs, targets)."""
    task = dyck_task(n_pairs, max_len, generator="authors")
    rng = np.random.default_rng(seed)
    return [task.generate(rng) for _ in range(n)]


def to_split(task: Task, examples: list[tuple[list[str], list[str | None]]]) -> Split:
    """Distinct examples of ``examples`` encoded for ``task``."""
    distinct = {tuple(x): y for x, y in examples}
    inputs = encode_inputs(task, [list(x) for x in distinct])
    return Split(inputs, _encode_targets(task, list(distinct.values())))


def label_mix(breakdown: AccuracyBreakdown) -> str:
    total = sum(cell.scored for cell in breakdown.by_class)
    return " ".join(f"{c.label} {100 * c.scored / total:.1f}%" for c in breakdown.by_class)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folder",
        type=Path,
        nargs="?",
        default=Path(__file__).resolve().parent.parent / "docs" / "programs-checkpoints",
        help="folder holding dyck1/ and dyck2/ checkpoints (default: the committed ones)",
    )
    parser.add_argument("--draws", type=int, default=20000, help="draws of the authors' generator")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| checkpoint | data | examples | token acc | sequences right | labels |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in ("dyck1", "dyck2"):
        path = args.folder / name
        if not path.is_dir():
            print(f"| {name} | missing: {path} | | | | |")
            continue
        model = load_program(path).model
        task = make_task(name)
        ours = make_data(task, seed=0).test
        theirs = to_split(task, authors_style(int(name[-1]), args.draws, seed=0))
        for label, split in (("ours (test split)", ours), ("authors' (distinct draws)", theirs)):
            result = accuracy_breakdown(model, split, task.output_vocab)
            print(
                f"| {name} | {label} | {len(split)} | {result.accuracy:.2f} "
                f"| {result.sequence_accuracy:.2f} | {label_mix(result)} |"
            )


if __name__ == "__main__":
    main()
