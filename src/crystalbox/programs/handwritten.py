"""Hand-written Transformer Programs: models whose reads, predicates and tables are set by
hand, to show what the model class holds (and to train from).

``most_freq_rank_model``: most_freq by ranks, with causal heads. Ranking tokens by (−count,
first index) needs, per token, how many tokens with the same count occur first before it: a
prefix count, which a causal numerical head computes. The model is non-causal with one
causal numerical head per layer (``n_causal_num_heads``):

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

``dyck_depth_model``: Dyck-1 and Dyck-2 exactly, in four causal layers, by the depth before
each bracket (see its docstring); ``bench/bench_dyck_program.py`` measures it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import cast

import torch

from crystalbox.programs.config import ProgramConfig, variable_layout
from crystalbox.programs.mlp_fit import fit_cat_mlp, fit_num_mlp
from crystalbox.programs.model import ProgramLayer, ProgramTransformer
from crystalbox.programs.tasks import BOS, PAD, Task, make_task

__all__ = ["dyck_depth_model", "most_freq_rank_model", "sharpened"]


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
    model, layers, cat, num = _blank_model(config)
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
    output = cat("attn_3_0")  # the copied token
    for t, token in enumerate(vocab):
        if token in task.output_vocab:
            model.classifier_cat[output, t, task.output_vocab.index(token)] = 1.0
    return model.requires_grad_(True).eval()


def dyck_depth_model(task: Task | None = None, tables: bool = False) -> ProgramTransformer:
    """Dyck-1 or Dyck-2 (also ``dyck2_authors``) as an exact causal model: k = 16, L = 4,
    H = 1+2, M = 2+1, count-only. With ``D_j`` the depth after position ``j`` (opens minus
    closes, 0 at BOS):

    * layer 0: numerical heads count each open bracket at or before the query; their MLP
      gives ``opens``; a categorical MLP gives ``X = j + 2 [token j opens] - 1`` from (token,
      position), so that ``2 opens - X = D_(j-1)``, the depth *before* j;
    * layer 1: tables (opens, position) -> ``D = D_j`` and (opens, X) -> ``K = D_(j-1)``
      (both stored as depth + 1, clipped to [0, 15]);
    * layer 2: a categorical head finds, for the query i, the closest key j <= i with
      ``K_j = D_i``: for a close in a valid prefix that is its matching open (every position
      between them is deeper), and nothing (BOS) when the close has nothing open; it copies
      that token, and a table (token, copied) -> ``bad``: a close whose copied token is not
      its own opening bracket;
    * layer 3: a numerical head counts ``bad`` at or before i; the classifier says F when the
      count is positive, else T at depth 0, else P.

    ``task``: dyck1, dyck2 or dyck2_authors at length 16 (default: dyck2); ``tables``: the
    numerical MLP is a lookup table (``ProgramConfig.num_mlp_tables``), the same program.
    """
    task = task or make_task("dyck2")
    vocab = task.input_vocab
    closes = {"(": ")", "{": "}"}
    opens = [t for t in closes if t in vocab]
    brackets = {*opens, *(closes[t] for t in opens)}
    if not task.name.startswith("dyck") or not opens or set(vocab) != {PAD, BOS, *brackets}:
        raise ValueError(
            f"the depth program is written for dyck1 and dyck2 at length 16, got {task.name} "
            f"with the tokens {list(vocab)}"
        )
    if task.max_len != 16:
        raise ValueError(
            f"the depth program is written for length 16 (k = 16 holds its depths), got "
            f"{task.name} at length {task.max_len}"
        )
    k, pad = 16, vocab.index("<pad>")
    config = ProgramConfig(
        vocab_size=len(vocab), n_classes=len(task.output_vocab), n_ctx=task.max_len, d_var=k,
        n_layers=4, n_cat_heads=1, n_num_heads=2, n_cat_mlps=2, n_num_mlps=1, causal=True,
        pad_id=pad, count_only=True, num_mlp_tables=tables,
    )  # fmt: skip
    model, layers, cat, num = _blank_model(config)
    # layer 0: one numerical head per open bracket (dyck1 leaves the second one matching nothing)
    for h, bracket in enumerate(opens):
        _predicate(layers[0].num_pred[h], [vocab.index(bracket)] * k)
    grid = torch.cartesian_prod(torch.arange(k + 1), torch.arange(k + 1))  # every count pair
    _choose(layers[0].num_mlp_read[0], [num("num_attn_0_0"), num("num_attn_0_1")])
    if not fit_num_mlp(layers[0], 0, grid, torch.clamp(grid.sum(-1), max=k - 1)):
        raise RuntimeError("the table of opens did not fit")
    pairs = torch.cartesian_prod(torch.arange(k), torch.arange(k))  # row a * k + b
    a, b = pairs[:, 0], pairs[:, 1]
    opening = torch.tensor([v < len(vocab) and vocab[v] in opens for v in range(k)])
    _choose(layers[0].mlp_read[0], [cat("tokens"), cat("positions")])
    shift = torch.clamp(b + 2 * opening[a].long() - 1, 0, k - 1)  # X from (token, position)
    # layer 1: D and K, stored as depth + 1 in [0, 15]
    opens_v, x_v = cat("num_mlp_0_0"), cat("mlp_0_0")
    _choose(layers[1].mlp_read[0], [opens_v, cat("positions")])
    _choose(layers[1].mlp_read[1], [opens_v, x_v])
    tables_wanted = {
        (0, 0): shift,
        (1, 0): torch.clamp(2 * a - b + 1, 0, k - 1),  # D_j + 1
        (1, 1): torch.clamp(2 * a - b + 1, 0, k - 1),  # K_j + 1 = D_(j-1) + 1
    }
    # layer 2: the closest key with K = D copies its token; a close not matched by it is bad
    _choose(layers[2].cat_key, [cat("mlp_1_1")])
    _choose(layers[2].cat_query, [cat("mlp_1_0")])
    _choose(layers[2].cat_value, [cat("tokens")])
    _predicate(layers[2].cat_pred[0], list(range(k)))
    _choose(layers[2].mlp_read[0], [cat("tokens"), cat("attn_2_0")])
    opened_by = torch.full((k,), -1)  # a close's opening bracket, -1 for other tokens
    for bracket in opens:
        opened_by[vocab.index(closes[bracket])] = vocab.index(bracket)
    tables_wanted[2, 0] = ((opened_by[a] >= 0) & (opened_by[a] != b)).long()
    for (li, m), wanted in tables_wanted.items():
        if not fit_cat_mlp(layers[li], m, wanted.long()):
            raise RuntimeError(f"the table of categorical MLP {m} of layer {li} did not fit")
    # layer 3: count the bad closes at or before the query
    _choose(layers[3].num_key, [cat("mlp_2_0"), cat("tokens")])  # head 1 stays unused
    _predicate(layers[3].num_pred[0], [1] * k)
    t_, p_, f_ = (task.output_vocab.index(c) for c in "TPF")
    model.classifier_num[num("num_attn_3_0"), f_] = 10.0
    model.classifier_num[num("ones"), p_] = 2.5
    model.classifier_cat[cat("mlp_1_0"), 1, t_] = 5.0  # depth 0
    return model.requires_grad_(True).eval()


def sharpened(
    model: ProgramTransformer, logits: float = 100.0, classifier: float = 20.0
) -> ProgramTransformer:
    """A copy of ``model`` with every read, predicate and MLP output logit times ``logits``
    and the classifier times ``classifier``: the same program, far from every decision
    boundary of the relaxed model (to train from a hand-written program)."""
    sharp = copy.deepcopy(model)
    with torch.no_grad():
        sharp.classifier_cat.mul_(classifier)
        sharp.classifier_num.mul_(classifier)
        for layer in sharp.layers:
            for name in _SHARPENED:
                if hasattr(layer, name):  # a table model has num_mlp_table, not num_mlp_w2/b2
                    getattr(layer, name).mul_(logits)
    return sharp


_SHARPENED = (  # every logit that picks a read, a key value or an MLP output
    "cat_key", "cat_query", "cat_value", "cat_pred", "num_key", "num_query", "num_pred",
    "mlp_read", "mlp_w2", "mlp_b2", "num_mlp_read", "num_mlp_w2", "num_mlp_b2", "num_mlp_table",
)  # fmt: skip


def _blank_model(
    config: ProgramConfig,
) -> tuple[ProgramTransformer, list[ProgramLayer], Callable[[str], int], Callable[[str], int]]:
    """A model of ``config`` whose heads all read tokens and match nothing (pad keys are
    masked) and whose classifier is zero; with its layers and the index of each categorical
    and numerical variable by name (the same in every read that can meet it)."""
    with torch.random.fork_rng():  # the unused MLPs' weights, without touching the caller's RNG
        torch.manual_seed(0)
        model = ProgramTransformer(config).requires_grad_(False)
    layers = [cast("ProgramLayer", m) for m in model.layers]
    for layer in layers:
        for name in ("cat_key", "cat_query", "cat_value", "num_key", "num_query"):
            _choose(getattr(layer, name), [0] * getattr(layer, name).shape[0])
        layer.cat_pred.zero_()
        layer.cat_pred[..., config.pad_id] = 10.0
        layer.num_pred.zero_()
        layer.num_pred[..., config.pad_id] = 10.0
    model.classifier_cat.zero_()
    model.classifier_num.zero_()
    cat_names, num_names = ([v.name for v in kind] for kind in variable_layout(config))
    return model, layers, cat_names.index, num_names.index


def _choose(reads: torch.Tensor, variables: list[int]) -> None:
    """Make row i of ``reads [slots, v]`` (or ``[m, 2, v]``) pick variable ``variables[i]``."""
    rows = reads.view(-1, reads.shape[-1])
    rows.zero_()
    rows[torch.arange(len(variables)), torch.tensor(variables)] = 10.0


def _predicate(rows: torch.Tensor, keys: list[int]) -> None:
    """Make predicate ``rows [k, k]`` map query value q to key value ``keys[q]``."""
    rows.zero_()
    rows[torch.arange(len(keys)), torch.tensor(keys)] = 10.0
