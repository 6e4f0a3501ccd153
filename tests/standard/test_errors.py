"""Bad input gets a clear, typed error that names the problem and the fix."""

from __future__ import annotations

import pytest
import torch

from crystalbox import ArchitectureError, ModelNotFoundError, StandardizedTransformer, _nnsight
from crystalbox.arch.resolve import resolve_arch
from crystalbox.errors import CheckpointError
from crystalbox.methods.lens import logit_lens


def test_unresolvable_role_names_the_role_and_the_override(make_tiny):
    hf = make_tiny("llama").hf_model
    with pytest.raises(ArchitectureError) as info:
        resolve_arch(
            hf, {"ln_final": "model.final_norm_that_does_not_exist", "layers": "model.blocks"}
        )
    message = str(info.value)
    assert "ln_final" in message and "layers" in message
    assert "roles=" in message and "register_spec" in message


def test_unknown_override_key_is_refused(make_tiny):
    with pytest.raises(ValueError, match="unknown role override"):
        resolve_arch(make_tiny("llama").hf_model, {"attn": "self_attn"})


def test_override_fixes_what_discovery_cannot(make_tiny):
    hf = make_tiny("llama").hf_model
    arch = resolve_arch(hf, {"ln_final": None})
    assert arch.ln_final is None and arch.num_layers == hf.config.num_hidden_layers


@pytest.mark.parametrize("index", [2, 99, -3])
def test_layer_index_out_of_range_gives_the_range(make_tiny, index):
    model = make_tiny("llama")
    with pytest.raises(IndexError, match=r"valid indices 0\.\.1"), model.trace(["hi"]):
        _nnsight.save(model.layers_output[index])


@pytest.mark.timeout(60)  # offline must fail, not wait for a network
def test_unknown_model_name_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="offline") as info:
        StandardizedTransformer("no-such-org/no-such-model-xyz")
    assert "local folder" in str(info.value)


def test_folder_without_a_tokenizer_says_how_to_supply_one(tmp_path, make_tiny):
    make_tiny("llama").hf_model.save_pretrained(tmp_path)
    with pytest.raises(ModelNotFoundError, match="has a model but no tokenizer that loads") as info:
        StandardizedTransformer(tmp_path)
    assert "tokenizer=" in str(info.value)


def test_folder_without_config_is_named(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"config\.json"):
        StandardizedTransformer(tmp_path)
    (tmp_path / "model.Q4_0.gguf").write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match=r"it holds model\.Q4_0\.gguf: pass one"):
        StandardizedTransformer(tmp_path)


def test_a_file_that_is_not_gguf_asks_for_its_folder(tmp_path, make_tiny):
    make_tiny("llama").hf_model.save_pretrained(tmp_path)
    with pytest.raises(ModelNotFoundError, match="is a file; pass the folder that holds config"):
        StandardizedTransformer(tmp_path / "config.json")


def test_a_folder_without_weights_is_a_checkpoint_error(tmp_path, make_tiny):
    make_tiny("llama").hf_model.config.save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"has a config\.json but no weights"):
        StandardizedTransformer(tmp_path)


def test_a_damaged_gguf_file_is_a_checkpoint_error_and_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYSTALBOX_CACHE", str(tmp_path / "cache"))
    damaged = tmp_path / "model.gguf"
    damaged.write_bytes(b"not a gguf file")
    with pytest.raises(CheckpointError, match=r"cannot read .* as a GGUF language model"):
        StandardizedTransformer(damaged)
    assert list((tmp_path / "cache" / "models").iterdir()) == []


def test_steering_vector_of_wrong_size(make_tiny):
    model = make_tiny("llama")
    with pytest.raises(ValueError, match=rf"shape \[{model.hidden_size}\]"), model.trace(["hi"]):
        model.steer(0, torch.ones(model.hidden_size + 1))


def test_empty_prompt_is_refused(make_tiny):
    with pytest.raises(ValueError, match="non-empty"):
        logit_lens(make_tiny("llama"), "")


def test_module_without_tokenizer_says_how_to_get_one(make_tiny):
    with pytest.raises(ModelNotFoundError, match="synthetic_tokenizer"):
        StandardizedTransformer(make_tiny("llama").hf_model)


def test_non_model_object_is_a_type_error():
    with pytest.raises(TypeError, match="hub name, a local folder"):
        StandardizedTransformer(42)  # type: ignore[arg-type]


def test_a_spec_with_an_unknown_stream_layout_is_refused():
    from crystalbox.arch.spec import ArchSpec

    with pytest.raises(ValueError, match="stream_layout"):
        ArchSpec(
            model_types=("x",),
            layers="m.layers",
            embed_tokens="m.e",
            lm_head="h",
            ln_final=None,
            stream_layout="batch tokens d_model",
        )


def test_a_quirks_only_spec_takes_its_paths_from_discovery(make_tiny):
    arch = make_tiny("bart", "seq2seq").arch
    assert arch.spec.residual == "post_norm"  # declared by the BART family spec
    assert arch.layers == "model.decoder.layers"  # discovered
    assert arch.encoder is not None and arch.encoder.layers == "model.encoder.layers"


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        pytest.param("layer_output", "norm2", TypeError, id="string-not-tuple"),
        pytest.param("mlp", ("ffns.{layer}",), ValueError, id="unknown-placeholder"),
    ],
)
def test_per_layer_paths_are_checked(field, value, error):
    from crystalbox.arch.spec import ArchSpec

    with pytest.raises(error, match=field):
        ArchSpec(
            model_types=("x",),
            layers="m.layers",
            embed_tokens="m.e",
            lm_head="h",
            ln_final=None,
            **{field: value},
        )
