"""Read the discrete (argmax) structure of a trained model into frozen dataclasses.

``read_discrete(model, vocab)`` is the contract with the decompiler: every choice of the
argmax model as names and integer tables, plus the numeric weights the MLPs and the
classifier need. ``DiscreteModel.run`` executes that structure with numpy and the
``semantics`` functions; the tests check it equals the torch argmax model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import torch

from crystalbox.programs.config import (
    ProgramConfig,
    VariableSpec,
    cat_head_name,
    cat_mlp_name,
    n_cat_before,
    n_num_before,
    num_head_name,
    num_mlp_name,
    variable_layout,
)
from crystalbox.programs.model import ProgramLayer, ProgramTransformer
from crystalbox.programs.semantics import aggregate, aggregate_sum, match_matrix, select_closest

__all__ = ["DiscreteHead", "DiscreteMLP", "DiscreteModel", "read_discrete"]

Kind = Literal["categorical", "numerical"]


@dataclass(frozen=True, eq=False)
class DiscreteHead:
    """One attention head of the argmax model; its output variable is named ``name``.

    ``predicate[query_value] = key_value`` (``int64 [k]``). Categorical heads copy the value
    variable from the ``semantics.select_closest`` position; numerical heads sum the
    numerical value variable over all matches (``semantics.aggregate_sum``).
    """

    name: str
    layer: int
    kind: Kind
    key: str
    query: str
    value: str
    predicate: np.ndarray
    causal: bool


@dataclass(frozen=True, eq=False)
class DiscreteMLP:
    """One MLP of the argmax model: ``output = argmax(relu(x @ w1 + b1) @ w2 + b2)``.

    Categorical MLP: ``x`` is the concatenated one-hots of the two inputs (``[2k]``);
    numerical MLP: ``x`` is the two input values (``[2]``). The output is categorical.
    A numerical table MLP (``ProgramConfig.num_mlp_tables``) has ``table`` instead of the
    weights: ``output = argmax(table[a, b])`` with each input clamped to ``[0, n_ctx]``.
    """

    name: str
    layer: int
    kind: Kind
    inputs: tuple[str, str]
    output: str
    d_var: int
    w1: np.ndarray | None = None  # [d_in, d_mlp]
    b1: np.ndarray | None = None  # [d_mlp]
    w2: np.ndarray | None = None  # [d_mlp, k]
    b2: np.ndarray | None = None  # [k]
    table: np.ndarray | None = None  # [n_ctx + 1, n_ctx + 1, k] output logits

    def __post_init__(self) -> None:
        weights = (self.w1, self.b1, self.w2, self.b2)
        relu = all(w is not None for w in weights)
        if relu == (self.table is not None) or not (relu or all(w is None for w in weights)):
            raise ValueError(f"MLP {self.name}: give either w1, b1, w2, b2 or a table")
        if self.table is not None and self.kind != "numerical":
            raise ValueError(f"MLP {self.name}: only numerical MLPs can be tables")

    def evaluate(self, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
        """Output value(s) for input values ``a``, ``b`` (same shapes; int for categorical)."""
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        if self.table is not None:
            top = self.table.shape[0] - 1
            rows = np.clip(np.rint(a_arr), 0, top).astype(np.int64)
            cols = np.clip(np.rint(b_arr), 0, top).astype(np.int64)
            return np.asarray(self.table[rows, cols].argmax(axis=-1))
        w1, b1, w2, b2 = cast("tuple[np.ndarray, ...]", (self.w1, self.b1, self.w2, self.b2))
        if self.kind == "categorical":
            eye = np.eye(self.d_var, dtype=np.float32)
            x = np.concatenate([eye[a_arr.astype(np.int64)], eye[b_arr.astype(np.int64)]], axis=-1)
        else:
            x = np.stack([a_arr, b_arr], axis=-1).astype(np.float32)
        hidden = np.maximum(x @ w1 + b1, 0.0)
        return np.asarray((hidden @ w2 + b2).argmax(axis=-1))


@dataclass(frozen=True, eq=False)
class DiscreteModel:
    """The whole argmax model as data.

    ``classifier[name]``: ``[k, n_classes]`` for a categorical variable (row = value),
    ``[1, n_classes]`` for a numerical one (multiplied by the value); logits are the sum.
    """

    variables: tuple[VariableSpec, ...]
    heads: tuple[DiscreteHead, ...]
    mlps: tuple[DiscreteMLP, ...]
    classifier: dict[str, np.ndarray]
    input_vocab: tuple[str, ...]
    output_vocab: tuple[str, ...]
    bos: str
    pad: str
    eos: str | None
    n_ctx: int
    d_var: int
    n_layers: int
    causal: bool

    def variable(self, name: str) -> VariableSpec:
        for var in self.variables:
            if var.name == name:
                return var
        raise KeyError(f"no variable {name!r}; known: {[v.name for v in self.variables]}")

    def run(self, tokens: np.ndarray) -> np.ndarray:
        """Predicted class ids ``[batch, pos]`` for token ids ``[batch, pos]`` (padded with pad)."""
        ids = torch.as_tensor(np.asarray(tokens), dtype=torch.long)
        b, n = ids.shape
        pad_id = self.input_vocab.index(self.pad)
        key_mask = ids != pad_id
        key_mask[:, 0] = True
        env: dict[str, torch.Tensor] = {
            "tokens": ids,
            "positions": torch.arange(n).expand(b, n),
            "ones": torch.ones(b, n),
        }
        for layer in range(self.n_layers):
            for head in (h for h in self.heads if h.layer == layer):
                pred = torch.as_tensor(head.predicate)
                if head.kind == "categorical":
                    sel = select_closest(
                        env[head.key], env[head.query], pred, head.causal, key_mask
                    )
                    env[head.name] = aggregate(sel, env[head.value])
                else:
                    match = match_matrix(
                        env[head.key], env[head.query], pred, head.causal, key_mask
                    )
                    env[head.name] = aggregate_sum(match, env[head.value].float())
            for mlp in (m for m in self.mlps if m.layer == layer):
                a, c = (env[name].numpy() for name in mlp.inputs)
                env[mlp.output] = torch.as_tensor(mlp.evaluate(a, c), dtype=torch.long)
        logits = np.zeros((b, n, len(self.output_vocab)), dtype=np.float64)
        for var in self.variables:
            weight = self.classifier[var.name].astype(np.float64)
            if var.kind == "categorical":
                logits += weight[env[var.name].numpy()]
            else:
                logits += env[var.name].numpy()[..., None] * weight[0]
        return logits.argmax(axis=-1)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


@torch.no_grad()
def read_discrete(
    model: ProgramTransformer,
    input_vocab: tuple[str, ...] | list[str],
    output_vocab: tuple[str, ...] | list[str],
    bos: str = "<s>",
    pad: str = "<pad>",
    eos: str | None = "</s>",
) -> DiscreteModel:
    """The argmax structure of ``model``: variables, heads, MLPs and classifier tables."""
    config: ProgramConfig = model.config
    if len(input_vocab) != config.vocab_size or len(output_vocab) != config.n_classes:
        raise ValueError(
            f"vocabularies of sizes {len(input_vocab)}/{len(output_vocab)} do not match the "
            f"model's vocab_size={config.vocab_size}/n_classes={config.n_classes}"
        )
    if pad not in input_vocab or bos not in input_vocab:
        raise ValueError(f"the input vocabulary must contain {pad!r} and {bos!r}")
    cat_vars, num_vars = variable_layout(config)
    cat_names = [v.name for v in cat_vars]
    num_names = [v.name for v in num_vars]
    heads: list[DiscreteHead] = []
    mlps: list[DiscreteMLP] = []
    for index, module in enumerate(model.layers):
        layer = cast(ProgramLayer, module)
        nc, nn_ = n_cat_before(config, index), n_num_before(config, index)
        avail_cat, avail_num = cat_names[:nc], num_names[:nn_]
        for h in range(config.n_cat_heads):
            heads.append(
                DiscreteHead(
                    name=cat_head_name(index, h),
                    layer=index,
                    kind="categorical",
                    key=avail_cat[int(layer.cat_key[h].argmax())],
                    query=avail_cat[int(layer.cat_query[h].argmax())],
                    value=avail_cat[int(layer.cat_value[h].argmax())],
                    predicate=_np(layer.cat_pred[h].argmax(-1)),
                    causal=config.head_causal("cat")[h],
                )
            )
        for h in range(config.n_num_heads):
            heads.append(
                DiscreteHead(
                    name=num_head_name(index, h),
                    layer=index,
                    kind="numerical",
                    key=avail_cat[int(layer.num_key[h].argmax())],
                    query=avail_cat[int(layer.num_query[h].argmax())],
                    value=avail_num[int(layer.num_value[h].argmax())],
                    predicate=_np(layer.num_pred[h].argmax(-1)),
                    causal=config.head_causal("num")[h],
                )
            )
        mlp_cat = avail_cat + [cat_head_name(index, h) for h in range(config.n_cat_heads)]
        mlp_num = avail_num + [num_head_name(index, h) for h in range(config.n_num_heads)]
        for m in range(config.n_cat_mlps):
            reads = layer.mlp_read[m].argmax(-1)
            mlps.append(
                DiscreteMLP(
                    name=cat_mlp_name(index, m),
                    layer=index,
                    kind="categorical",
                    inputs=(mlp_cat[int(reads[0])], mlp_cat[int(reads[1])]),
                    output=cat_mlp_name(index, m),
                    d_var=config.d_var,
                    w1=_np(layer.mlp_w1[m]),
                    b1=_np(layer.mlp_b1[m]),
                    w2=_np(layer.mlp_w2[m]),
                    b2=_np(layer.mlp_b2[m]),
                )
            )
        for m in range(config.n_num_mlps):
            reads = layer.num_mlp_read[m].argmax(-1)
            mlps.append(
                DiscreteMLP(
                    name=num_mlp_name(index, m),
                    layer=index,
                    kind="numerical",
                    inputs=(mlp_num[int(reads[0])], mlp_num[int(reads[1])]),
                    output=num_mlp_name(index, m),
                    d_var=config.d_var,
                    **_numerical_weights(layer, m),
                )
            )
    classifier = {name: _np(model.classifier_cat[i]) for i, name in enumerate(cat_names)}
    classifier.update(
        {name: _np(model.classifier_num[i : i + 1]) for i, name in enumerate(num_names)}
    )
    return DiscreteModel(
        variables=cat_vars + num_vars,
        heads=tuple(heads),
        mlps=tuple(mlps),
        classifier=classifier,
        input_vocab=tuple(input_vocab),
        output_vocab=tuple(output_vocab),
        bos=bos,
        pad=pad,
        eos=eos if eos in input_vocab else None,
        n_ctx=config.n_ctx,
        d_var=config.d_var,
        n_layers=config.n_layers,
        causal=config.causal,
    )


def _numerical_weights(layer: ProgramLayer, m: int) -> dict[str, np.ndarray]:
    """``DiscreteMLP`` weight fields of numerical MLP ``m``: its table or its ReLU weights."""
    if layer.config.num_mlp_tables:
        n = layer.config.n_counts
        return {"table": _np(layer.num_mlp_table[m]).reshape(n, n, -1)}
    names = ("w1", "b1", "w2", "b2")
    return {name: _np(getattr(layer, f"num_mlp_{name}")[m]) for name in names}
