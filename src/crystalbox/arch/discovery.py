"""Automatic discovery of roles for families that have no registered spec."""

from __future__ import annotations

import re
from typing import Any

from torch import nn

from crystalbox.arch.spec import ArchSpec

_ATTENTION_NAMES = (
    "self_attn",
    "attn",
    "attention",
    "self_attention",
    "SelfAttention",
    "multi_head_attention",
)
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
_CROSS_NAMES = ("encoder_attn", "crossattention", "cross_attn", "cross_attention")
# norms applied to a sub-layer's output before the residual add ("sandwich" norms), as
# (after attention, after MLP) pairs; the pair must be complete to count
_POST_NORMS = (
    ("post_attention_layernorm", "post_feedforward_layernorm"),
    ("post_self_attn_layernorm", "post_mlp_layernorm"),
    ("post_self_attn_layernorm", "post_feedforward_layernorm"),
    ("post_attention_layernorm", "post_mlp_layernorm"),
    ("post_norm1", "post_norm2"),
    ("post_operator_norm", "post_ffn_norm"),
)
_FINAL_NORM = re.compile(
    r"(^|\.)(norm|ln_f|final_layer_norm|final_layernorm|norm_f|ln_out|layer_norm|final_norm)$"
)


def discover_spec(model: nn.Module, execution: Any = None) -> ArchSpec:
    """Guess a spec from the module tree: the longest ModuleList of blocks that runs on text
    input, the I/O embeddings, the norm after the stack."""
    names = {module: name for name, module in model.named_modules()}
    layers_path = _largest_block_list(model, execution)
    hf: Any = model
    embed = hf.get_input_embeddings() if hasattr(hf, "get_input_embeddings") else None
    head = hf.get_output_embeddings() if hasattr(hf, "get_output_embeddings") else None
    layers = list(hf.get_submodule(layers_path)) if layers_path else []
    lm_head = _whole_head(model, names.get(head, "") if head is not None else "", layers_path)
    common: dict[str, Any] = {
        "model_types": (str(getattr(getattr(model, "config", None), "model_type", "unknown")),),
        "layers": layers_path or "",
        "embed_tokens": names.get(embed, "") if embed is not None else "",
        "lm_head": lm_head,
        "pre_head": _pre_head(model, lm_head, layers_path, execution),
        "ln_final": _final_norm(model, layers_path, execution),
        "encoder_layers": _encoder_list(model, layers_path, execution),
        "cross_attention": _children_named(layers, _CROSS_NAMES),
        "mixer": _children_named(layers, _MIXER_NAMES),
        "residual": _residual_form(model, layers),
        "attention_sinks": _has_sinks(layers, _children_named(layers, _ATTENTION_NAMES)),
        "notes": ("roles found by automatic discovery (no registered spec)",),
    }
    if layers and _bert_like(layers[0]):
        # attention -> attention.output.dense, intermediate -> output.dense; post-norm unless
        # the layer has its own pre-norm (Megatron-BERT, XLM-R XL)
        pre_norm = any(
            isinstance(getattr(layers[0], n, None), nn.LayerNorm) for n in ("ln", "LayerNorm")
        )
        if not pre_norm:
            common["residual"] = "post_norm"
        return ArchSpec(
            **common,
            attention=("attention",),
            attention_output=("attention.output.dense",),
            mlp=("intermediate",),
            mlp_output=("output.dense",),
        )
    post = next((p for p in map(_post_norms, layers) if p), None)
    mlp = _children_named(layers, _MLP_NAMES)
    mlp_output = (post[1],) if post else None
    if mlp is None and _children_named(layers, ("fc1",)) and _children_named(layers, ("fc2",)):
        # two loose linears in the layer (BART, OPT, Whisper): fc1's input to fc2's output
        mlp, mlp_output = ("fc1",), mlp_output or ("fc2",)
    return ArchSpec(
        **common,
        attention=_children_named(layers, _ATTENTION_NAMES),
        attention_output=(post[0],) if post else None,
        mlp=mlp,
        mlp_output=mlp_output,
    )


def _residual_form(model: nn.Module, layers: list[Any]) -> str:
    config = getattr(model, "config", None)
    multiplier = getattr(config, "residual_multiplier", None)
    if (isinstance(multiplier, float) and multiplier != 1.0) or hasattr(config, "scale_depth"):
        return "scaled"  # Granite's residual_multiplier, MiniCPM's scale_depth
    if layers and any(
        hasattr(layers[0], n) for n in ("layer_scalar", "attn_residual_add_idx", "scaling_factor")
    ):
        return "scaled"  # Gemma 4's per-layer scalar, depth-scaled adds, ESM-C's branch scaling
    parallel = ("use_parallel_residual", "parallel_attn", "parallel_residual", "parallel_block")
    return "parallel" if any(getattr(config, k, None) is True for k in parallel) else "pre_norm"


def _has_sinks(layers: list[Any], attention: tuple[str, ...] | None) -> bool:
    """Whether some attention module has learned sink logits (a parameter named like ``sinks``)."""
    for layer in layers:
        for name in attention or ():
            module = getattr(layer, name, None)
            if isinstance(module, nn.Module) and any(
                "sink" in n.split(".")[0] for n, _ in module.named_parameters()
            ):
                return True
    return False


