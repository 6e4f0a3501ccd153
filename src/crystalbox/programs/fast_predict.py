"""The argmax model evaluated on integer variables: the fast path of per-epoch validation.

Every categorical variable is kept as its value ``[batch, pos]`` instead of a one-hot, and each
MLP is evaluated once per distinct input pair and looked up. The attention calls the same
``semantics`` functions as ``ProgramTransformer.predict``; class scores are summed in float64
as there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch

from crystalbox.programs.semantics import aggregate, aggregate_sum, match_matrix, select_closest

if TYPE_CHECKING:
    from crystalbox.programs.config import ProgramConfig
    from crystalbox.programs.model import ProgramLayer, ProgramTransformer

__all__ = [
    "Values",
    "cat_mlp_table",
    "cat_pairs",
    "class_logits",
    "count_pair_rows",
    "embed_values",
    "predict_values",
    "rerun_head",
    "run_layer",
]


def _unique_pairs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct rows of ``x [p, 2]`` and each row's index among them (fast for counts)."""
    whole = x.round()
    if x.numel() and torch.equal(whole, x) and float(x.min()) >= 0:
        base = int(x.max()) + 1
        codes = whole[:, 0].long() * base + whole[:, 1].long()
        unique, inverse = torch.unique(codes, return_inverse=True)
        return torch.stack([unique // base, unique % base], dim=-1).to(x.dtype), inverse
    rows, inverse = torch.unique(x, dim=0, return_inverse=True)
    return rows, inverse


def count_pair_rows(config: ProgramConfig, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Rows ``a * n_counts + b`` of a numerical table MLP for count values ``a``, ``b`` (same
    shapes), each clamped to ``[0, n_ctx]`` as the model's table read clamps them."""
    top = config.n_counts - 1
    return a.clamp(0, top).round().long() * (top + 1) + b.clamp(0, top).round().long()


def _mlp_table(
    rows: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, layer: ProgramLayer, m: int, kind: str
) -> torch.Tensor:
    """Argmax outputs of MLP ``m`` of ``layer`` for input rows ``[r, d_in]``: ``[r]``."""
    w2, b2 = (layer.mlp_w2, layer.mlp_b2) if kind == "cat" else (layer.num_mlp_w2, layer.num_mlp_b2)
    hidden = torch.relu(rows @ w1 + b1)
    return (hidden @ w2[m] + b2[m]).argmax(-1)


@dataclass
class Values:
    """The argmax model's variables on a batch: categorical values ``[b, n]`` (long) and
    numerical values ``[b, n]`` in stream order, plus the key mask ``[b, 1, n]``."""

    cat: list[torch.Tensor]
    num: list[torch.Tensor]
    mask: torch.Tensor


def embed_values(model: ProgramTransformer, tokens: torch.Tensor) -> Values:
    """The stream before the first layer (``tokens``, ``positions``, ``ones``) of checked
    ``tokens [b, n]``."""
    config = model.config
    device = model.classifier_num.device
    tokens = tokens.long().to(device)
    b, n = tokens.shape
    key_mask = tokens != config.pad_id
    key_mask[:, 0] = True
    return Values(
        [tokens, torch.arange(n, device=device).expand(b, n)],
        [torch.ones(b, n, device=device)],
        key_mask.unsqueeze(1),
    )


def _pick(variables: list[torch.Tensor], read: torch.Tensor) -> torch.Tensor:
    """The variables chosen by the read logits ``read [h, v]``, stacked: ``[b, h, n]``."""
    return torch.stack([variables[i] for i in read.argmax(-1).tolist()], dim=1)


def _causal(layer: ProgramLayer, kind: str, heads: slice | list[int]) -> bool | torch.Tensor:
    """The causal argument for heads ``heads`` of ``kind``."""
    mask = layer.causal_mask(kind)
    return mask[heads] if isinstance(mask, torch.Tensor) else mask


def _cat_heads(layer: ProgramLayer, values: Values, heads: slice | list[int]) -> list[torch.Tensor]:
    """Outputs ``[b, n]`` of categorical heads ``heads`` of ``layer`` on ``values``."""
    selected = select_closest(
        _pick(values.cat, layer.cat_key[heads]),
        _pick(values.cat, layer.cat_query[heads]),
        layer.cat_pred[heads].argmax(-1),
        _causal(layer, "cat", heads),
        values.mask,
    )  # [b, h, n]
    return list(aggregate(selected, _pick(values.cat, layer.cat_value[heads])).unbind(1))


def _num_heads(layer: ProgramLayer, values: Values, heads: slice | list[int]) -> list[torch.Tensor]:
    """Outputs ``[b, n]`` of numerical heads ``heads`` of ``layer`` on ``values``."""
    match = match_matrix(
        _pick(values.cat, layer.num_key[heads]),
        _pick(values.cat, layer.num_query[heads]),
        layer.num_pred[heads].argmax(-1),
        _causal(layer, "num", heads),
        values.mask,
    )
    return list(aggregate_sum(match, _pick(values.num, layer.num_value[heads])).unbind(1))


def _mlps(
    layer: ProgramLayer,
    cat_values: list[torch.Tensor],
    num_values: list[torch.Tensor],
    cat_tables: Mapping[int, torch.Tensor] | None,
) -> list[torch.Tensor]:
    """Outputs ``[b, n]`` of every MLP of ``layer`` (categorical first) reading the stream
    after the layer's heads."""
    k = layer.config.d_var
    b, n = cat_values[0].shape
    new: list[torch.Tensor] = []
    for m in range(layer.mlp_read.shape[0]):
        read = layer.mlp_read[m].argmax(-1)
        pair = cat_values[int(read[0])] * k + cat_values[int(read[1])]  # [b, n]
        if cat_tables is not None and m in cat_tables:
            table = cat_tables[m]
        else:
            table = cat_mlp_table(layer, m)
        new.append(table[pair])
    for m in range(layer.num_mlp_read.shape[0]):
        read = layer.num_mlp_read[m].argmax(-1)
        x = torch.stack([num_values[int(read[0])], num_values[int(read[1])]], dim=-1)
        if layer.config.num_mlp_tables:
            rows = count_pair_rows(layer.config, x[..., 0], x[..., 1])
            new.append(layer.num_mlp_table[m].argmax(-1)[rows])
            continue
        rows, inverse = _unique_pairs(x.reshape(-1, 2))
        table = _mlp_table(rows, layer.num_mlp_w1[m], layer.num_mlp_b1[m], layer, m, "num")
        new.append(table[inverse].reshape(b, n))
    return new


def run_layer(
    model: ProgramTransformer,
    layer: ProgramLayer,
    values: Values,
    cat_tables: Mapping[int, torch.Tensor] | None = None,
) -> Values:
    """``values`` with the variables that ``layer`` writes appended (a new object).

    ``cat_tables``: replacement tables ``[k * k]`` (output of input pair ``a * k + b``) for
    some categorical MLPs of the layer, by MLP index (used while searching edits).
    """
    config = model.config
    cat_values, num_values = list(values.cat), list(values.num)
    if config.n_cat_heads:
        cat_values.extend(_cat_heads(layer, values, slice(None)))
    if config.n_num_heads:
        num_values.extend(_num_heads(layer, values, slice(None)))
    cat_values.extend(_mlps(layer, cat_values, num_values, cat_tables))
    return Values(cat_values, num_values, values.mask)


def rerun_head(
    model: ProgramTransformer,
    layer: ProgramLayer,
    values: Values,
    after: Values,
    kind: str,
    head: int,
    cat_tables: Mapping[int, torch.Tensor] | None = None,
) -> Values:
    """``run_layer`` when only head ``head`` (``kind`` "cat" or "num") of ``layer`` may have
    changed since ``after = run_layer(model, layer, values, ...)``: the other heads' outputs
    are taken from ``after``; the head and the layer's MLPs are recomputed."""
    n_cat = len(values.cat) + model.config.n_cat_heads
    cat_values, num_values = list(after.cat[:n_cat]), list(after.num)
    if kind == "cat":
        cat_values[len(values.cat) + head] = _cat_heads(layer, values, [head])[0]
    elif kind == "num":
        num_values[len(values.num) + head] = _num_heads(layer, values, [head])[0]
    else:
        raise ValueError(f"kind must be 'cat' or 'num', got {kind!r}")
    cat_values.extend(_mlps(layer, cat_values, num_values, cat_tables))
    return Values(cat_values, num_values, values.mask)


def class_logits(
    model: ProgramTransformer, values: Values, cat_from: int = 0, num_from: int = 0
) -> torch.Tensor:
    """Class scores ``[b, n, classes]`` (float64) of the classifier over the variables
    (from categorical variable ``cat_from`` and numerical ``num_from`` on: a partial sum)."""
    b, n = values.cat[0].shape
    classes = model.config.n_classes
    logits = torch.zeros(b, n, classes, device=values.mask.device, dtype=torch.float64)
    cat_weights, num_weights = model.classifier_cat.double(), model.classifier_num.double()
    for i in range(cat_from, len(values.cat)):
        logits += cat_weights[i][values.cat[i]]
    for i in range(num_from, len(values.num)):
        logits += values.num[i].double().unsqueeze(-1) * num_weights[i]
    return logits


def cat_pairs(k: int, device: torch.device | None = None) -> torch.Tensor:
    """Every one-hot input pair of a categorical MLP, row ``a * k + b``: ``[k * k, 2k]``."""
    eye = torch.eye(k, device=device)
    return torch.cat([eye.repeat_interleave(k, 0), eye.repeat(k, 1)], dim=-1)


def cat_mlp_table(layer: ProgramLayer, m: int) -> torch.Tensor:
    """Argmax output ``[k * k]`` of categorical MLP ``m`` of ``layer`` for every input pair."""
    pairs = cat_pairs(layer.config.d_var, layer.mlp_w1.device)
    return _mlp_table(pairs, layer.mlp_w1[m], layer.mlp_b1[m], layer, m, "cat")


def predict_values(model: ProgramTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """Class ids ``[batch, pos]`` of ``model``'s argmax model for checked ``tokens``.

    Equal to ``model.predict`` except where an MLP's float32 output logits tie to the last bit
    (its products run in another order here).
    """
    values = embed_values(model, tokens)
    for module in model.layers:
        values = run_layer(model, cast("ProgramLayer", module), values)
    return class_logits(model, values).argmax(dim=-1)
