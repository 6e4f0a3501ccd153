"""Standardized view == raw HuggingFace model, and accessor writes == hand-written hooks."""

from __future__ import annotations

import pytest
import torch

from crystalbox import _nnsight
from tests.conftest import FOUNDATION_FAMILIES

FAMILIES = [pytest.param(mt, kind, id=mt) for mt, kind in FOUNDATION_FAMILIES]
PROMPTS = ["hello world", "a b"]


def _raw_logits(model, prompts, hook_module=None, hook=None):
    enc = model.tokenizer(prompts, return_tensors="pt", padding=True)
    handle = hook_module.register_forward_hook(hook) if hook_module is not None else None
    try:
        with torch.no_grad():
            return model.hf_model(**enc).logits
    finally:
        if handle is not None:
            handle.remove()


@pytest.mark.parametrize(("model_type", "kind"), FAMILIES)
def test_full_validation_passes(make_tiny, model_type, kind):
    report = make_tiny(model_type, kind).validate()
    assert report.ok, report.table()
    names = {c.name for c in report.checks}
    assert {"logits == raw HF logits", "layer i output feeds layer i+1", "layer shapes"} <= names


@pytest.mark.parametrize(("model_type", "kind"), FAMILIES)
def test_logits_equal_raw_on_padded_batch(make_tiny, model_type, kind):
    model = make_tiny(model_type, kind)
    enc = model.tokenizer(PROMPTS, return_tensors="pt", padding=True)
    received = {}

    def capture(_module, _args, kwargs):
        received.update(kwargs)

    handle = model.hf_model.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        with torch.no_grad(), model.trace(dict(enc)):
            logits = _nnsight.save(model.logits)
    finally:
        handle.remove()
    # nnsight may add position_ids for a left-padded batch; the raw model gets the same inputs
    with torch.no_grad():
        raw = model.hf_model(**received).logits
    assert torch.equal(received["input_ids"], enc["input_ids"])
    assert (logits - raw).abs().max().item() == 0.0


@pytest.mark.parametrize(("model_type", "kind"), FAMILIES)
def test_zeroing_a_layer_equals_a_raw_hook(make_tiny, model_type, kind):
    model = make_tiny(model_type, kind)
    layer = model.hf_model.get_submodule(model.arch.layers)[0]

    def zero(_module, _inputs, output):
        if isinstance(output, tuple):
            return (torch.zeros_like(output[0]), *output[1:])
        return torch.zeros_like(output)

    expected = _raw_logits(model, PROMPTS[:1], layer, zero)
    with torch.no_grad(), model.trace(PROMPTS[:1]):
        model.layers_output[0] = torch.zeros_like(model.layers_output[0])
        logits = _nnsight.save(model.logits)
    assert torch.equal(logits, expected)
    assert not torch.equal(logits, _raw_logits(model, PROMPTS[:1]))


@pytest.mark.parametrize(("model_type", "kind"), FAMILIES)
def test_steer_equals_adding_in_a_raw_hook(make_tiny, model_type, kind):
    model = make_tiny(model_type, kind)
    vector = torch.linspace(-1, 1, model.hidden_size)
    layer = model.hf_model.get_submodule(model.arch.layers)[-1]

    def add(_module, _inputs, output):
        if isinstance(output, tuple):
            return (output[0] + 2.0 * vector, *output[1:])
        return output + 2.0 * vector

    expected = _raw_logits(model, PROMPTS[:1], layer, add)
    with torch.no_grad(), model.trace(PROMPTS[:1]):
        model.steer(model.num_layers - 1, vector, factor=2.0)
        logits = _nnsight.save(model.logits)
    assert torch.allclose(logits, expected, atol=1e-5)


@pytest.mark.parametrize(("model_type", "kind"), FAMILIES)
def test_skip_layer_passes_its_input_through(make_tiny, model_type, kind):
    model = make_tiny(model_type, kind)
    layer = model.hf_model.get_submodule(model.arch.layers)[0]
    captured = {}

    def remember(_module, args, kwargs):
        captured["input"] = kwargs.get("hidden_states", args[0] if args else None)

    def replace(_module, _inputs, output):
        return (captured["input"], *output[1:]) if isinstance(output, tuple) else captured["input"]

    handle = layer.register_forward_pre_hook(remember, with_kwargs=True)
    try:
        expected = _raw_logits(model, PROMPTS[:1], layer, replace)
    finally:
        handle.remove()
    with torch.no_grad(), model.trace(PROMPTS[:1]):
        model.skip_layer(0)
        logits = _nnsight.save(model.logits)
    assert torch.equal(logits, expected)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_attention_probabilities_for_eager_and_sdpa_models(make_tiny, attn):
    model = make_tiny("llama", "causal", attn)
    enc = model.tokenizer(PROMPTS[:1], return_tensors="pt")
    with torch.no_grad(), model.trace(PROMPTS[:1]):
        probs = _nnsight.save(model.attention_probabilities[1])
        logits = _nnsight.save(model.logits)
    raw = _raw_logits(model, PROMPTS[:1])
    seq = enc["input_ids"].shape[1]
    assert probs.shape == (1, model.num_heads, seq, seq)
    assert torch.allclose(probs.sum(-1), torch.ones(1, model.num_heads, seq), atol=1e-5)
    assert probs.triu(1).abs().max().item() == 0.0  # causal
    # reading runs the model's eager path for that layer: equal to sdpa up to float error
    assert torch.allclose(logits, raw, atol=1e-4)
    # the next plain trace is bit-identical again (the probe is one-shot)
    with torch.no_grad(), model.trace(PROMPTS[:1]):
        again = _nnsight.save(model.logits)
    assert torch.equal(again, raw)


