from __future__ import annotations

import pytest
import torch

from crystalbox._nnsight import save
from crystalbox.methods import (
    Ablation,
    SteeringVector,
    ablate,
    contrastive_steering_vector,
    run_with_ablations,
    steered_generate,
    steered_next_token_probs,
)
from crystalbox.methods._common import encode

PROMPTS = ["The cat sat on the mat", "Hello there"]


def _hf_last_logits(model, texts, hook_module=None, hook=None):
    inputs = encode(model, texts)
    handle = hook_module.register_forward_hook(hook) if hook_module is not None else None
    try:
        with torch.no_grad():
            logits = model.hf_model(**inputs).logits
    finally:
        if handle is not None:
            handle.remove()
    last = inputs["attention_mask"].shape[1] - 1  # left padding: the last column is real
    return logits[:, last]


def test_zero_mlp_equals_removing_its_output_by_hand(tiny):
    mlp = tiny.hf_model.model.layers[1].mlp
    expected = _hf_last_logits(tiny, PROMPTS, mlp, lambda _m, _i, out: torch.zeros_like(out))
    result = ablate(tiny, PROMPTS, "mlp", 1)
    torch.testing.assert_close(result.logits, expected, rtol=0, atol=1e-5)
    assert (result.kl() > 0).all()


def test_zero_layer_equals_skip_layer(tiny):
    inputs = encode(tiny, PROMPTS)
    with torch.no_grad(), tiny.trace(dict(inputs)):
        tiny.skip_layer(1)
        skipped = save(tiny.logits)
    result = ablate(tiny, PROMPTS, "layer", 1)
    torch.testing.assert_close(result.logits, skipped[:, -1], rtol=0, atol=1e-5)


def test_zero_head_equals_subtracting_its_projection_by_hand(tiny):
    attn = tiny.hf_model.model.layers[0].self_attn
    hd = 16
    captured = {}

    def grab(_module, args):
        captured["z"] = args[0].detach().clone()

    def remove_head(_module, _inputs, out):
        z = captured["z"][..., 2 * hd : 3 * hd]  # head 2, [batch, pos, hd]
        w = attn.o_proj.weight[:, 2 * hd : 3 * hd]  # [d_model, hd]
        return (out[0] - z @ w.T, *out[1:])

    h1 = attn.o_proj.register_forward_pre_hook(grab)
    try:
        expected = _hf_last_logits(tiny, PROMPTS, attn, remove_head)
    finally:
        h1.remove()
    result = ablate(tiny, PROMPTS, "heads", 0, heads=[2])
    torch.testing.assert_close(result.logits, expected, rtol=0, atol=1e-5)


def test_mean_and_resample_ablations(tiny):
    ref = ["A dog ran in the park", "One two three four five six"]
    mean = ablate(tiny, PROMPTS[:1], "attn", [0, 2], kind="mean", reference=ref)
    res = ablate(tiny, PROMPTS[:1], "attn", [0, 2], kind="resample", reference=ref)
    assert mean.logits.shape == res.logits.shape == (1, tiny.vocab_size)
    assert not torch.allclose(mean.logits, mean.baseline_logits)
    # resampling from the prompt itself reproduces the clean run
    same = ablate(tiny, PROMPTS[:1], "layer", 1, kind="resample", reference=PROMPTS[:1])
    torch.testing.assert_close(same.logits, same.baseline_logits, rtol=0, atol=1e-5)
    mixed = run_with_ablations(
        tiny,
        PROMPTS,
        [Ablation("layer", 2), Ablation("heads", 1, heads=(0, 3)), Ablation("mlp", 1, "mean")],
    )
    assert torch.isfinite(mixed.logits).all()


def test_ablation_bad_input(tiny):
    with pytest.raises(ValueError, match="kind"):
        Ablation("attn", 0, "noise")  # type: ignore[arg-type]
    with pytest.raises(IndexError, match="head 9"):
        ablate(tiny, PROMPTS, "heads", 0, heads=[9])
    with pytest.raises(ValueError, match="same token count"):
        ablate(tiny, PROMPTS, "mlp", 0, kind="resample", reference=["short"])


def test_steering_trace_and_factor_zero(tiny):
    v = torch.randn(tiny.hidden_size) * 4
    base = steered_next_token_probs(tiny, PROMPTS, v, layers=0, factor=0.0)
    steered = steered_next_token_probs(tiny, PROMPTS, v, layers=[0, 1], positions=[-1])
    assert base.shape == steered.shape == (2, tiny.vocab_size)
    assert not torch.allclose(base, steered)
    inputs = encode(tiny, PROMPTS)
    with torch.no_grad(), tiny.trace(dict(inputs)):
        plain = save(tiny.next_token_probs)
    torch.testing.assert_close(base, plain, rtol=0, atol=1e-6)
    with pytest.raises(IndexError, match="out of range"):
        steered_next_token_probs(tiny, PROMPTS, v, layers=0, positions=[99])
    with pytest.raises(ValueError, match="d_model"):
        steered_next_token_probs(tiny, PROMPTS, torch.zeros(3), layers=0)


def test_contrastive_vector_and_generation(tiny):
    vec = contrastive_steering_vector(
        tiny, ["I love it", "great and happy"], ["I hate it", "awful and sad"], layers=[0, 1]
    )
    assert isinstance(vec, SteeringVector) and vec.vectors.shape == (2, tiny.hidden_size)
    plain = steered_generate(tiny, PROMPTS, vec, factor=0.0, max_new_tokens=4)
    ref = tiny.hf_model.generate(
        **encode(tiny, PROMPTS, side="left"),
        max_new_tokens=4,
        min_new_tokens=4,
        do_sample=False,
        pad_token_id=tiny.tokenizer.pad_token_id,
    )
    expected = [tiny.tokenizer.decode(r[-4:]) for r in ref.tolist()]
    assert plain == expected
    steered = steered_generate(tiny, PROMPTS, vec, factor=50.0, max_new_tokens=4)
    assert steered != plain
    once = steered_generate(tiny, PROMPTS, vec, factor=50.0, max_new_tokens=4, when="prompt")
    assert len(once) == 2
