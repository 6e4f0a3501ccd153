"""Architectures that need more than paths: composite configs with mixed attention
implementations, heads that read more than the last layer, layers without a block module."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import CONFIG_MAPPING

from crystalbox import _nnsight
from crystalbox.errors import RoleUnavailableError
from crystalbox.testbed.build import build_tiny_model

# Inkling 2 Loop is new in transformers 5.24 (5.23 is still allowed)
_NEEDS_LOOP = pytest.mark.skipif(
    "inkling2_loop_text" not in CONFIG_MAPPING, reason="needs transformers >= 5.24"
)


def _raw_logits(model, inputs, module, hook):
    """Logits of the raw HF model with ``hook`` as a forward hook on ``module``."""
    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            return model.hf_model(**inputs).logits
    finally:
        handle.remove()


def _check(report, name):
    check = next(c for c in report.checks if c.name.startswith(name))
    assert check.passed, report.table()
    return check


def test_composite_configs_keep_each_attention_implementation(make_tiny):
    """got-OCR2: an eager composite config over an sdpa text model; the probes must not switch
    the text model to eager (that changed its logits by rounding)."""
    model = make_tiny("got_ocr2")
    report = model.validate()
    assert report.ok, report.table()
    fresh = build_tiny_model("got_ocr2", "causal").config
    for config, original in (
        (model.hf_model.config, fresh),
        (model.hf_model.config.text_config, fresh.text_config),
    ):
        assert config._attn_implementation.removeprefix("crystalbox_") == (
            original._attn_implementation
        )
    assert model.attention_probabilities.available(0)


@pytest.mark.parametrize(
    "model_type",
    [
        pytest.param("inkling2_text", id="inkling2-block-residual-head"),
        pytest.param("hrm_text", id="hrm-recurrent"),
        pytest.param("inkling2_loop_text", id="inkling2-looped", marks=_NEEDS_LOOP),
    ],
)
def test_a_head_that_reads_more_than_the_last_layer_is_declared(make_tiny, model_type):
    model = make_tiny(model_type)
    assert not model.arch.spec.head_reads_last_layer
    report = model.validate()
    assert report.ok, report.table()
    check = _check(report, "project_on_vocab")
    assert check.detail.startswith("not applicable")
    # the lens is still the norm and head applied to the last layer's output
    with torch.no_grad(), model.trace(dict(model.validation_inputs())):
        lens = _nnsight.save(model.project_on_vocab(model.layers_output[-1]))
    assert lens.dim() == 3 and lens.shape[-1] >= model.vocab_size


@_NEEDS_LOOP
def test_a_looped_layer_is_read_and_written_at_its_first_pass(make_tiny):
    """Inkling 2 Loop runs its loop layers several times per forward (the tiny model: layer 1,
    twice); its accessors are the first call, and a write there is what a raw hook on that
    first call does."""
    model = make_tiny("inkling2_loop_text")
    layer = model.hf_model.model.layers[1]
    inputs = dict(model.validation_inputs())
    passes: list[torch.Tensor] = []

    def record(_module, _args, output):
        passes.append(output[0] if isinstance(output, tuple) else output)

    _raw_logits(model, inputs, layer, record)
    assert len(passes) == 2
    with torch.no_grad(), model.trace(inputs):
        first = _nnsight.save(model.layers_output[1])
    assert torch.equal(first, passes[0])
    assert not torch.equal(first, passes[1])
    calls = iter(range(2))

    def halve_first(_module, _args, output):
        return output * 0.5 if next(calls) == 0 else output

    expected = _raw_logits(model, inputs, layer, halve_first)
    with torch.no_grad(), model.trace(inputs):
        model.layers_output[1] = model.layers_output[1] * 0.5
        halved = _nnsight.save(model.logits)
    assert torch.equal(halved, expected)


def test_a_head_named_like_an_nnsight_attribute_is_still_lm_head(make_tiny):
    """GIT's head is a top-level child called ``output`` (nnsight keeps it at ``E_output``)."""
    model = make_tiny("git")
    assert model.arch.lm_head == "output"
    report = model.validate()
    assert report.ok, report.table()
    assert model.lm_head._module is model.hf_model.get_submodule("output")
    with torch.no_grad(), model.trace(dict(model.validation_inputs())):
        logits = _nnsight.save(model.lm_head.output)
        final = _nnsight.save(model.logits)
    assert torch.equal(logits, final)


