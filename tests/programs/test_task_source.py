"""User tasks named by FILE.py:NAME / module:NAME: loading, recording in checkpoints, the CLI."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from crystalbox.cli.main import main
from crystalbox.programs.checkpoint import checkpoint_data, load_program, save_program
from crystalbox.programs.task_source import is_task_reference, load_task, with_source
from crystalbox.programs.tasks import Task
from crystalbox.programs.train import TrainConfig, default_program_config, train_program

TASK_FILE = """
from crystalbox.programs.tasks import custom_task


def _prefix_max(rng):
    n = int(rng.integers(1, 8))
    xs = [str(int(v)) for v in rng.integers(0, 4, n)]
    return ["<s>", *xs], [None, *[max(xs[: i + 1]) for i in range(n)]]


prefix_max = custom_task("prefix_max", _prefix_max, "0123", "0123", 8, causal=True)


def make_prefix_max():
    return prefix_max


not_a_task = 3
"""
SPLITS = ["--n-train", "600", "--n-val", "150", "--n-test", "150"]


@pytest.fixture
def task_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_tasks.py"
    path.write_text(TASK_FILE)
    return path


def test_a_built_in_name_is_a_built_in_task():
    assert not is_task_reference("hist") and is_task_reference("tasks.py:hist")
    task = load_task("hist", vocab_size=6, max_len=5)
    assert task.name == "hist" and task.max_len == 5 and len(task.input_vocab) == 6


def test_a_file_reference_loads_a_task_or_calls_a_factory(task_file: Path):
    task = load_task(f"{task_file}:prefix_max")
    assert isinstance(task, Task) and task.name == "prefix_max" and task.causal
    assert load_task(f"{task_file}:make_prefix_max").input_vocab == task.input_vocab


def test_a_module_reference_imports_the_module(task_file: Path, monkeypatch):
    monkeypatch.syspath_prepend(str(task_file.parent))
    monkeypatch.delitem(sys.modules, "my_tasks", raising=False)
    assert load_task("my_tasks:prefix_max").name == "prefix_max"


def test_a_module_reference_finds_a_module_in_the_working_folder(task_file: Path, monkeypatch):
    monkeypatch.chdir(task_file.parent)  # not on sys.path, as under the `crystalbox` script
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(task_file.parent))])
    monkeypatch.delitem(sys.modules, "my_tasks", raising=False)
    assert load_task("my_tasks:prefix_max").name == "prefix_max"
    assert str(task_file.parent) not in sys.path  # only while importing
    with pytest.raises(ValueError, match="cannot import module 'my_taskz'"):
        load_task("my_taskz:prefix_max")


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("nope", ValueError, "has no 'nope'; the tasks defined there: prefix_max"),
        ("not_a_task", TypeError, "is a int, not a Task"),
        ("", ValueError, "is not FILE.py:NAME or module:NAME"),
    ],
    ids=["missing-name", "not-a-task", "no-name"],
)
def test_bad_references_say_what_is_wrong(task_file: Path, name, error, message):
    with pytest.raises(error, match=message):
        load_task(f"{task_file}:{name}")


def test_missing_files_modules_and_broken_files_are_clear_errors(tmp_path: Path):
    with pytest.raises(ValueError, match="does not exist"):
        load_task(f"{tmp_path / 'absent.py'}:task")
    with pytest.raises(ValueError, match="cannot import module 'no_such_module_here'"):
        load_task("no_such_module_here:task")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ValueError, match=r"importing .*broken\.py failed: RuntimeError: boom"):
        load_task(f"{broken}:task")


def test_sizes_apply_to_built_in_tasks_only(task_file: Path):
    with pytest.raises(ValueError, match="apply to the built-in tasks"):
        load_task(f"{task_file}:prefix_max", max_len=5)


def test_a_recorded_source_is_absolute(task_file: Path, monkeypatch):
    monkeypatch.chdir(task_file.parent)
    task = with_source(load_task("my_tasks.py:prefix_max"), "my_tasks.py:prefix_max")
    assert task.settings == {"custom": True, "source": f"{task_file}:prefix_max"}


def test_checkpoint_data_of_a_user_task(task_file: Path, tmp_path: Path):
    task = load_task(f"{task_file}:prefix_max")
    config = TrainConfig(epochs=1, n_train=300, n_val=60, n_test=60, progress=False)
    trained = train_program(task, default_program_config(task, n_layers=1), config)
    loaded = load_program(save_program(trained, tmp_path / "plain"))
    with pytest.raises(ValueError, match=r"does not record where it is defined.*--task FILE"):
        checkpoint_data(loaded.task, loaded.train_config)
    data = checkpoint_data(loaded.task, loaded.train_config, task=task)
    assert len(data.test) == 60
    recorded = dataclasses.replace(trained, task=with_source(task, f"{task_file}:prefix_max"))
    loaded = load_program(save_program(recorded, tmp_path / "recorded"))
    assert (checkpoint_data(loaded.task, loaded.train_config).test.inputs == data.test.inputs).all()


def test_cli_trains_evaluates_and_decompiles_a_user_task(task_file: Path, tmp_path: Path, capsys):
    out = tmp_path / "ckpt"
    args = ["programs", "train", f"{task_file}:prefix_max", "--epochs", "2", "--layers", "1"]
    assert main([*args, *SPLITS, "--quiet", "--threads", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["programs", "eval", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "prefix_max" and report["examples"] == 150
    program = tmp_path / "program.py"
    assert main(["programs", "decompile", str(out), "-o", str(program)]) == 0
    assert "100.000%" in capsys.readouterr().out and program.is_file()
    moved = task_file.rename(tmp_path / "moved.py")
    assert main(["programs", "eval", str(out)]) == 2
    assert "does not load now" in capsys.readouterr().err
    assert main(["programs", "eval", str(out), "--task", f"{moved}:make_prefix_max"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == report["accuracy"]
    assert main(["programs", "verify", str(out), "--task", f"{moved}:prefix_max"]) == 0
    assert main(["programs", "eval", str(out), "--task", "hist"]) == 2
    assert "is not the checkpoint's task 'prefix_max'" in capsys.readouterr().err


def test_a_user_task_with_its_source_trains_in_grid_workers(task_file: Path):
    from crystalbox.programs.grid import paper_grid, run_grid

    task = with_source(load_task(f"{task_file}:prefix_max"), f"{task_file}:prefix_max")
    config = TrainConfig(epochs=1, n_train=300, n_val=60, n_test=60, progress=False)
    configs = paper_grid(task, layers=(1,), heads=(2,), mlps=(2,))
    grid = run_grid(task, configs, seeds=(0, 1), train_config=config, processes=2)
    assert len(grid.runs) == 2 and grid.best.task is task


def test_cli_grid_keeps_the_best_validation_run(task_file: Path, tmp_path: Path, capsys):
    out = tmp_path / "best"
    args = ["programs", "grid", f"{task_file}:prefix_max", "--seeds", "0", "1", "--layers", "1"]
    args += ["--heads", "2", "4", "--mlps", "2", "--epochs", "2", "--processes", "1", "--quiet"]
    runs = tmp_path / "runs.json"
    assert main([*args, *SPLITS, "--out", str(out), "--json", str(runs)]) == 0
    table = capsys.readouterr().out
    record = json.loads(runs.read_text())
    assert [(r["seed"], r["summary"].split(" M=")[0]) for r in record["runs"]] == [
        (0, "k=8 L=1 H=1+1"),
        (1, "k=8 L=1 H=1+1"),
        (0, "k=8 L=1 H=2+2"),
        (1, "k=8 L=1 H=2+2"),
    ]
    rows = [line for line in table.splitlines() if line.startswith("| k=")]
    assert len(rows) == 2 and sum("**best**" in row for row in rows) == 1
    best_val = max(float(row.split("|")[3].split()[0]) for row in rows)
    assert load_program(out).result["val_acc"] == pytest.approx(best_val, abs=0.01)
    assert main([*args, *SPLITS, "--processes", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--processes must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["prefix_max", "make_parity"])
def test_the_example_user_tasks_load_and_make_full_splits(name):
    from crystalbox.programs.data import make_data

    task = load_task(str(Path(__file__).parents[2] / "examples" / f"user_tasks.py:{name}"))
    data = make_data(task, 0)  # the CLI's default split sizes
    assert (len(data.train), len(data.val), len(data.test)) == (16000, 2000, 2000)
