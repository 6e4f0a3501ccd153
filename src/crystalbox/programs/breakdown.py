"""Where a discrete model's errors fall: accuracy per position, per target class, per sequence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from crystalbox.programs.data import IGNORE, Split
from crystalbox.programs.model import ProgramTransformer

__all__ = ["AccuracyBreakdown", "Cell", "accuracy_breakdown"]


@dataclass(frozen=True)
class Cell:
    """Accuracy (percent) over the ``scored`` targets of one group (a position or a class)."""

    label: str
    scored: int
    accuracy: float


@dataclass(frozen=True)
class AccuracyBreakdown:
    """Token accuracy of the discrete model, split by position and by target class.

    ``sequence_accuracy``: percent of examples whose every scored target is right.
    """

    accuracy: float
    sequence_accuracy: float
    by_position: tuple[Cell, ...]
    by_class: tuple[Cell, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def accuracy_breakdown(
    model: ProgramTransformer,
    split: Split,
    output_vocab: Sequence[str],
    batch_size: int = 4096,
) -> AccuracyBreakdown:
    """Accuracy of ``model.predict`` on ``split``; groups without scored targets are left out."""
    if len(output_vocab) != model.config.n_classes:
        raise ValueError(
            f"output_vocab has {len(output_vocab)} classes but the model has "
            f"{model.config.n_classes}; pass the checkpoint's task.output_vocab"
        )
    device = model.classifier_num.device
    hits: list[torch.Tensor] = []  # [batch, pos] bool: right and scored
    scored: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    for start in range(0, len(split), batch_size):
        inputs = torch.as_tensor(split.inputs[start : start + batch_size], device=device)
        target = torch.as_tensor(split.targets[start : start + batch_size], device=device)
        mask = target != IGNORE
        hits.append((model.predict(inputs) == target) & mask)
        scored.append(mask)
        targets.append(target)
    hit, mask, target = torch.cat(hits), torch.cat(scored), torch.cat(targets)

    def cell(label: str, right: torch.Tensor, where: torch.Tensor) -> Cell:
        n = int(where.sum())
        return Cell(label, n, 100.0 * int(right[where].sum()) / n)

    positions = tuple(
        cell(str(p), hit[:, p], mask[:, p]) for p in range(mask.shape[1]) if bool(mask[:, p].any())
    )
    of_class = [(name, mask & (target == c)) for c, name in enumerate(output_vocab)]
    classes = tuple(cell(name, hit, where) for name, where in of_class if bool(where.any()))
    whole = hit.sum(1) == mask.sum(1)  # [batch]: every scored target right
    return AccuracyBreakdown(
        accuracy=100.0 * int(hit.sum()) / max(int(mask.sum()), 1),
        sequence_accuracy=100.0 * float(whole.float().mean()) if len(whole) else 0.0,
        by_position=positions,
        by_class=classes,
    )
