"""single_token_id: ids pass through, single tokens resolve, and the error's example is one token."""

from __future__ import annotations

import pytest

from crystalbox.methods.prompts import single_token_id


class WordTokenizer:
    """Splits on spaces, keeping a word's leading space: " Paris Rome" -> [" Paris", " Rome"]."""

    def __init__(self, words: list[str]) -> None:
        self.vocab = {w: i for i, w in enumerate(words)}

    def _pieces(self, text: str) -> list[str]:
        parts = text.split(" ")
        return ([parts[0]] if parts[0] else []) + [" " + p for p in parts[1:] if p]

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {
            "input_ids": [self.vocab.setdefault(p, len(self.vocab)) for p in self._pieces(text)]
        }

    def decode(self, ids: list[int]) -> str:
        words = {i: w for w, i in self.vocab.items()}
        return "".join(words[i] for i in ids)


def test_single_tokens_and_ids_resolve():
    tokenizer = WordTokenizer([" Paris", "Paris"])
    assert single_token_id(tokenizer, " Paris") == 0 and single_token_id(tokenizer, 7) == 7


@pytest.mark.parametrize(
    ("text", "example"),
    [(" Paris Rome", "(e.g. ' Paris')"), ("Paris Rome", "(e.g. 'Paris')")],
    ids=["spaced-suggests-first-piece", "first-piece"],
)
def test_a_multi_token_target_names_a_single_token_example(text, example):
    with pytest.raises(ValueError, match="not a single token") as error:
        single_token_id(WordTokenizer([]), text)
    assert example in str(error.value)
