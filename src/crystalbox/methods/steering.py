"""Steering: add vectors to the residual stream in a trace or during generation; contrastive vectors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

from crystalbox import _nnsight
from crystalbox.methods._common import as_prompts, encode, last_logits, layer_list
from crystalbox.standard.positions import last_positions

if TYPE_CHECKING:
    from crystalbox.standard.model import StandardizedTransformer

__all__ = [
    "SteeringVector",
    "contrastive_steering_vector",
    "steered_generate",
    "steered_next_token_probs",
]


@dataclass(frozen=True)
class SteeringVector:
    """One vector per layer: ``vectors`` ``[layers, d_model]`` for ``layers``."""

    vectors: torch.Tensor
    layers: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.vectors.dim() != 2 or self.vectors.shape[0] != len(self.layers):
            raise ValueError(
                f"SteeringVector.vectors must be [layers={len(self.layers)}, d_model], "
                f"got {list(self.vectors.shape)}"
            )

    def at(self, layer: int) -> torch.Tensor:
        """The ``[d_model]`` vector of ``layer``."""
        if layer not in self.layers:
            raise ValueError(
                f"this steering vector has no entry for layer {layer} (it has {self.layers})"
            )
        return self.vectors[self.layers.index(layer)]

    def norms(self) -> torch.Tensor:
        return self.vectors.norm(dim=-1)


def _plan(
    model: StandardizedTransformer,
    vector: torch.Tensor | SteeringVector,
    layers: int | Sequence[int] | None,
) -> list[tuple[int, torch.Tensor]]:
    """(layer, [d_model] vector) pairs in layer order."""
    if isinstance(vector, SteeringVector):
        chosen = vector.layers if layers is None else layer_list(model, layers)
        return [(layer, vector.at(layer)) for layer in chosen]
    tensor = torch.as_tensor(vector)
    if tensor.dim() != 1 or tensor.shape[0] != model.hidden_size:
        raise ValueError(
            f"a steering vector must be [d_model={model.hidden_size}] (or a SteeringVector), "
            f"got shape {list(tensor.shape)}"
        )
    if layers is None:
        raise ValueError("pass layers= to say where to add a plain steering vector")
    return [(layer, tensor) for layer in layer_list(model, layers)]


def _check_positions(
    positions: int | Sequence[int] | slice | None, length: int
) -> int | list[int] | slice:
    if positions is None:
        return slice(None)
    if isinstance(positions, slice):
        return positions
    items = [positions] if isinstance(positions, int) else list(positions)
    for p in items:
        if not -length <= p < length:
            raise IndexError(
                f"steering position {p} is out of range for a (left-padded) batch of {length} tokens "
                f"(valid: 0..{length - 1} or -{length}..-1)"
            )
    return items


def steered_next_token_probs(
    model: StandardizedTransformer,
    prompts: str | Sequence[str],
    vector: torch.Tensor | SteeringVector,
    *,
    layers: int | Sequence[int] | None = None,
    factor: float = 1.0,
    positions: int | Sequence[int] | slice | None = None,
) -> torch.Tensor:
    """Next-token distribution ``[batch, vocab]`` with ``factor * vector`` added to the output of ``layers``.

    Prompts are left-padded, so negative ``positions`` count from each prompt's last token.
    """
    plan = _plan(model, vector, layers)
    inputs = encode(model, as_prompts(prompts), side="left")
    where = _check_positions(positions, inputs["input_ids"].shape[1])
    with torch.no_grad(), model.trace(dict(inputs)):
        for layer, v in plan:
            model.steer(layer, v, factor=factor, token_positions=where)
        logits = _nnsight.save(model.logits)
    return last_logits(logits, inputs["attention_mask"]).float().softmax(-1)


def steered_generate(
    model: StandardizedTransformer,
    prompts: str | Sequence[str],
    vector: torch.Tensor | SteeringVector,
    *,
    layers: int | Sequence[int] | None = None,
    factor: float = 1.0,
    max_new_tokens: int = 20,
    when: Literal["all", "prompt"] = "all",
    do_sample: bool = False,
) -> list[str]:
    """Generate with the vector added at every position of every step (``when='all'``) or the prompt only.

    Returns the generated continuations (prompt excluded), cut at the first end-of-sequence token.
    """
    if when not in ("all", "prompt"):
        raise ValueError(f"when must be 'all' or 'prompt', got {when!r}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    plan = _plan(model, vector, layers)
    inputs = encode(model, as_prompts(prompts), side="left")
    steps = max_new_tokens if when == "all" else 1
    tok = model.tokenizer
    results: list[torch.Tensor] = []
    with (
        torch.no_grad(),
        model.generate(
            dict(inputs),
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens,
            do_sample=do_sample,
            pad_token_id=tok.pad_token_id,
        ) as tracer,
    ):
        for _step in tracer.iter[:steps]:
            for layer, v in plan:
                model.steer(layer, v, factor=factor)
        results.append(tracer.result)
    return _decode_new(model, results[0], inputs["input_ids"].shape[1])


def _decode_new(model: StandardizedTransformer, output: torch.Tensor, prompt_len: int) -> list[str]:
    """The continuations ``output[:, prompt_len:]`` as text that appends to the prompt's.

    Decoded together with the prompt and cut after it, so a word-level tokenizer's separating
    space is kept (decoding the new tokens alone drops it)."""
    tok = model.tokenizer
    texts = []
    for full in output.tolist():
        prompt, row = full[:prompt_len], full[prompt_len:]
        if tok.eos_token_id is not None and tok.eos_token_id in row:
            row = row[: row.index(tok.eos_token_id)]
        head, whole = tok.decode(prompt), tok.decode(prompt + row)
        texts.append(whole[len(head) :] if whole.startswith(head) else tok.decode(row))
    return texts


def contrastive_steering_vector(
    model: StandardizedTransformer,
    positive: Sequence[str],
    negative: Sequence[str],
    *,
    layers: int | Sequence[int] | None = None,
    reduce: Literal["last", "mean"] = "last",
    batch_size: int = 8,
) -> SteeringVector:
    """Mean difference of layer outputs between ``positive`` and ``negative`` prompts.

    ``reduce``: the last real token of each prompt, or the mean over its real tokens.
    """
    if reduce not in ("last", "mean"):
        raise ValueError(f"reduce must be 'last' or 'mean', got {reduce!r}")
    chosen = layer_list(model, layers)
    pos_mean = mean_activations(model, as_prompts(positive, "positive"), chosen, reduce, batch_size)
    neg_mean = mean_activations(model, as_prompts(negative, "negative"), chosen, reduce, batch_size)
    return SteeringVector(pos_mean - neg_mean, chosen)


def mean_activations(
    model: StandardizedTransformer,
    prompts: list[str],
    layers: tuple[int, ...],
    reduce: str = "last",
    batch_size: int = 8,
) -> torch.Tensor:
    """Mean layer output over prompts (last token, or all real tokens) ``[layers, d_model]``."""
    total = torch.zeros(len(layers), model.hidden_size, dtype=torch.float64)
    count = 0
    for start in range(0, len(prompts), batch_size):
        inputs = encode(model, prompts[start : start + batch_size])
        mask = inputs["attention_mask"]
        hidden: list[torch.Tensor] = []
        with torch.no_grad(), model.trace(dict(inputs)):
            for layer in layers:
                hidden.append(_nnsight.save(model.layers_output[layer]))
        stacked = torch.stack(hidden).double().cpu()  # [layers, batch, pos, d_model]
        if reduce == "last":
            rows = torch.arange(mask.shape[0])
            total += stacked[:, rows, last_positions(mask).cpu()].sum(1)
            count += mask.shape[0]
        else:
            weights = mask.cpu().double()[None, :, :, None]
            total += (stacked * weights).sum((1, 2))
            count += int(mask.sum())
    return (total / count).float()
