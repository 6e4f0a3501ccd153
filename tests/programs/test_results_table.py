"""The benchmark's results table (``bench/bench_programs.py``): rows are chosen on validation,
never on test, and a row aggregates one series of runs only."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from crystalbox.programs import default_program_config, make_task

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_programs.py"
FOUR_LAYER = "k=16 L=4 H=1+2 M=2+1 count-only"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_programs_under_test", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(seed: int, val: float, test: float, config: str, **extra: Any) -> dict[str, Any]:
    return {
        "task": "dyck2",
        "seed": seed,
        "epochs": 250,
        "epochs_run": 150,
        "sampler": "gumbel_soft",
        "plateau_patience": 40,
        "config": config,
        "val_acc": val,
        "test_acc": test,
        "wall_s": 500.0,
        "ms_per_step": 130.0,
        **extra,
    }


def _row(table: str, label: str) -> list[str]:
    """The cells of the row labelled ``label``: label, config, sampler, epochs, seeds,
    best-val seed's val / test, test mean ± std, wall s, ms/step, paper, ..."""
    rows = [line for line in table.splitlines() if line.startswith(f"| {label} |")]
    assert len(rows) == 1, table
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def test_the_best_validation_run_picks_the_row_not_the_best_test(bench: ModuleType):
    published = default_program_config(make_task("dyck2")).summary()
    runs = [
        _run(0, 98.0, 97.9, published),
        _run(0, 99.15, 98.75, FOUR_LAYER),
        _run(1, 98.99, 98.90, FOUR_LAYER, compile=True),  # higher test, lower validation
    ]
    table = bench.table(runs)
    assert _row(table, "dyck2")[5] == "98.00 / 97.90"  # the published configuration's own row
    extension = _row(table, "dyck2 (count-only, beyond the grid)")
    assert extension[1] == FOUR_LAYER
    assert extension[4] == "1"  # the compiled run is another series
    assert extension[5] == "99.15 / 98.75"
    assert "compiled" not in extension[2]


def test_compiled_runs_form_their_own_series(bench: ModuleType):
    runs = [
        _run(0, 99.15, 98.75, FOUR_LAYER),
        _run(1, 97.0, 96.8, FOUR_LAYER),
        _run(0, 99.2, 98.2, FOUR_LAYER, compile=True, wall_s=400.0),
        _run(1, 96.0, 96.2, FOUR_LAYER, compile=True, wall_s=600.0),
        _run(2, 98.0, 97.0, FOUR_LAYER, compile=True, wall_s=500.0),
    ]
    row = _row(bench.table(runs), "dyck2 (count-only, beyond the grid)")
    assert row[2] == "gumbel_soft, patience 40, compiled kernels"
    assert row[4] == "3"
    assert row[5] == "99.20 / 98.20"
    assert row[6] == "97.13 ± 1.01"  # the three compiled runs' test accuracies only
    assert row[7] == "500"
    assert bench._series(runs[0]) == bench._series(runs[1]) != bench._series(runs[2])


@pytest.mark.parametrize(
    ("option", "value", "label"),
    [
        ("ordered_below", 0.3, "ordered matching below τ 0.3"),
        ("identity_prior", 1.0, "identity prior 1"),
    ],
    ids=["ordered-matching", "identity-prior"],
)
def test_a_training_option_forms_its_own_series(
    bench: ModuleType, option: str, value: float, label: str
):
    runs = [
        _run(0, 99.15, 98.75, FOUR_LAYER),
        _run(1, 97.0, 96.8, FOUR_LAYER, **{option: 0.0}),  # recorded as off: the same series
        _run(0, 99.3, 98.0, FOUR_LAYER, **{option: value}),
        _run(1, 96.0, 96.2, FOUR_LAYER, **{option: value}),
    ]
    assert bench._series(runs[0]) == bench._series(runs[1]) != bench._series(runs[2])
    row = _row(bench.table(runs), "dyck2 (count-only, beyond the grid)")
    assert row[2] == f"gumbel_soft, patience 40, {label}"
    assert (row[4], row[5], row[6]) == ("2", "99.30 / 98.00", "97.10 ± 1.27")


def test_a_task_never_run_says_so(bench: ModuleType):
    assert _row(bench.table([]), "reverse")[5] == "not run"
