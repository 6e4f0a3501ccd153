"""The ``crystalbox`` command line on a tiny saved model (fast) and on the default model (slow)."""

from __future__ import annotations

import pytest

from crystalbox.cli.main import main


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory, make_tiny):
    folder = tmp_path_factory.mktemp("tiny-llama")
    model = make_tiny("llama")
    model.hf_model.save_pretrained(folder)
    model.tokenizer.save_pretrained(folder)
    return folder


def test_info_prints_the_standard_structure(tiny_folder, capsys):
    assert main(["info", "--model", str(tiny_folder)]) == 0
    out = capsys.readouterr().out
    assert "model.layers" in out and "ln_final        model.norm" in out


def test_validate_exits_zero_and_prints_a_table(tiny_folder, capsys):
    assert main(["validate", "--model", str(tiny_folder)]) == 0
    assert "logits == raw HF logits" in capsys.readouterr().out


def test_lens_writes_a_heatmap(tiny_folder, tmp_path, capsys):
    assert main(["lens", "hello world", "--model", str(tiny_folder), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "logit_lens.png").stat().st_size > 1000
    assert "logit lens of 'hello world'" in capsys.readouterr().out


def test_bad_model_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    assert main(["info", "--model", str(tmp_path)]) == 2
    assert "config.json" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_on_the_default_model(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "validation of llama: PASS" in out and "' Paris'" in out
    assert (tmp_path / "logit_lens.png").is_file()


def test_an_empty_lens_prompt_is_a_one_line_error(capsys):
    assert main(["lens", "   "]) == 2  # checked before any model loads
    assert capsys.readouterr().err.strip().startswith("crystalbox lens: error: the prompt is empty")
