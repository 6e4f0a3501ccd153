"""Fixtures for the methods tests: a tiny random Llama and (slow) the embedded real model."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    import crystalbox

    return AutoTokenizer.from_pretrained(crystalbox.default_model_path())


def _tiny_llama(tokenizer, layers: int = 2):
    from transformers import LlamaConfig, LlamaForCausalLM

    from crystalbox import StandardizedTransformer

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=49152,
        max_position_embeddings=256,
    )
    return StandardizedTransformer(LlamaForCausalLM(config).eval(), tokenizer=tokenizer)


@pytest.fixture(scope="session")
def tiny(tokenizer):
    return _tiny_llama(tokenizer, 3)


@pytest.fixture(scope="session")
def smollm():
    from crystalbox import StandardizedTransformer

    return StandardizedTransformer()
