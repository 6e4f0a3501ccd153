"""The coverage matrix: every architecture transformers can run tiny, standardized and validated.

``run_matrix`` = build each tiny model (``crystalbox.testbed``) -> wrap it -> validate -> one row;
``write_markdown`` renders ``docs/coverage.md``; ``passing_in`` reads a rendered file back so a
test can fail when an architecture that passed regresses.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Status = Literal["pass", "fail", "error", "not-instantiable"]
KINDS: tuple[str, ...] = ("causal", "masked", "seq2seq")


@dataclass(frozen=True)
class CoverageRow:
    kind: str
    model_type: str
    status: Status
    spec: str = ""  # registered / discovered
    roles: str = ""  # short summary of what resolved
    checks: str = ""  # passed / run
    detail: str = ""  # failures or notes
    seconds: float = 0.0


def run_matrix(
    kinds: Iterable[str] = KINDS, only: Iterable[str] | None = None, progress: bool = True
) -> list[CoverageRow]:
    """Build, standardize and validate every architecture of ``kinds`` (or those in ``only``).

    Runs on one thread: tiny models gain nothing from more, and on a busy machine extra
    threads only contend (the matrix took 8 minutes instead of about one that way)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows: list[CoverageRow] = []
    try:
        for kind in kinds:
            rows.extend(_rows_of_kind(kind, only, progress))
    finally:
        torch.set_num_threads(threads)
    return rows


def _rows_of_kind(kind: str, only: Iterable[str] | None, progress: bool) -> Iterator[CoverageRow]:
    from tqdm import tqdm

    from crystalbox.testbed import list_architectures
    from crystalbox.testbed.build import iter_builds

    total = len(list_architectures(kind))  # type: ignore[arg-type]
    wanted = None if only is None else list(only)
    bar = tqdm(
        iter_builds(kind, only=wanted),  # type: ignore[arg-type]
        total=total if wanted is None else len(wanted),
        desc=f"coverage {kind}",
        disable=not progress,
        unit="arch",
    )
    for record in bar:
        bar.set_postfix_str(record.model_type)
        start = time.perf_counter()
        if not record.ok:
            failure = record.outcome
            yield CoverageRow(
                kind,
                record.model_type,
                "not-instantiable",
                detail=f"{getattr(failure, 'stage', '')}: {getattr(failure, 'reason', '')}"[:160],
            )
            continue
        yield _validate_one(kind, record.model_type, record.outcome, start)


def _validate_one(kind: str, model_type: str, tiny: object, start: float) -> CoverageRow:
    from crystalbox.standard.model import StandardizedTransformer
    from crystalbox.synthetic_tokenizer import synthetic_tokenizer

    model_obj = tiny.model  # type: ignore[attr-defined]
    vocab = getattr(tiny.config, "vocab_size", None)  # type: ignore[attr-defined]
    vocab = vocab if isinstance(vocab, int) and vocab >= 100 else 512
    small = getattr(tiny.config, "vocab_size", None)  # type: ignore[attr-defined]
    if isinstance(small, int) and 24 <= small < 100:
        vocab = small  # e.g. ESM's 33 amino-acid tokens
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = StandardizedTransformer(model_obj, tokenizer=synthetic_tokenizer(vocab))
            report = model.validate()
    except Exception as exc:  # one row per architecture, whatever goes wrong
        return CoverageRow(
            kind,
            model_type,
            "error",
            detail=f"{type(exc).__name__}: {_one_line(str(exc))}"[:200],
            seconds=time.perf_counter() - start,
        )
    arch = model.arch
    probes = sum(model.attention_probabilities.available(i) for i in range(arch.num_layers))
    roles = (
        f"{arch.layers} x{arch.num_layers}; attn {sum(map(bool, arch.attention))}"
        f"{' mixer ' + str(sum(map(bool, arch.mixer))) if any(arch.mixer) else ''}"
        f"; mlp {sum(map(bool, arch.mlp))}; ln_final {'yes' if arch.ln_final else 'none'}"
        f"{'; router' if any(arch.router) else ''}; probs {probes}"
        f"; heads {sum(layout is not None for layout in model._head_layouts)}"
        f"{'; encoder ' + arch.encoder.layers + ' x' + str(arch.encoder.num_layers) if arch.encoder else ''}"
        f"{'; residual ' + arch.spec.residual if arch.spec.residual != 'pre_norm' else ''}"
    )
    passed = sum(c.passed for c in report.checks)
    return CoverageRow(
        kind,
        model_type,
        "pass" if report.ok else "fail",
        arch.source,
        roles,
        f"{passed}/{len(report.checks)}",
        "; ".join(f"{c.name}: {c.detail}" for c in report.failures)[:200],
        time.perf_counter() - start,
    )


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def write_markdown(rows: list[CoverageRow], path: Path, seconds: float) -> Path:
    """Render ``rows`` as ``docs/coverage.md`` (generated: do not edit by hand)."""
    lines = [
        "# Coverage matrix",
        "",
        "Generated by `crystalbox coverage` — do not edit by hand. Every architecture in transformers'",
        "causal-LM, masked-LM and seq2seq mappings is built as a tiny random model (`crystalbox.testbed`),",
        "wrapped in `StandardizedTransformer` and fully validated (`crystalbox.validate`).",
        "",
        "| mapping | passed | failed | error | not instantiable | total |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for kind in KINDS:
        of_kind = [r for r in rows if r.kind == kind]
        if not of_kind:
            continue
        count = {
            s: sum(r.status == s for r in of_kind)
            for s in ("pass", "fail", "error", "not-instantiable")
        }
        instantiable = len(of_kind) - count["not-instantiable"]
        lines.append(
            f"| {kind} | {count['pass']} / {instantiable} instantiable | {count['fail']} | {count['error']} "
            f"| {count['not-instantiable']} | {len(of_kind)} |"
        )
    lines += ["", f"Wall time of the whole matrix: {seconds:.0f} s.", ""]
    for kind in KINDS:
        of_kind = [r for r in rows if r.kind == kind]
        if not of_kind:
            continue
        lines += [
            f"## {kind}",
            "",
            "| architecture | status | spec | roles | checks | notes |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in of_kind:
            notes = r.detail.replace("|", "\\|")
            lines.append(
                f"| {r.model_type} | {r.status} | {r.spec} | {r.roles} | {r.checks} | {notes} |"
            )
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)
    return path


def passing_in(path: Path) -> set[tuple[str, str]]:
    """(kind, model_type) of every row marked ``pass`` in a rendered coverage file."""
    passing: set[tuple[str, str]] = set()
    kind = ""
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            kind = line[3:].strip()
        cells = [c.strip() for c in line.strip("|").split("|")]
        if kind and len(cells) >= 2 and cells[1] == "pass":
            passing.add((kind, cells[0]))
    return passing
