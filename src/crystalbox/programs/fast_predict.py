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
    from crystalbox.programs.model import ProgramLayer, ProgramTransformer

__all__ = [
    "Values",
    "cat_mlp_table",
    "cat_pairs",
    "class_logits",
    "embed_values",
    "predict_values",
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
    k = config.d_var
    cat_values, num_values, mask = list(values.cat), list(values.num), values.mask
    stacked = torch.stack(cat_values, dim=1)  # [b, v, n]
    numbers = torch.stack(num_values, dim=1)  # [b, u, n]
    b, n = cat_values[0].shape
    if config.n_cat_heads:
        selected = select_closest(
            stacked[:, layer.cat_key.argmax(-1)],
            stacked[:, layer.cat_query.argmax(-1)],
            layer.cat_pred.argmax(-1),
            config.causal,
            mask,
        )  # [b, h, n]
        copied = aggregate(selected, stacked[:, layer.cat_value.argmax(-1)])
        cat_values.extend(copied.unbind(1))
    if config.n_num_heads:
        match = match_matrix(
            stacked[:, layer.num_key.argmax(-1)],
            stacked[:, layer.num_query.argmax(-1)],
            layer.num_pred.argmax(-1),
            config.causal,
            mask,
        )
        summed = aggregate_sum(match, numbers[:, layer.num_value.argmax(-1)])
        num_values.extend(summed.unbind(1))
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
        rows, inverse = _unique_pairs(x.reshape(-1, 2))
        table = _mlp_table(rows, layer.num_mlp_w1[m], layer.num_mlp_b1[m], layer, m, "num")
        new.append(table[inverse].reshape(b, n))
    cat_values.extend(new)
    return Values(cat_values, num_values, mask)


def class_logits(model: ProgramTransformer, values: Values) -> torch.Tensor:
    """Class scores ``[b, n, classes]`` (float64) of the classifier over all variables."""
    b, n = values.cat[0].shape
    logits = torch.zeros(
        b, n, model.config.n_classes, device=values.mask.device, dtype=torch.float64
    )
    cat_weights, num_weights = model.classifier_cat.double(), model.classifier_num.double()
    for i, value in enumerate(values.cat):
        logits += cat_weights[i][value]
    for i, number in enumerate(values.num):
        logits += number.double().unsqueeze(-1) * num_weights[i]
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
