"""Head and MLP counts per kind: ``default_program_config``, the grid and the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from crystalbox.cli.main import main
from crystalbox.programs import default_program_config, load_program, make_task, paper_grid
from crystalbox.programs.config import parse_kind_counts, split_kinds


@pytest.mark.parametrize(
    ("text", "expected"), [("4", 4), ("0", 0), ("1+2", (1, 2)), (" 16 + 0 ", (16, 0))]
)
def test_parse_kind_counts(text: str, expected):
    assert parse_kind_counts(text) == expected


@pytest.mark.parametrize("text", ["", "1-2", "1+2+3", "+2", "-1", "two", "1.5", "2²"])
def test_parse_kind_counts_refuses_other_forms(text: str):
    with pytest.raises(ValueError, match=r"N \(split evenly .*\) or CAT\+NUM \(e.g. 1\+2\)"):
        parse_kind_counts(text)


def test_split_kinds_splits_a_total_evenly_and_takes_a_pair_as_is():
    assert [split_kinds(n, "n_heads") for n in (0, 1, 4, 5)] == [(0, 0), (1, 0), (2, 2), (3, 2)]
    assert split_kinds((1, 4), "n_heads") == (1, 4)
    with pytest.raises(ValueError, match="n_mlps must be non-negative, got 1\\+-1"):
        split_kinds((1, -1), "n_mlps")
    with pytest.raises(ValueError, match="n_heads must be non-negative, got -2"):
        split_kinds(-2, "n_heads")
    for bad in ((1, 2, 3), (1.0, 2), "4", True):
        with pytest.raises(TypeError, match="n_heads must be"):
            split_kinds(bad, "n_heads")  # type: ignore[arg-type]


def test_default_program_config_takes_counts_per_kind():
    dyck2 = make_task("dyck2")
    config = default_program_config(dyck2, 4, (1, 2), (2, 1), count_only=True)
    assert config.summary() == "k=16 L=4 H=1+2 M=2+1 count-only"
    assert default_program_config(dyck2, n_heads=8).summary().startswith("k=16 L=3 H=4+4 M=2+2")
    icl = make_task("icl")
    assert default_program_config(icl).summary() == "k=10 L=2 H=1+0 M=0+0"  # the paper's
    assert default_program_config(icl, n_heads=(1, 1)).summary() == "k=10 L=2 H=1+1 M=0+0"


def test_causal_heads_per_kind():
    most_freq = make_task("most_freq")
    # the hand-written rank model's shape: one causal numerical head, no causal categorical one
    rank = default_program_config(most_freq, 4, (1, 4), (1, 2), causal_heads=(0, 1), tables=True)
    assert (rank.n_causal_cat_heads, rank.n_causal_num_heads) == (0, 1)
    assert rank.head_causal("num") == (True, False, False, False)
    both = default_program_config(most_freq, n_heads=4, causal_heads=1)
    assert (both.n_causal_cat_heads, both.n_causal_num_heads) == (1, 1)
    only_cat = default_program_config(most_freq, n_heads=(2, 0), causal_heads=1)
    assert (only_cat.n_causal_cat_heads, only_cat.n_causal_num_heads) == (1, 0)
    with pytest.raises(ValueError, match=r"n_causal_num_heads must be an integer in \[0, n_num"):
        default_program_config(most_freq, n_heads=(2, 0), causal_heads=(0, 1))


def test_grid_takes_pairs_beside_totals():
    configs = paper_grid(make_task("hist"), layers=(1,), heads=(2, (1, 1), (2, 0)), mlps=(2,))
    assert [c.summary() for c in configs] == ["k=8 L=1 H=1+1 M=1+1", "k=8 L=1 H=2+0 M=1+1"]


def test_cli_train_takes_counts_per_kind(tmp_path: Path, capsys):
    out = tmp_path / "shape"
    args = ["programs", "train", "most_freq", "--epochs", "1", "--threads", "1", "--quiet"]
    args += ["--n-train", "256", "--n-val", "64", "--n-test", "64", "--layers", "2"]
    shape = ["--heads", "1+2", "--mlps", "2+1", "--causal-heads", "0+1", "--count-only"]
    assert main([*args, *shape, "--out", str(out)]) == 0
    config = load_program(out).model.config
    assert config.summary() == "k=8 L=2 H=1+2 M=2+1 count-only causal=0+1"
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([*args, "--heads", "1-2", "--out", str(tmp_path / "bad")])
    assert "argument --heads: expected a count per layer" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
