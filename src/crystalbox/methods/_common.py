"""Helpers shared by the methods: prompt encoding, positions, layer lists, components."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import torch

from crystalbox.standard.accessors import check_layer
from crystalbox.standard.positions import last_positions

if TYPE_CHECKING:
    from crystalbox.standard.model import StandardizedTransformer

Component = Literal["resid_pre", "resid", "attn", "mlp", "heads"]
COMPONENTS: tuple[str, ...] = ("resid_pre", "resid", "attn", "mlp", "heads")
# names of the attention output projection across families (its input holds the per-head outputs)


def as_prompts(prompts: str | Sequence[str], what: str = "prompts") -> list[str]:
    """``prompts`` as a non-empty list of non-empty strings."""
    items = [prompts] if isinstance(prompts, str) else list(prompts)
    if not items:
        raise ValueError(f"{what}: got no prompts; pass a string or a non-empty list of strings")
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{what}: every prompt must be a str, got {type(item).__name__}")
        if not item:
            raise ValueError(f"{what}: got an empty prompt string; prompts must be non-empty")
    return items


@contextmanager
def padding_side(tokenizer: Any, side: str | None) -> Iterator[None]:
    """Temporarily set the tokenizer's padding side (None keeps it)."""
    if side is None:
        yield
        return
    if side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}")
    old = tokenizer.padding_side
    tokenizer.padding_side = side
    try:
        yield
    finally:
        tokenizer.padding_side = old


def encode(
    model: StandardizedTransformer,
    prompts: Sequence[str],
    *,
    side: str | None = None,
    max_length: int | None = None,
) -> dict[str, torch.Tensor]:
    """Tokenize ``prompts`` into ``input_ids`` / ``attention_mask`` ``[batch, pos]`` on the model's device."""
    tok = model.tokenizer
    if tok is None:
        raise ValueError(
            "this model has no tokenizer; pass tokenizer= when building StandardizedTransformer"
        )
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    with padding_side(tok, side):
        batch = tok(
            list(prompts),
            return_tensors="pt",
            padding=True,
            truncation=max_length is not None,
            max_length=max_length,
        )
    device = model_device(model)
    return {
        "input_ids": batch["input_ids"].to(device),
        "attention_mask": batch["attention_mask"].to(device),
    }


def model_device(model: StandardizedTransformer) -> torch.device:
    try:
        return next(model.hf_model.parameters()).device
    except StopIteration:  # pragma: no cover - a model without parameters
        return torch.device("cpu")


def layer_list(
    model: StandardizedTransformer, layers: int | Sequence[int] | None
) -> tuple[int, ...]:
    """Normalised, sorted, de-duplicated layer indices (all layers when None)."""
    if layers is None:
        return tuple(range(model.num_layers))
    items = [layers] if isinstance(layers, int) else list(layers)
    if not items:
        raise ValueError("layers: got an empty list; pass None for all layers")
    return tuple(sorted({check_layer(i, model.num_layers) for i in items}))


def position_list(positions: int | Sequence[int] | None, length: int) -> tuple[int, ...]:
    """Normalised positions in ``0..length-1`` (all when None); raise IndexError naming the range."""
    if positions is None:
        return tuple(range(length))
    items = [positions] if isinstance(positions, int) else list(positions)
    out = []
    for p in items:
        if not isinstance(p, int) or isinstance(p, bool):
            raise TypeError(f"positions must be ints, got {type(p).__name__}")
        if not -length <= p < length:
            raise IndexError(
                f"position {p} is out of range for a prompt of {length} tokens "
                f"(valid: 0..{length - 1} or -{length}..-1)"
            )
        out.append(p % length)
    return tuple(sorted(set(out)))


def last_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Logits at each row's last real token: ``[batch, pos, vocab]`` -> ``[batch, vocab]``."""
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits[rows, last_positions(mask).to(logits.device)]


def check_component(component: str) -> Component:
    if component not in COMPONENTS:
        raise ValueError(f"component must be one of {COMPONENTS}, got {component!r}")
    return component  # type: ignore[return-value]


def head_dim(model: StandardizedTransformer) -> int:
    """Head size of the per-head outputs (``model.attention_heads_output``)."""
    layouts = [layout for layout in model._head_layouts if layout is not None]
    if not layouts:
        raise ValueError(
            "per-head methods need per-head attention outputs, which this architecture does not "
            "expose (see model.info()); use component='attn' instead"
        )
    return layouts[0].head_dim


def component_envoy_value(model: StandardizedTransformer, component: Component, layer: int) -> Any:
    """Inside a trace: the activation of ``component`` at ``layer`` (heads: the out-projection input)."""
    if component == "resid_pre":
        return model.layers_input[layer]
    if component == "resid":
        return model.layers_output[layer]
    if component == "attn":
        return model.attentions_output[layer]
    if component == "mlp":
        return model.mlps_output[layer]
    return model.attention_heads_output.flat(layer)  # [batch, pos, heads * head_dim]


def set_component(
    model: StandardizedTransformer, component: Component, layer: int, value: Any
) -> None:
    """Inside a trace: replace the activation of ``component`` at ``layer`` with ``value``."""
    if component == "resid_pre":
        model.layers_input[layer] = value
    elif component == "resid":
        model.layers_output[layer] = value
    elif component == "attn":
        model.attentions_output[layer] = value
    elif component == "mlp":
        model.mlps_output[layer] = value
    else:
        model.attention_heads_output[layer] = value.unflatten(-1, (-1, head_dim(model)))


def token_strings(
    model: StandardizedTransformer, ids: Sequence[int] | torch.Tensor
) -> tuple[str, ...]:
    return tuple(model.tokenizer.decode([int(i)]) for i in ids)
