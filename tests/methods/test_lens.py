from __future__ import annotations

import pytest
import torch

from crystalbox._nnsight import save
from crystalbox.methods import Prompt, get_first_tokens, logit_lens, run_prompts
from crystalbox.methods._common import encode

PROMPTS = ["The cat sat on the mat", "Hi", "One two three"]
FAMILIES = ["llama", "gpt2", "bloom", "gemma2"]


def _own_probs(model, side):
    inputs = encode(model, PROMPTS, side=side)
    with torch.no_grad(), model.trace(dict(inputs)):
        probs = save(model.next_token_probs)
    return probs


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("family", FAMILIES)
def test_last_layer_lens_is_the_models_distribution(make_tiny, family, side):
    model = make_tiny(family)
    result = logit_lens(model, PROMPTS, padding_side=side)
    torch.testing.assert_close(result.last_probs[:, -1], _own_probs(model, side), rtol=0, atol=1e-5)
    assert result.top_ids.shape[:2] == (3, model.num_layers)


def test_positions_layers_targets_and_plots(tiny, tmp_path):
    full = logit_lens(tiny, PROMPTS, targets=[" mat"], k=3)
    last = logit_lens(tiny, PROMPTS, targets=[" mat"], k=3, positions="last", layers=[0, -1])
    assert last.top_ids.shape == (3, 2, 1, 3)
    torch.testing.assert_close(last.last_probs, full.last_probs[:, [0, 2]])
    assert full.tokens[1] == (tiny.tokenizer.decode(tiny.tokenizer("Hi")["input_ids"]),)
    # top-1 at the last real token of every prompt matches last_probs
    for r, toks in enumerate(full.tokens):
        assert int(full.top_ids[r, -1, len(toks) - 1, 0]) == int(full.last_probs[r, -1].argmax())
    ranks = full.target_ranks[:, :, 0]
    assert (ranks >= 1).all()
    assert "layer" in full.table(0) and len(full.top_strings[0][0]) == 6
    assert full.plot(tmp_path / "lens.png").stat().st_size > 1000
    assert full.plot_targets(tmp_path / "curve.png").stat().st_size > 1000
    assert "<svg" in full.plot(tmp_path / "lens.html").read_text()
    with pytest.raises(ValueError, match="not a single token"):
        logit_lens(tiny, PROMPTS, targets=[" mattress-like"])
    with pytest.raises(ValueError, match="non-empty"):
        logit_lens(tiny, ["ok", ""])


def test_prompts_with_targets(tiny, tmp_path):
    tok = tiny.tokenizer
    ids = get_first_tokens(["Paris", " Paris"], tok)
    assert ids[0] == tok("Paris")["input_ids"][0] and tok(" Paris")["input_ids"][0] in ids
    p1 = Prompt.from_strings("The capital of France is", {"fr": "Paris", "it": "Rome"}, tok)
    p2 = Prompt.from_strings("The cat sat on the", {"fr": "mat"}, tok)
    with pytest.raises(ValueError, match="share the token"):
        Prompt.from_strings("x", {"a": "Paris", "b": " Paris"}, tok)
    final = run_prompts(tiny, [p1, p2], batch_size=1)
    assert final.probs["fr"].shape == (2,) and torch.isnan(final.probs["it"][1])
    inputs = encode(tiny, [p1.prompt])
    with torch.no_grad(), tiny.trace(dict(inputs)):
        own = save(tiny.next_token_probs)
    assert float(final.probs["fr"][0]) == pytest.approx(
        float(own[0, list(p1.target_tokens["fr"])].sum()), abs=1e-6
    )
    curves = run_prompts(tiny, [p1, p2], per_layer=True)
    assert curves.probs["fr"].shape == (2, tiny.num_layers)
    assert float(curves.probs["fr"][0, -1]) == pytest.approx(float(final.probs["fr"][0]), abs=1e-5)
    assert curves.plot(tmp_path / "curves.html").exists()


def test_attention_pattern_plot(tiny, tmp_path):
    from crystalbox.methods import attention_pattern

    pattern = attention_pattern(tiny, "The cat sat", 1)
    n = len(pattern.tokens)
    assert pattern.probs.shape == (tiny.num_heads, n, n)
    torch.testing.assert_close(
        pattern.probs.sum(-1), torch.ones(tiny.num_heads, n), rtol=0, atol=1e-5
    )
    assert pattern.plot(tmp_path / "attn.png", head=2).stat().st_size > 1000
    with pytest.raises(IndexError, match="head 9"):
        pattern.plot(tmp_path / "x.png", head=9)
