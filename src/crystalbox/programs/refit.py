"""Refitting a trained program's linear classifier on its discrete stream.

Training fits the classifier to the relaxed (Gumbel-softmax) stream. Once every choice is an
argmax, the classifier's inputs are exact one-hots and integers, so the best linear readout
of them is a convex problem: multinomial logistic regression over the discrete variables of
the training split, solved here by full-batch L-BFGS in float64 from the trained weights. The
refit changes only ``classifier_cat`` / ``classifier_num`` (the program's classifier tables);
reads, predicates, attention and MLPs are untouched. It is kept only when it raises the
discrete model's validation accuracy; otherwise the trained weights are restored.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from crystalbox.programs.data import IGNORE, Split
from crystalbox.programs.model import ProgramTransformer

__all__ = ["RefitResult", "discrete_features", "refit_classifier"]


@dataclass(frozen=True)
class RefitResult:
    """Token accuracies (percent, discrete model) before and after a classifier refit."""

    train_before: float
    train_after: float
    val_before: float
    val_after: float
    kept: bool  # the refit raised validation accuracy, so the model now holds it
    iterations: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def discrete_features(
    model: ProgramTransformer, split: Split, batch_size: int = 2048
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The classifier's inputs at the scored positions of ``split`` (P positions in all).

    Returns ``rows [P, n_cat]`` (row of variable ``v`` in the flattened categorical classifier:
    ``v * k + value``), ``numbers [P, n_num]`` (float64) and ``targets [P]``.
    """
    k = model.config.d_var
    device = model.classifier_num.device
    rows, numbers, targets = [], [], []
    for start in range(0, len(split), batch_size):
        tokens = torch.as_tensor(split.inputs[start : start + batch_size], device=device)
        target = torch.as_tensor(split.targets[start : start + batch_size], device=device)
        cat, num = model.stream(tokens)  # [b, n, k, n_cat], [b, n, n_num]: the program's
        values = cat.argmax(2)  # [b, n, n_cat]
        scored = target != IGNORE
        rows.append((values + k * torch.arange(values.shape[-1], device=device))[scored])
        numbers.append(num[scored].double())
        targets.append(target[scored])
    return torch.cat(rows), torch.cat(numbers), torch.cat(targets)


def _logits(
    rows: torch.Tensor, numbers: torch.Tensor, cat_w: torch.Tensor, num_w: torch.Tensor
) -> torch.Tensor:
    """Class logits ``[P, classes]``: one summed table row per categorical variable, plus the
    numerical variables times their weights."""
    return F.embedding_bag(rows, cat_w, mode="sum") + numbers @ num_w


Features = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _distinct(rows: torch.Tensor, numbers: torch.Tensor, targets: torch.Tensor) -> Features:
    """The distinct (features, target) combinations and how often each occurs: positions of
    a trained program share few of them, so the refit's loss is a weighted sum over these."""
    key = torch.cat([rows.double(), numbers, targets.double().unsqueeze(1)], dim=1)
    distinct, counts = torch.unique(key, dim=0, return_counts=True)
    n_rows = rows.shape[1]
    return (
        distinct[:, :n_rows].long(),
        distinct[:, n_rows:-1],
        distinct[:, -1].long(),
        counts.double(),
    )


def _accuracy(features: Features, cat_w: torch.Tensor, num_w: torch.Tensor) -> float:
    rows, numbers, targets, counts = features
    with torch.no_grad():
        correct = _logits(rows, numbers, cat_w, num_w).argmax(-1) == targets
    return 100.0 * float(counts[correct].sum() / counts.sum()) if len(targets) else 0.0


def refit_classifier(
    model: ProgramTransformer,
    train: Split,
    val: Split,
    max_iter: int = 200,
    l2: float = 0.0,
) -> RefitResult:
    """Refit the classifier of ``model`` (in place) on the discrete stream of ``train``.

    Minimises token cross-entropy (plus ``l2`` times the squared weights) with L-BFGS for at
    most ``max_iter`` iterations, starting from the trained weights; keeps the result only
    when validation accuracy rises, else restores the trained weights. Accuracies are those of
    ``model.predict`` (class scores summed in float64, ties to the lowest class).
    """
    if max_iter < 1:
        raise ValueError(f"max_iter must be positive, got {max_iter}")
    if l2 < 0:
        raise ValueError(f"l2 must be non-negative, got {l2}")
    if not len(train) or not len(val):
        raise ValueError("refit_classifier needs non-empty train and validation splits")
    started = time.perf_counter()
    was_training = model.training
    model.eval()
    train_f = _distinct(*discrete_features(model, train))
    val_f = _distinct(*discrete_features(model, val))
    shape = model.classifier_cat.shape  # [n_cat, k, classes]
    before = (model.classifier_cat.detach().clone(), model.classifier_num.detach().clone())
    cat_w = before[0].reshape(-1, shape[-1]).double().requires_grad_()
    num_w = before[1].double().requires_grad_()
    optimizer = torch.optim.LBFGS(
        [cat_w, num_w], max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
    )
    rows, numbers, targets, counts = train_f
    weights = counts / counts.sum()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        losses = F.cross_entropy(_logits(rows, numbers, cat_w, num_w), targets, reduction="none")
        loss = (losses * weights).sum()
        if l2:
            loss = loss + l2 * (cat_w.square().sum() + num_w.square().sum())
        loss.backward()
        return loss

    optimizer.step(closure)
    iterations = int(optimizer.state[cat_w].get("n_iter", 0))  # L-BFGS keeps it on the first
    new_cat, new_num = cat_w.detach().float().view(shape), num_w.detach().float()
    # scored with the float32 weights the model holds, summed in float64 as predict does
    old = (before[0].reshape(-1, shape[-1]).double(), before[1].double())
    new = (new_cat.reshape(-1, shape[-1]).double(), new_num.double())
    scores = {
        "train_before": _accuracy(train_f, *old),
        "val_before": _accuracy(val_f, *old),
        "train_after": _accuracy(train_f, *new),
        "val_after": _accuracy(val_f, *new),
    }
    kept = scores["val_after"] > scores["val_before"]
    with torch.no_grad():
        model.classifier_cat.copy_(new_cat if kept else before[0])
        model.classifier_num.copy_(new_num if kept else before[1])
    model.train(was_training)
    return RefitResult(
        **scores, kept=kept, iterations=iterations, seconds=time.perf_counter() - started
    )
