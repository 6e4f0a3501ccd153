"""The generated coverage matrix: rendering round-trips, and no passing architecture regresses."""

from __future__ import annotations

from pathlib import Path

import pytest

from crystalbox.coverage import passing_in, run_matrix, write_markdown

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "coverage.md"


def test_matrix_rows_and_markdown_round_trip(tmp_path):
    rows = run_matrix(["causal"], only=["llama", "gpt2", "gemma4_assistant"], progress=False)
    by_type = {r.model_type: r for r in rows}
    assert by_type["llama"].status == "pass" and by_type["gpt2"].status == "pass"
    assert (
        by_type["gemma4_assistant"].status == "not-instantiable"
        and by_type["gemma4_assistant"].detail
    )  # listed with its reason
    path = write_markdown(rows, tmp_path / "coverage.md", seconds=1.0)
    assert passing_in(path) == {("causal", "llama"), ("causal", "gpt2")}
    assert "| causal | 2 / 2 instantiable |" in path.read_text()


@pytest.mark.slow
def test_no_architecture_that_passed_regresses():
    """Every architecture marked ``pass`` in the committed docs/coverage.md still passes."""
    expected = passing_in(COMMITTED)
    assert len(expected) > 100, (
        "docs/coverage.md looks truncated; regenerate it with `crystalbox coverage`"
    )
    rows = run_matrix(sorted({kind for kind, _ in expected}), progress=False)
    now = {(r.kind, r.model_type) for r in rows if r.status == "pass"}
    regressed = sorted(expected - now)
    details = {(r.kind, r.model_type): f"{r.status}: {r.detail}" for r in rows}
    assert not regressed, "\n".join(
        f"{k}/{m}: {details.get((k, m), 'missing')}" for k, m in regressed
    )
