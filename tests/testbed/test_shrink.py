"""Shrinking rules on representative configs: sizes clamped, every layer kind kept, ids in vocab."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from crystalbox.testbed import SIZES, list_architectures, tiny_config
from crystalbox.testbed.catalog import Kind, get_architecture
from crystalbox.testbed.shrink import special_token_ids


@dataclass(frozen=True)
class Case:
    model_type: str
    kind: Kind
    expected: dict[str, Any]  # attribute -> value after shrinking


CASES = [
    Case(
        "llama",
        "causal",
        {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,  # multi-head by default, kept multi-head
            "head_dim": 16,
            "intermediate_size": 128,
            "vocab_size": 512,
            "max_position_embeddings": 512,
        },
    ),
    Case("mistral", "causal", {"num_key_value_heads": 2, "sliding_window": 4}),
    Case("gpt2", "causal", {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 512}),
    Case(
        "mixtral",
        "causal",
        {"num_local_experts": SIZES.experts, "num_experts_per_tok": SIZES.experts_per_token},
    ),
    Case("deepseek_v3", "causal", {"kv_lora_rank": 32, "qk_head_dim": 32, "n_group": 2}),
    Case("bert", "masked", {"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128}),
    Case("t5", "seq2seq", {"d_model": 64, "d_kv": 16, "d_ff": 128, "num_decoder_layers": 2}),
    Case("bart", "seq2seq", {"d_model": 64, "encoder_layers": 2, "decoder_layers": 2}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.model_type}-{c.kind}")
def test_sizes_are_shrunk(case: Case) -> None:
    config = tiny_config(case.model_type, case.kind)
    actual = {name: getattr(config, name) for name in case.expected}
    assert actual == case.expected


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.model_type}-{c.kind}")
def test_special_ids_fit_the_vocab(case: Case) -> None:
    config = tiny_config(case.model_type, case.kind)
    assert max(special_token_ids(config), default=0) < config.get_text_config().vocab_size


# Per-layer kind lists must keep every kind of the default config.
LAYER_KINDS = [
    ("gemma3_text", "layer_types", {"sliding_attention", "full_attention"}),
    ("qwen3_next", "layer_types", {"linear_attention", "full_attention"}),
    ("jamba", "layers_block_type", {"attention", "mamba"}),
    ("recurrent_gemma", "layers_block_type", {"linear_attention", "sliding_attention"}),
]


@pytest.mark.parametrize(
    ("model_type", "attribute", "kinds"), LAYER_KINDS, ids=[c[0] for c in LAYER_KINDS]
)
def test_every_layer_kind_is_kept(model_type: str, attribute: str, kinds: set[str]) -> None:
    config = tiny_config(model_type, "causal")
    types = list(getattr(config, attribute))
    assert set(types) == kinds
    assert len(types) == config.num_hidden_layers <= SIZES.max_layers


def test_index_lists_are_remapped() -> None:
    text = tiny_config("mllama", "causal").get_text_config()
    assert text.cross_attention_layers
    assert all(0 <= i < text.num_hidden_layers for i in text.cross_attention_layers)


def test_remapped_special_ids_stay_distinct() -> None:
    config = tiny_config("llama", "causal")  # bos 128000, eos 128001 by default
    assert config.bos_token_id != config.eos_token_id
    assert {config.bos_token_id, config.eos_token_id} <= set(range(SIZES.vocab))


@pytest.mark.parametrize("kind", ["causal", "masked", "seq2seq"])
def test_catalog_lists_sorted_architectures(kind: Kind) -> None:
    archs = list_architectures(kind)
    names = [a.model_type for a in archs]
    assert names == sorted(names) and len(archs) > 30
    assert all(a.kind == kind and a.config_class and a.model_class for a in archs)


def test_unknown_model_type_names_close_matches() -> None:
    with pytest.raises(ValueError, match="close matches: llama"):
        tiny_config("lama", "causal")


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        get_architecture("llama", "decoder")  # type: ignore[arg-type]
