"""Simplification passes on the program IR; each keeps the program's outputs unchanged.

``simplify`` runs them in order: fold constants (variables with one reachable value, lookup
inputs the output ignores, constant classifier features into the bias), remove dead steps,
summarise predicates (``k == q``, ``k == q - 1``, ``k == 6 - q``, ``k == c``, never), choose each lookup's
default branch, and give variables readable names. ``prune_features`` additionally drops
classifier features whose removal changes no prediction on a given set of inputs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from crystalbox.programs.decompile.executor import execute, execute_trace
from crystalbox.programs.decompile.ir import (
    CategoricalDomain,
    CategoricalFeature,
    Constant,
    Lookup,
    NumericalFeature,
    Predicate,
    Program,
    Select,
    SelectSum,
    Step,
)

__all__ = [
    "choose_defaults",
    "eliminate_dead",
    "fold_constants",
    "name_variables",
    "predicate_exceptions",
    "prune_features",
    "readable_predicates",
    "simplify",
]


def simplify(program: Program) -> Program:
    """All exact passes, in order."""
    for simplify_pass in (
        fold_constants,
        eliminate_dead,
        readable_predicates,
        choose_defaults,
        name_variables,
    ):
        program = simplify_pass(program)
    return program


def _constant_value(program: Program, name: str) -> int | None:
    values = program.variable(name).domain.values
    return values[0] if len(values) == 1 else None


def _fold_lookup(step: Lookup, program: Program) -> Step:
    """Drop constant inputs and inputs the table does not depend on; constant if none left."""
    table = step.as_dict()
    inputs = list(step.inputs)
    for name in list(inputs):
        i = inputs.index(name)
        constant = _constant_value(program, name)
        if constant is not None:
            table = {k[:i] + k[i + 1 :]: v for k, v in table.items() if k[i] == constant}
        else:
            reduced: dict[tuple[int, ...], int] = {}
            if any(reduced.setdefault(k[:i] + k[i + 1 :], v) != v for k, v in table.items()):
                continue
            table = reduced
        inputs.pop(i)
    outputs = set(table.values())
    if not inputs or len(outputs) == 1:
        return Constant(step.output, next(iter(outputs)), step.source)
    return replace(step, inputs=tuple(inputs), table=tuple(sorted(table.items())))


def fold_constants(program: Program) -> Program:
    """Steps whose output has one reachable value become ``Constant``; lookups lose inputs
    they ignore; constant classifier features (and features whose rows are all equal) move
    into the bias; numerical features whose weights are all zero are dropped."""
    steps: list[Step] = []
    for step in program.steps:
        value = _constant_value(program, step.output)
        if value is not None:
            steps.append(Constant(step.output, value, step.source))
        elif isinstance(step, Lookup):
            steps.append(_fold_lookup(step, program))
        else:
            steps.append(step)
    bias = np.asarray(program.classifier.bias, dtype=np.float64)
    features: list[CategoricalFeature | NumericalFeature] = []
    for feature in program.classifier.features:
        constant = _constant_value(program, feature.variable)
        if isinstance(feature, NumericalFeature):
            if constant is not None:
                bias = bias + constant * np.asarray(feature.weights, dtype=np.float64)
            elif any(w != 0.0 for w in feature.weights):
                features.append(feature)  # (all-zero weights add nothing: dropped)
            continue
        rows = {row for _, row in feature.rows}
        if len(rows) == 1:
            bias = bias + np.asarray(next(iter(rows)), dtype=np.float64)
        else:
            features.append(feature)
    classifier = replace(
        program.classifier,
        features=tuple(features),
        bias=tuple(float(b) for b in bias),  # float64 sums, as the model's predict
    )
    return program.with_steps(tuple(steps), classifier)


def eliminate_dead(program: Program) -> Program:
    """Remove every step whose output the classifier never reads, directly or indirectly."""
    live = {f.variable for f in program.classifier.features}
    kept: list[Step] = []
    for step in reversed(program.steps):
        if step.output in live:
            kept.append(step)
            live.update(step.inputs)
    return program.with_steps(tuple(reversed(kept)))


def _rule_holds(form: str, offset: int, constant: int | None, q: int, k: int | None, keys) -> bool:
    if form == "never":
        return k is None
    targets = {"constant": constant, "mirror": offset - q}
    target = targets.get(form, q + offset)
    if k is None:
        return target not in keys
    return k == target


def predicate_exceptions(
    predicate: Predicate, keys: CategoricalDomain
) -> list[tuple[int, int | None]]:
    """Rows of the table that the predicate's ``form`` does not describe (``table``: all)."""
    if predicate.form == "table":
        return list(predicate.table)
    reach = set(keys.values)
    return [
        (q, k)
        for q, k in predicate.table
        if not _rule_holds(predicate.form, predicate.offset, predicate.constant, q, k, reach)
    ]


