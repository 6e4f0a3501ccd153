"""Training curves of Transformer Programs: the temperature per epoch, the plot, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from crystalbox.cli.main import main
from crystalbox.plotting.training import epoch_temperatures, training_curve
from crystalbox.programs.checkpoint import save_program
from crystalbox.programs.samplers import TemperatureSchedule


def test_epoch_temperatures_follow_the_per_batch_schedule():
    steps_per_epoch, epochs = 32, 10
    schedule = TemperatureSchedule(3.0, 0.01, steps_per_epoch * epochs)
    taus = epoch_temperatures(3.0, 0.01, epochs, epochs)
    # the end of epoch e is step (e + 1) * steps_per_epoch, within one batch of the schedule
    for e, tau in enumerate(taus):
        assert schedule((e + 1) * steps_per_epoch - 1) == pytest.approx(tau, rel=0.03)
    assert taus[-1] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="positive temperatures"):
        epoch_temperatures(0.0, 0.01, 10, 10)


def test_training_curve_writes_png_and_html(tmp_path: Path):
    history = [50.0, 70.0, 90.0, 85.0]
    png = training_curve(
        history,
        temperatures=[3.0, 1.0, 0.3, 0.1],
        best_epoch=2,
        title="t",
        path=tmp_path / "a" / "curve.png",
    )
    assert png.read_bytes().startswith(b"\x89PNG")
    html = training_curve(history, title="t", path=tmp_path / "curve.html").read_text()
    assert "epoch 2: accuracy 90" in html
    with pytest.raises(ValueError, match="one per epoch"):
        training_curve(history, temperatures=[1.0], title="t", path=tmp_path / "x.png")
    with pytest.raises(ValueError, match="no validation history"):
        training_curve([], title="t", path=tmp_path / "x.png")


def test_training_curve_draws_the_averaged_parameters_and_marks_the_selected_one(tmp_path: Path):
    history, averaged = [50.0, 70.0, 80.0], [52.0, 75.0, 79.0]
    png = training_curve(
        history,
        average_history=averaged,
        selected="average",
        best_epoch=1,
        title="t",
        path=tmp_path / "curve.png",
    )
    assert png.read_bytes().startswith(b"\x89PNG")
    html = training_curve(history, average_history=averaged, title="t", path=tmp_path / "c.html")
    assert "averaged parameters (%)" in html.read_text()
    with pytest.raises(ValueError, match="2 averaged accuracies for 3 epochs"):
        training_curve(history, average_history=[1.0, 2.0], title="t", path=tmp_path / "x.png")


def test_cli_curve_plots_a_checkpoint(trained_hist, tmp_path: Path, capsys):
    checkpoint = save_program(trained_hist, tmp_path / "hist")
    out = tmp_path / "curve.png"
    assert main(["programs", "curve", str(checkpoint), "-o", str(out)]) == 0
    history = trained_hist.result.val_history
    peak = max(range(len(history)), key=history.__getitem__)
    assert f"{len(history)} epochs, validation peaks at epoch {peak}" in capsys.readouterr().out
    assert out.stat().st_size > 1000
    assert main(["programs", "curve", str(tmp_path / "nope"), "-o", str(out)]) == 2
