"""Program ≡ model: compare the executor and the rendered Python with the argmax model.

Inputs come in named sets (``train``, ``val``, ``test`` and, when the task's whole input
space has at most ``exhaustive_limit`` inputs, ``all``). Every non-pad position counts.
The report lists every disagreement with its input.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from crystalbox.programs.checkpoint import TaskInfo, checkpoint_data
from crystalbox.programs.decompile.executor import execute
from crystalbox.programs.decompile.ir import Program
from crystalbox.programs.model import ProgramTransformer
from crystalbox.programs.tasks import Task

__all__ = [
    "Check",
    "Disagreement",
    "VerifyReport",
    "input_space",
    "load_source",
    "model_predictions",
    "task_inputs",
    "verify",
]

EXHAUSTIVE = "all"


@dataclass(frozen=True)
class Disagreement:
    """One position where a program's output differs from the model's."""

    program: str  # "executor" or "python"
    inputs: str  # the input set
    tokens: tuple[str, ...]
    position: int
    model: str
    predicted: str


@dataclass(frozen=True)
class Check:
    """Agreement of one program (executor or python) on one input set, in positions."""

    program: str
    inputs: str
    n_inputs: int
    n_positions: int
    n_agree: int

    @property
    def ok(self) -> bool:
        return self.n_agree == self.n_positions


@dataclass(frozen=True)
class VerifyReport:
    checks: tuple[Check, ...]
    disagreements: tuple[Disagreement, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def exhaustive(self) -> bool:
        return any(c.inputs == EXHAUSTIVE for c in self.checks)

    def summary(self, max_listed: int = 20) -> str:
        lines = [
            f"{c.program:>8} on {c.inputs:<5}: {c.n_agree}/{c.n_positions} positions agree "
            f"({100.0 * c.n_agree / max(c.n_positions, 1):.3f}%) over {c.n_inputs} inputs"
            for c in self.checks
        ]
        for d in self.disagreements[:max_listed]:
            lines.append(
                f"  {d.program} ({d.inputs}) {' '.join(d.tokens)!r} position {d.position}: "
                f"model {d.model!r}, program {d.predicted!r}"
            )
        if len(self.disagreements) > max_listed:
            lines.append(f"  ... and {len(self.disagreements) - max_listed} more disagreements")
        return "\n".join(lines)


def input_space(info: TaskInfo, limit: int = 1_000_000) -> np.ndarray | None:
    """Every input a built-in task can produce, as ids ``[n, max_len]``; ``None`` when the
    task is not enumerable here or has more than ``limit`` inputs. For icl: every
    alternation of letters and numbers (a superset: maps need not be consistent)."""
    vocab, n = info.input_vocab, info.max_len
    specials = {info.bos, info.pad, info.eos}
    symbols = [t for t in vocab if t not in specials]
    suffix: tuple[str, ...] = ()
    if info.name in ("reverse", "sort"):
        bodies, suffix = [[symbols] * length for length in range(1, n - 1)], (info.eos or "",)
    elif info.name in ("hist", "double_hist", "most_freq"):
        bodies = [[symbols] * length for length in range(1, n)]
    elif info.name in ("dyck1", "dyck2"):
        bodies = [[symbols] * (n - 1)]
    elif info.name == "icl":
        letters = [t for t in symbols if t.isalpha()]
        numbers = [t for t in symbols if not t.isalpha()]
        bodies = [[numbers if i % 2 else letters for i in range(n - 1)]]
    else:
        return None
    total = sum(int(np.prod([len(a) for a in body])) for body in bodies)
    if total > limit:
        return None
    index = {t: i for i, t in enumerate(vocab)}
    out = np.full((total, n), index[info.pad], dtype=np.int64)
    row = 0
    for body in bodies:
        for middle in itertools.product(*body):
            seq = (info.bos, *middle, *suffix)
            out[row, : len(seq)] = [index[t] for t in seq]
            row += 1
    return out


def task_inputs(
    info: TaskInfo,
    train_config: Mapping[str, Any],
    exhaustive_limit: int = 1_000_000,
    task: Task | None = None,
) -> dict[str, np.ndarray]:
    """The checkpoint's train/val/test inputs (regenerated from its seeds) and, when small
    enough, the whole input space under ``"all"``. ``task``: see ``checkpoint_data``."""
    data = checkpoint_data(info, dict(train_config), task=task)
    sets = {"train": data.train.inputs, "val": data.val.inputs, "test": data.test.inputs}
    space = input_space(info, exhaustive_limit)
    if space is not None:
        sets[EXHAUSTIVE] = space
    return sets


@torch.no_grad()
def model_predictions(
    model: ProgramTransformer, inputs: np.ndarray, batch: int = 4096
) -> np.ndarray:
    """The torch argmax model's class ids ``[n, pos]``."""
    parts = [
        model.predict(torch.as_tensor(inputs[i : i + batch])).numpy()
        for i in range(0, len(inputs), batch)
    ]
    return np.concatenate(parts) if parts else np.zeros(inputs.shape, dtype=np.int64)


