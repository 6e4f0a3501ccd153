from __future__ import annotations

import pytest
import torch

from crystalbox.methods import (
    activation_patching,
    attribution_patching,
    compare_patching,
    logit_diff,
)

CLEAN = "The cat sat on the mat"
CORRUPT = "The dog sat on the rug"


@pytest.mark.parametrize("component", ["resid", "attn", "mlp", "heads"])
def test_attribution_grid_matches_exact_grid_layout(tiny, component):
    estimate = attribution_patching(tiny, CLEAN, CORRUPT, component=component)
    exact = activation_patching(tiny, CLEAN, CORRUPT, component=component)
    assert estimate.scores.shape == exact.scores.shape
    assert estimate.columns == exact.columns and estimate.method == "attribution"
    assert estimate.corrupted_score == pytest.approx(exact.corrupted_score, abs=1e-4)
    comparison = compare_patching(exact, estimate)
    assert -1.0 <= comparison.pearson <= 1.0


def test_attribution_of_identical_prompts_is_zero(tiny):
    estimate = attribution_patching(
        tiny, CLEAN, CLEAN, metric=logit_diff(" mat", " rug", tiny.tokenizer)
    )
    assert torch.allclose(estimate.effect, torch.zeros_like(estimate.effect), atol=1e-6)


@pytest.mark.slow
def test_attribution_agrees_with_exact_on_the_real_model(smollm):
    metric = logit_diff(" Paris", " Rome", smollm.tokenizer)
    clean, corrupt = "The capital of France is", "The capital of Italy is"
    exact = activation_patching(smollm, clean, corrupt, metric=metric)
    estimate = attribution_patching(smollm, clean, corrupt, metric=metric)
    comparison = compare_patching(exact, estimate)
    print(f"\nattribution vs exact (resid, {tuple(exact.scores.shape)}): {comparison}")
    assert exact.clean_score > 0 > exact.corrupted_score
    assert comparison.pearson > 0.7
    assert comparison.sign_agreement > 0.7
    # the patched subject position recovers most of the gap early on
    assert exact.normalized()[0, 3] > 0.9
