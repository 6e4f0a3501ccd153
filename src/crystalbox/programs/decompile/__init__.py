"""Decompiling Transformer Programs into verified, readable, self-contained Python.

``decompile(checkpoint)`` reads the argmax model (``read_discrete``), builds the typed
program IR (``build``), simplifies it (``simplify``), renders Python (``render``) and checks
program ≡ model (``verify``). ``execute`` runs the IR on batches with numpy; ``analysis``
gives the dependency graph, per-example traces and program sizes.
"""

from crystalbox.programs.decompile.analysis import (
    DependencyGraph,
    dependency_graph,
    draw_graph,
    trace_table,
)
from crystalbox.programs.decompile.build import build_program
from crystalbox.programs.decompile.executor import execute, execute_trace
from crystalbox.programs.decompile.ir import Program
from crystalbox.programs.decompile.pipeline import (
    Decompiled,
    ProgramMismatchError,
    ProgramSize,
    decompile,
    line_count,
    program_size,
)
from crystalbox.programs.decompile.render import render
from crystalbox.programs.decompile.simplify import prune_features, simplify
from crystalbox.programs.decompile.verify import (
    VerifyReport,
    input_space,
    load_source,
    task_inputs,
    verify,
)

__all__ = [
    "Decompiled",
    "DependencyGraph",
    "Program",
    "ProgramMismatchError",
    "ProgramSize",
    "VerifyReport",
    "build_program",
    "decompile",
    "dependency_graph",
    "draw_graph",
    "execute",
    "execute_trace",
    "input_space",
    "line_count",
    "load_source",
    "program_size",
    "prune_features",
    "render",
    "simplify",
    "task_inputs",
    "trace_table",
    "verify",
]
