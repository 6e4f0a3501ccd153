"""Render the program IR as self-contained Python source that reads like the paper's programs.

The file needs only the standard library, does nothing on import, inlines the classifier
weights, and exposes ``run(tokens: list[str]) -> list[str]`` plus the helpers it uses
(``select_closest``, ``aggregate``, ``select``, ``aggregate_sum``, ``classify``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from crystalbox.programs.decompile.ir import (
    CategoricalDomain,
    CategoricalFeature,
    Constant,
    Domain,
    Lookup,
    Predicate,
    Program,
    Select,
    SelectSum,
)
from crystalbox.programs.decompile.simplify import predicate_exceptions

__all__ = ["Emitter", "RenderedParts", "render", "render_parts"]


class Emitter:
    """Collects indented source lines; ``block`` indents the lines written inside it."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.level = 0

    def line(self, text: str = "") -> None:
        self.lines.append("    " * self.level + text if text else "")

    def lines_of(self, text: str) -> None:
        for line in text.strip("\n").splitlines():
            self.line(line)

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        self.line(header)
        self.level += 1
        try:
            yield
        finally:
            self.level -= 1

    def source(self) -> str:
        return "\n".join(self.lines).rstrip() + "\n"


HELPERS = '''
def select_closest(keys, queries, predicate, causal=CAUSAL):
    """Per query position: the closest matching key position (self last, earlier wins
    ties); BOS (position 0) when no key matches; causal: keys at or before the query only."""
    selected = []
    for q, query in enumerate(queries):
        best, best_rank = 0, None
        for j, key in enumerate(keys[: q + 1] if causal else keys):
            if predicate(query, key):
                rank = (j == q, abs(q - j), j)
                if best_rank is None or rank < best_rank:
                    best, best_rank = j, rank
        selected.append(best)
    return selected


def aggregate(selected, values):
    """The value at each query's selected position."""
    return [values[j] for j in selected]


def select(keys, queries, predicate, causal=CAUSAL):
    """Per query position: every matching key position (causal: at or before the query)."""
    return [
        [j for j, key in enumerate(keys[: q + 1] if causal else keys) if predicate(query, key)]
        for q, query in enumerate(queries)
    ]


def aggregate_sum(selected, values):
    """The sum of the values at each query's matching positions (0 when none match)."""
    return [sum(values[j] for j in matches) for matches in selected]


def classify(features, position):
    """The output token at ``position``: argmax of BIAS plus each feature's weights."""
    scores = list(BIAS)
    for name, values in features.items():
        weights, value = WEIGHTS[name], values[position]
        row = weights[value] if isinstance(weights, dict) else [value * w for w in weights]
        scores = [s + w for s, w in zip(scores, row)]
    return CLASSES[max(range(len(scores)), key=scores.__getitem__)]


def check_input(tokens):
    if not isinstance(tokens, (list, tuple)) or not tokens or tokens[0] != BOS:
        raise ValueError(f"tokens must be a list of str starting with {BOS!r}, got {tokens!r}")
    if len(tokens) > N_CTX:
        raise ValueError(f"{len(tokens)} tokens exceed the context of {N_CTX}")
    for token in tokens[1:]:
        if token not in INPUT_VOCAB or token in (BOS, PAD):
            raise ValueError(f"token {token!r} is not an input token: {INPUT_VOCAB[2:]}")
'''


def _floats(row: Sequence[float]) -> str:
    """Exact values (the model's float32 weights and their float64 sums), so the rendered
    program's scores equal the model's to the bit."""
    return "(" + ", ".join(repr(float(x)) for x in row) + ("," if len(row) == 1 else "") + ")"


def _label(domain: Domain, value: int) -> str:
    return repr(domain.label(value))


def _condition(name: str, domain: Domain, values: Sequence[int]) -> str:
    """``name`` is one of ``values``: ``x == a``, ``x in {a, b}`` or ranges of ints."""
    values = sorted(values)
    if len(values) == 1:
        return f"{name} == {_label(domain, values[0])}"
    if not isinstance(domain, CategoricalDomain) or domain.labels is None:
        runs: list[tuple[int, int]] = []
        for v in values:
            if runs and v == runs[-1][1] + 1:
                runs[-1] = (runs[-1][0], v)
            else:
                runs.append((v, v))
        if len(runs) <= 2 and any(hi - lo >= 2 for lo, hi in runs):
            return " or ".join(
                f"{name} == {lo}" if lo == hi else f"{lo} <= {name} <= {hi}" for lo, hi in runs
            )
    return f"{name} in {{{', '.join(_label(domain, v) for v in values)}}}"


def _key_test(wanted: int | None, keys: Domain) -> str:
    return "False" if wanted is None else f"k == {_label(keys, wanted)}"


