"""A hand-written Transformer Program: most_freq by ranks, with causal heads.

Ranking tokens by (−count, first index) needs, per token, how many tokens with the same count
occur first before it: a prefix count, which a causal numerical head computes. The model
below is non-causal with one causal numerical head per layer (``n_causal_num_heads``):

* layer 0: numerical heads ``seen`` (the query's own symbol at or before it: causal) and
  ``count`` (anywhere); table (count, seen) -> ``first``: the count at a first occurrence,
  else 0;
* layer 1: numerical heads over ``first``: ``before`` (first occurrences with the same count
  at or before: causal), ``more_d`` (first occurrences with count c + d, d = 1, 2, 3);
  tables (more_1, more_2) -> a and (more_3, before) -> b (0 where before is 0);
* layer 2: table (a, b) -> ``rank`` = a + b (0 where b is 0);
* layer 3: a categorical head: position i copies the token whose rank is i, BOS when none.

Counts above c + 3 are left out (a token with count c beside one with count c + 4 or more);
``bench/bench_most_freq_program.py`` measures the model, its decompiled program and the same
algorithm without causal heads.
"""

from __future__ import annotations

from typing import cast

import torch

from crystalbox.programs.config import ProgramConfig, variable_layout
from crystalbox.programs.mlp_fit import fit_cat_mlp, fit_num_mlp
from crystalbox.programs.model import ProgramLayer, ProgramTransformer
from crystalbox.programs.tasks import Task, make_task

__all__ = ["most_freq_rank_model"]


def most_freq_rank_model(task: Task | None = None, tables: bool = False) -> ProgramTransformer:
    """most_freq's rank program as a model (count-only, 4 layers, one categorical and four
    numerical heads per layer, the first numerical head causal): reads and predicates set by
    hand, its four tables fitted into its MLPs (``mlp_fit``). ``task``: ``most_freq`` at any
    vocabulary with at most 8 tokens and length 8 (default: the paper's); ``tables``: its
    numerical MLPs are lookup tables (``ProgramConfig.num_mlp_tables``), the same program."""
    task = task or make_task("most_freq")
    if task.name != "most_freq" or len(task.input_vocab) > 8 or task.max_len != 8:
        raise ValueError(
            f"the rank program is written for most_freq with at most 8 tokens and length 8, "
            f"got {task.name} with {len(task.input_vocab)} tokens and length {task.max_len}"
        )
    vocab = task.input_vocab
    k, pad, bos = 8, vocab.index("<pad>"), vocab.index("<s>")
    config = ProgramConfig(
        vocab_size=len(vocab), n_classes=len(task.output_vocab), n_ctx=task.max_len, d_var=k,
        n_layers=4, n_cat_heads=1, n_num_heads=4, n_cat_mlps=1, n_num_mlps=2,
        pad_id=pad, count_only=True, n_causal_num_heads=1, num_mlp_tables=tables,
    )  # fmt: skip
    with torch.random.fork_rng():  # the unused MLPs' weights, without touching the caller's RNG
        torch.manual_seed(0)
        model = ProgramTransformer(config).requires_grad_(False)
    layers = [cast("ProgramLayer", m) for m in model.layers]
    cat_names, num_names = ([v.name for v in kind] for kind in variable_layout(config))
    cat, num = cat_names.index, num_names.index  # a variable's index in every read it can meet
    for layer in layers:  # unused heads read tokens and match nothing (pad keys are masked)
        for name in ("cat_key", "cat_query", "cat_value", "num_key", "num_query"):
            _choose(getattr(layer, name), [0] * getattr(layer, name).shape[0])
        layer.cat_pred.zero_()
        layer.cat_pred[..., pad] = 10.0
        layer.num_pred.zero_()
        layer.num_pred[..., pad] = 10.0
    never = k - 1  # `first` = 7 needs one symbol 7 times: no other first occurrence exists
    # layer 0: heads 0 (causal) and 1 count the query's own symbol; pad and BOS rows match pad
    same = [v if v not in (pad, bos) else pad for v in range(k)]
    for h in (0, 1):
        _predicate(layers[0].num_pred[h], same)
    first, a, b = cat("num_mlp_0_0"), cat("num_mlp_1_0"), cat("num_mlp_1_1")
    rank = cat("mlp_2_0")
    _choose(layers[0].num_mlp_read[0], [num("num_attn_0_1"), num("num_attn_0_0")])  # count, seen
    # layer 1: over `first`: head 0 (causal) same count, heads 1-3 count + 1, + 2, + 3
    _choose(layers[1].num_key, [first] * 4)
    _choose(layers[1].num_query, [first] * 4)
    for h, d in enumerate((0, 1, 2, 3)):
        _predicate(layers[1].num_pred[h], [min(c + d, never) if c else never for c in range(k)])
    more_1, more_2, more_3, before = (num(f"num_attn_1_{h}") for h in (1, 2, 3, 0))
    _choose(layers[1].num_mlp_read[0], [more_1, more_2])
    _choose(layers[1].num_mlp_read[1], [more_3, before])
    _choose(layers[2].mlp_read[0], [a, b])
    # layer 3: position i copies the token whose rank is i (BOS when none)
    _choose(layers[3].cat_key, [rank])
    _choose(layers[3].cat_query, [cat("positions")])
    _choose(layers[3].cat_value, [cat("tokens")])
    _predicate(layers[3].cat_pred[0], list(range(k)))
    grid = torch.cartesian_prod(torch.arange(k + 1), torch.arange(k + 1))  # every count pair
    x, y = grid[:, 0], grid[:, 1]
    count_tables = {  # (layer, numerical MLP): its table over the grid
        (0, 0): torch.where(y == 1, torch.clamp(x, max=never), 0),
        (1, 0): torch.clamp(x + y, max=never),
        (1, 1): torch.where(y > 0, torch.clamp(x + y, max=never), 0),
    }
    for (li, m), wanted in count_tables.items():
        if not fit_num_mlp(layers[li], m, grid, wanted.long()):
            raise RuntimeError(f"the table of numerical MLP {m} of layer {li} did not fit")
    pairs = torch.cartesian_prod(torch.arange(k), torch.arange(k))  # row a * k + b
    wanted = torch.where(pairs[:, 1] > 0, torch.clamp(pairs.sum(-1), max=never), 0)
    if not fit_cat_mlp(layers[2], 0, wanted.long()):
        raise RuntimeError("the rank table did not fit")
    model.classifier_cat.zero_()
    model.classifier_num.zero_()
    output = cat("attn_3_0")  # the copied token
    for t, token in enumerate(vocab):
        if token in task.output_vocab:
            model.classifier_cat[output, t, task.output_vocab.index(token)] = 1.0
    return model.requires_grad_(True).eval()


def _choose(reads: torch.Tensor, variables: list[int]) -> None:
    """Make row i of ``reads [slots, v]`` (or ``[m, 2, v]``) pick variable ``variables[i]``."""
    rows = reads.view(-1, reads.shape[-1])
    rows.zero_()
    rows[torch.arange(len(variables)), torch.tensor(variables)] = 10.0


def _predicate(rows: torch.Tensor, keys: list[int]) -> None:
    """Make predicate ``rows [k, k]`` map query value q to key value ``keys[q]``."""
    rows.zero_()
    rows[torch.arange(len(keys)), torch.tensor(keys)] = 10.0
