"""Automatic discovery of roles for families that have no registered spec."""

from __future__ import annotations

import re
from typing import Any

from torch import nn

from crystalbox.arch.spec import ArchSpec

_ATTENTION_NAMES = ("self_attn", "attn", "attention", "self_attention", "SelfAttention")
_MIXER_NAMES = ("mixer", "linear_attn", "mamba", "ssm", "time_mixer", "attention_mixer", "conv")
_MLP_NAMES = (
    "mlp",
    "feed_forward",
    "ffn",
    "block_sparse_moe",
    "moe",
    "channel_mixer",
    "feedforward",
)
_FINAL_NORM = re.compile(
    r"(^|\.)(norm|ln_f|final_layer_norm|final_layernorm|norm_f|ln_out|layer_norm|final_norm)$"
)


def discover_spec(model: nn.Module) -> ArchSpec:
    """Guess a spec from the module tree: the longest ModuleList of blocks, the I/O embeddings, the norm after the stack."""
    names = {module: name for name, module in model.named_modules()}
    layers_path = _largest_block_list(model)
    hf: Any = model
    embed = hf.get_input_embeddings() if hasattr(hf, "get_input_embeddings") else None
    head = hf.get_output_embeddings() if hasattr(hf, "get_output_embeddings") else None
    layer0 = hf.get_submodule(layers_path)[0] if layers_path else None
    return ArchSpec(
        model_types=(str(getattr(getattr(model, "config", None), "model_type", "unknown")),),
        layers=layers_path or "",
        embed_tokens=names.get(embed, "") if embed is not None else "",
        lm_head=_whole_head(model, names.get(head, "") if head is not None else "", layers_path),
        ln_final=_final_norm(model, layers_path),
        attention=_children_named(layer0, _ATTENTION_NAMES),
        mlp=_children_named(layer0, _MLP_NAMES),
        mixer=_children_named(layer0, _MIXER_NAMES),
        notes=("roles found by automatic discovery (no registered spec)",),
    )


def _largest_block_list(model: nn.Module) -> str | None:
    """The outermost ModuleList of blocks (sub-layer lists inside a block do not count), longest
    first; in an encoder-decoder the decoder's, since it produces the logits."""
    lists = [
        name
        for name, module in model.named_modules()
        # blocks have sub-layers of their own; lists of plain Linear/Embedding do not count
        if isinstance(module, nn.ModuleList)
        and len(module) > 0
        and all(len(list(child.children())) > 0 for child in module)
    ]
    outer = [n for n in lists if not any(n != o and n.startswith(o + ".") for o in lists)]
    if not outer:
        return None
    encoder_decoder = bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))

    def rank(name: str) -> tuple[int, bool, int]:
        return (
            len(model.get_submodule(name)),  # type: ignore[arg-type]
            encoder_decoder and "decoder" in name,
            -name.count("."),
        )

    return max(outer, key=rank)


def _whole_head(model: nn.Module, output_embeddings: str, layers_path: str | None) -> str:
    """The head module that maps hidden states to logits: for MLM heads (``cls.predictions.decoder``,
    ``lm_head.decoder``) the whole top-level head with its transform, else the output embeddings."""
    top = output_embeddings.split(".", 1)[0]
    if "." not in output_embeddings or (layers_path or "").split(".", 1)[0] == top:
        return output_embeddings
    return top


def _final_norm(model: nn.Module, layers_path: str | None) -> str | None:
    if not layers_path:
        return None
    parent = layers_path.rsplit(".", 1)[0] if "." in layers_path else ""
    candidates = []
    for name, _module in model.named_modules():
        if name.startswith(layers_path + ".") or not _FINAL_NORM.search(name):
            continue
        owner = name.rsplit(".", 1)[0] if "." in name else ""
        if owner == parent:
            candidates.append(name)
    return candidates[0] if len(candidates) == 1 else None


def _children_named(layer: Any, names: tuple[str, ...]) -> tuple[str, ...] | None:
    if layer is None:
        return None
    found = tuple(n for n in names if isinstance(getattr(layer, n, None), nn.Module))
    return found or None
