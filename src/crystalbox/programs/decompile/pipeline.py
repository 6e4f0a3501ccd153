"""``decompile``: checkpoint or model in, verified program out. Reads as a table of contents."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crystalbox.errors import CrystalboxError
from crystalbox.programs.checkpoint import LoadedProgram, load_program
from crystalbox.programs.decompile.build import build_program
from crystalbox.programs.decompile.ir import Program
from crystalbox.programs.decompile.render import render, render_parts
from crystalbox.programs.decompile.simplify import prune_features, simplify
from crystalbox.programs.decompile.verify import (
    EXHAUSTIVE,
    VerifyReport,
    model_predictions,
    task_inputs,
    verify,
)
from crystalbox.programs.discrete import read_discrete
from crystalbox.programs.model import ProgramTransformer
from crystalbox.programs.tasks import Task

__all__ = [
    "Decompiled",
    "ProgramMismatchError",
    "ProgramSize",
    "decompile",
    "line_count",
    "program_size",
]


class ProgramMismatchError(CrystalboxError, ValueError):
    """The decompiled program disagrees with the model on some input."""

    def __init__(self, report: VerifyReport) -> None:
        self.report = report
        super().__init__(
            "the decompiled program disagrees with the argmax model:\n" + report.summary()
        )


@dataclass(frozen=True, eq=False)
class Decompiled:
    """The program before (``full``) and after simplification, its source and its check."""

    full: Program
    program: Program
    source: str
    report: VerifyReport | None
    model: ProgramTransformer
    inputs: Mapping[str, np.ndarray]

    @property
    def lines_before(self) -> int:
        return line_count(render(self.full))

    @property
    def lines_after(self) -> int:
        return line_count(self.source)

    @property
    def size_before(self) -> ProgramSize:
        return program_size(self.full)

    @property
    def size_after(self) -> ProgramSize:
        return program_size(self.program)


@dataclass(frozen=True)
class ProgramSize:
    """Non-blank lines of a rendered program: in all, and per part.

    ``logic`` (predicates, lookup tables, ``run``) is what the paper's line counts measure:
    its programs imported the helpers and read the classifier weights from a CSV file.
    """

    total: int
    logic: int
    weights: int
    helpers: int


def program_size(program: Program) -> ProgramSize:
    parts = render_parts(program)
    return ProgramSize(
        total=line_count(parts.source),
        logic=line_count(parts.functions) + line_count(parts.run),
        weights=line_count(parts.weights),
        helpers=line_count(parts.header) + line_count(parts.helpers),
    )


def line_count(source: str) -> int:
    """Non-blank lines of a rendered program."""
    return sum(1 for line in source.splitlines() if line.strip())


def decompile(
    source: str | Path | LoadedProgram | ProgramTransformer,
    *,
    input_vocab: Sequence[str] | None = None,
    output_vocab: Sequence[str] | None = None,
    inputs: Mapping[str, np.ndarray] | None = None,
    check: bool = True,
    prune: bool = True,
    exhaustive_limit: int = 1_000_000,
    python_limit: int = 25_000,
    task: Task | None = None,
) -> Decompiled:
    """Read the argmax model, build the IR, simplify, render, and verify program ≡ model.

    ``source``: a checkpoint folder, a ``LoadedProgram``, or a ``ProgramTransformer`` (then
    ``input_vocab``, ``output_vocab`` and ``inputs`` are required). ``inputs``: named sets of
    input ids; ``"all"`` marks the whole input space, which also licenses ``prune`` (drop
    classifier features that change no prediction on it). Raises ``ProgramMismatchError``
    when ``check`` finds any disagreement. ``task``: a checkpoint's user task (``custom_task``)
    when the checkpoint does not record where it is defined (see ``checkpoint_data``).
    """
    needs_inputs = check or prune
    model, name, vocabs, inputs = _resolve(
        source, input_vocab, output_vocab, inputs, exhaustive_limit, needs_inputs, task
    )
    discrete = read_discrete(model, *vocabs)  # 1. extract the argmax structure
    full = build_program(discrete, name)  # 2. the typed IR with reachable domains
    program = simplify(full)  # 3. exact simplifications ...
    wanted = inputs if check else {k: v for k, v in inputs.items() if k == EXHAUSTIVE and prune}
    references = {name: model_predictions(model, ids) for name, ids in wanted.items()}
    if prune and EXHAUSTIVE in inputs:  # ... and pruning verified on the whole input space
        program = prune_features(program, inputs[EXHAUSTIVE], references[EXHAUSTIVE])
    text = render(program)  # 4. self-contained Python
    report = None
    if check:  # 5. program ≡ model on every input set
        report = verify(program, model, inputs, text, python_limit, references)
        if not report.ok:
            raise ProgramMismatchError(report)
    return Decompiled(full, program, text, report, model, inputs)


def _resolve(
    source: str | Path | LoadedProgram | ProgramTransformer,
    input_vocab: Sequence[str] | None,
    output_vocab: Sequence[str] | None,
    inputs: Mapping[str, np.ndarray] | None,
    exhaustive_limit: int,
    needs_inputs: bool = True,
    task: Task | None = None,
) -> tuple[ProgramTransformer, str, tuple[tuple[str, ...], tuple[str, ...]], dict[str, np.ndarray]]:
    if isinstance(source, ProgramTransformer):
        if input_vocab is None or output_vocab is None or (inputs is None and needs_inputs):
            raise ValueError(
                "decompiling a bare ProgramTransformer needs input_vocab, output_vocab and "
                "inputs (named sets of input ids); or pass a checkpoint folder"
            )
        vocabs = (tuple(input_vocab), tuple(output_vocab))
        sets = {k: np.asarray(v) for k, v in (inputs or {}).items()}
        return source.eval(), "program", vocabs, sets
    if isinstance(source, str | Path):
        source = load_program(source)
    if not isinstance(source, LoadedProgram):
        raise TypeError(
            "decompile takes a checkpoint folder, a LoadedProgram or a ProgramTransformer, "
            f"got {type(source).__name__}"
        )
    info = source.task
    if inputs is None:
        if needs_inputs:
            inputs = task_inputs(info, source.train_config, exhaustive_limit, task)
        else:
            inputs = {}
    vocabs = (info.input_vocab, info.output_vocab)
    return source.model, info.name, vocabs, {k: np.asarray(v) for k, v in inputs.items()}
