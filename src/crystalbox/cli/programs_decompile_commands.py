"""``crystalbox programs decompile|verify|explain|graph``: decompiled Transformer Programs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from crystalbox._files import write_atomically
from crystalbox.cli.common import guard
from crystalbox.cli.programs_commands import add_task_option, task_argument

__all__ = ["register"]


def register(programs: Any) -> None:
    """Add the decompiler's commands to the ``programs`` subparsers."""
    decompile = programs.add_parser(
        "decompile", help="write a checkpoint's verified program as self-contained Python"
    )
    decompile.add_argument("checkpoint", help="folder written by `programs train`")
    decompile.add_argument("-o", "--output", required=True, help="the .py file to write")
    decompile.add_argument(
        "--no-verify", action="store_true", help="skip the program ≡ model check"
    )
    decompile.add_argument(
        "--no-prune", action="store_true", help="keep classifier features that change nothing"
    )
    add_task_option(decompile)
    decompile.set_defaults(func=guard(_decompile))

    verify = programs.add_parser(
        "verify", help="compare the decompiled program with the model on every input"
    )
    verify.add_argument("checkpoint")
    add_task_option(verify)
    verify.set_defaults(func=guard(_verify))

    explain = programs.add_parser(
        "explain", help="trace every variable of the program on one input"
    )
    explain.add_argument("checkpoint")
    explain.add_argument("tokens", help='space-separated input, e.g. "3 1 2 2" (BOS/EOS added)')
    explain.add_argument("--prune", action="store_true", help="trace the pruned program")
    explain.set_defaults(func=guard(_explain))

    graph = programs.add_parser("graph", help="draw the program's dependency graph as a PNG")
    graph.add_argument("checkpoint")
    graph.add_argument("-o", "--output", required=True, help="the .png file to write")
    graph.add_argument("--prune", action="store_true", help="draw the pruned program")
    graph.set_defaults(func=guard(_graph))


def _checkpoint(path: str) -> Path:
    folder = Path(path)
    if not folder.exists():
        raise ValueError(f"checkpoint folder {path!r} does not exist")
    return folder


def _decompile(args: argparse.Namespace) -> int:
    from crystalbox.programs.decompile import decompile

    result = decompile(
        _checkpoint(args.checkpoint),
        check=not args.no_verify,
        prune=not args.no_prune,
        task=task_argument(args.task),
    )
    out = Path(args.output)
    write_atomically(out, lambda tmp: tmp.write_text(result.source))
    print(
        f"{result.program.task}: {result.lines_before} -> {result.lines_after} lines, "
        f"{len(result.full.steps)} -> {len(result.program.steps)} steps -> {out}"
    )
    if result.report is not None:
        print(result.report.summary())
    return 0


def _verify(args: argparse.Namespace) -> int:
    from crystalbox.programs.decompile import ProgramMismatchError, decompile

    try:
        result = decompile(_checkpoint(args.checkpoint), check=True, task=task_argument(args.task))
    except ProgramMismatchError as exc:
        print(exc.report.summary(max_listed=50))
        return 1
    assert result.report is not None
    print(result.report.summary())
    return 0


def _explain(args: argparse.Namespace) -> int:
    from crystalbox.programs.checkpoint import load_program
    from crystalbox.programs.decompile import decompile, trace_table

    loaded = load_program(_checkpoint(args.checkpoint))
    info = loaded.task
    tokens = args.tokens.split()
    if not tokens or tokens[0] != info.bos:
        tokens = [info.bos, *tokens]
    if info.eos is not None and tokens[-1] != info.eos:
        tokens.append(info.eos)
    result = decompile(loaded, check=False, prune=args.prune)
    print(trace_table(result.program, tokens))
    return 0


def _graph(args: argparse.Namespace) -> int:
    from crystalbox.programs.decompile import decompile, dependency_graph, draw_graph

    result = decompile(_checkpoint(args.checkpoint), check=False, prune=args.prune)
    graph = dependency_graph(result.program)
    path = draw_graph(graph, args.output)
    modules = ", ".join(graph.modules_behind_output()) or "none"
    print(f"{path}: the output depends on {modules}")
    return 0