def _predicate(out: Emitter, name: str, pred: Predicate, keys: Domain, queries: Domain) -> None:
    if not isinstance(keys, CategoricalDomain):
        raise TypeError(f"{name}: keys must be categorical")
    exceptions = predicate_exceptions(pred, keys)
    if pred.form == "table":  # no rule: the most common wanted key becomes the last branch
        groups: dict[int | None, list[int]] = defaultdict(list)
        for q, k in exceptions:
            groups[k].append(q)
        default = max(groups, key=lambda k: len(groups[k]), default=None)
        exceptions = [(q, k) for q, k in exceptions if k != default]
        rule = _key_test(default, keys)
    else:
        rule = {
            "never": "False",
            "equal": "k == q",
            "offset": f"k == q {'-' if pred.offset < 0 else '+'} {abs(pred.offset)}",
            "mirror": f"k == {pred.offset} - q",
            "constant": _key_test(pred.constant, keys),
        }[pred.form]
    with out.block(f"def {name}(q, k):"):
        grouped: dict[int | None, list[int]] = defaultdict(list)
        for q, k in exceptions:
            grouped[k].append(q)
        for wanted, qs in grouped.items():
            with out.block(f"if {_condition('q', queries, qs)}:"):
                out.line(f"return {_key_test(wanted, keys)}")
        out.line(f"return {rule}")
    out.line()


def _lookup(out: Emitter, name: str, step: Lookup, program: Program) -> None:
    domains = [program.variable(n).domain for n in step.inputs]
    names = [_param(program, n) for n in step.inputs]
    params = ", ".join(names)
    groups: dict[int, list[tuple[int, ...]]] = defaultdict(list)
    for key, value in step.table:
        groups[value].append(key)
    default = step.default
    if default is None and groups:  # a complete table: its largest group ends the function
        default = max(groups, key=lambda v: len(groups[v]))
        del groups[default]
    with out.block(f"def {name}({params}):"):
        for value in sorted(groups):
            keys = groups[value]
            if len(step.inputs) == 1:
                test = _condition(names[0], domains[0], [k[0] for k in keys])
            else:
                test = _pair_test(names, domains, keys)
            with out.block(f"if {test}:"):
                out.line(f"return {value}")
        out.line(f"return {default}")
    out.line()


def _pair_test(names: list[str], domains: list[Domain], keys: list[tuple[int, ...]]) -> str:
    """Keys of a 2-input table as at most two ``a in A and b in B`` blocks, else a set."""
    by_first: dict[int, set[int]] = defaultdict(set)
    for a, b in keys:
        by_first[a].add(b)
    blocks: dict[frozenset[int], list[int]] = defaultdict(list)
    for a, seconds in by_first.items():
        blocks[frozenset(seconds)].append(a)
    if len(blocks) <= 2:
        tests = []
        for bset, firsts in blocks.items():
            parts = [
                _condition(name, domain, values)
                for name, domain, values in zip(names, domains, (firsts, sorted(bset)), strict=True)
                if len(values) < domain.size
            ]
            parts = [f"({p})" if " or " in p and len(parts) > 1 else p for p in parts]
            tests.append(" and ".join(parts) if parts else "True")
        multiple = len(tests) > 1
        return " or ".join(f"({t})" if multiple and " " in t else t for t in tests)
    items = ", ".join(
        "(" + ", ".join(_label(d, v) for d, v in zip(domains, k, strict=True)) + ")"
        for k in sorted(keys)
    )
    as_set = f"({', '.join(names)}) in {{{items}}}"
    spans = _spans(by_first) if all(d.labels is None for d in domains) else None
    if spans is None:
        return as_set
    per_first = ", ".join(f"{a}: ({lo}, {hi + 1})" for a, (lo, hi) in spans.items())
    as_ranges = f"{names[1]} in range(*{{{per_first}}}.get({names[0]}, (0, 0)))"
    return as_ranges if len(as_ranges) < len(as_set) else as_set


def _spans(by_first: dict[int, set[int]]) -> dict[int, tuple[int, int]] | None:
    """Per first value, the second values as one inclusive run; ``None`` if one is not."""
    spans = {}
    for a, seconds in sorted(by_first.items()):
        lo, hi = min(seconds), max(seconds)
        if hi - lo + 1 != len(seconds):
            return None
        spans[a] = (lo, hi)
    return spans


def _param(program: Program, name: str) -> str:
    """A short parameter name for a lookup input: ``token``, ``position`` or the module."""
    return {"tokens": "token", "positions": "position", "ones": "one"}.get(
        name, program.variable(name).source
    )


def _mask(step: Select | SelectSum, program: Program) -> str:
    """The extra argument of a head whose mask differs from the program's ``CAUSAL``."""
    return f", causal={step.causal}" if step.causal != program.causal else ""