def load_source(source: str, name: str = "decompiled_program") -> ModuleType:
    """Import rendered source from a temporary file, as a fresh module (not in sys.modules)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import the rendered program from {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    sys.modules.pop(name, None)
    return module


def python_predictions(
    run: Callable[[list[str]], list[str]], program: Program, inputs: np.ndarray
) -> np.ndarray:
    """Class ids ``[n, pos]`` from a rendered ``run``; pad positions get -1."""
    classes = {c: i for i, c in enumerate(program.classifier.classes)}
    pad = program.input_vocab.index(program.pad)
    out = np.full(inputs.shape, -1, dtype=np.int64)
    for row, ids in enumerate(inputs):
        tokens = [program.input_vocab[i] for i in ids if i != pad]
        out[row, : len(tokens)] = [classes[c] for c in run(tokens)]
    return out


def _compare(
    name: str,
    set_name: str,
    program: Program,
    inputs: np.ndarray,
    expected: np.ndarray,
    predicted: np.ndarray,
) -> tuple[Check, list[Disagreement]]:
    scored = inputs != program.input_vocab.index(program.pad)
    wrong = scored & (expected != predicted)
    classes = program.classifier.classes
    found = []
    for row, pos in zip(*np.nonzero(wrong), strict=True):
        tokens = tuple(
            program.input_vocab[i] for i, s in zip(inputs[row], scored[row], strict=True) if s
        )
        found.append(
            Disagreement(
                name,
                set_name,
                tokens,
                int(pos),
                classes[expected[row, pos]],
                classes[predicted[row, pos]] if predicted[row, pos] >= 0 else "<none>",
            )
        )
    n_scored = int(scored.sum())
    check = Check(name, set_name, len(inputs), n_scored, n_scored - int(wrong.sum()))
    return check, found


def verify(
    program: Program,
    model: ProgramTransformer,
    inputs: Mapping[str, np.ndarray],
    source: str | None = None,
    python_limit: int = 25_000,
    references: Mapping[str, np.ndarray] | None = None,
) -> VerifyReport:
    """Compare the executor (every set) and the rendered ``source`` (every set except the
    whole input space when it has more than ``python_limit`` inputs) with ``model``."""
    module = load_source(source) if source is not None else None
    checks: list[Check] = []
    disagreements: list[Disagreement] = []
    for set_name, ids in inputs.items():
        ids = np.asarray(ids, dtype=np.int64)
        expected = (
            references[set_name]
            if references is not None and set_name in references
            else model_predictions(model, ids)
        )
        outputs = [("executor", execute(program, ids))]
        if module is not None and (set_name != EXHAUSTIVE or len(ids) <= python_limit):
            outputs.append(("python", python_predictions(module.run, program, ids)))
        for name, predicted in outputs:
            check, found = _compare(name, set_name, program, ids, expected, predicted)
            checks.append(check)
            disagreements.extend(found)
    return VerifyReport(tuple(checks), tuple(disagreements))
