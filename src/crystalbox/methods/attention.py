"""Attention patterns of one prompt, with a plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from crystalbox import _nnsight
from crystalbox.methods._common import encode, token_strings
from crystalbox.standard.accessors import check_layer

if TYPE_CHECKING:
    from crystalbox.standard.model import StandardizedTransformer

__all__ = ["AttentionPattern", "attention_pattern"]


@dataclass(frozen=True)
class AttentionPattern:
    """Attention probabilities ``[heads, q, k]`` of one prompt at one layer."""

    prompt: str
    layer: int
    tokens: tuple[str, ...]
    probs: torch.Tensor

    def plot(self, path: str | Path, head: int = 0) -> Path:
        """Heatmap of one head (PNG, or HTML when ``path`` ends in ``.html``)."""
        if not 0 <= head < self.probs.shape[0]:
            raise IndexError(
                f"head {head} is out of range: this layer has {self.probs.shape[0]} heads"
            )
        from crystalbox.plotting.grid import attention_pattern as plot_pattern

        return plot_pattern(
            self.probs[head].float().numpy(),
            list(self.tokens),
            title=f"attention, layer {self.layer}, head {head}",
            path=Path(path),
        )


def attention_pattern(model: StandardizedTransformer, prompt: str, layer: int) -> AttentionPattern:
    """Attention probabilities of every head at ``layer`` for one prompt (no padding)."""
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("attention_pattern needs a non-empty prompt string")
    layer = check_layer(layer, model.num_layers)
    inputs = encode(model, [prompt])
    with torch.no_grad(), model.trace(dict(inputs)) as tracer:
        probs = _nnsight.save(model.attention_probabilities[layer])
        tracer.stop()
    return AttentionPattern(
        prompt, layer, token_strings(model, inputs["input_ids"][0]), probs[0].detach().cpu()
    )
