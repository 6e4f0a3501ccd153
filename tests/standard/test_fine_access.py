"""Finer access: residual identities, per-head q/k/v/outputs, cross-attention, stream layouts,
heterogeneous layers, and stack selection by execution; each compared with the raw model."""

from __future__ import annotations

import pytest
import torch

from crystalbox import _nnsight
from crystalbox.errors import RoleUnavailableError

PROMPT = ["hello world", "dlrow olleh"]  # equal lengths: no padding to reconcile


def _encode(model, prompts=PROMPT):
    return model.tokenizer(prompts, return_tensors="pt", padding=True)


def _raw(model, enc, module=None, hook=None, pre=False):
    handle = None
    if module is not None:
        register = module.register_forward_pre_hook if pre else module.register_forward_hook
        handle = register(hook)
    try:
        with torch.no_grad():
            return model.hf_model(**enc).logits
    finally:
        if handle is not None:
            handle.remove()


def _check(report, name):
    check = next(c for c in report.checks if c.name.startswith(name))
    assert check.passed, report.table()
    return check


@pytest.mark.parametrize(
    ("model_type", "kind", "form"),
    [
        pytest.param("llama", "causal", "pre_norm", id="llama"),
        pytest.param("gpt_neox", "causal", "parallel", id="gpt_neox"),
        pytest.param("gemma2", "causal", "pre_norm", id="gemma2-sandwich"),
        pytest.param("bloom", "causal", "pre_norm", id="bloom-residual-inside"),
        pytest.param("t5", "seq2seq", "pre_norm", id="t5-sublayers"),
        pytest.param("jamba", "causal", "pre_norm", id="jamba-hybrid"),
    ],
)
def test_residual_identity_holds(make_tiny, model_type, kind, form):
    model = make_tiny(model_type, kind)
    check = _check(model.validate(), "residual identity")
    assert check.detail.startswith(form)
    # by hand on layer 0: input + every contribution == output
    arch = model.arch
    parts: list[torch.Tensor] = []
    with torch.no_grad(), model.trace(model.validation_inputs()):
        x = _nnsight.save(model.layers_input[0].clone())
        if arch.attention[0] or arch.mixer[0]:
            accessor = model.attentions_output if arch.attention[0] else model.mixers_output
            parts.append(_nnsight.save(accessor[0].clone()))
        if arch.cross_attention[0]:
            parts.append(_nnsight.save(model.cross_attentions_output[0].clone()))
        parts.append(_nnsight.save(model.mlps_output[0].clone()))
        out = _nnsight.save(model.layers_output[0])
    torch.testing.assert_close(x + sum(parts), out, rtol=1e-5, atol=1e-5)


def test_post_norm_families_declare_it(make_tiny):
    check = _check(make_tiny("bert", "masked").validate(), "residual identity")
    assert "not applicable" in check.detail


@pytest.mark.parametrize("model_type", ["mistral", "gpt2", "gpt_neox", "phi3"])
def test_per_head_tensors_are_views_of_the_raw_projections(make_tiny, model_type):
    model = make_tiny(model_type)
    layout = model._head_layouts[0]
    enc = _encode(model)
    with torch.no_grad(), model.trace(dict(enc)):
        q = _nnsight.save(model.attention_queries[0].clone())
        k = _nnsight.save(model.attention_keys[0].clone())
        v = _nnsight.save(model.attention_values[0].clone())
        z = _nnsight.save(model.attention_heads_output[0].clone())
    batch, pos = enc["input_ids"].shape
    assert q.shape == (batch, pos, layout.heads, layout.head_dim)
    assert k.shape == v.shape == (batch, pos, layout.kv_heads, layout.head_dim)
    # the raw model's own projections, split by hand
    attention = model.hf_model.get_submodule(model.arch.layers)[0].get_submodule(
        model.arch.attention[0]
    )
    grabbed = {}
    projection = attention.get_submodule(layout.q)
    out_proj = attention.get_submodule(layout.out)
    h1 = projection.register_forward_hook(lambda _m, _i, o: grabbed.setdefault("qkv", o))
    h2 = out_proj.register_forward_pre_hook(lambda _m, a: grabbed.setdefault("z", a[0]))
    try:
        with torch.no_grad():
            model.hf_model(**enc)
    finally:
        h1.remove()
        h2.remove()
    hd, h, kv = layout.head_dim, layout.heads, layout.kv_heads
    if layout.fused == "interleaved":
        per = grabbed["qkv"].reshape(batch, pos, h, 3, hd)
        expected = (per[..., 0, :], per[..., 1, :], per[..., 2, :])
    elif layout.fused == "concat":
        raw = grabbed["qkv"]
        expected = (
            raw[..., : h * hd].reshape(batch, pos, h, hd),
            raw[..., h * hd : (h + kv) * hd].reshape(batch, pos, kv, hd),
            raw[..., (h + kv) * hd :].reshape(batch, pos, kv, hd),
        )
    else:
        expected = (grabbed["qkv"].reshape(batch, pos, h, hd), k, v)
    for got, want in zip((q, k, v), expected, strict=True):
        assert torch.equal(got, want)
    assert torch.equal(z, grabbed["z"].reshape(batch, pos, h, hd))


