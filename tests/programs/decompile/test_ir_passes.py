"""The IR passes one by one: tie-breaking, predicate summaries, lookup folding, defaults."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crystalbox.programs.decompile.executor import preference
from crystalbox.programs.decompile.ir import CategoricalDomain, Predicate
from crystalbox.programs.decompile.render import HELPERS
from crystalbox.programs.decompile.simplify import _readable, predicate_exceptions
from crystalbox.programs.semantics import closest_match

POSITIONS = CategoricalDomain(tuple(range(8)))
TOKENS = CategoricalDomain((1, 2, 3, 4), ("<pad>", "<s>", "a", "b", "c"))


def test_tie_breaking_equals_the_specification_on_random_match_patterns():
    rng = np.random.default_rng(0)
    n = 8
    match = rng.random((2000, n, n)) < 0.3
    expected = closest_match(torch.as_tensor(match)).numpy()
    pref = preference(n)
    chosen = np.where(match, pref, np.iinfo(np.int64).min).argmax(-1)
    chosen = np.where(match.any(-1), chosen, 0)
    assert np.array_equal(chosen, expected)
    namespace: dict[str, object] = {"CAUSAL": False}
    exec(HELPERS.split("def aggregate(")[0], namespace)
    select_closest = namespace["select_closest"]
    for pattern, want in zip(match[:300], expected[:300], strict=True):
        keys = list(range(n))
        got = select_closest(keys, keys, lambda q, k, p=pattern: bool(p[q, k]))  # type: ignore[operator]
        assert got == list(want)


@pytest.mark.parametrize(
    "table, keys, form, offset, n_exceptions",
    [
        ([(q, q) for q in range(8)], POSITIONS, "equal", 0, 0),
        ([(q, q - 1 if q else None) for q in range(8)], POSITIONS, "offset", -1, 0),
        ([(0, 0)] + [(q, q - 1) for q in range(1, 8)], POSITIONS, "offset", -1, 1),
        ([(q, 3) for q in range(8)], POSITIONS, "constant", 0, 0),
        ([(q, 6 - q if q < 7 else 0) for q in range(8)], POSITIONS, "mirror", 6, 1),
        ([(q, None) for q in range(8)], POSITIONS, "never", 0, 0),
        ([(1, 2), (2, 2), (3, 3), (4, 4)], TOKENS, "equal", 0, 1),
    ],
    ids=["equal", "previous", "previous-except-bos", "constant", "mirror", "never", "tokens-equal"],
)
def test_predicates_read_as_rules_with_few_exceptions(table, keys, form, offset, n_exceptions):
    queries = keys
    readable = _readable(Predicate(tuple(table)), keys, queries)
    assert readable.form == form
    if form in ("offset", "mirror"):
        assert readable.offset == offset
    assert len(predicate_exceptions(readable, keys)) == n_exceptions
    assert readable.table == tuple(table)  # the table stays authoritative


def test_offset_rule_counts_out_of_domain_wants_as_consistent():
    # query 0 wants key -1 (no such position): "never matches" agrees with k == q - 1
    table = ((0, None), *((q, q - 1) for q in range(1, 8)))
    readable = _readable(Predicate(table), POSITIONS, POSITIONS)
    assert (readable.form, readable.offset) == ("offset", -1)
    assert predicate_exceptions(readable, POSITIONS) == []


def _program_with(lookup):
    from crystalbox.programs.decompile.ir import (
        CategoricalFeature,
        Classifier,
        NumericalDomain,
        Program,
        Variable,
    )

    variables = (
        Variable("tokens", "tokens", TOKENS),
        Variable("positions", "positions", POSITIONS),
        Variable("ones", "ones", NumericalDomain(1, 1)),
        Variable("mlp_0_0", "mlp_0_0", CategoricalDomain((0, 1)), 0),
    )
    rows = ((0, (1.0, 0.0)), (1, (0.0, 1.0)))
    classifier = Classifier((CategoricalFeature("mlp_0_0", rows),), (0.0, 0.0), ("x", "y"))
    return Program(variables, (lookup,), classifier, TOKENS.labels, "<s>", "<pad>", None, 8, False)


def test_lookup_drops_inputs_it_ignores_and_constant_inputs():
    from crystalbox.programs.decompile.ir import Lookup
    from crystalbox.programs.decompile.simplify import choose_defaults, fold_constants

    # output depends on the position only (odd -> 1); tokens and ones are ignored
    table = tuple(((t, p, 1), int(p % 2)) for t in TOKENS.values for p in POSITIONS.values)
    lookup = Lookup("mlp_0_0", ("tokens", "positions", "ones"), table, None, "mlp_0_0")
    folded = fold_constants(_program_with(lookup)).steps[0]
    assert isinstance(folded, Lookup) and folded.inputs == ("positions",)
    assert dict(folded.table) == {(p,): p % 2 for p in range(8)}
    defaulted = choose_defaults(_program_with(folded)).steps[0]
    assert isinstance(defaulted, Lookup) and defaulted.default in (0, 1)
    assert len(defaulted.table) == 4  # the other branch only
