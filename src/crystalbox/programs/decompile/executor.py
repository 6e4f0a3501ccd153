"""A vectorized numpy executor of the program IR: batches of token ids in, class ids out.

Follows ``crystalbox.programs.semantics`` (closest match, self last, earlier wins ties, no
match selects BOS; numerical heads sum over all matches) without torch.
"""

from __future__ import annotations

import functools

import numpy as np

from crystalbox.programs.decompile.ir import (
    CategoricalDomain,
    CategoricalFeature,
    Constant,
    Lookup,
    Predicate,
    Program,
    Select,
    SelectSum,
)

__all__ = ["execute", "execute_trace", "preference"]

NO_MATCH = -1


def preference(n: int) -> np.ndarray:
    """``[q, j]`` score: higher is preferred among matches (closest, self last, earlier first)."""
    q = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    rank = (q == j) * (4 * n * n) + np.abs(q - j) * (2 * n) + j
    return -rank.astype(np.int64)


def _wanted_table(predicate: Predicate, size: int) -> np.ndarray:
    table = np.full(size, NO_MATCH, dtype=np.int64)
    for q, k in predicate.table:
        if k is not None:
            table[q] = k
    return table


def _match(step: Select | SelectSum, env: dict[str, np.ndarray], allowed: np.ndarray) -> np.ndarray:
    keys, queries = env[step.keys], env[step.queries]
    size = int(max(queries.max(initial=0), max((q for q, _ in step.predicate.table), default=0)))
    wanted = _wanted_table(step.predicate, size + 1)[queries]  # [b, q]
    return (keys[:, None, :] == wanted[:, :, None]) & (wanted[:, :, None] != NO_MATCH) & allowed


@functools.lru_cache(maxsize=128)
def _dense_table(step: Lookup, offsets: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """The table as an array over each input's value range (missing entries: default)."""
    fill = step.default if step.default is not None else NO_MATCH
    dense = np.full(shape, fill, dtype=np.int64)
    if step.table:
        keys = np.asarray([key for key, _ in step.table], dtype=np.int64) - np.asarray(offsets)
        outputs = np.asarray([out for _, out in step.table], dtype=np.int64)
        inside = ((keys >= 0) & (keys < np.asarray(shape))).all(axis=1)
        dense[tuple(keys[inside].T)] = outputs[inside]
    return dense


def _lookup(step: Lookup, program: Program, env: dict[str, np.ndarray]) -> np.ndarray:
    """Index the dense table; inputs outside it give the default."""
    offsets, shape = [], []
    for name in step.inputs:
        domain = program.variable(name).domain
        lo = 0 if isinstance(domain, CategoricalDomain) else domain.lo
        offsets.append(lo)
        shape.append(max(domain.values) - lo + 1)
    dense = _dense_table(step, tuple(offsets), tuple(shape))
    index_arrays = []
    inside = np.ones(env["tokens"].shape, dtype=bool)
    for name, lo, size in zip(step.inputs, offsets, shape, strict=True):
        idx = env[name] - lo
        inside &= (idx >= 0) & (idx < size)
        index_arrays.append(np.clip(idx, 0, size - 1))
    fill = step.default if step.default is not None else NO_MATCH
    return np.where(inside, dense[tuple(index_arrays)], fill)


def execute_trace(program: Program, tokens: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every variable's values ``[batch, pos]`` and the predicted class ids ``[batch, pos]``.

    ``tokens``: input ids ``[batch, pos]``, padded at the end with the pad id.
    """
    ids = np.asarray(tokens, dtype=np.int64)
    if ids.ndim != 2:
        raise ValueError(f"tokens must have shape [batch, pos], got {ids.shape}")
    b, n = ids.shape
    if n > program.n_ctx:
        raise ValueError(f"sequence length {n} exceeds the program's context {program.n_ctx}")
    key_mask = ids != program.input_vocab.index(program.pad)
    key_mask[:, 0] = True
    allowed_all = np.broadcast_to(key_mask[:, None, :], (b, n, n))
    allowed_prefix = allowed_all & np.tril(np.ones((n, n), dtype=bool))
    pref = preference(n)
    env: dict[str, np.ndarray] = {
        "tokens": ids,
        "positions": np.broadcast_to(np.arange(n), (b, n)),
        "ones": np.ones((b, n), dtype=np.int64),
    }
    for step in program.steps:
        if isinstance(step, Constant):
            env[step.output] = np.full((b, n), step.value, dtype=np.int64)
        elif isinstance(step, Select):
            match = _match(step, env, allowed_prefix if step.causal else allowed_all)
            chosen = np.where(match, pref, np.iinfo(np.int64).min).argmax(axis=-1)
            chosen = np.where(match.any(axis=-1), chosen, 0)
            env[step.output] = np.take_along_axis(env[step.values], chosen, axis=-1)
        elif isinstance(step, SelectSum):
            match = _match(step, env, allowed_prefix if step.causal else allowed_all)
            env[step.output] = (match * env[step.values][:, None, :]).sum(axis=-1)
        else:
            env[step.output] = _lookup(step, program, env)
    classes = len(program.classifier.classes)
    # float64: exact sums of the float32 weights, as the model's predict (no order effects)
    logits = np.broadcast_to(np.asarray(program.classifier.bias, np.float64), (b, n, classes))
    for feature in program.classifier.features:
        values = env[feature.variable]
        if isinstance(feature, CategoricalFeature):
            size = max(max(v for v, _ in feature.rows), int(values.max(initial=0))) + 1
            dense = np.zeros((size, classes), dtype=np.float64)
            for value, row in feature.rows:
                dense[value] = row
            logits = logits + dense[values]
        else:
            weight = np.asarray(feature.weights, dtype=np.float64)
            logits = logits + values[..., None].astype(np.float64) * weight
    return env, np.asarray(logits).argmax(axis=-1)


def execute(program: Program, tokens: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """Predicted class ids ``[batch, pos]`` for input ids ``[batch, pos]``, in chunks."""
    ids = np.asarray(tokens, dtype=np.int64)
    if ids.ndim != 2:
        raise ValueError(f"tokens must have shape [batch, pos], got {ids.shape}")
    parts = [
        execute_trace(program, ids[start : start + batch_size])[1]
        for start in range(0, len(ids), batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros(ids.shape, dtype=np.int64)
