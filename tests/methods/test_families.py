"""Every method, written once against the standard names, on tiny models of each causal family."""

from __future__ import annotations

import pytest
import torch

from crystalbox.methods import (
    ActivationDataset,
    ablate,
    activation_patching,
    attribution_patching,
    collect_activations,
    logit_lens,
    patchscope_lens,
    steered_next_token_probs,
)

CAUSAL = [
    "llama",
    "gpt2",
    "gpt_neox",
    "opt",
    "bloom",
    "qwen2",
    "mistral",
    "mixtral",
    "gemma2",
    "phi3",
]
CLEAN = "alpha beta gamma delta"
CORRUPT = "alpha beta omega delta"


@pytest.mark.parametrize("family", CAUSAL)
def test_methods_run_on_family(make_tiny, family, tmp_path):
    model = make_tiny(family)
    clean_ids = model.tokenizer(CLEAN)["input_ids"]
    corrupt_ids = model.tokenizer(CORRUPT)["input_ids"]
    if len(clean_ids) != len(corrupt_ids):
        pytest.skip("the synthetic tokenizer splits the pair unevenly")
    same = activation_patching(model, CLEAN, CLEAN, component="resid", positions=[-1, 0])
    assert torch.allclose(same.scores, torch.full_like(same.scores, same.clean_score), atol=1e-4)
    for component in ("attn", "mlp", "heads"):
        grid = activation_patching(model, CLEAN, CORRUPT, component=component, layers=[0])
        assert torch.isfinite(grid.scores).all()
    estimate = attribution_patching(model, CLEAN, CORRUPT)
    assert torch.isfinite(estimate.scores).all()
    zero = ablate(model, [CLEAN, "alpha"], "mlp", 0)
    assert zero.logits.shape == (2, model.vocab_size)
    heads = ablate(model, [CLEAN], "heads", -1, heads=[0])
    assert torch.isfinite(heads.logits).all()
    probs = steered_next_token_probs(model, [CLEAN], torch.ones(model.hidden_size), layers=0)
    assert torch.allclose(probs.sum(-1), torch.ones(1), atol=1e-4)
    lens = logit_lens(model, [CLEAN, "alpha"])
    assert lens.last_probs.shape == (2, model.num_layers, model.vocab_size)
    assert patchscope_lens(model, [CLEAN], layers=[0]).shape == (1, 1, model.vocab_size)
    collect_activations(model, [CLEAN, "alpha", CORRUPT], tmp_path, layers=[0, -1], progress=False)
    data = ActivationDataset(tmp_path)
    assert len(data) == len(clean_ids) * 2 + len(model.tokenizer("alpha")["input_ids"])
