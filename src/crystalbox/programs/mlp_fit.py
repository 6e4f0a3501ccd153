"""Writing a lookup table into an MLP's weights.

An MLP of the argmax model is the table ``argmax(relu(x @ w1 + b1) @ w2 + b2)`` over its
inputs ``x``: the ``k * k`` one-hot pairs of a categorical MLP, number pairs for a numerical
one. ``fit_cat_mlp`` / ``fit_num_mlp`` train the MLP's own weights (same shapes) until that
table equals a wanted one with a safety margin, so that an edited or hand-written table is
held by the model itself and decompiles like any trained one; a numerical table MLP is
written directly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from crystalbox.programs.fast_predict import cat_mlp_table, cat_pairs, count_pair_rows
from crystalbox.programs.model import ProgramLayer

__all__ = ["fit_cat_mlp", "fit_num_mlp"]


def _margins(logits: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    """Wanted logit minus the best other one, per input pair ``[k * k]``."""
    chosen = logits.gather(1, wanted.unsqueeze(1)).squeeze(1)
    others = logits.scatter(1, wanted.unsqueeze(1), float("-inf")).max(-1).values
    return chosen - others


def fit_cat_mlp(
    layer: ProgramLayer, m: int, wanted: torch.Tensor, margin: float = 0.05, steps: int = 3000
) -> bool:
    """Make categorical MLP ``m`` of ``layer`` compute table ``wanted [k * k]`` (long).

    Starts from the current weights; on success writes them and returns True, else leaves
    the layer unchanged and returns False.
    """
    x = cat_pairs(layer.config.d_var, layer.mlp_w1.device)
    weights = (layer.mlp_w1, layer.mlp_b1, layer.mlp_w2, layer.mlp_b2)
    return _fit(weights, m, x, wanted, margin, steps, lambda: cat_mlp_table(layer, m))


def fit_num_mlp(
    layer: ProgramLayer,
    m: int,
    inputs: torch.Tensor,
    wanted: torch.Tensor,
    margin: float = 0.05,
    steps: int = 20000,
) -> bool:
    """Make numerical MLP ``m`` of ``layer`` map input pairs ``inputs [r, 2]`` to ``wanted
    [r]`` (long); other inputs are unconstrained, so ``inputs`` should hold every pair the
    MLP can meet. Starts from the current weights; True and written on success, else the
    layer is unchanged. A table MLP (``num_mlp_tables``) raises each wanted logit to the
    row's best other one plus ``margin``; it holds any table over integer pairs in
    ``[0, n_ctx]``."""
    if layer.config.num_mlp_tables:
        return _write_table(layer, m, inputs, wanted, margin)
    x = inputs.to(layer.num_mlp_w1.dtype)
    weights = (layer.num_mlp_w1, layer.num_mlp_b1, layer.num_mlp_w2, layer.num_mlp_b2)

    def table() -> torch.Tensor:
        with torch.no_grad():
            hidden = torch.relu(x @ layer.num_mlp_w1[m] + layer.num_mlp_b1[m])
            return (hidden @ layer.num_mlp_w2[m] + layer.num_mlp_b2[m]).argmax(-1)

    return _fit(weights, m, x, wanted, margin, steps, table)


def _write_table(
    layer: ProgramLayer, m: int, inputs: torch.Tensor, wanted: torch.Tensor, margin: float
) -> bool:
    """``fit_num_mlp`` for a table MLP: False (unchanged) when an input is not a count."""
    n, x = layer.config.n_counts, inputs.double()
    if not bool(((x == x.round()) & (x >= 0) & (x < n)).all()):
        return False
    rows = count_pair_rows(layer.config, x[:, 0], x[:, 1])
    with torch.no_grad():
        table = layer.num_mlp_table[m]
        saved = table.clone()
        logits = table[rows]
        needed = _margins(logits, wanted) < margin
        others = logits.scatter(1, wanted.unsqueeze(1), float("-inf")).max(-1).values
        table[rows[needed], wanted[needed]] = others[needed] + margin
        if torch.equal(table[rows].argmax(-1), wanted):
            return True
        table.copy_(saved)  # one pair wanted as two outputs
    return False


def _fit(
    weights: tuple[torch.nn.Parameter, ...],
    m: int,
    x: torch.Tensor,
    wanted: torch.Tensor,
    margin: float,
    steps: int,
    table: Callable[[], torch.Tensor],
) -> bool:
    """Adam on MLP ``m``'s slice of ``weights`` (w1, b1, w2, b2) until every row of ``x``
    gives its ``wanted`` output by ``margin``; written only if ``table()`` then equals it."""
    params = [p[m].detach().clone().requires_grad_() for p in weights]
    optimizer = torch.optim.Adam(params, lr=1e-2)
    fitted = False
    for step in range(steps):
        w1, b1, w2, b2 = params
        logits = torch.relu(x @ w1 + b1) @ w2 + b2
        if step % 25 == 0 and bool((_margins(logits.detach(), wanted) >= margin).all()):
            fitted = True
            break
        # cross-entropy on the rows still under the margin keeps the others as they are
        loss = F.cross_entropy(logits, wanted, reduction="none")
        short = _margins(logits.detach(), wanted) < 2 * margin
        optimizer.zero_grad()
        (loss * short).sum().backward()
        optimizer.step()
    if not fitted:
        return False
    saved = [p[m].detach().clone() for p in weights]
    with torch.no_grad():
        for target, value in zip(weights, params, strict=True):
            target[m] = value.detach()
    if torch.equal(table(), wanted):
        return True
    with torch.no_grad():
        for target, value in zip(weights, saved, strict=True):
            target[m] = value
    return False
