"""The parameter average of training (``TrainConfig.ema_decay``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from crystalbox.cli.main import main
from crystalbox.programs.averaging import ParameterAverage
from crystalbox.programs.checkpoint import load_program
from crystalbox.programs.tasks import make_task
from crystalbox.programs.train import TrainConfig, train_program

from .conftest import random_model

TINY = TrainConfig(
    epochs=3, batch_size=64, n_train=256, n_val=64, n_test=32, compile=False, progress=False
)


def test_the_average_moves_towards_the_parameters_by_one_minus_the_decay():
    model = random_model(causal=False)
    start = [p.detach().clone() for p in model.parameters()]
    average = ParameterAverage(model, decay=0.75)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    average.update(model)
    average.update(model)
    moved = zip(start, model.parameters(), average.model.parameters(), strict=True)
    for before, now, averaged in moved:
        # two steps towards a target one above the start: 1 - 0.75**2 of the way
        torch.testing.assert_close(averaged, before + (1 - 0.75**2))
        assert not averaged.requires_grad and not torch.equal(averaged, now)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_a_decay_outside_zero_to_one_is_refused(decay):
    with pytest.raises(ValueError, match="decay must lie strictly between 0 and 1"):
        ParameterAverage(random_model(causal=False), decay)
    with pytest.raises(ValueError, match="ema_decay must lie strictly between 0 and 1"):
        TrainConfig(ema_decay=decay)


def test_averaging_leaves_the_run_unchanged_and_selects_on_validation():
    task = make_task("sort")
    plain = train_program(task, None, TINY).result
    averaged = train_program(task, None, TrainConfig(**{**TINY.__dict__, "ema_decay": 0.9}))
    result = averaged.result
    assert result.val_history == plain.val_history  # the same training run
    assert plain.average_val_history == () and plain.selected == "trained"
    assert len(result.average_val_history) == result.epochs_run == 3
    chosen = result.average_val_history if result.selected == "average" else result.val_history
    assert result.val_acc == pytest.approx(chosen[result.best_epoch])
    assert result.val_acc == pytest.approx(max(*result.val_history, *result.average_val_history))


def test_the_average_is_returned_when_it_validates_better(monkeypatch):
    import crystalbox.programs.train as train_module

    made: list[ParameterAverage] = []

    class Recorded(ParameterAverage):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    real_accuracy = train_module.accuracy

    def favour_the_average(model, split, **kwargs):
        if made and model is made[0].model:
            return 100.0
        return real_accuracy(model, split, **kwargs)

    monkeypatch.setattr(train_module, "ParameterAverage", Recorded)
    monkeypatch.setattr(train_module, "accuracy", favour_the_average)
    config = TrainConfig(**{**TINY.__dict__, "ema_decay": 0.5, "stop_patience": None})
    trained = train_program(make_task("hist"), None, config)
    assert trained.result.selected == "average" and trained.result.best_epoch == 2
    for name, value in trained.model.state_dict().items():
        assert torch.equal(value, made[0].model.state_dict()[name]), name


def test_cli_train_records_the_decay_and_refuses_a_bad_one(tmp_path: Path, capsys):
    args = ["programs", "train", "hist", "--epochs", "1", "--n-train", "256", "--quiet"]
    assert main([*args, "--threads", "1", "--ema", "0.9", "--out", str(tmp_path / "h")]) == 0
    assert load_program(tmp_path / "h").train_config["ema_decay"] == 0.9
    assert load_program(tmp_path / "h").result["selected"] in ("trained", "average")
    capsys.readouterr()
    assert main(["programs", "curve", str(tmp_path / "h"), "-o", str(tmp_path / "c.png")]) == 0
    assert "averaged parameters at epoch 0" in capsys.readouterr().out
    assert main([*args, "--ema", "1.5", "--out", str(tmp_path / "bad")]) == 2
    assert "ema_decay must lie strictly between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
