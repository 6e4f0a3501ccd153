"""A character-level tokenizer built offline, for tiny random models that ship without one."""

from __future__ import annotations

import string
from typing import Any

SPECIALS = ("<pad>", "<unk>", "<s>", "</s>", "[MASK]")


def synthetic_tokenizer(vocab_size: int) -> Any:
    """A fast tokenizer mapping each printable ASCII character to one id below ``vocab_size``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [c for c in string.printable if c not in "\t\n\r\x0b\x0c"]
    needed = len(SPECIALS) + 16
    if vocab_size < needed:
        raise ValueError(
            f"the synthetic tokenizer needs a vocabulary of at least {needed} ids, got {vocab_size}"
        )
    # a small vocabulary (ESM's 33 ids) keeps the first characters; the rest map to <unk>
    chars = chars[: vocab_size - len(SPECIALS)]
    vocab = {token: i for i, token in enumerate((*SPECIALS, *chars))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        mask_token="[MASK]",
    )
