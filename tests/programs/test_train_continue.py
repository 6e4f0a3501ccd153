"""Stopping on a validation plateau, and training on from a checkpoint (``--start``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from crystalbox.cli.main import main
from crystalbox.programs.checkpoint import load_program, save_program
from crystalbox.programs.tasks import make_task
from crystalbox.programs.train import TrainConfig, train_program

from .conftest import QUICK

#: the data of the ``trained_hist`` fixture, as ``programs train`` options
QUICK_DATA = ["--n-train", str(QUICK.n_train), "--n-val", str(QUICK.n_val)]
QUICK_DATA += ["--n-test", str(QUICK.n_test), "--data-seed", str(QUICK.data_seed)]


def test_training_stops_on_a_validation_plateau(monkeypatch):
    import crystalbox.programs.train as train_module

    scores = iter([50.0, 40.0, 50.0, 45.0, 45.0, 45.0, 45.0])
    monkeypatch.setattr(train_module, "accuracy", lambda *args, **kwargs: next(scores, 45.0))
    config = dataclasses.replace(
        QUICK, epochs=10, n_train=128, n_val=32, n_test=32, stop_patience=None, plateau_patience=3
    )
    result = train_program(make_task("hist"), None, config).result
    # epoch 2 reaches the best again (ties count), then three epochs without it
    assert result.val_history == (50.0, 40.0, 50.0, 45.0, 45.0, 45.0)
    assert result.best_epoch == 2 and result.epochs_run == 6


def test_plateau_patience_must_be_positive():
    with pytest.raises(ValueError, match="plateau_patience must be positive or None, got 0"):
        TrainConfig(plateau_patience=0)


def test_cli_patience_reaches_the_checkpoint(tmp_path: Path):
    out = tmp_path / "hist"
    args = ["programs", "train", "hist", "--epochs", "1", "--n-train", "512", "--quiet"]
    assert main([*args, "--patience", "7", "--threads", "1", "--out", str(out)]) == 0
    assert load_program(out).train_config["plateau_patience"] == 7


@pytest.fixture
def start_folder(trained_hist, tmp_path: Path) -> Path:
    return save_program(trained_hist, tmp_path / "start")


def test_cli_trains_on_from_a_checkpoint(start_folder: Path, tmp_path: Path, capsys):
    out = tmp_path / "again"
    still = ["--lr", "1e-9", "--tau-start", "0.01", "--epochs", "1", "--threads", "1"]
    args = ["programs", "train", "hist", *QUICK_DATA, *still, "--quiet"]
    assert main([*args, "--start", str(start_folder), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    start = load_program(start_folder)
    assert lines[-1] == (
        f"started from {start_folder}: val {start.result['val_acc']:.2f}  "
        f"test {start.result['test_acc']:.2f}"
    )
    again = load_program(out)
    assert again.model.config == start.model.config
    assert again.result["start"]["checkpoint"] == str(start_folder)
    assert again.result["start"]["val_acc"] == start.result["val_acc"]
    weights, before = again.model.state_dict(), start.model.state_dict()
    for name, tensor in before.items():  # a learning rate of 1e-9 leaves the start's weights
        assert torch.allclose(weights[name], tensor, atol=1e-6), name
    assert again.result["val_acc"] == pytest.approx(start.result["val_acc"], abs=1.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--layers", "2", "--tables"], "so --layers, --tables cannot apply; drop them"),
        (["--init", "reference"], "so --init cannot apply"),
        (["--data-seed", "1"], "was trained on other data (data_seed differ)"),
        (["--n-train", "512"], "(n_train differ): its examples would fall into the new"),
        (["--max-len", "6"], "holds a model of task 'hist' (vocabulary size 8, length 8)"),
    ],
    ids=["model-options", "init", "data-seed", "n-train", "other-length"],
)
def test_cli_start_refuses_what_does_not_fit_before_training(
    start_folder: Path, tmp_path: Path, capsys, options, message
):
    out = tmp_path / "x"
    args = ["programs", "train", "hist", "--start", str(start_folder), "--out", str(out)]
    # a later option wins over the same option in QUICK_DATA
    assert main([*args, *QUICK_DATA, *options, "--epochs", "1"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_cli_start_of_another_task_or_no_checkpoint_is_refused(
    start_folder: Path, tmp_path: Path, capsys
):
    args = ["programs", "train", "sort", "--epochs", "1", "--out", str(tmp_path / "x")]
    assert main([*args, "--start", str(start_folder)]) == 2
    assert "holds a model of task 'hist'" in capsys.readouterr().err
    assert main([*args, "--start", str(tmp_path / "missing")]) == 2
    assert "is not a programs checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
