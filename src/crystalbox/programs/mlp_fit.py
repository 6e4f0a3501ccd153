"""Writing a lookup table into a categorical MLP's weights.

A categorical MLP of the argmax model is the table ``argmax(relu(x @ w1 + b1) @ w2 + b2)``
over its ``k * k`` one-hot input pairs ``x``. ``fit_cat_mlp`` trains the MLP's own weights
(same shapes) until that table equals a wanted one with a safety margin, so that an edited
table is held by the model itself and decompiles like any trained one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from crystalbox.programs.fast_predict import cat_mlp_table, cat_pairs
from crystalbox.programs.model import ProgramLayer

__all__ = ["fit_cat_mlp"]


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
    params = [p[m].detach().clone().requires_grad_() for p in _weights(layer)]
    optimizer = torch.optim.Adam(params, lr=1e-2)
    fitted = False
    for step in range(steps):
        w1, b1, w2, b2 = params
        logits = torch.relu(x @ w1 + b1) @ w2 + b2
        if step % 25 == 0 and bool((_margins(logits.detach(), wanted) >= margin).all()):
            fitted = True
            break
        # cross-entropy on the pairs still under the margin keeps the others as they are
        loss = F.cross_entropy(logits, wanted, reduction="none")
        short = _margins(logits.detach(), wanted) < 2 * margin
        optimizer.zero_grad()
        (loss * short).sum().backward()
        optimizer.step()
    if not fitted:
        return False
    saved = [p[m].detach().clone() for p in _weights(layer)]
    with torch.no_grad():
        for target, value in zip(_weights(layer), params, strict=True):
            target[m] = value.detach()
    if torch.equal(cat_mlp_table(layer, m), wanted):
        return True
    with torch.no_grad():
        for target, value in zip(_weights(layer), saved, strict=True):
            target[m] = value
    return False


def _weights(layer: ProgramLayer) -> tuple[torch.nn.Parameter, ...]:
    return layer.mlp_w1, layer.mlp_b1, layer.mlp_w2, layer.mlp_b2
