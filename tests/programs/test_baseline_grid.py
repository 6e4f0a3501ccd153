"""The standard-transformer baseline and the seed/config grid (tiny, fast)."""

from __future__ import annotations

import json
import subprocess
import sys

from crystalbox.programs import (
    TrainConfig,
    make_task,
    paper_grid,
    run_grid,
    train_baseline,
)

TINY = TrainConfig(
    epochs=2, batch_size=64, n_train=128, n_val=32, n_test=32, compile=False, progress=False
)


def test_baseline_trains_and_reports():
    model, result = train_baseline(make_task("dyck1"), train_config=TINY)
    assert 0.0 <= result.test_acc <= 100.0 and len(result.val_history) == 2
    assert model.config.causal


def test_cli_baseline_reports_and_writes_json(tmp_path, capsys):
    from crystalbox.cli.main import main

    args = ["programs", "baseline", "dyck1", "--epochs", "2", "--quiet", "--threads", "1"]
    args += ["--n-train", "128", "--n-val", "32", "--n-test", "32", "--batch-size", "64"]
    assert main([*args, "--json", str(tmp_path / "base.json")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "dyck1" and report["config"]["causal"] and report["epochs_run"] == 2
    assert 0.0 <= report["test_acc"] <= 100.0 and report["parameters"] > 0
    assert json.loads((tmp_path / "base.json").read_text()) == report
    assert main([*args, "--heads", "5"]) == 2
    assert "d_model 64 must be divisible by n_heads 5" in capsys.readouterr().err


def test_grid_selects_on_validation():
    task = make_task("hist")
    configs = paper_grid(task, layers=(1,), heads=(2,), mlps=(0, 2))
    assert [(c.n_cat_mlps, c.n_num_mlps) for c in configs] == [(0, 0), (1, 1)]
    repeated = paper_grid(task, layers=(1, 1), heads=(2,), mlps=(2,), tables=True)
    assert len(repeated) == 1 and repeated[0].num_mlp_tables and repeated[0].count_only
    grid = run_grid(task, configs, seeds=(0, 1), train_config=TINY, processes=1)
    assert len(grid.runs) == 4
    assert grid.best.result.val_acc == max(result.val_acc for _, result in grid.runs)


def test_grid_runs_in_worker_processes():
    # the workers send back the model and result only: a task's local generator cannot pickle
    task = make_task("hist")
    configs = paper_grid(task, layers=(1,), heads=(2,), mlps=(2,))
    grid = run_grid(task, configs, seeds=(0, 1), train_config=TINY, processes=2)
    serial = run_grid(task, configs, seeds=(0, 1), train_config=TINY, processes=1)
    assert [r.val_acc for _, r in grid.runs] == [r.val_acc for _, r in serial.runs]
    assert grid.best.task is task and grid.best.result.seed == serial.best.result.seed


def test_importing_programs_does_not_import_nnsight_or_transformers():
    code = "import sys, crystalbox.programs; print('nnsight' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