def test_a_functional_unembedding_is_declared_and_applied(make_tiny):
    """NeoMME multiplies the final states by ``unembedding_projection.weight`` before its head,
    without calling the module; project_on_vocab applies the declared weight the same way."""
    model = make_tiny("neomme", "masked")
    assert model.arch.spec.pre_head_weights == ("unembedding_projection",)
    report = model.validate()
    assert report.ok, report.table()
    with torch.no_grad(), model.trace(dict(model.validation_inputs())):
        lens = _nnsight.save(model.project_on_vocab(model.layers_output[-1]))
        logits = _nnsight.save(model.logits)
    assert torch.equal(lens, logits)


@pytest.mark.parametrize(
    ("model_type", "kind"),
    [
        pytest.param("xlm", "masked", id="xlm-masked"),
        pytest.param("xlm", "causal", id="xlm-causal"),
        pytest.param("flaubert", "masked", id="flaubert"),
    ],
)
def test_layers_without_block_modules_are_declared(make_tiny, model_type, kind):
    """XLM / FlauBERT keep each layer's sub-layers in parallel lists: a layer's stream enters at
    attentions[i] and leaves at layer_norm2[i]; writes there are what raw hooks do."""
    model = make_tiny(model_type, kind)
    assert model.arch.stream_path(0, "output") == "transformer.layer_norm2.0"
    assert model.arch.path_in(0, model.arch.mlp[0]) == "transformer.ffns.0"
    report = model.validate()
    assert report.ok, report.table()
    inputs = dict(model.validation_inputs())
    norm = model.hf_model.transformer.layer_norm2[0]
    expected = _raw_logits(model, inputs, norm, lambda _m, _a, out: out * 0.5)
    with torch.no_grad(), model.trace(inputs):
        model.layers_output[0] = model.layers_output[0] * 0.5
        halved = _nnsight.save(model.logits)
    assert torch.equal(halved, expected)
    with pytest.raises(RoleUnavailableError, match="read-only"), model.trace(inputs):
        model.layers_input[1] = model.layers_input[1] * 0
    assert "layer_norm2" in model.info()


def test_channels_first_layers_called_by_forward_are_declared(make_tiny):
    """SqueezeBERT calls ``layer.forward`` directly (no layer hook fires) and passes
    ``[batch, d_model, pos]``: the stream is read at the attention's input and the output
    block's output, transposed to ``[batch, pos, d_model]`` both ways."""
    model = make_tiny("squeezebert", "masked")
    assert model.active_layers == (0, 1)
    report = model.validate()
    assert report.ok, report.table()
    assert {"steer == adding in a raw hook", "skip_layer == passing the input through"} <= {
        c.name for c in report.checks
    }
    inputs = dict(model.validation_inputs())
    block = model.hf_model.transformer.encoder.layers[0].output

    def zero_first_position(_module, _args, out):
        out = out.clone()
        out[:, :, 0] = 0  # channels-first: position is the last axis
        return out

    expected = _raw_logits(model, inputs, block, zero_first_position)
    with torch.no_grad(), model.trace(inputs):
        hidden = _nnsight.save(model.layers_output[0])
        edited = model.layers_output[0].clone()
        edited[:, 0] = 0
        model.layers_output[0] = edited
        logits = _nnsight.save(model.logits)
    assert hidden.shape == (*inputs["input_ids"].shape, model.hidden_size)
    assert torch.equal(logits, expected)


