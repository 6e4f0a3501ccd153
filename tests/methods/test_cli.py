"""The methods subcommands, run on a tiny Llama saved to a local folder."""

from __future__ import annotations

import pytest
import torch

from crystalbox.cli.main import main
from crystalbox.methods import ActivationDataset


@pytest.fixture(scope="module")
def tiny_dir(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_llama")
    tiny.hf_model.save_pretrained(path)
    tiny.tokenizer.save_pretrained(path)
    return str(path)


def test_patch_attribute_ablate_patchscope(tiny_dir, tmp_path, capsys):
    assert (
        main(
            [
                "patch",
                "The cat sat",
                "The dog sat",
                "--model",
                tiny_dir,
                "--out",
                str(tmp_path),
                "--html",
            ]
        )
        == 0
    )
    assert (tmp_path / "patch_resid.png").exists() and (tmp_path / "patch_resid.html").exists()
    assert (
        main(
            [
                "attribute",
                "The cat sat",
                "The dog sat",
                "--model",
                tiny_dir,
                "--out",
                str(tmp_path),
                "--compare",
            ]
        )
        == 0
    )
    assert (
        main(["ablate", "The cat sat", "--model", tiny_dir, "--target", "heads", "--heads", "0,1"])
        == 0
    )
    assert main(["patchscope", "The cat sat", "--model", tiny_dir]) == 0
    out = capsys.readouterr().out
    assert (
        "largest effects" in out
        and "vs exact patching" in out
        and "KL" in out
        and "layer   2" in out
    )


def test_steer_and_collect(tiny_dir, tmp_path, capsys):
    assert (
        main(
            ["steer", "Today I feel", "--model", tiny_dir, "--max-new-tokens", "3", "--layer", "1"]
        )
        == 0
    )
    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"text": "hello world"}\n{"text": "a b c"}\n')
    out = tmp_path / "acts"
    assert (
        main(
            [
                "collect",
                "--file",
                str(texts),
                "--model",
                tiny_dir,
                "--out",
                str(out),
                "--layers",
                "0,1",
                "--no-progress",
            ]
        )
        == 0
    )
    data = ActivationDataset(out)
    assert data.layers == (0, 1) and len(data) > 0 and isinstance(data[0], torch.Tensor)
    assert "+vector" in capsys.readouterr().out
    far = ["collect", "--file", str(texts), "--model", tiny_dir, "--positions", "40"]
    assert main([*far, "--out", str(tmp_path / "none"), "--no-progress"]) == 0
    assert "no rows were collected; every text is shorter than positions 40" in (
        capsys.readouterr().err
    )


def test_bad_input_gives_a_message(tiny_dir, capsys):
    assert main(["patch", "The cat sat", "The dog", "--model", tiny_dir]) == 2
    assert "same number of tokens" in capsys.readouterr().err
    assert (
        main(
            ["patch", "The cat sat", "The dog sat", "--model", tiny_dir, "--correct", " mattress-x"]
        )
        == 2
    )
    assert "not a single token" in capsys.readouterr().err
    assert main(["collect", "--model", tiny_dir]) == 2
