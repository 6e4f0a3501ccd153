"""Hand-built Transformer Programs whose programs are known, set weight by weight.

One layer over the vocabulary ``<pad> <s> a b c`` (``n_ctx`` 6, k 8): a categorical head,
a numerical head (``ones``), a categorical MLP and a numerical MLP; the ``output`` argument
picks which of them the classifier reads. Every choice is a logit of 10 against 0, and the
MLPs are exact tables (one hidden unit per input pair; ``-|x - c|`` for the counter).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from crystalbox.programs import ProgramConfig, ProgramTransformer

VOCAB = ("<pad>", "<s>", "a", "b", "c")
N_CTX, K = 6, 8
TOKENS, POSITIONS = 0, 1  # categorical variables at layer 0
HEAD, CAT_MLP, NUM_MLP = 2, 3, 4  # their indices in the final categorical stream
COUNT = 1  # index of the numerical head in the numerical stream (after ``ones``)

OUTPUTS = {
    "prev_token": ("<s>", "a", "b", "c"),  # the previous token (BOS at positions 0 and 1)
    "last_same": tuple(str(i) for i in range(N_CTX)),  # closest other position, same token
    "count": tuple(str(i) for i in range(N_CTX)),  # how often this token occurs (hist)
    "same_as_prev": ("diff", "same"),  # MLP table: token == previous token
    "count_mlp": tuple(str(i) for i in range(N_CTX)),  # count through the numerical MLP
}


def _one_hot_read(n: int, index: int) -> torch.Tensor:
    row = torch.zeros(n)
    row[index] = 10.0
    return row


def hand_model(output: str) -> ProgramTransformer:
    """A model whose argmax program computes ``output`` (a key of ``OUTPUTS``)."""
    classes = OUTPUTS[output]
    config = ProgramConfig(
        vocab_size=len(VOCAB),
        n_classes=len(classes),
        n_ctx=N_CTX,
        d_var=K,
        n_layers=1,
        n_cat_heads=1,
        n_num_heads=1,
        n_cat_mlps=1,
        n_num_mlps=1,
        d_mlp=K * K,
    )
    model = ProgramTransformer(config)
    layer = model.layers[0]
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        # categorical head
        key, query, value = (
            (TOKENS, TOKENS, POSITIONS) if output == "last_same" else (POSITIONS, POSITIONS, TOKENS)
        )
        layer.cat_key[0] = _one_hot_read(2, key)
        layer.cat_query[0] = _one_hot_read(2, query)
        layer.cat_value[0] = _one_hot_read(2, value)
        for q in range(K):
            wanted = q if output == "last_same" else max(q - 1, 0)
            layer.cat_pred[0, q, wanted] = 10.0
        # numerical head: count of keys with the query's token
        layer.num_key[0] = _one_hot_read(2, TOKENS)
        layer.num_query[0] = _one_hot_read(2, TOKENS)
        layer.num_value[0] = _one_hot_read(1, 0)
        for q in range(K):
            layer.num_pred[0, q, q] = 10.0
        # categorical MLP: (token, head output) -> 1 if equal else 0, one unit per pair
        layer.mlp_read[0, 0] = _one_hot_read(3, TOKENS)
        layer.mlp_read[0, 1] = _one_hot_read(3, 2)
        for unit, (a, b) in enumerate(itertools.product(range(K), range(K))):
            layer.mlp_w1[0, a, unit] = 1.0
            layer.mlp_w1[0, K + b, unit] = 1.0
            layer.mlp_w2[0, unit, int(a == b)] = 1.0
        layer.mlp_b1[0] = -1.0
        # numerical MLP: count -> count (argmax of -|x - c|), both slots read the count
        layer.num_mlp_read[0, 0] = _one_hot_read(2, COUNT)
        layer.num_mlp_read[0, 1] = _one_hot_read(2, COUNT)
        for c in range(K):
            layer.num_mlp_w1[0, 0, c], layer.num_mlp_b1[0, c] = 1.0, -float(c)
            layer.num_mlp_w1[0, 0, K + c], layer.num_mlp_b1[0, K + c] = -1.0, float(c)
            layer.num_mlp_w2[0, c, c] = layer.num_mlp_w2[0, K + c, c] = -1.0
        layer.num_mlp_b1[0, 2 * K :] = -1.0  # unused units stay off
        # classifier
        if output in ("prev_token", "last_same"):
            source, offset = HEAD, (1 if output == "prev_token" else 0)
            for c in range(len(classes)):
                model.classifier_cat[source, c + offset, c] = 1.0
        elif output == "count":
            for c in range(len(classes)):  # c * count - c^2 / 2 peaks at c == count
                model.classifier_num[COUNT, c] = float(c)
                model.classifier_cat[TOKENS, :, c] = -(c**2) / 2
        elif output == "same_as_prev":
            model.classifier_cat[CAT_MLP, 0, 0] = model.classifier_cat[CAT_MLP, 1, 1] = 1.0
        else:
            for c in range(len(classes)):
                model.classifier_cat[NUM_MLP, c, c] = 1.0
    return model.eval()


def all_inputs(max_symbols: int = N_CTX - 1) -> np.ndarray:
    """Every valid input (BOS, then 1..max_symbols of a/b/c) as padded ids ``[n, N_CTX]``."""
    rows = []
    for length in range(1, max_symbols + 1):
        for body in itertools.product((2, 3, 4), repeat=length):
            rows.append([1, *body] + [0] * (N_CTX - 1 - length))
    return np.asarray(rows, dtype=np.int64)
