"""Refitting the classifier on the discrete stream: kept only when validation rises."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from crystalbox.cli.main import main
from crystalbox.programs.checkpoint import load_program, save_program
from crystalbox.programs.data import make_data
from crystalbox.programs.refit import discrete_features, refit_classifier
from crystalbox.programs.tasks import make_task
from crystalbox.programs.train import TrainedProgram, accuracy

from .conftest import QUICK, random_model, self_labelled


@pytest.fixture(scope="module")
def blinded_hist(trained_hist: TrainedProgram) -> TrainedProgram:
    """The short hist run with its classifier zeroed: every class ties, so class 0 wins."""
    model = copy.deepcopy(trained_hist.model)
    with torch.no_grad():
        model.classifier_cat.zero_()
        model.classifier_num.zero_()
    return dataclasses.replace(trained_hist, model=model)


def _data():
    return make_data(make_task("hist"), 0, QUICK.n_train, QUICK.n_val, QUICK.n_test)


def test_features_are_the_classifier_inputs(blinded_hist):
    model = copy.deepcopy(blinded_hist.model)
    with torch.no_grad():
        model.classifier_cat.normal_()
        model.classifier_num.normal_()
    split = _data().val
    rows, numbers, targets = discrete_features(model, split)
    k, classes = model.config.d_var, model.config.n_classes
    logits = (
        torch.nn.functional.embedding_bag(
            rows, model.classifier_cat.double().reshape(-1, classes), mode="sum"
        )
        + numbers @ model.classifier_num.double()
    )
    expected = 100.0 * float((logits.argmax(-1) == targets).double().mean())
    assert expected == pytest.approx(accuracy(model, split), abs=1e-9)
    assert int(rows.max()) < model.classifier_cat.shape[0] * k


def test_refit_restores_a_blinded_classifier(blinded_hist):
    model = copy.deepcopy(blinded_hist.model)
    data = _data()
    before = accuracy(model, data.val)
    result = refit_classifier(model, data.train, data.val, max_iter=100)
    assert result.kept and result.val_before == pytest.approx(before)
    assert result.val_after > result.val_before + 20
    assert result.train_after > result.train_before
    # the reported figures are the program's own (model.predict)
    assert result.val_after == pytest.approx(accuracy(model, data.val), abs=1e-9)
    assert result.train_after == pytest.approx(accuracy(model, data.train), abs=1e-9)


def test_a_refit_that_does_not_raise_validation_is_undone():
    model = random_model(causal=False)
    split = self_labelled(model)  # the model is exact on its own outputs
    weights = (model.classifier_cat.detach().clone(), model.classifier_num.detach().clone())
    result = refit_classifier(model, split, split, max_iter=5, l2=100.0)  # shrinks to ties
    assert not result.kept and result.val_before == 100.0 and result.val_after < 100.0
    assert torch.equal(model.classifier_cat, weights[0])
    assert torch.equal(model.classifier_num, weights[1])


def test_refit_rejects_bad_settings(blinded_hist):
    data = _data()
    with pytest.raises(ValueError, match="max_iter must be positive"):
        refit_classifier(blinded_hist.model, data.train, data.val, max_iter=0)
    with pytest.raises(ValueError, match="l2 must be non-negative"):
        refit_classifier(blinded_hist.model, data.train, data.val, l2=-1.0)


def test_cli_refit_writes_a_new_checkpoint(blinded_hist, tmp_path: Path, capsys):
    source = save_program(blinded_hist, tmp_path / "hist")
    assert main(["programs", "refit", str(source), "-o", str(source)]) == 2
    assert "is the checkpoint itself" in capsys.readouterr().err
    assert main(["programs", "refit", str(source), "--threads", "0"]) == 2
    assert "--threads must be positive, got 0" in capsys.readouterr().err
    assert main(["programs", "refit", str(source), "--max-iter", "50"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kept"] and report["out"] == str(tmp_path / "hist-refit")
    refit = load_program(tmp_path / "hist-refit")
    assert refit.result["val_acc"] == pytest.approx(report["val_after"], abs=1e-3)
    assert refit.result["refit"]["kept"] is True
    data = _data()
    assert accuracy(refit.model, data.test) == pytest.approx(report["test_after"], abs=1e-3)
    # the source checkpoint is untouched
    assert load_program(source).result["val_acc"] == blinded_hist.result.val_acc
