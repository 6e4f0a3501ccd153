"""Seeded, deduplicated train/validation/test splits of a task, encoded as id arrays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crystalbox.programs.tasks import PAD, Task

__all__ = ["IGNORE", "Split", "TaskData", "decode_outputs", "encode_inputs", "make_data"]

IGNORE = -100  # target id of positions that are not scored


@dataclass(frozen=True, eq=False)
class Split:
    """Encoded examples: ``inputs [n, max_len]`` padded with the pad id, ``targets`` with IGNORE."""

    inputs: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


@dataclass(frozen=True, eq=False)
class TaskData:
    task: Task
    seed: int
    train: Split
    val: Split
    test: Split


def encode_inputs(task: Task, sequences: Sequence[Sequence[str]]) -> np.ndarray:
    """Token strings -> ids ``[n, max_len]`` padded with the pad id; unknown tokens raise."""
    index = {token: i for i, token in enumerate(task.input_vocab)}
    out = np.full((len(sequences), task.max_len), index[PAD], dtype=np.int64)
    for row, seq in enumerate(sequences):
        if len(seq) > task.max_len:
            raise ValueError(
                f"sequence {row} has {len(seq)} tokens, more than the task's max_len={task.max_len}"
            )
        for col, token in enumerate(seq):
            if token not in index:
                raise ValueError(
                    f"token {token!r} (sequence {row}) is not in the vocabulary of task "
                    f"{task.name!r}: {list(task.input_vocab)}"
                )
            out[row, col] = index[token]
    return out


def _encode_targets(task: Task, targets: Sequence[Sequence[str | None]]) -> np.ndarray:
    index = {token: i for i, token in enumerate(task.output_vocab)}
    out = np.full((len(targets), task.max_len), IGNORE, dtype=np.int64)
    for row, seq in enumerate(targets):
        for col, token in enumerate(seq):
            if token is None:
                continue
            if token not in index:
                raise ValueError(
                    f"target {token!r} is not in the output vocabulary of task {task.name!r}: "
                    f"{list(task.output_vocab)}"
                )
            out[row, col] = index[token]
    return out


def decode_outputs(task: Task, ids: np.ndarray, inputs: np.ndarray) -> list[list[str]]:
    """Predicted class ids ``[n, pos]`` -> output tokens at the non-pad input positions."""
    pad = task.input_vocab.index(PAD)
    return [
        [task.output_vocab[int(c)] for c, x in zip(row, inp, strict=True) if x != pad]
        for row, inp in zip(ids, inputs, strict=True)
    ]


def make_data(
    task: Task, seed: int = 0, n_train: int = 16000, n_val: int = 2000, n_test: int = 2000
) -> TaskData:
    """Unique examples, none shared between splits, generated deterministically from ``seed``.

    When the task has fewer distinct inputs than requested (e.g. reverse at the paper's
    size: 19,530), validation and test are filled first and training gets the rest.
    """
    total = n_train + n_val + n_test
    if min(n_train, n_val, n_test) < 1:
        raise ValueError(f"split sizes must be positive, got {n_train}/{n_val}/{n_test}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"the data seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(seed)
    seen: dict[tuple[str, ...], list[str | None]] = {}
    draws, max_draws = 0, 10 * total
    while len(seen) < total and draws < max_draws:
        inputs, targets = task.generate(rng)
        draws += 1
        if len(inputs) != len(targets):
            raise ValueError(
                f"task {task.name!r} produced {len(inputs)} inputs but {len(targets)} targets"
            )
        seen.setdefault(tuple(inputs), targets)
    if len(seen) < n_val + n_test + 1:
        raise ValueError(
            f"task {task.name!r} yielded only {len(seen)} distinct examples in {draws} draws; "
            "request smaller splits or a larger vocabulary/length"
        )
    keys = list(seen)
    order = rng.permutation(len(keys))
    keys = [keys[i] for i in order]
    splits = {
        "test": keys[:n_test],
        "val": keys[n_test : n_test + n_val],
        "train": keys[n_test + n_val :],
    }
    encoded = {
        name: Split(encode_inputs(task, rows), _encode_targets(task, [seen[r] for r in rows]))
        for name, rows in splits.items()
    }
    return TaskData(task, seed, encoded["train"], encoded["val"], encoded["test"])