def _readable(
    predicate: Predicate, keys: CategoricalDomain, queries: CategoricalDomain
) -> Predicate:
    """The rule with the fewest exceptions among never / k == q + d / k == d - q / k == c."""
    wanted = [k for _, k in predicate.table]
    candidates: list[Predicate] = [replace(predicate, form="never")]
    if keys.labels == queries.labels:
        offsets = Counter(k - q for q, k in predicate.table if k is not None)
        numeric = keys.labels is None
        for offset, _ in offsets.most_common(2 if numeric else None):
            if offset == 0:
                candidates.append(replace(predicate, form="equal", offset=0))
            elif numeric:
                candidates.append(replace(predicate, form="offset", offset=offset))
        if numeric:
            sums = Counter(k + q for q, k in predicate.table if k is not None)
            for total, _ in sums.most_common(2):
                candidates.append(replace(predicate, form="mirror", offset=total))
    common = Counter(k for k in wanted if k is not None).most_common(1)
    if common:
        candidates.append(replace(predicate, form="constant", constant=common[0][0]))
    best = min(candidates, key=lambda p: len(predicate_exceptions(p, keys)))
    if len(predicate_exceptions(best, keys)) > len(predicate.table) // 2 + 1:
        return replace(predicate, form="table")
    return best


def readable_predicates(program: Program) -> Program:
    """Summarise every predicate as a rule plus exceptions."""
    steps: list[Step] = []
    for step in program.steps:
        if isinstance(step, Select | SelectSum):
            keys, queries = (program.variable(n).domain for n in (step.keys, step.queries))
            if not isinstance(keys, CategoricalDomain) or not isinstance(
                queries, CategoricalDomain
            ):
                raise TypeError(f"{step.source}: keys and queries must be categorical")
            step = replace(step, predicate=_readable(step.predicate, keys, queries))
        steps.append(step)
    return program.with_steps(tuple(steps))


def choose_defaults(program: Program) -> Program:
    """Each lookup's default branch is its most common output; the table keeps the rest."""
    steps: list[Step] = []
    for step in program.steps:
        if isinstance(step, Lookup) and step.table:
            default = Counter(v for _, v in step.table).most_common(1)[0][0]
            table = tuple((k, v) for k, v in step.table if v != default)
            step = replace(step, table=table, default=default)
        steps.append(step)
    return program.with_steps(tuple(steps))


_SHORT = {"tokens": "token", "positions": "position", "ones": "one"}


def _role(step: Step, short: Callable[[str], str]) -> str:
    if isinstance(step, Select):
        pred = step.predicate
        value = short(step.values)
        if step.keys == step.queries == "positions" and pred.form == "offset":
            d = pred.offset
            where = {-1: "prev", 1: "next"}.get(d, f"back{-d}" if d < 0 else f"ahead{d}")
            return f"{where}_{value}"
        if all(k is None for _, k in pred.table):
            return f"bos_{value}"
        return value
    if isinstance(step, SelectSum):
        what = "count" if step.values == "ones" else f"sum_{short(step.values)}"
        if step.predicate.form == "equal" and step.keys == step.queries:
            return f"{what}_same_{short(step.keys)}"
        return what
    if isinstance(step, Lookup):
        return "out"
    return "const"


