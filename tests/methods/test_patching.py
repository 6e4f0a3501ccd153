from __future__ import annotations

import pytest
import torch

from crystalbox._nnsight import save
from crystalbox.methods import activation_patching, logit_diff
from crystalbox.methods._common import encode

CLEAN = "The cat sat on the mat"
CORRUPT = "The dog sat on the rug"


def test_clean_into_clean_changes_nothing(tiny):
    result = activation_patching(tiny, CLEAN, CLEAN, component="resid")
    assert torch.allclose(
        result.scores, torch.full_like(result.scores, result.clean_score), atol=1e-4
    )


@pytest.mark.parametrize("component", ["resid", "resid_pre", "attn", "mlp", "heads"])
def test_grid_shapes_and_clean_recovery(tiny, component, tmp_path):
    result = activation_patching(tiny, CLEAN, CORRUPT, component=component, batch_size=7)
    n_cols = tiny.num_heads if component == "heads" else 6
    assert result.scores.shape == (tiny.num_layers, n_cols)
    assert torch.isfinite(result.scores).all()
    path = result.plot(tmp_path / f"{component}.png")
    assert path.stat().st_size > 1000


def test_patching_all_positions_recovers_clean_logits(tiny):
    clean, corrupt = encode(tiny, [CLEAN]), encode(tiny, [CORRUPT])
    with torch.no_grad(), tiny.trace(dict(clean)):
        h = save(tiny.layers_output[1])
        clean_logits = save(tiny.logits)
    with torch.no_grad(), tiny.trace(dict(corrupt)):
        tiny.layers_output[1] = h
        patched = save(tiny.logits)
    torch.testing.assert_close(patched, clean_logits, rtol=0, atol=1e-6)
    # the grid's last-position patch of the last layer equals the clean metric
    result = activation_patching(tiny, CLEAN, CORRUPT, positions=[-1], layers=[-1])
    assert result.scores[0, 0].item() == pytest.approx(result.clean_score, abs=1e-4)


def test_custom_metric_and_html(tiny, tmp_path):
    metric = logit_diff(" mat", " rug", tokenizer=tiny.tokenizer)
    result = activation_patching(
        tiny, CLEAN, CORRUPT, metric=metric, layers=[0, 2], positions=[1, -1]
    )
    assert result.scores.shape == (2, 2)
    assert result.columns == (1, 5)
    assert result.plot(tmp_path / "grid.html").read_text().startswith("<!doctype html>")


def test_bad_inputs(tiny):
    with pytest.raises(ValueError, match="same number of tokens"):
        activation_patching(tiny, CLEAN, "The dog")
    with pytest.raises(IndexError, match="out of range"):
        activation_patching(tiny, CLEAN, CORRUPT, positions=[6])
    with pytest.raises(IndexError, match="out of range"):
        activation_patching(tiny, CLEAN, CORRUPT, layers=[7])
    with pytest.raises(ValueError, match="component"):
        activation_patching(tiny, CLEAN, CORRUPT, component="neurons")
    with pytest.raises(ValueError, match="not a single token"):
        logit_diff(" mattress-like", " rug", tokenizer=tiny.tokenizer)
