"""Analysis of a program: dependency graph (and its drawing), per-example trace, size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crystalbox._files import write_atomically
from crystalbox.programs.decompile.executor import execute_trace
from crystalbox.programs.decompile.ir import Lookup, Program, Select, SelectSum, Step

__all__ = ["DependencyGraph", "dependency_graph", "draw_graph", "encode", "trace_table"]

OUTPUT = "output"


@dataclass(frozen=True)
class DependencyGraph:
    """Nodes are variables plus ``"output"``; an edge ``(a, b)`` means ``b`` reads ``a``.

    ``column[node]`` is its layer position (inputs 0, layer l heads 2l+1, MLPs 2l+2).
    """

    nodes: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]
    column: dict[str, int]
    kind: dict[str, str]

    def upstream(self, node: str) -> frozenset[str]:
        """Every node ``node`` depends on, directly or indirectly."""
        parents: dict[str, set[str]] = {}
        for a, b in self.edges:
            parents.setdefault(b, set()).add(a)
        seen: set[str] = set()
        stack = [node]
        while stack:
            for parent in parents.get(stack.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        return frozenset(seen)

    def modules_behind_output(self) -> tuple[str, ...]:
        """The heads and MLPs the output depends on."""
        return tuple(
            n for n in self.nodes if n in self.upstream(OUTPUT) and self.kind[n] != "input"
        )


def _kind(step: Step | None) -> str:
    if step is None:
        return "input"
    if isinstance(step, Select):
        return "head"
    if isinstance(step, SelectSum):
        return "numerical head"
    if isinstance(step, Lookup):
        return "mlp"
    return "constant"


def dependency_graph(program: Program) -> DependencyGraph:
    """Which variables each step reads, and which variables the classifier reads."""
    nodes = [v.name for v in program.variables]
    edges: list[tuple[str, str]] = []
    column: dict[str, int] = {}
    kind: dict[str, str] = {}
    for var in program.variables:
        step = program.step_of(var.name)
        kind[var.name] = _kind(step)
        if step is None or var.layer is None:
            column[var.name] = 0
        else:
            is_head = isinstance(step, Select | SelectSum)
            column[var.name] = 2 * var.layer + (1 if is_head else 2)
        if step is not None:
            edges.extend((name, var.name) for name in dict.fromkeys(step.inputs))
    edges.extend((f.variable, OUTPUT) for f in program.classifier.features)
    column[OUTPUT] = max(column.values(), default=0) + 1
    kind[OUTPUT] = "output"
    return DependencyGraph((*nodes, OUTPUT), tuple(edges), column, kind)


_COLORS = {
    "input": "#d9d9d9",
    "head": "#9ecae1",
    "numerical head": "#c6dbef",
    "mlp": "#fdae6b",
    "constant": "#f0f0f0",
    "output": "#a1d99b",
}


def draw_graph(graph: DependencyGraph, path: str | Path) -> Path:
    """Draw ``graph`` as a layered PNG at ``path`` (matplotlib only, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns: dict[int, list[str]] = {}
    for node in graph.nodes:
        columns.setdefault(graph.column[node], []).append(node)
    height = max(len(c) for c in columns.values())
    xy = {
        node: (col * 3.0, (len(members) - 1) / 2 - i)
        for col, members in columns.items()
        for i, node in enumerate(members)
    }
    width = len(columns)
    fig = Figure(figsize=(max(6.0, 2.6 * width), max(3.0, 0.7 * height + 1)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for a, b in graph.edges:
        (x0, y0), (x1, y1) = xy[a], xy[b]
        ax.annotate(
            "",
            xy=(x1 - 1.05, y1),
            xytext=(x0 + 1.05, y0),
            arrowprops={"arrowstyle": "->", "color": "#555555", "lw": 0.7, "alpha": 0.7},
        )
    for node, (x, y) in xy.items():
        ax.text(
            x,
            y,
            node,
            ha="center",
            va="center",
            fontsize=7,
            bbox={"boxstyle": "round", "fc": _COLORS[graph.kind[node]], "ec": "#333333"},
        )
    ax.set_xlim(-1.6, 3.0 * (max(columns) + 0.55))
    ax.set_ylim(-(height + 1) / 2, (height + 1) / 2)
    ax.axis("off")
    return write_atomically(
        path, lambda tmp: fig.savefig(tmp, format="png", dpi=130, bbox_inches="tight")
    )


def encode(program: Program, tokens: Sequence[str]) -> np.ndarray:
    """One input as ids ``[1, len]``; ``ValueError`` for unknown tokens or too long."""
    if len(tokens) > program.n_ctx:
        raise ValueError(f"{len(tokens)} tokens exceed the program's context of {program.n_ctx}")
    unknown = [t for t in tokens if t not in program.input_vocab or t == program.pad]
    if unknown:
        raise ValueError(
            f"tokens {unknown} are not in the input vocabulary {list(program.input_vocab)}"
        )
    return np.asarray([[program.input_vocab.index(t) for t in tokens]], dtype=np.int64)


def trace_table(program: Program, tokens: Sequence[str]) -> str:
    """The value of every variable at every position for one input, and the output."""
    env, predicted = execute_trace(program, encode(program, tokens))
    rows: list[list[str]] = [["position", *(str(i) for i in range(len(tokens)))]]
    for var in program.variables:
        if var.name not in env:
            continue
        values = env[var.name][0]
        rows.append([var.name, *(str(var.domain.label(int(v))) for v in values)])
    classes = program.classifier.classes
    rows.append([OUTPUT, *(classes[int(c)] for c in predicted[0])])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    )