@pytest.mark.parametrize(
    ("model_type", "kind"),
    [pytest.param("xlnet", "causal", id="xlnet"), pytest.param("fsmt", "seq2seq", id="fsmt")],
)
def test_sequence_first_streams_get_the_method_checks(make_tiny, model_type, kind):
    report = make_tiny(model_type, kind).validate()
    assert report.ok, report.table()
    assert "steer == adding in a raw hook" in {c.name for c in report.checks}


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_reversible_two_stream_layers_expose_one_declared_stream(make_tiny, kind):
    """Reformer's layers carry two streams (a namedtuple output); the standard stream is
    ``hidden_states`` (X2 -> Y2), entering at the attention, and writes keep the namedtuple."""
    model = make_tiny("reformer", kind)
    assert model.arch.spec.residual == "custom" and not model.arch.spec.head_reads_last_layer
    report = model.validate()
    assert report.ok, report.table()
    inputs = dict(model.validation_inputs())
    layer = model.hf_model.get_submodule(model.arch.layers)[0]
    seen = []
    handle = layer.register_forward_hook(lambda _m, _a, out: seen.append(out))
    try:
        with torch.no_grad(), model.trace(inputs):
            hidden = _nnsight.save(model.layers_output[0])
            model.layers_output[0] = model.layers_output[0] * 0.5
            logits = _nnsight.save(model.logits)
    finally:
        handle.remove()
    assert type(seen[0]).__name__ == "ReformerOutput"  # still a namedtuple after the write
    assert torch.equal(seen[0].hidden_states, hidden * 0.5)
    assert not torch.equal(logits, model.hf_model(**inputs).logits)


def test_latent_layers_are_standardized_over_the_latents(make_tiny):
    """Perceiver: the layers run over learned latents, not tokens; the residual identity holds
    with the attention's output projection as its contribution."""
    model = make_tiny("perceiver", "masked")
    assert model.arch.spec.positions == "other"
    report = model.validate()
    assert report.ok, report.table()
    assert _check(report, "residual identity").detail.startswith("pre_norm")
    with torch.no_grad(), model.trace(dict(model.validation_inputs())):
        tokens = _nnsight.save(model.token_embeddings)  # reads follow the model's call order
        latents = _nnsight.save(model.layers_output[0])
    assert latents.shape[1] == model.hf_model.config.num_latents
    assert tokens.shape[1] == model.validation_inputs()["input_ids"].shape[1]


def test_pooling_encoders_standardize_the_full_length_decoder(make_tiny):
    """Funnel pools the sequence between encoder blocks; the standard layers are the decoder's,
    which run at full length into the head (project_on_vocab of the last equals the logits)."""
    model = make_tiny("funnel", "masked")
    assert model.arch.layers == "funnel.decoder.layers"
    report = model.validate()
    assert report.ok, report.table()
    assert _check(report, "project_on_vocab").detail == "max abs diff 0"


def test_shared_layers_are_one_standard_layer_per_call(make_tiny):
    """ALBERT runs one layer group at every depth: standard layer i is the group's i-th call,
    and reads and writes bind to that call (raw hooks count calls to do the same)."""
    model = make_tiny("albert", "masked")
    assert model.arch.layer_calls == ((0, 0), (0, 1)) and model.num_layers == 2
    report = model.validate()
    assert report.ok, report.table()
    assert _check(report, "per-head outputs").detail.startswith("2 layers")
    inputs = dict(model.validation_inputs())
    group = model.hf_model.get_submodule(model.arch.layers)[0]
    outputs = []
    raw = _raw_logits(model, inputs, group, lambda _m, _a, out: outputs.append(out))

    def halve_second_call(_m, _a, out, calls=[]):  # noqa: B006 - counts this run's calls
        calls.append(1)
        return out * 0.5 if len(calls) == 2 else out

    expected = _raw_logits(model, inputs, group, halve_second_call)
    with torch.no_grad(), model.trace(inputs):
        first = _nnsight.save(model.layers_output[0])
        second = _nnsight.save(model.layers_output[1].clone())
        model.layers_output[1] = model.layers_output[1] * 0.5
        logits = _nnsight.save(model.logits)
    assert torch.equal(first, outputs[0]) and torch.equal(second, outputs[1])
    assert torch.equal(logits, expected) and not torch.equal(logits, raw)