def _bert_like(layer: nn.Module) -> bool:
    return all(
        isinstance(getattr(layer, n, None), nn.Module)
        for n in ("attention", "intermediate", "output")
    )


def _post_norms(layer: nn.Module) -> tuple[str, str] | None:
    for pair in _POST_NORMS:
        if all(isinstance(getattr(layer, n, None), nn.Module) for n in pair):
            return pair
    return None


def _largest_block_list(model: nn.Module, execution: Any = None) -> str | None:
    """The outermost ModuleList of blocks (sub-layer lists inside a block do not count), longest
    first; in an encoder-decoder the decoder's, since it produces the logits. With an execution
    trace, lists whose first block never ran on the probe input do not count."""
    lists = [
        name
        for name, module in model.named_modules()
        # blocks have sub-layers of their own; lists of plain Linear/Embedding do not count
        if isinstance(module, nn.ModuleList)
        and len(module) > 0
        and all(len(list(child.children())) > 0 for child in module)
    ]
    if execution is not None:
        lists = [n for n in lists if execution.ran(f"{n}.0")] or lists
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


def _encoder_list(model: nn.Module, decoder: str | None, execution: Any) -> str | None:
    """In an encoder-decoder, the encoder's outermost block list (that ran, when known)."""
    if not getattr(getattr(model, "config", None), "is_encoder_decoder", False) or not decoder:
        return None
    candidates = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList)
        and "encoder" in name
        and name != decoder
        and len(module) > 0
        and all(len(list(child.children())) > 0 for child in module)
        and (execution is None or execution.ran(f"{name}.0"))
    ]
    outer = [n for n in candidates if not any(n != o and n.startswith(o + ".") for o in candidates)]
    return min(outer, key=lambda n: n.count(".")) if outer else None


def _whole_head(model: nn.Module, output_embeddings: str, layers_path: str | None) -> str:
    """The head module that maps hidden states to logits: for MLM heads (``cls.predictions.decoder``,
    ``lm_head.decoder``) the whole head with its transform, else the output embeddings. The head
    is the first module below the part of the path it shares with the layers (``decoder.cls`` in
    a BERT-to-BERT encoder-decoder)."""
    head_parts = output_embeddings.split(".")
    layer_parts = (layers_path or "").split(".")
    shared = 0
    while (
        shared < min(len(head_parts), len(layer_parts)) - 1
        and head_parts[shared] == layer_parts[shared]
    ):
        shared += 1
    return ".".join(head_parts[: shared + 1])


def _final_norm(model: nn.Module, layers_path: str | None, execution: Any = None) -> str | None:
    """The norm after the stack: with an execution trace, the norm that runs after the last
    layer, beside the stack or one level up; otherwise one named like a final norm."""
    if not layers_path:
        return None
    parent = layers_path.rsplit(".", 1)[0] if "." in layers_path else ""
    if execution is not None:
        found = _norm_after_stack(model, layers_path, parent, execution)
        if found is not None:
            return found
    candidates = []
    for name, _module in model.named_modules():
        if name.startswith(layers_path + ".") or not _FINAL_NORM.search(name):
            continue
        owner = name.rsplit(".", 1)[0] if "." in name else ""
        if owner == parent:
            candidates.append(name)
    return candidates[0] if len(candidates) == 1 else None


def _norm_after_stack(
    model: nn.Module, layers_path: str, parent: str, execution: Any
) -> str | None:
    last = f"{layers_path}.{len(model.get_submodule(layers_path)) - 1}"  # type: ignore[arg-type]
    if not execution.ran(last):
        return None
    grandparent = parent.rsplit(".", 1)[0] if "." in parent else ""
    owners = {parent, grandparent} if parent else {parent}
    after = [
        name
        for name, module in model.named_modules()
        if name
        and (name.rsplit(".", 1)[0] if "." in name else "") in owners
        and "norm" in type(module).__name__.lower()
        and execution.order.get(name, -1) > execution.order[last]
    ]
    # the first norm to run after the stack (a head's own norm runs later, inside the head)
    return min(after, key=lambda n: execution.order[n]) if after else None


def _pre_head(
    model: nn.Module, lm_head: str, layers_path: str | None, execution: Any
) -> tuple[str, ...]:
    """Top-level modules that run between the stack and a top-level ``lm_head`` (DistilBERT's
    vocab_transform / activation / vocab_layer_norm, ELECTRA's generator_predictions)."""
    if execution is None or "." in lm_head or not layers_path or not execution.ran(lm_head):
        return ()
    body = layers_path.split(".", 1)[0]
    if body not in execution.order:
        return ()
    start, end = execution.order[body], execution.order[lm_head]
    between = [
        name
        for name, _ in model.named_children()
        if name not in (body, lm_head) and start < execution.order.get(name, -1) < end
    ]
    return tuple(sorted(between, key=lambda n: execution.order[n]))


def _children_named(layers: list[Any], names: tuple[str, ...]) -> tuple[str, ...] | None:
    """The names among ``names`` that some layer has (heterogeneous stacks differ per layer)."""
    found = tuple(
        n for n in names if any(isinstance(getattr(layer, n, None), nn.Module) for layer in layers)
    )
    return found or None
