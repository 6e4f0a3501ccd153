"""Accuracy split by position, target class and whole sequence, on hand-checked predictions."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from crystalbox.programs.breakdown import Cell, accuracy_breakdown
from crystalbox.programs.data import IGNORE, Split


class _Fixed:
    """Stands in for a ProgramTransformer: ``predict`` returns fixed class ids per example (the
    example's row number is its first token)."""

    def __init__(self, predicted: list[list[int]], n_classes: int) -> None:
        self.config = SimpleNamespace(n_classes=n_classes)
        self.classifier_num = torch.zeros(1)
        self._predicted = torch.tensor(predicted)

    def predict(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._predicted[tokens[:, 0]]


def _split(targets: list[list[int]]) -> Split:
    target = np.array(targets)
    rows = np.arange(len(target))[:, None].repeat(target.shape[1], axis=1)
    return Split(inputs=rows, targets=target)


def test_breakdown_on_hand_checked_predictions():
    split = _split([[IGNORE, 0, 1], [IGNORE, 1, 1]])
    model = _Fixed([[1, 0, 0], [0, 1, 1]], n_classes=3)
    got = accuracy_breakdown(model, split, ("a", "b", "c"))  # type: ignore[arg-type]
    assert got.accuracy == pytest.approx(75.0)
    assert got.sequence_accuracy == pytest.approx(50.0)  # the second example only
    # position 0 is never scored and class "c" never a target: both left out
    assert got.by_position == (Cell("1", 2, 100.0), Cell("2", 2, 50.0))
    assert got.by_class[0] == Cell("a", 1, 100.0)
    assert got.by_class[1].label == "b" and got.by_class[1].scored == 3
    assert got.by_class[1].accuracy == pytest.approx(200 / 3)
    assert len(got.by_class) == 2
    assert got.to_dict()["by_position"][0] == {"label": "1", "scored": 2, "accuracy": 100.0}


def test_breakdown_batches_add_up():
    split = _split([[0, 1], [1, 1], [0, 0]])
    model = _Fixed([[0, 1], [1, 0], [0, 0]], n_classes=2)
    whole = accuracy_breakdown(model, split, ("a", "b"))  # type: ignore[arg-type]
    batched = accuracy_breakdown(model, split, ("a", "b"), batch_size=1)  # type: ignore[arg-type]
    assert whole == batched


def test_breakdown_needs_the_models_classes():
    model = _Fixed([[0]], n_classes=3)
    with pytest.raises(ValueError, match="output_vocab has 2 classes but the model has 3"):
        accuracy_breakdown(model, _split([[0]]), ("a", "b"))  # type: ignore[arg-type]
