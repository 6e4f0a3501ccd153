"""Shared fixtures: tiny random models of each tested family, and the real embedded model."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# (model_type, kind) of the families the foundation guarantees end to end
FOUNDATION_FAMILIES: tuple[tuple[str, str], ...] = (
    ("llama", "causal"),
    ("gpt2", "causal"),
    ("gpt_neox", "causal"),
    ("opt", "causal"),
    ("bloom", "causal"),
    ("qwen2", "causal"),
    ("mistral", "causal"),
    ("mixtral", "causal"),
    ("gemma2", "causal"),
    ("phi3", "causal"),
    ("bert", "masked"),
)


@pytest.fixture(scope="session")
def make_tiny() -> Callable[..., object]:
    """Factory: a StandardizedTransformer over a tiny random model (cached per family and attention)."""
    from crystalbox.standard.model import StandardizedTransformer
    from crystalbox.synthetic_tokenizer import synthetic_tokenizer
    from crystalbox.testbed.build import build_tiny_model

    cache: dict[tuple[str, str, str | None], object] = {}

    def make(model_type: str, kind: str = "causal", attn: str | None = None) -> object:
        key = (model_type, kind, attn)
        if key not in cache:
            tiny = build_tiny_model(model_type, kind, attn_implementation=attn)  # type: ignore[arg-type]
            config = tiny.config
            vocab = getattr(config, "vocab_size", None) or config.get_text_config().vocab_size
            tokenizer = synthetic_tokenizer(vocab)
            cache[key] = StandardizedTransformer(tiny.model, tokenizer=tokenizer)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def smollm() -> object:
    """The real embedded SmolLM2-135M (converted once into the cache)."""
    from crystalbox.standard.model import StandardizedTransformer

    return StandardizedTransformer()
