"""Attribution patching: a first-order (gradient) estimate of activation patching, in two forwards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from crystalbox import _nnsight
from crystalbox.methods._common import (
    check_component,
    component_envoy_value,
    head_dim,
    layer_list,
    position_list,
)
from crystalbox.methods.metrics import Metric
from crystalbox.methods.patching import (
    PatchingResult,
    _clean_activations,
    activation_patching,
    default_metric,
    metric_name,
    prepare_pair,
)

if TYPE_CHECKING:
    from crystalbox.standard.model import StandardizedTransformer

__all__ = ["PatchingComparison", "attribution_patching", "compare_patching"]


@dataclass(frozen=True)
class PatchingComparison:
    """Agreement of two patching grids over their cells (effects relative to the corrupted run)."""

    pearson: float
    spearman: float
    sign_agreement: float  # same sign, over cells where |exact effect| > rel_tol * its maximum
    top_k_overlap: float  # overlap of the k largest |effects|, k = max(1, cells // 10)

    def __str__(self) -> str:
        return (
            f"pearson {self.pearson:.3f}, spearman {self.spearman:.3f}, "
            f"sign agreement {self.sign_agreement:.2%}, top-k overlap {self.top_k_overlap:.2%}"
        )


def attribution_patching(
    model: StandardizedTransformer,
    clean: str,
    corrupted: str,
    *,
    metric: Metric | None = None,
    component: str = "resid",
    layers: int | list[int] | None = None,
    positions: int | list[int] | None = None,
) -> PatchingResult:
    """Estimate ``activation_patching`` by ``metric(corrupted) + grad . (clean - corrupted)`` per cell.

    One clean forward and one corrupted forward + backward, whatever the grid size. Same arguments
    and result type as ``activation_patching`` (``method='attribution'``).
    """
    comp = check_component(component)
    pair = prepare_pair(model, clean, corrupted)
    layer_ids = layer_list(model, layers)
    pos_ids = position_list(positions, len(pair.tokens))
    clean_acts, clean_last = _clean_activations(model, pair.clean, comp, layer_ids)
    acts: list[torch.Tensor] = []
    with torch.enable_grad(), model.trace(dict(pair.corrupted)):
        for layer in layer_ids:
            acts.append(_nnsight.save(component_envoy_value(model, comp, layer)))
        logits = _nnsight.save(model.logits)
    corrupted_last = logits[:, -1]
    name = metric_name(metric)
    if metric is None:
        metric, name = default_metric(model, clean_last[0].detach(), corrupted_last[0].detach())
    score = metric(corrupted_last)[0]
    if not score.requires_grad:
        raise ValueError(
            "the metric's value does not depend on the logits with gradients; use torch ops on them"
        )
    if not all(act.requires_grad for act in acts):
        raise ValueError(
            f"attribution patching needs gradients with respect to the {comp} activations, and "
            "this model's carry none: no parameter before them requires a gradient. Unfreeze a "
            "frozen model (model.hf_model.requires_grad_(True)); for a Transformer Program, "
            "whose components are discrete, use exact activation patching "
            "(activation_patching, `crystalbox patch`)"
        )
    grads = torch.autograd.grad(score, acts, allow_unused=True)
    clean_score = float(metric(clean_last)[0])
    corrupted_score = float(score.detach())
    rows = []
    index = torch.tensor(pos_ids)
    for act, grad, ref in zip(acts, grads, clean_acts, strict=True):
        if grad is None:
            grad = torch.zeros_like(act)
        delta = (ref.to(act.dtype) - act.detach()) * grad.detach()  # [1, pos, width]
        if comp == "heads":
            hd = head_dim(model)
            per_head = delta[0, index].reshape(len(pos_ids), -1, hd).sum((0, 2))  # [heads]
            rows.append(per_head)
        else:
            rows.append(delta[0, index].sum(-1))  # [positions]
    scores = torch.stack(rows).float().cpu() + corrupted_score
    if comp == "heads":
        columns = tuple(range(scores.shape[1]))
        names = tuple(f"h{h}" for h in columns)
    else:
        columns, names = pos_ids, tuple(pair.tokens[p] for p in pos_ids)
    return PatchingResult(
        scores, layer_ids, columns, names, comp, clean_score, corrupted_score, name, "attribution"
    )


def compare_patching(
    exact: PatchingResult, estimate: PatchingResult, rel_tol: float = 0.01
) -> PatchingComparison:
    """Pearson and Spearman correlations, sign agreement and top-k overlap of two grids' effects."""
    if exact.scores.shape != estimate.scores.shape:
        raise ValueError(
            f"grids differ in shape: {list(exact.scores.shape)} vs {list(estimate.scores.shape)}"
        )
    a, b = exact.effect.flatten().double(), estimate.effect.flatten().double()
    significant = a.abs() > rel_tol * float(a.abs().max())
    signs = (
        float((a[significant].sign() == b[significant].sign()).double().mean())
        if significant.any()
        else 1.0
    )
    k = max(1, a.numel() // 10)
    top_a = set(a.abs().topk(k).indices.tolist())
    top_b = set(b.abs().topk(k).indices.tolist())
    return PatchingComparison(
        _pearson(a, b), _pearson(_ranks(a), _ranks(b)), signs, len(top_a & top_b) / k
    )


def attribution_vs_exact(
    model: StandardizedTransformer, clean: str, corrupted: str, **kwargs: object
) -> tuple[PatchingResult, PatchingResult, PatchingComparison]:
    """Run both methods on the same grid and compare them."""
    estimate = attribution_patching(model, clean, corrupted, **kwargs)  # type: ignore[arg-type]
    exact = activation_patching(model, clean, corrupted, **kwargs)  # type: ignore[arg-type]
    return exact, estimate, compare_patching(exact, estimate)


def _ranks(x: torch.Tensor) -> torch.Tensor:
    order = x.argsort()
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(x.numel(), dtype=x.dtype)
    return ranks


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = float(a.norm() * b.norm())
    return float((a * b).sum()) / denom if denom > 0 else float("nan")
