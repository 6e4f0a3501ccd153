"""The attention semantics of Transformer Programs, written once: the specification.

Everything that selects or counts positions (the trained model in argmax mode, the
discrete readout, the decompiled programs) follows the functions in this module.

Categorical head (``select_closest`` then ``aggregate``), for a query at position ``q``:

1. A key position ``j`` *matches* when ``keys[j] == predicate[queries[q]]`` and ``j`` is
   allowed: it is not padding, and with a causal mask ``j <= q``.
2. No match: the head selects BOS, position 0.
3. Several matches: the closest one to ``q`` wins; the query's own position ``j == q`` is
   least preferred of all; at equal distance the earlier key (``j < q``) wins.
   Equivalently, matches are ranked by the tuple ``(j == q, abs(q - j), j)``, smallest first.
4. The output at ``q`` is the value variable at the selected position (a one-hot copy).

Position 0 (BOS) is an ordinary key for matching: if it matches, it competes like any
other position (at distance ``q``).

Numerical head (``select`` then ``aggregate_sum``): the output at ``q`` is the sum of the
value variable over *all* allowed matching positions, BOS included when it matches; no
BOS default and no tie-break. With the value ``ones`` it counts the matches.

In the relaxed (training) model, the same preference is a fixed additive log-space bias,
``position_bias``: 0 at distance 1 falling towards -1 at distance ``n``, the right side
(later keys) an extra ``0.5 / n`` lower, and -2 for the query's own position. Its argmax
over matches equals ``closest_match``; the tests check this on random match patterns.
"""

from __future__ import annotations

import torch

__all__ = [
    "aggregate",
    "aggregate_sum",
    "closest_match",
    "match_matrix",
    "position_bias",
    "select_closest",
]

SELF_BIAS = -2.0


def position_bias(n: int) -> torch.Tensor:
    """Log-space preference of key ``j`` for query ``q``: ``[q, j]``, values in ``[-2, 0]``.

    Strictly ordered among keys of one query in the order of the specification above.
    """
    q = torch.arange(n).unsqueeze(1)
    j = torch.arange(n).unsqueeze(0)
    distance = (q - j).abs().to(torch.float32)
    bias = -(distance - 1.0) / n
    bias = bias - (j > q).to(torch.float32) * (0.5 / n)
    return torch.where(q == j, torch.full_like(bias, SELF_BIAS), bias)


Causal = bool | torch.Tensor  # one mask for every head, or per head: bool ``[h]``


def allowed_keys(n: int, causal: Causal, key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Which keys a query may select: bool ``[..., q, j]`` (``key_mask``: ``[..., j]``).

    With ``causal`` per head (bool ``[h]``) the mask is ``[h, q, j]`` before ``key_mask``,
    whose leading dimensions must then broadcast against the head dimension.
    """
    device = key_mask.device if key_mask is not None else None
    allowed = torch.ones(n, n, dtype=torch.bool, device=device)
    if isinstance(causal, torch.Tensor):
        per_head = causal.to(device=allowed.device, dtype=torch.bool)[:, None, None]
        allowed = torch.where(per_head, torch.tril(allowed), allowed)  # [h, q, j]
    elif causal:
        allowed = torch.tril(allowed)
    if key_mask is not None:
        allowed = allowed & key_mask.to(torch.bool).unsqueeze(-2)
    return allowed


def match_matrix(
    keys: torch.Tensor,
    queries: torch.Tensor,
    predicate: torch.Tensor,
    causal: Causal = False,
    key_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bool ``[..., q, j]``: key value at ``j`` equals ``predicate[query value at q]``, allowed.

    ``keys``, ``queries``: integer values ``[..., pos]``; ``predicate``: integers ``[..., k]``
    (``predicate[a]`` is the key value wanted by query value ``a``), leading dimensions
    broadcasting with those of ``queries``.
    """
    queries = queries.to(torch.long)
    table = predicate.to(torch.long).expand(*queries.shape[:-1], predicate.shape[-1])
    wanted = torch.gather(table, -1, queries)  # [..., q]
    match = keys.to(torch.long).unsqueeze(-2) == wanted.unsqueeze(-1)
    if key_mask is None:
        return match & allowed_keys(keys.shape[-1], causal).to(match.device)
    return match & allowed_keys(keys.shape[-1], causal, key_mask)


def closest_match(match: torch.Tensor) -> torch.Tensor:
    """Selected key position per query, ``[..., q]``, from a bool match matrix ``[..., q, j]``.

    No match selects BOS (0); otherwise the closest match, self last, earlier wins ties.
    """
    n = match.shape[-1]
    # every preference is > 0, so a row without a match is all zeros, whose argmax is 0
    preference = position_bias(n).to(match.device) - (SELF_BIAS - 1.0)
    return (match * preference).argmax(dim=-1)


def select_closest(
    keys: torch.Tensor,
    queries: torch.Tensor,
    predicate: torch.Tensor,
    causal: Causal = False,
    key_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Categorical-head selection: the key position chosen by each query, ``[..., q]``."""
    return closest_match(match_matrix(keys, queries, predicate, causal, key_mask))


def aggregate(selected: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Copy ``values[..., selected[q]]`` to every query ``q``: ``[..., q]``."""
    return torch.gather(values, -1, selected.to(torch.long))


def aggregate_sum(match: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Numerical-head output: ``sum_j match[..., q, j] * values[..., j]``, ``[..., q]``."""
    return torch.einsum("...qj,...j->...q", match.to(values.dtype), values)