def test_grouped_query_heads_are_validated(make_tiny):
    model = make_tiny("mistral")
    layout = model._head_layouts[0]
    assert layout.kv_heads < layout.heads  # the tiny llama uses grouped-query attention
    _check(model.validate(), "per-head outputs == probs @ values")


def test_zeroing_one_head_equals_a_raw_hook(make_tiny):
    model = make_tiny("llama")
    layout = model._head_layouts[1]
    enc = _encode(model)
    head, hd = 2, layout.head_dim
    with torch.no_grad(), model.trace(dict(enc)):
        model.attention_heads_output[1][:, :, head] = 0
        edited = _nnsight.save(model.logits)

    def zero_head(_module, args):
        z = args[0].clone()
        z[..., head * hd : (head + 1) * hd] = 0
        return (z, *args[1:])

    o_proj = model.hf_model.model.layers[1].self_attn.o_proj
    assert torch.equal(edited, _raw(model, enc, o_proj, zero_head, pre=True))


def test_assigning_per_head_values_checks_the_shape(make_tiny):
    model = make_tiny("llama")
    shape = r"\[batch, pos, heads, head_dim\]"
    with pytest.raises(ValueError, match=shape), model.trace(dict(_encode(model))):
        model.attention_values[0] = torch.zeros(1, 2, 3)


def test_sequence_first_streams_are_transposed_both_ways(make_tiny):
    model = make_tiny("xlnet")
    enc = _encode(model)
    batch, pos = enc["input_ids"].shape
    with torch.no_grad(), model.trace(dict(enc)):
        first = _nnsight.save(model.layers_output[0].clone())
        model.layers_output[0][:, 1] = 0
        edited = _nnsight.save(model.logits)
    assert first.shape == (batch, pos, model.hidden_size)

    def zero_position(_module, _args, output):
        hidden = output[0].clone()  # XLNet layers return [pos, batch, d_model]
        hidden[1] = 0
        return (hidden, *output[1:])

    layer = model.hf_model.get_submodule(model.arch.layers)[0]
    assert torch.equal(edited, _raw(model, enc, layer, zero_position))


def test_cross_attention_is_a_role_of_decoder_layers(make_tiny):
    model = make_tiny("bart", "seq2seq")
    assert all(model.arch.cross_attention)
    with torch.no_grad(), model.trace(model.validation_inputs()):
        out = _nnsight.save(model.cross_attentions_output[0])
    assert out.shape[-1] == model.hidden_size


def test_a_layer_without_attention_says_so(make_tiny):
    model = make_tiny("jamba")
    mixer_layer = next(i for i, kind in enumerate(model.layer_kinds()) if "attention" not in kind)
    with pytest.raises(RoleUnavailableError, match=f"layer {mixer_layer} has no attention"):
        model.attentions_output[mixer_layer]
    with pytest.raises(RoleUnavailableError):
        model.attention_probabilities[mixer_layer]
    with torch.no_grad(), model.trace(model.validation_inputs()):
        mixed = _nnsight.save(model.mixers_output[mixer_layer])
    assert mixed.shape[-1] == model.hidden_size


def test_sink_attention_is_declared_and_checked(make_tiny):
    model = make_tiny("gpt_oss")
    assert model.arch.spec.attention_sinks
    _check(model.validate(), "attention rows sum to <= 1 (sinks)")


