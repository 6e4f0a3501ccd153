"""Zero, mean and resample ablations of layers, attention, MLPs and heads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

from crystalbox import _nnsight
from crystalbox.methods._common import (
    Component,
    as_prompts,
    component_envoy_value,
    encode,
    head_dim,
    last_logits,
    layer_list,
    set_component,
)
from crystalbox.standard.accessors import check_layer

if TYPE_CHECKING:
    from crystalbox.standard.model import StandardizedTransformer

__all__ = ["Ablation", "AblationResult", "ablate", "run_with_ablations"]

Target = Literal["layer", "attn", "mlp", "heads"]
Kind = Literal["zero", "mean", "resample"]
_TARGETS = ("layer", "attn", "mlp", "heads")
_KINDS = ("zero", "mean", "resample")
# execution order inside one layer: heads (out-projection input) -> attention output -> MLP -> layer output
_ORDER = {"heads": 0, "attn": 1, "mlp": 2, "layer": 3}


@dataclass(frozen=True)
class Ablation:
    """Ablate ``target`` at ``layer``: ``layer`` removes the layer's whole contribution (output = input).

    ``heads`` (for ``target='heads'``) and ``positions`` (None = all) restrict where it applies.
    """

    target: Target
    layer: int
    kind: Kind = "zero"
    heads: tuple[int, ...] | None = None
    positions: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.target not in _TARGETS:
            raise ValueError(f"ablation target must be one of {_TARGETS}, got {self.target!r}")
        if self.kind not in _KINDS:
            raise ValueError(f"ablation kind must be one of {_KINDS}, got {self.kind!r}")
        if self.target == "heads" and not self.heads:
            raise ValueError("a 'heads' ablation needs heads=(i, ...)")
        if self.target != "heads" and self.heads is not None:
            raise ValueError(f"heads= only applies to target='heads', not {self.target!r}")


@dataclass(frozen=True)
class AblationResult:
    """Last-position logits with and without the ablations ``[batch, vocab]``."""

    prompts: tuple[str, ...]
    logits: torch.Tensor
    baseline_logits: torch.Tensor

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.float().softmax(-1)

    @property
    def baseline_probs(self) -> torch.Tensor:
        return self.baseline_logits.float().softmax(-1)

    def kl(self) -> torch.Tensor:
        """KL(baseline || ablated) per prompt ``[batch]``."""
        base = self.baseline_logits.float().log_softmax(-1)
        abl = self.logits.float().log_softmax(-1)
        return (base.exp() * (base - abl)).sum(-1)


def _component(target: Target) -> Component:
    return {"layer": "resid", "attn": "attn", "mlp": "mlp", "heads": "heads"}[target]  # type: ignore[return-value]


def ablate(
    model: StandardizedTransformer,
    prompts: str | Sequence[str],
    target: Target,
    layers: int | Sequence[int],
    *,
    kind: Kind = "zero",
    heads: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    reference: Sequence[str] | None = None,
    seed: int = 0,
) -> AblationResult:
    """Ablate ``target`` at every layer in ``layers`` (see ``Ablation``) and return the logits."""
    ablations = [
        Ablation(
            target,
            layer,
            kind,
            tuple(heads) if heads is not None else None,
            tuple(positions) if positions is not None else None,
        )
        for layer in layer_list(model, layers)
    ]
    return run_with_ablations(model, prompts, ablations, reference=reference, seed=seed)


def run_with_ablations(
    model: StandardizedTransformer,
    prompts: str | Sequence[str],
    ablations: Sequence[Ablation],
    *,
    reference: Sequence[str] | None = None,
    seed: int = 0,
) -> AblationResult:
    """Run ``prompts`` with all ``ablations`` applied in one forward pass.

    ``mean`` uses the mean activation over ``reference`` prompts' real tokens (default: ``prompts``);
    ``resample`` uses the activation of a random ``reference`` prompt (same token count), per row.
    """
    texts = as_prompts(prompts)
    items = sorted(
        (
            Ablation(a.target, check_layer(a.layer, model.num_layers), a.kind, a.heads, a.positions)
            for a in ablations
        ),
        key=lambda a: (a.layer, _ORDER[a.target]),
    )
    if not items:
        raise ValueError("run_with_ablations: no ablations given")
    inputs = encode(model, texts)
    batch, length = inputs["input_ids"].shape
    for a in items:
        for p in a.positions or ():
            if not -length <= p < length:
                raise IndexError(f"ablation position {p} is out of range for {length} tokens")
        for h in a.heads or ():
            if not 0 <= h < int(model.num_heads or 0):
                raise IndexError(
                    f"head {h} is out of range: this model has {model.num_heads} heads"
                )
    ref_texts = as_prompts(reference, "reference") if reference is not None else texts
    replacements = _reference_values(model, items, ref_texts, batch, length, seed)
    whole_layers = {a.layer for a in items if a.target == "layer"}
    with torch.no_grad(), model.trace(dict(inputs)):
        layer_inputs: dict[int, torch.Tensor] = {}
        for a in items:
            if (
                a.layer in whole_layers and a.layer not in layer_inputs
            ):  # read before the layer runs
                layer_inputs[a.layer] = model.layers_input[a.layer]
            value = component_envoy_value(model, _component(a.target), a.layer)
            new = _ablated(model, a, value, layer_inputs.get(a.layer), replacements.get(id(a)))
            set_component(model, _component(a.target), a.layer, new)
        logits = _nnsight.save(model.logits)
    with torch.no_grad(), model.trace(dict(inputs)):
        base = _nnsight.save(model.logits)
    mask = inputs["attention_mask"]
    return AblationResult(tuple(texts), last_logits(logits, mask), last_logits(base, mask))


def _ablated(
    model: StandardizedTransformer,
    a: Ablation,
    value: torch.Tensor,
    layer_input: torch.Tensor | None,
    replacement: torch.Tensor | None,
) -> torch.Tensor:
    """The ablated activation: ``value`` with the chosen positions (and heads) replaced."""
    where = slice(None) if a.positions is None else list(a.positions)
    new = value.clone()
    if a.target == "layer":
        assert layer_input is not None  # read above, before the layer ran
        delta = (
            torch.zeros_like(value)
            if replacement is None
            else replacement.to(value.dtype).expand_as(value)
        )
        new[:, where] = (layer_input + delta)[:, where]
        return new
    if a.target == "heads":
        hd = head_dim(model)
        shaped = new.view(new.shape[0], new.shape[1], -1, hd)
        for h in a.heads or ():
            if replacement is None:
                shaped[:, where, h] = 0
            else:
                source = replacement.to(new.dtype).expand_as(new).reshape(shaped.shape)
                shaped[:, where, h] = source[:, where, h]
        return new
    if replacement is None:
        new[:, where] = 0
    else:
        new[:, where] = replacement.to(value.dtype).expand_as(value)[:, where]
    return new


def _reference_values(
    model: StandardizedTransformer,
    items: list[Ablation],
    reference: list[str],
    batch: int,
    length: int,
    seed: int,
) -> dict[int, torch.Tensor]:
    """Per mean/resample ablation: its replacement ``[1 or batch, pos or 1, width]`` (layer: the delta)."""
    needed = [a for a in items if a.kind != "zero"]
    if not needed:
        return {}
    ref = encode(model, reference)
    mask = ref["attention_mask"]
    if any(a.kind == "resample" for a in needed) and ref["input_ids"].shape[1] != length:
        raise ValueError(
            f"resample ablation needs reference prompts with the same token count as the prompts "
            f"({length} after padding), got {ref['input_ids'].shape[1]}"
        )
    saved: list[torch.Tensor] = []
    with torch.no_grad(), model.trace(dict(ref)):
        for a in needed:
            if a.target == "layer":
                before = model.layers_input[a.layer]
                saved.append(_nnsight.save(model.layers_output[a.layer] - before))
            else:
                saved.append(
                    _nnsight.save(component_envoy_value(model, _component(a.target), a.layer))
                )
    generator = torch.Generator().manual_seed(seed)
    out: dict[int, torch.Tensor] = {}
    for a, act in zip(needed, saved, strict=True):
        if a.kind == "mean":
            weights = mask.to(act.dtype)[:, :, None]
            out[id(a)] = ((act * weights).sum((0, 1)) / weights.sum())[None, None, :]
        else:
            rows = torch.randint(0, act.shape[0], (batch,), generator=generator)
            out[id(a)] = act[rows.to(act.device)]
    return out