def _function_name(prefix: str, source: str) -> str:
    return f"{prefix}_{source}"


@dataclass(frozen=True)
class RenderedParts:
    """The rendered file in its parts, in file order (``render`` joins them).

    ``helpers`` is the same in every program; ``weights`` is the inlined classifier data;
    ``functions`` (predicates, lookup tables) and ``run`` are the program's own logic.
    """

    header: str
    helpers: str
    functions: str
    weights: str
    run: str

    @property
    def source(self) -> str:
        parts = (self.header, self.helpers, self.functions, self.weights, self.run)
        return "\n\n".join(p.strip("\n") + "\n" for p in parts if p.strip())


def render(program: Program) -> str:
    """Python source of ``program`` (see the module docstring)."""
    return render_parts(program).source


def render_parts(program: Program) -> RenderedParts:
    """The rendered file, part by part."""
    header = Emitter()
    header.lines_of(
        f'''
"""Transformer Program for the task {program.task!r}, decompiled by crystalbox.

``run(tokens)`` takes the input tokens (a list of str starting with {program.bos!r}) and
returns the predicted output token at every position. Standard library only; importing
this file has no side effects.
"""
'''
    )
    header.line()
    header.line(f"INPUT_VOCAB = {tuple(program.input_vocab)!r}")
    header.line(f"CLASSES = {tuple(program.classifier.classes)!r}")
    header.line(f"BOS, PAD = {program.bos!r}, {program.pad!r}")
    header.line(f"N_CTX = {program.n_ctx}")
    header.line(f"CAUSAL = {program.causal}")
    helpers = Emitter()
    helpers.line()
    helpers.lines_of(HELPERS)
    helpers.line()
    functions = Emitter()
    for step in program.steps:
        if isinstance(step, Select | SelectSum):
            keys, queries = (program.variable(n).domain for n in (step.keys, step.queries))
            fn = _function_name("predicate", step.source)
            _predicate(functions, fn, step.predicate, keys, queries)
            functions.line()
        elif isinstance(step, Lookup):
            _lookup(functions, _function_name("lookup", step.source), step, program)
            functions.line()
    weights, run = Emitter(), Emitter()
    _classifier(weights, program)
    _run(run, program)
    return RenderedParts(
        header.source(), helpers.source(), functions.source(), weights.source(), run.source()
    )


def _classifier(out: Emitter, program: Program) -> None:
    out.line("# classifier: logits = BIAS + a row per categorical feature + value * row per")
    out.line("# numerical feature; the prediction is the class with the largest logit")
    out.line(f"BIAS = {_floats(program.classifier.bias)}")
    with out.block("WEIGHTS = {"):
        for feature in program.classifier.features:
            if isinstance(feature, CategoricalFeature):
                domain = program.variable(feature.variable).domain
                with out.block(f"{feature.variable!r}: {{"):
                    for value, row in feature.rows:
                        out.line(f"{_label(domain, value)}: {_floats(row)},")
                out.line("},")
            else:
                out.line(f"{feature.variable!r}: {_floats(feature.weights)},")
    out.line("}")
    out.line()
    out.line()


def _run(out: Emitter, program: Program) -> None:
    with out.block("def run(tokens):"):
        out.line('"""The output token at every position of ``tokens``."""')
        out.line("check_input(tokens)")
        out.line("n = len(tokens)")
        out.line("positions = list(range(n))")
        out.line("ones = [1] * n")
        layer: int | None = None
        for step in program.steps:
            var = program.variable(step.output)
            if var.layer != layer:
                layer = var.layer
                out.line(f"# layer {layer}")
            if isinstance(step, Constant):
                out.line(f"{step.output} = [{_label(var.domain, step.value)}] * n")
            elif isinstance(step, Select):
                pred = _function_name("predicate", step.source) + _mask(step, program)
                out.line(
                    f"{step.output} = aggregate(select_closest({step.keys}, {step.queries}, "
                    f"{pred}), {step.values})"
                )
            elif isinstance(step, SelectSum):
                pred = _function_name("predicate", step.source) + _mask(step, program)
                out.line(
                    f"{step.output} = aggregate_sum(select({step.keys}, {step.queries}, "
                    f"{pred}), {step.values})"
                )
            else:
                fn = _function_name("lookup", step.source)
                args = ", ".join(f"x{i}" for i in range(len(step.inputs)))
                columns = ", ".join(step.inputs)
                source = f"zip({columns})" if len(step.inputs) > 1 else columns
                target = f"({args})" if len(step.inputs) > 1 else args
                out.line(f"{step.output} = [{fn}({args}) for {target} in {source}]")
        with out.block("features = {"):
            for feature in program.classifier.features:
                out.line(f"{feature.variable!r}: {feature.variable},")
        out.line("}")
        out.line("return [classify(features, i) for i in range(n)]")
