"""The real embedded model: conversion, cache, and known facts about SmolLM2-135M."""

from __future__ import annotations

import json

import pytest
import torch

from crystalbox import StandardizedTransformer, _nnsight, default_model, gguf
from crystalbox.methods.lens import logit_lens

pytestmark = pytest.mark.slow


def test_capital_of_france_is_paris(smollm):
    with torch.no_grad(), smollm.trace("The capital of France is"):
        probs = _nnsight.save(smollm.next_token_probs)
    top = probs[0].topk(2)
    assert smollm.tokenizer.decode([int(top.indices[0])]) == " Paris"
    assert abs(float(top.values[0]) - 0.7725) < 0.01


def test_structure_of_smollm(smollm):
    assert (smollm.num_layers, smollm.hidden_size, smollm.num_heads, smollm.vocab_size) == (
        30,
        576,
        9,
        49152,
    )
    assert smollm.arch.source == "registered" and smollm.arch.ln_final == "model.norm"


def test_validation_of_the_real_model_passes(smollm):
    report = smollm.validate()
    assert report.ok, report.table()
    assert "attention write changes logits" in {c.name for c in report.checks}


def test_lens_finds_paris_only_at_the_last_layer(smollm):
    result = logit_lens(smollm, "The capital of France is", targets=[" Paris"])
    assert result.target_ranks is not None
    ranks = result.target_ranks[0, :, 0].tolist()
    assert ranks[-1] == 1 and all(r > 1 for r in ranks[:-1])
    # the last layer's lens is the model's own next-token distribution
    with torch.no_grad(), smollm.trace("The capital of France is"):
        probs = _nnsight.save(smollm.next_token_probs)
    assert torch.allclose(result.last_probs[0, -1], probs[0], atol=1e-6)


def test_conversion_is_atomic(tmp_path, monkeypatch):
    """A crash mid-conversion leaves nothing that later loads; a rerun completes."""
    monkeypatch.setenv("CRYSTALBOX_CACHE", str(tmp_path))
    import transformers

    original = transformers.PreTrainedModel.save_pretrained

    def crash(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(transformers.PreTrainedModel, "save_pretrained", crash)
    with pytest.raises(KeyboardInterrupt):
        default_model.default_model_path(progress=False)
    models = tmp_path / "models"
    assert not (models / default_model.DEFAULT_MODEL).exists()
    assert list(models.iterdir()) == []  # the staging folder was removed too
    monkeypatch.setattr(transformers.PreTrainedModel, "save_pretrained", original)
    path = default_model.default_model_path(progress=False)
    marker = json.loads((path / "crystalbox-conversion.json").read_text())
    assert (path / "model.safetensors").is_file() and marker["seconds"] > 0


def test_a_gguf_file_loads_through_its_own_cached_conversion(tmp_path, monkeypatch, smollm):
    """Any .gguf path converts once into the cache and then reads like the default model (the
    same file here, under another name, so the same weights)."""
    monkeypatch.setenv("CRYSTALBOX_CACHE", str(tmp_path / "cache"))
    link = tmp_path / "my-model.gguf"
    link.symlink_to(default_model.gguf_path())
    model = StandardizedTransformer(link)
    converted = list((tmp_path / "cache" / "models").iterdir())
    # named after the file itself (the link resolved)
    assert [folder.name.startswith("gguf-SmolLM2-135M-Instruct") for folder in converted] == [True]
    with torch.no_grad(), model.trace("The capital of France is"):
        probs = _nnsight.save(model.next_token_probs)
    with torch.no_grad(), smollm.trace("The capital of France is"):
        reference = _nnsight.save(smollm.next_token_probs)
    assert torch.equal(probs, reference)

    def no_conversion(*args, **kwargs):
        raise AssertionError("the cached folder should have been used")

    monkeypatch.setattr(gguf, "convert_gguf", no_conversion)
    assert StandardizedTransformer(link).num_layers == 30