@pytest.mark.parametrize(
    "model_type",
    [pytest.param(m, id=m) for m in ("deepseek_v32", "glm_moe_dsa", "axk2", "dots3_note_text")],
)
def test_code_that_branches_on_the_attention_name_keeps_its_path(make_tiny, model_type):
    """Sparse-indexer attention adds its index mask only `if _attn_implementation in ("eager",
    "sdpa")`: the crystalbox name compares equal to the original, so the probed model takes
    the same path (bit-identical) and probabilities are available."""
    model = make_tiny(model_type)
    name = model.hf_model.config._attn_implementation
    assert name.startswith("crystalbox_") and name in ("eager", "sdpa")
    assert copy.deepcopy(name) == name and copy.deepcopy(name).original == name.original
    assert model.attention_probabilities.available(0)
    report = model.validate()
    assert report.ok, report.table()
    _check(report, "attention write changes logits")


def test_shared_layers_have_attention_probabilities_per_call(make_tiny):
    """A probe on ALBERT's shared attention is armed for one call: layer 1's probabilities are
    the second call's, and writing them leaves the first call untouched."""
    model = make_tiny("albert", "masked")
    assert all(model.attention_probabilities.available(i) for i in range(model.num_layers))
    inputs = dict(model.validation_inputs())
    with torch.no_grad(), model.trace(inputs):
        first = _nnsight.save(model.attention_probabilities[0])
        before = _nnsight.save(model.layers_output[0])  # reads follow the calls' order
        second = _nnsight.save(model.attention_probabilities[1])
        logits = _nnsight.save(model.logits)
    assert not torch.equal(first, second)  # (near uniform in a tiny random ALBERT)
    with torch.no_grad(), model.trace(inputs):
        after = _nnsight.save(model.layers_output[0])
        uniform = torch.ones_like(model.attention_probabilities[1])
        model.attention_probabilities[1] = uniform / uniform.shape[-1]
        edited = _nnsight.save(model.logits)
    # (reading layer 0's probabilities ran its call eagerly: equal up to sdpa's rounding)
    torch.testing.assert_close(before, after, rtol=0, atol=1e-5)
    assert not torch.allclose(edited, logits)


@pytest.mark.parametrize("layers", [[0, 1], [1]], ids=["both-layers", "second-only"])
def test_shared_layer_probabilities_equal_the_models_own(make_tiny, layers):
    """On an eager ALBERT the probabilities of each call equal what HF returns per call with
    output_attentions=True, also when only a later call is read."""
    model = make_tiny("albert", "masked", "eager")
    inputs = dict(model.validation_inputs())
    with torch.no_grad():
        expected = model.hf_model(**inputs, output_attentions=True).attentions
    probs = []
    with torch.no_grad(), model.trace(inputs):
        for i in layers:
            probs.append(_nnsight.save(model.attention_probabilities[i]))
    for i, p in zip(layers, probs, strict=True):
        assert torch.equal(p, expected[i])


def test_sdpa_falcon_takes_its_own_softmax_path_when_probed(make_tiny):
    """Falcon built with sdpa calls scaled_dot_product_attention itself; a probed call runs with
    output_attentions and an additive mask, giving what the same model built eager computes."""
    model = make_tiny("falcon")
    assert model.hf_model.config._attn_implementation == "sdpa"
    report = model.validate()
    assert report.ok, report.table()
    eager = build_tiny_model("falcon", "causal", attn_implementation="eager").model
    inputs = dict(model.validation_inputs())
    with torch.no_grad():
        expected = eager(**inputs, output_attentions=True).attentions
    with torch.no_grad(), model.trace(inputs):
        probs = _nnsight.save(model.attention_probabilities[1])
    torch.testing.assert_close(probs, expected[1], rtol=0, atol=1e-6)