def name_variables(program: Program) -> Program:
    """Rename every step's output ``<module>_<role>`` (e.g. ``attn_0_0_prev_token``)."""
    names: dict[str, str] = {v.name: v.name for v in program.variables if v.layer is None}

    def short(name: str) -> str:
        step = program.step_of(name)
        return _SHORT.get(name, step.source if step is not None else name)

    for step in program.steps:
        names[step.output] = f"{step.source}_{_role(step, short)}"

    def rename(step: Step) -> Step:
        if isinstance(step, Select | SelectSum):
            return replace(
                step,
                output=names[step.output],
                keys=names[step.keys],
                queries=names[step.queries],
                values=names[step.values],
            )
        if isinstance(step, Lookup):
            inputs = tuple(names[n] for n in step.inputs)
            return replace(step, output=names[step.output], inputs=inputs)
        return replace(step, output=names[step.output])

    variables = tuple(replace(v, name=names[v.name]) for v in program.variables)
    features = tuple(replace(f, variable=names[f.variable]) for f in program.classifier.features)
    return replace(
        program,
        variables=variables,
        steps=tuple(rename(s) for s in program.steps),
        classifier=replace(program.classifier, features=features),
    )


def _contribution(
    feature: CategoricalFeature | NumericalFeature, values: np.ndarray, n_classes: int
) -> np.ndarray:
    """Class scores ``[positions, classes]`` that ``feature`` adds at the given values."""
    if isinstance(feature, NumericalFeature):
        return values[:, None].astype(np.float64) * np.asarray(feature.weights, np.float64)
    dense = np.zeros((max(v for v, _ in feature.rows) + 1, n_classes), dtype=np.float64)
    for value, row in feature.rows:
        dense[value] = row
    return dense[values].astype(np.float64)


def prune_features(
    program: Program,
    inputs: np.ndarray,
    reference: np.ndarray,
    batch_size: int = 8192,
) -> Program:
    """Greedily drop classifier features (latest first) while the prediction stays equal to
    ``reference`` at every non-pad position of ``inputs``; then remove the steps left dead.

    Exact on ``inputs`` only: pass the whole input space to keep program ≡ model everywhere.
    The result is re-executed exactly; if it (or the program before pruning) differs from
    ``reference`` anywhere, the unpruned program is returned.
    """
    ids = np.asarray(inputs, dtype=np.int64)
    scored = ids != program.input_vocab.index(program.pad)
    features = program.classifier.features
    columns: dict[str, list[np.ndarray]] = {f.variable: [] for f in features}
    for start in range(0, len(ids), batch_size):
        env, _ = execute_trace(program, ids[start : start + batch_size])
        mask = scored[start : start + batch_size]
        for name in columns:
            columns[name].append(env[name][mask])
    values = {name: np.concatenate(parts) for name, parts in columns.items()}
    expected = np.asarray(reference)[scored]
    n_classes = len(program.classifier.classes)
    total = np.broadcast_to(np.asarray(program.classifier.bias), (len(expected), n_classes))
    for feature in features:
        total = total + _contribution(feature, values[feature.variable], n_classes)
    if not np.array_equal(total.argmax(axis=-1), expected):
        return program  # already differs: leave it to verification to report
    kept = list(features)
    for feature in reversed(features):
        without = total - _contribution(feature, values[feature.variable], n_classes)
        if np.array_equal(without.argmax(axis=-1), expected):
            total = without
            kept.remove(feature)
    pruned = eliminate_dead(
        program.with_steps(program.steps, replace(program.classifier, features=tuple(kept)))
    )
    exact = np.concatenate(
        [execute(pruned, ids[i : i + batch_size]) for i in range(0, len(ids), batch_size)]
    )
    return pruned if np.array_equal(exact[scored], expected) else program
