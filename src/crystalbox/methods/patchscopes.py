"""Patchscopes: read a hidden state by patching it into a target prompt (lens and generation)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from crystalbox import _nnsight
from crystalbox.methods._common import as_prompts, encode, layer_list

if TYPE_CHECKING:
    from crystalbox.standard.model import StandardizedTransformer

__all__ = ["TargetPrompt", "patchscope_generate", "patchscope_lens", "repeat_prompt"]

_DEFAULT_WORDS = ("king", "1135", "hello")


@dataclass(frozen=True)
class TargetPrompt:
    """A target prompt and the token index (among its tokens, negative from the end) to overwrite."""

    prompt: str
    index_to_patch: int = -1

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt:
            raise ValueError("TargetPrompt.prompt must be a non-empty string")
        if not isinstance(self.index_to_patch, int) or isinstance(self.index_to_patch, bool):
            raise TypeError(
                f"index_to_patch must be an int, got {type(self.index_to_patch).__name__}"
            )


def repeat_prompt(
    words: Sequence[str] | None = None,
    rel: str = " ",
    sep: str = "\n",
    placeholder: str = "?",
) -> TargetPrompt:
    """The identity prompt: ``"king king\\n1135 1135\\nhello hello\\n?"``, patched at the placeholder."""
    chosen = list(words) if words is not None else list(_DEFAULT_WORDS)
    if not chosen:
        raise ValueError("repeat_prompt needs at least one word")
    text = sep.join(f"{w}{rel}{w}" for w in chosen) + sep + placeholder
    return TargetPrompt(text, -1)


def _absolute(mask: torch.Tensor, index: int, what: str) -> torch.Tensor:
    """Column of the ``index``-th real token of each row (negative from the end) ``[batch]``."""
    lengths = mask.sum(1)
    first = mask.long().argmax(1)  # first real column (left or right padding)
    shortest = int(lengths.min())
    if not -shortest <= index < shortest:
        raise IndexError(f"{what} index {index} is out of range for a prompt of {shortest} tokens")
    relative = torch.full_like(lengths, index) if index >= 0 else lengths + index
    return first + relative


def _sources(
    model: StandardizedTransformer, prompts: list[str], layers: tuple[int, ...], position: int
) -> torch.Tensor:
    """Layer outputs of each source prompt at ``position`` ``[prompts, layers, d_model]``."""
    inputs = encode(model, prompts)
    cols = _absolute(inputs["attention_mask"], position, "source position")
    hidden: list[torch.Tensor] = []
    with torch.no_grad(), model.trace(dict(inputs)) as tracer:
        for layer in layers:
            hidden.append(_nnsight.save(model.layers_output[layer]))
        tracer.stop()
    rows = torch.arange(len(prompts))
    return torch.stack([h[rows, cols.to(h.device)] for h in hidden], 1)


def _targets(target: TargetPrompt | Sequence[TargetPrompt] | None, n: int) -> list[TargetPrompt]:
    if target is None:
        return [repeat_prompt()] * n
    if isinstance(target, TargetPrompt):
        return [target] * n
    items = list(target)
    if len(items) != n or not all(isinstance(t, TargetPrompt) for t in items):
        raise ValueError(f"pass one TargetPrompt, or one per source prompt ({n}), got {len(items)}")
    return items


def patchscope_lens(
    model: StandardizedTransformer,
    source_prompts: str | Sequence[str],
    target_patch_prompts: TargetPrompt | Sequence[TargetPrompt] | None = None,
    layers: int | Sequence[int] | None = None,
    *,
    source_position: int = -1,
    batch_size: int = 32,
) -> torch.Tensor:
    """Next-token probabilities ``[prompts, layers, vocab]`` of the target prompt after patching the
    source's hidden state (layer output at ``source_position``) into it at the same layer.

    The default target is ``repeat_prompt()`` (the identity patchscope).
    """
    sources = as_prompts(source_prompts, "source_prompts")
    chosen = layer_list(model, layers)
    targets = _targets(target_patch_prompts, len(sources))
    hidden = _sources(model, sources, chosen, source_position)  # [prompts, layers, d_model]
    jobs = [(i, j) for i in range(len(sources)) for j in range(len(chosen))]
    out = torch.empty(len(sources), len(chosen), model.vocab_size)
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        inputs = encode(model, [targets[i].prompt for i, _ in chunk], side="left")
        cols = torch.stack(
            [
                _absolute(
                    inputs["attention_mask"][r : r + 1], targets[i].index_to_patch, "index_to_patch"
                )[0]
                for r, (i, _) in enumerate(chunk)
            ]
        )
        by_layer: dict[int, list[int]] = {}
        for r, (_, j) in enumerate(chunk):
            by_layer.setdefault(j, []).append(r)
        with torch.no_grad(), model.trace(dict(inputs)):
            for j in sorted(by_layer):
                h = model.layers_output[chosen[j]]
                rows = torch.tensor(by_layer[j])
                values = torch.stack([hidden[chunk[r][0], j] for r in by_layer[j]])
                h[rows, cols[rows].to(h.device)] = values.to(h.device, h.dtype)
            logits = _nnsight.save(model.logits)
        probs = logits[:, -1].float().softmax(-1)  # left padding: the last column is real
        for r, (i, j) in enumerate(chunk):
            out[i, j] = probs[r].cpu()
    return out


def patchscope_generate(
    model: StandardizedTransformer,
    source_prompts: str | Sequence[str],
    target_patch_prompts: TargetPrompt | Sequence[TargetPrompt] | None = None,
    layer: int = -1,
    *,
    source_position: int = -1,
    max_new_tokens: int = 20,
) -> list[str]:
    """Greedy continuation of the target prompt with the source hidden state patched in at ``layer``."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    sources = as_prompts(source_prompts, "source_prompts")
    chosen = layer_list(model, layer)
    targets = _targets(target_patch_prompts, len(sources))
    hidden = _sources(model, sources, chosen, source_position)[:, 0]  # [prompts, d_model]
    inputs = encode(model, [t.prompt for t in targets], side="left")
    cols = torch.stack(
        [
            _absolute(inputs["attention_mask"][r : r + 1], t.index_to_patch, "index_to_patch")[0]
            for r, t in enumerate(targets)
        ]
    )
    rows = torch.arange(len(sources))
    tok = model.tokenizer
    results: list[torch.Tensor] = []
    with (
        torch.no_grad(),
        model.generate(
            dict(inputs),
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        ) as tracer,
    ):
        for _step in tracer.iter[:1]:  # the prompt pass only: later steps reuse the patched cache
            h = model.layers_output[chosen[0]]
            h[rows, cols.to(h.device)] = hidden.to(h.device, h.dtype)
        results.append(tracer.result)
    texts = []
    for row in results[0][:, inputs["input_ids"].shape[1] :].tolist():
        if tok.eos_token_id is not None and tok.eos_token_id in row:
            row = row[: row.index(tok.eos_token_id)]
        texts.append(tok.decode(row))
    return texts
