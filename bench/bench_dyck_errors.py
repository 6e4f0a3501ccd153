"""Benchmark: where a Dyck program errs, by what the prefix is.

Each scored position of the test split is put in one group by its prefix: a valid prefix at
its nesting depth (T at depth 0, P at depth 1, 2, 3 or 4 and deeper), the position of the
first error (a closing bracket with nothing open, or one that does not match the innermost
open bracket, by that bracket's depth), or a position after the first error (either kind).
For each group: how many positions and the program's error rate there (the discrete model).
Example (the committed trained and polished dyck programs)::

    python bench/bench_dyck_errors.py docs/programs-checkpoints/dyck2 \\
        docs/programs-checkpoints-polished/dyck2
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import torch

from crystalbox.programs.checkpoint import checkpoint_data, load_program
from crystalbox.programs.data import IGNORE

PAIRS = {")": "(", "}": "{", "]": "["}


def prefix_groups(tokens: list[str]) -> list[str]:
    """The group of every position of ``tokens`` (BOS first) by its prefix."""
    groups, stack, error = ["BOS"], [], ""
    for token in tokens[1:]:
        if error:
            groups.append(f"after {error}")
            continue
        if token in PAIRS.values():
            stack.append(token)
        elif token in PAIRS and stack and stack[-1] == PAIRS[token]:
            stack.pop()
        elif token in PAIRS:
            error = "mismatch" if stack else "unopened"
            depth = f" depth {min(len(stack), 4)}" if stack else ""
            groups.append(f"first error: {error}{depth}")
            continue
        depth = len(stack)
        groups.append("valid, depth 0" if depth == 0 else f"valid, depth {min(depth, 4)}")
    return groups


def error_table(checkpoint: Path) -> tuple[str, int, int]:
    """Rows ``group | positions | errors | error %`` for ``checkpoint`` on its test split."""
    loaded = load_program(checkpoint)
    split = checkpoint_data(loaded.task, loaded.train_config).test
    inputs, targets = torch.as_tensor(split.inputs), torch.as_tensor(split.targets)
    wrong = loaded.model.predict(inputs) != targets
    vocab = loaded.task.input_vocab
    positions: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for row in range(len(inputs)):
        for pos, group in enumerate(prefix_groups([vocab[int(t)] for t in inputs[row]])):
            if int(targets[row, pos]) == IGNORE:
                continue
            positions[group] += 1
            errors[group] += int(wrong[row, pos])
    lines = [
        f"| {group} | {positions[group]:,} | {errors[group]} | "
        f"{100 * errors[group] / positions[group]:.2f} |"
        for group in sorted(positions, key=_reading_order)
    ]
    return "\n".join(lines), sum(errors.values()), sum(positions.values())


DEFAULT_CHECKPOINTS = [
    Path(__file__).resolve().parent.parent / "docs" / folder / task
    for task in ("dyck2", "dyck2_authors", "dyck1")
    for folder in ("programs-checkpoints", "programs-checkpoints-polished")
]


def _reading_order(group: str) -> tuple[int, str]:
    """Valid prefixes by depth, then first errors, then positions after an error."""
    return (("valid", "first", "after").index(group.split(",")[0].split(" ")[0]), group)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "checkpoints",
        type=Path,
        nargs="*",
        help="dyck program checkpoints (default: the committed trained and polished ones)",
    )
    args = parser.parse_args()
    for checkpoint in args.checkpoints or DEFAULT_CHECKPOINTS:
        rows, n_errors, n_positions = error_table(checkpoint)
        accuracy = 100 * (1 - n_errors / n_positions)
        print(f"\n{checkpoint} (test split: {n_errors} errors in {n_positions:,}, {accuracy:.2f}%)")
        print("| prefix | positions | errors | error % |\n| --- | --- | --- | --- |")
        print(rows)


if __name__ == "__main__":
    main()