def test_attention_write_equals_recomputing_with_those_probabilities(make_tiny):
    model = make_tiny("llama", "causal", "eager")
    seq = len("hello world")
    uniform = torch.tril(torch.ones(seq, seq))
    uniform = (uniform / uniform.sum(-1, keepdim=True)).expand(1, model.num_heads, seq, seq)
    attention = model.hf_model.get_submodule(model.arch.layers)[0].self_attn
    captured = {}

    def grab_value(_module, _args, output):
        captured["v"] = output

    handle = attention.v_proj.register_forward_hook(grab_value)
    with torch.no_grad(), model.trace(["hello world"]):
        model.attention_probabilities[0] = uniform
        attn_out = _nnsight.save(model.attentions_output[0])
    handle.remove()
    values = captured["v"].view(1, seq, -1, attention.head_dim).transpose(1, 2)
    values = values.repeat_interleave(model.num_heads // values.shape[1], dim=1)
    mixed = (uniform @ values).transpose(1, 2).reshape(1, seq, -1)
    assert torch.allclose(attn_out, attention.o_proj(mixed), atol=1e-6)


@pytest.mark.parametrize("side", ["left", "right"])
def test_next_token_probs_follow_the_attention_mask(make_tiny, side):
    model = make_tiny("llama", "causal")
    singles = []
    for prompt in PROMPTS:
        with torch.no_grad(), model.trace([prompt]):
            singles.append(_nnsight.save(model.next_token_probs))
    model.tokenizer.padding_side = side
    try:
        with torch.no_grad(), model.trace(PROMPTS):
            batched = _nnsight.save(model.next_token_probs)
    finally:
        model.tokenizer.padding_side = "left"
    for row, single in enumerate(singles):
        assert torch.allclose(batched[row], single[0], atol=1e-5)


def test_layer_outputs_feed_the_next_layer_and_mlp_accessors_resolve(make_tiny):
    model = make_tiny("mixtral", "causal")
    with torch.no_grad(), model.trace(PROMPTS[:1]):
        out0 = _nnsight.save(model.layers_output[0])
        in1 = _nnsight.save(model.layers_input[1])
        router = _nnsight.save(model.routers_output[1])
    assert torch.equal(out0, in1)
    assert router.shape[-1] == model.hf_model.config.num_local_experts


def test_project_on_vocab_of_last_layer_equals_logits(make_tiny):
    model = make_tiny("llama", "causal")
    with torch.no_grad(), model.trace(PROMPTS[:1]):
        hidden = _nnsight.save(model.layers_output[-1])
        logits = _nnsight.save(model.logits)
    with torch.no_grad():
        assert torch.allclose(model.project_on_vocab(hidden), logits, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_validation_passes_in_half_precision(model_type, dtype):
    """The numerical checks allow the dtype's rounding (4 eps), so a half-precision model
    validates; the tolerance stays 1e-4 in float32."""
    from crystalbox import StandardizedTransformer
    from crystalbox.synthetic_tokenizer import synthetic_tokenizer
    from crystalbox.testbed.build import build_tiny_model
    from crystalbox.validation import tolerance

    tiny = build_tiny_model(model_type, "causal")
    model = StandardizedTransformer(
        tiny.model.to(dtype), tokenizer=synthetic_tokenizer(tiny.config.vocab_size)
    )
    report = model.validate()
    assert report.ok, report.table()
    assert tolerance(model) == pytest.approx(4 * torch.finfo(dtype).eps)
    assert "tolerance" in next(c.detail for c in report.checks if c.name == "residual identity")


def test_validation_tolerance_in_float32_is_1e_4(make_tiny):
    from crystalbox.validation import tolerance

    assert tolerance(make_tiny("llama")) == 1e-4
