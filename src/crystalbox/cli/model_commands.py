"""``crystalbox info | validate | lens | demo``: the standardized view from the command line."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from crystalbox.cli.common import add_model_option, guard, model_from_args

DEMO_PROMPT = "The capital of France is"


def register(subparsers: Any) -> None:
    info = subparsers.add_parser("info", help="show the standardized structure of a model")
    add_model_option(info)
    info.set_defaults(func=guard(_info))

    validate = subparsers.add_parser(
        "validate", help="prove the standardized view equals the raw model"
    )
    add_model_option(validate)
    validate.set_defaults(func=guard(_validate))

    lens = subparsers.add_parser(
        "lens", help="logit lens: top token per layer, as a table and a heatmap PNG"
    )
    lens.add_argument("prompt", help="the prompt to analyse")
    add_model_option(lens)
    lens.add_argument(
        "--target", action="append", default=[], help="a single-token target to track (repeatable)"
    )
    lens.add_argument(
        "--out", type=Path, default=Path("out"), help="folder for the heatmap (default: out/)"
    )
    lens.set_defaults(func=guard(_lens))

    demo = subparsers.add_parser(
        "demo", help="the main job: load, validate, logit lens on the default model"
    )
    add_model_option(demo)
    demo.add_argument("--prompt", default=DEMO_PROMPT)
    demo.add_argument("--out", type=Path, default=Path("out"))
    demo.set_defaults(func=guard(_demo))

    register_coverage(subparsers)


def _info(args: argparse.Namespace) -> int:
    print(model_from_args(args).info())
    return 0


def _validate(args: argparse.Namespace) -> int:
    report = model_from_args(args).validate()
    print(report.table())
    return 0 if report.ok else 1


def _lens(args: argparse.Namespace) -> int:
    from crystalbox.methods.lens import logit_lens

    if not args.prompt.strip():
        raise ValueError(
            "the prompt is empty; pass some text, e.g. crystalbox lens 'The capital of France is'"
        )
    model = model_from_args(args)
    result = logit_lens(model, args.prompt, targets=args.target)
    print(result.table())
    path = result.plot(args.out / "logit_lens.png")
    print(f"heatmap written to {path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from crystalbox.methods.lens import logit_lens

    start = time.perf_counter()
    model = model_from_args(args)
    print(f"loaded and checked in {time.perf_counter() - start:.1f} s\n")
    print(model.info(), end="\n\n")
    report = model.validate()
    print(report.table(), end="\n\n")
    result = logit_lens(
        model, args.prompt, targets=[" Paris"] if args.prompt == DEMO_PROMPT else []
    )
    print(result.table())
    path = result.plot(args.out / "logit_lens.png")
    print(f"\nheatmap written to {path}")
    return 0 if report.ok else 1


def register_coverage(subparsers: Any) -> None:
    coverage = subparsers.add_parser(
        "coverage", help="validate every architecture as a tiny model; write docs/coverage.md"
    )
    coverage.add_argument(
        "--kind",
        action="append",
        choices=("causal", "masked", "seq2seq"),
        help="default: all three",
    )
    coverage.add_argument("--only", nargs="*", help="only these model types")
    coverage.add_argument("--out", type=Path, default=Path("docs/coverage.md"))
    coverage.set_defaults(func=_coverage)


def _coverage(args: argparse.Namespace) -> int:
    import torch

    from crystalbox.coverage import KINDS, run_matrix, write_markdown

    torch.manual_seed(0)
    start = time.perf_counter()
    rows = run_matrix(args.kind or KINDS, args.only)
    seconds = time.perf_counter() - start
    path = write_markdown(rows, args.out, seconds)
    for kind in args.kind or KINDS:
        of_kind = [r for r in rows if r.kind == kind]
        ok = sum(r.status == "pass" for r in of_kind)
        inst = sum(r.status != "not-instantiable" for r in of_kind)
        print(f"{kind:8s} passed {ok} / {inst} instantiable ({len(of_kind)} in the mapping)")
    print(f"matrix written to {path} in {seconds:.0f} s")
    return 0
