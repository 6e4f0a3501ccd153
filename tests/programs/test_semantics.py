"""The attention specification on hand-built cases, and the relaxed bias agreeing with it."""

from __future__ import annotations

import itertools

import pytest
import torch

from crystalbox.programs.semantics import (
    aggregate_sum,
    allowed_keys,
    closest_match,
    match_matrix,
    position_bias,
    select_closest,
)


def T(*values: int) -> torch.Tensor:
    return torch.tensor(values)


IDENTITY = torch.arange(8)

# (name, keys, queries, predicate, causal, expected selected position per query)
CLOSEST_CASES = [
    ("no match selects BOS", T(0, 1, 2, 3), T(4, 4, 4, 4), IDENTITY, False, [0, 0, 0, 0]),
    ("single match", T(0, 5, 2, 3), T(5, 5, 5, 5), IDENTITY, False, [1, 1, 1, 1]),
    # value 7 at positions 1 and 3; query at 2 is equidistant: the earlier (1) wins
    ("tie: earlier key wins", T(0, 7, 2, 7), T(0, 0, 7, 0), IDENTITY, False, [0, 0, 1, 0]),
    # query at 1 matches itself and position 3: self is last, so 3
    ("self least preferred", T(0, 7, 2, 7), T(0, 7, 0, 0), IDENTITY, False, [0, 3, 0, 0]),
    ("only self matches", T(0, 7, 2, 3), T(0, 7, 0, 0), IDENTITY, False, [0, 1, 0, 0]),
    # matches at 1 and 4 for query at 3: distance 2 vs 1 -> 4 (closer, even though later)
    ("closest wins", T(0, 7, 2, 3, 7), T(0, 0, 0, 7, 0), IDENTITY, False, [0, 0, 0, 4, 0]),
    (
        "causal hides later keys",
        T(0, 7, 2, 3, 7),
        T(0, 0, 0, 7, 0),
        IDENTITY,
        True,
        [0, 0, 0, 1, 0],
    ),
    ("causal, no earlier match -> BOS", T(0, 1, 7, 3), T(7, 7, 7, 7), IDENTITY, True, [0, 0, 2, 2]),
    # BOS is an ordinary key: predicate maps value 3 to key value 0 (BOS's key value here)
    (
        "BOS matches like any key",
        T(0, 1, 2, 3),
        T(3, 3, 3, 3),
        T(0, 1, 2, 0, 4, 5, 6, 7),
        False,
        [0, 0, 0, 0],
    ),
    (
        "predicate maps to another value",
        T(0, 1, 2, 3),
        T(1, 1, 1, 1),
        T(0, 3, 2, 3, 4, 5, 6, 7),
        False,
        [3, 3, 3, 3],
    ),
]


@pytest.mark.parametrize(
    ("keys", "queries", "predicate", "causal", "expected"),
    [case[1:] for case in CLOSEST_CASES],
    ids=[case[0] for case in CLOSEST_CASES],
)
def test_select_closest(keys, queries, predicate, causal, expected):
    assert select_closest(keys, queries, predicate, causal).tolist() == expected


def test_padding_keys_are_never_selected():
    keys, queries = T(0, 7, 2, 7), T(0, 0, 7, 0)
    mask = torch.tensor([True, True, True, False])
    assert select_closest(keys, queries, IDENTITY, False, mask).tolist() == [0, 0, 1, 0]
    mask = torch.tensor([True, False, True, True])
    assert select_closest(keys, queries, IDENTITY, False, mask).tolist() == [0, 0, 3, 0]


def test_numerical_head_counts_matches_including_bos():
    keys = T(0, 3, 3, 5)
    queries = T(0, 3, 5, 3)
    match = match_matrix(keys, queries, IDENTITY)
    counts = aggregate_sum(match, torch.ones(4))
    assert counts.tolist() == [1.0, 2.0, 1.0, 2.0]  # BOS (value 0) matches query value 0
    causal = aggregate_sum(match_matrix(keys, queries, IDENTITY, causal=True), torch.ones(4))
    assert causal.tolist() == [1.0, 1.0, 0.0, 2.0]


def _brute_force(match: list[list[bool]]) -> list[int]:
    chosen = []
    for q, row in enumerate(match):
        candidates = [j for j, m in enumerate(row) if m]
        chosen.append(min(candidates, key=lambda j: (j == q, abs(q - j), j)) if candidates else 0)
    return chosen


@pytest.mark.parametrize("n", [1, 2, 5, 8, 16])
def test_closest_match_equals_the_ranking_rule(n):
    generator = torch.Generator().manual_seed(n)
    match = torch.rand(300, n, n, generator=generator) < 0.3
    selected = closest_match(match)
    for row, chosen in zip(match, selected, strict=True):
        assert chosen.tolist() == _brute_force(row.tolist())


@pytest.mark.parametrize("n", [2, 3, 8, 16])
def test_position_bias_orders_keys_as_specified(n):
    bias = position_bias(n)
    for q in range(n):
        order = sorted(range(n), key=lambda j: (j == q, abs(q - j), j))
        values = [bias[q, j].item() for j in order]
        assert all(a > b for a, b in itertools.pairwise(values))
        assert bias[q, q].item() == -2.0
        assert all(-2.0 < v <= 0.0 for j, v in enumerate(bias[q].tolist()) if j != q)


def test_per_head_causal_masks():
    keys = T(0, 3, 3, 5).expand(2, 4)  # [h = 2, pos]
    queries = T(0, 3, 5, 3).expand(2, 4)
    per_head = torch.tensor([True, False])
    match = match_matrix(keys, queries, IDENTITY, causal=per_head)
    counts = aggregate_sum(match, torch.ones(4))
    assert counts.tolist() == [[1.0, 1.0, 0.0, 2.0], [1.0, 2.0, 1.0, 2.0]]  # causal, then not
    selected = select_closest(keys, queries, IDENTITY, causal=per_head)
    assert selected.tolist() == [[0, 1, 0, 2], [0, 2, 3, 2]]
    mask = torch.tensor([True, True, True, False])  # a pad key is never allowed
    allowed = allowed_keys(4, per_head, mask)
    assert allowed.shape == (2, 4, 4) and not allowed[:, :, 3].any()
    assert torch.equal(allowed[0], allowed_keys(4, True, mask))
    assert torch.equal(allowed[1], allowed_keys(4, False, mask))
