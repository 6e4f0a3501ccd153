"""Prompts with target tokens: first-token extraction, collision checks, per-target probabilities."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from crystalbox import _nnsight
from crystalbox.methods._common import as_prompts, encode, last_logits

if TYPE_CHECKING:
    from crystalbox.standard.model import StandardizedTransformer

__all__ = [
    "Prompt",
    "PromptResults",
    "get_first_tokens",
    "run_prompts",
    "single_token_id",
]


def _ids(tokenizer: Any, text: str) -> list[int]:
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def single_token_id(tokenizer: Any, text: str | int) -> int:
    """The id of ``text`` when it is exactly one token; ValueError showing its tokens otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    if not isinstance(text, str) or not text:
        raise ValueError(f"a target must be a non-empty string or a token id, got {text!r}")
    ids = _ids(tokenizer, text)
    if len(ids) != 1:
        pieces = [tokenizer.decode([i]) for i in ids]
        # an example that is one token here: the text with a leading space, else its first piece
        tried = [" " + text.strip(), *pieces[:1]]
        single = [t for t in tried if t != text and len(_ids(tokenizer, t)) == 1]
        example = f" (e.g. {single[0]!r})" if single else ""
        raise ValueError(
            f"target {text!r} is not a single token: it tokenizes to {len(ids)} tokens {pieces}; "
            f"pass a single-token string{example} or use get_first_tokens()"
        )
    return ids[0]


def get_first_tokens(
    words: str | Sequence[str], tokenizer: Any, *, spaces: str = "both"
) -> list[int]:
    """First token of each word, as written and/or with a leading space (``spaces``: both/with/without).

    Returns the de-duplicated ids, in order of first appearance.
    """
    if spaces not in ("both", "with", "without"):
        raise ValueError(f"spaces must be 'both', 'with' or 'without', got {spaces!r}")
    items = [words] if isinstance(words, str) else list(words)
    out: list[int] = []
    for word in items:
        stripped = word.strip()
        if not stripped:
            raise ValueError(f"get_first_tokens: empty word {word!r}")
        variants = {
            "both": [stripped, " " + stripped],
            "with": [" " + stripped],
            "without": [stripped],
        }[spaces]
        for variant in variants:
            ids = _ids(tokenizer, variant)
            if ids and ids[0] not in out:
                out.append(ids[0])
    return out


@dataclass(frozen=True)
class Prompt:
    """A prompt and named targets, each a set of token ids (``target_strings`` keeps the words)."""

    prompt: str
    target_tokens: Mapping[str, tuple[int, ...]]
    target_strings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_strings(
        cls,
        prompt: str,
        targets: Mapping[str, str | Sequence[str]],
        tokenizer: Any,
        *,
        spaces: str = "both",
        allow_collisions: bool = False,
    ) -> Prompt:
        """Build targets from words (first tokens, with and without a leading space).

        Raises ValueError when two targets share a token (unless ``allow_collisions``).
        """
        tokens: dict[str, tuple[int, ...]] = {}
        strings: dict[str, tuple[str, ...]] = {}
        for name, words in targets.items():
            word_list = [words] if isinstance(words, str) else list(words)
            tokens[name] = tuple(get_first_tokens(word_list, tokenizer, spaces=spaces))
            strings[name] = tuple(word_list)
        if not allow_collisions:
            check_collisions(tokens, tokenizer)
        return cls(prompt, tokens, strings)


def check_collisions(targets: Mapping[str, Sequence[int]], tokenizer: Any = None) -> None:
    """ValueError naming the token when two targets share one."""
    owner: dict[int, str] = {}
    for name, ids in targets.items():
        for i in ids:
            if i in owner and owner[i] != name:
                text = tokenizer.decode([i]) if tokenizer is not None else str(i)
                raise ValueError(
                    f"targets {owner[i]!r} and {name!r} share the token {text!r} (id {i}); "
                    f"their probabilities would be counted twice. Use spaces='with' or other words, "
                    f"or pass allow_collisions=True"
                )
            owner[i] = name


@dataclass(frozen=True)
class PromptResults:
    """Per-target probabilities: ``probs[name]`` ``[prompts]`` (final layer) or ``[prompts, layers]``."""

    prompts: tuple[str, ...]
    probs: Mapping[str, torch.Tensor]
    layers: tuple[int, ...] | None = None

    def plot(self, path: Any, prompt: int = 0) -> Any:
        """Per-layer target-probability curves of one prompt (needs ``per_layer=True``)."""
        if self.layers is None:
            raise ValueError("plot needs per-layer curves: call run_prompts(..., per_layer=True)")
        from crystalbox.plotting.curves import layer_curves

        curves = {name: values[prompt].tolist() for name, values in self.probs.items()}
        return layer_curves(curves, list(self.layers), title=self.prompts[prompt], path=path)


def run_prompts(
    model: StandardizedTransformer,
    prompts: Prompt | Sequence[Prompt],
    *,
    batch_size: int = 8,
    per_layer: bool = False,
) -> PromptResults:
    """Probability of every target (summed over its tokens) at each prompt's last token.

    ``per_layer``: the logit lens curve over all layers instead of the final layer only.
    """
    items = [prompts] if isinstance(prompts, Prompt) else list(prompts)
    if not items or not all(isinstance(p, Prompt) for p in items):
        raise TypeError("run_prompts expects Prompt objects (see Prompt.from_strings)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    names = sorted({name for p in items for name in p.target_tokens})
    out: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    layers = tuple(range(model.num_layers)) if per_layer else None
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        probs = _last_probs(
            model, [p.prompt for p in chunk], per_layer
        )  # [b, vocab] or [b, layers, vocab]
        for name in names:
            values = []
            for r, p in enumerate(chunk):
                ids = list(p.target_tokens.get(name, ()))
                row = probs[r]
                values.append(
                    row[..., ids].sum(-1) if ids else torch.full(row.shape[:-1], float("nan"))
                )
            out[name].append(torch.stack(values))
    result = {name: torch.cat(chunks) for name, chunks in out.items()}
    return PromptResults(tuple(p.prompt for p in items), result, layers)


def _last_probs(model: StandardizedTransformer, texts: list[str], per_layer: bool) -> torch.Tensor:
    if per_layer:
        from crystalbox.methods.lens import logit_lens

        return logit_lens(model, as_prompts(texts)).last_probs
    inputs = encode(model, texts)
    with torch.no_grad(), model.trace(dict(inputs)):
        logits = _nnsight.save(model.logits)
    return last_logits(logits, inputs["attention_mask"]).float().softmax(-1)