def test_multimodal_models_standardize_the_text_stack(make_tiny):
    model = make_tiny("qwen2_audio", "seq2seq")
    assert "language_model" in model.arch.layers
    assert model.validate().ok


def test_a_failed_trace_leaves_no_probe_armed(make_tiny):
    model = make_tiny("llama")
    with pytest.raises(RuntimeError), torch.no_grad(), model.trace(dict(_encode(model))):
        model.layers_output[0] = torch.zeros(3)  # layer 1 fails before its attention runs
        model.attention_probabilities[1]
    assert not any(p is not None and p.armed for p in model._probes)
    enc = _encode(model)
    with torch.no_grad(), model.trace(dict(enc)):
        logits = _nnsight.save(model.logits)
    assert torch.equal(logits, _raw(model, enc))


@pytest.mark.parametrize("model_type", ["bart", "t5"])
def test_encoder_layers_are_standardized_too(make_tiny, model_type):
    model = make_tiny(model_type, "seq2seq")
    encoder = model.encoder_stack
    assert encoder is not None and encoder.num_layers >= 1
    assert "encoder" in encoder.arch.layers
    report = model.validate()
    for name in ("encoder layer shapes", "encoder layer i output", "encoder residual identity"):
        _check(report, name)
    inputs = model.validation_inputs()
    with torch.no_grad(), model.trace(dict(inputs)):
        encoder.layers_output[0][:, 0] = 0
        edited = _nnsight.save(model.logits)

    def zero_first(_module, _args, output):
        hidden = (output[0] if isinstance(output, tuple) else output).clone()
        hidden[:, 0] = 0
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    layer = model.hf_model.get_submodule(encoder.arch.layers)[0]
    handle = layer.register_forward_hook(zero_first)
    try:
        with torch.no_grad():
            raw = model.hf_model(**inputs).logits
    finally:
        handle.remove()
    assert torch.equal(edited, raw)


@pytest.mark.parametrize(
    ("model_type", "kind"),
    [
        pytest.param("gptj", "causal", id="gptj-own-softmax"),
        pytest.param("bloom", "causal", id="bloom-own-softmax"),
        pytest.param("xglm", "causal", id="xglm-heads-in-batch"),
        pytest.param("t5", "seq2seq", id="t5"),
    ],
)
def test_probabilities_of_modules_with_their_own_softmax(make_tiny, model_type, kind):
    model = make_tiny(model_type, kind)
    assert model.attention_probabilities.available(0)
    _check(model.validate(), "attention write changes logits")
    inputs = model.validation_inputs()
    with torch.no_grad(), model.trace(dict(inputs)):
        probs = _nnsight.save(model.attention_probabilities[0])
        plain = _nnsight.save(model.logits)
    assert probs.dim() == 4
    torch.testing.assert_close(probs.sum(-1), torch.ones_like(probs.sum(-1)))
    # armed without a write, the model computes the same (an sdpa model runs that one layer's
    # eager attention then, which rounds differently)
    with torch.no_grad():
        raw = model.hf_model(**inputs).logits
    torch.testing.assert_close(plain, raw, rtol=0, atol=1e-5)
    # a write is what the module computes with: doubling every weight doubles the attention
    # output before its projection, which changes the logits
    with torch.no_grad(), model.trace(dict(inputs)):
        model.attention_probabilities[0] = model.attention_probabilities[0] * 2
        doubled = _nnsight.save(model.logits)
    assert not torch.equal(doubled, raw)
    with torch.no_grad(), model.trace(dict(inputs)):
        model.attention_probabilities[0] = model.attention_probabilities[0] * 1
        same = _nnsight.save(model.logits)
    torch.testing.assert_close(same, raw, rtol=0, atol=1e-5)


def test_resid_mid_is_what_the_mlp_norm_reads(make_tiny):
    model = make_tiny("llama")
    norm = model.hf_model.model.layers[1].post_attention_layernorm
    seen = []
    handle = norm.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    try:
        with torch.no_grad(), model.trace(dict(_encode(model))):
            mid = _nnsight.save(model.resid_mid(1))
    finally:
        handle.remove()
    torch.testing.assert_close(mid, seen[0], rtol=1e-6, atol=1e-6)
    with pytest.raises(RoleUnavailableError, match="parallel"):
        make_tiny("gpt_neox").resid_mid(0)  # refused before any trace is needed
