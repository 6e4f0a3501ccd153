"""Benchmark: Dyck checkpoints on our generator and on the authors' data distribution.

Our ``dyck1``/``dyck2`` draw, half of the time, a balanced string of random even length
(a random walk) followed by uniformly random tokens, else 15 random tokens. The authors'
generator (as described by their public code) instead builds, half of the time, a balanced
string from 8 steps that each either append a pair or wrap the string in one, cut to 15
tokens, so every prefix of that half is valid; the other half is 15 uniform tokens. This
script draws from that distribution (``dyck_task(n, generator="authors")``, the generator of
the ``dyck2_authors`` task) and reports, for each checkpoint (dyck1, dyck2 trained on ours,
dyck2_authors trained on theirs), token accuracy, whole-sequence accuracy and the label mix
on both, so the comparison with the paper's figures can be read with the difference in
mind. Example (the default folder)::

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
        help="folder holding dyck1/, dyck2/, dyck2_authors/ (default: the committed ones)",
    )
    parser.add_argument("--draws", type=int, default=20000, help="draws of the authors' generator")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| checkpoint | data | examples | token acc | sequences right | labels |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in ("dyck1", "dyck2", "dyck2_authors"):
        path = args.folder / name
        if not path.is_dir():
            print(f"| {name} | missing: {path} | | | | |")
            continue
        model = load_program(path).model
        n_pairs = int(name[4])
        walk = make_task(f"dyck{n_pairs}")
        splits = [
            (f"ours (dyck{n_pairs} test split)", make_data(walk, seed=0).test),
            ("authors' (distinct draws)", to_split(walk, authors_style(n_pairs, args.draws, 0))),
        ]
        if name.endswith("_authors"):
            splits.append((f"authors' ({name} test split)", make_data(make_task(name), 0).test))
        for label, split in splits:
            result = accuracy_breakdown(model, split, walk.output_vocab)
            print(
                f"| {name} | {label} | {len(split)} | {result.accuracy:.2f} "
                f"| {result.sequence_accuracy:.2f} | {label_mix(result)} |"
            )


if __name__ == "__main__":
    main()
