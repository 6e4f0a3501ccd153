"""A readable description of a standardized model's structure (``model.info()``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crystalbox.standard.model import StandardizedTransformer


def describe(model: StandardizedTransformer) -> str:
    """The standardized structure of ``model`` as text."""
    arch = model.arch
    kinds = model.layer_kinds()
    lines = [
        f"model type      {arch.model_type} ({arch.source} spec), kind {model.kind}",
        f"layers          {arch.num_layers} at {arch.layers}",
        f"hidden size     {arch.hidden_size}   heads {arch.num_heads}   vocab {arch.vocab_size}",
        f"embed_tokens    {arch.embed_tokens}",
        f"ln_final        {arch.ln_final or '(none: declared absent)'}",
        f"lm_head         {arch.lm_head}",
        f"attention       {_per_layer(arch.attention)}",
        f"mlp             {_per_layer(arch.mlp)}"
        + (f" -> output at {_per_layer(arch.mlp_output)}" if arch.spec.mlp_output else ""),
    ]
    if any(arch.layer_input) or any(arch.layer_output):
        lines.append(
            f"layer stream    in at {_per_layer(arch.layer_input)}, "
            f"out at {_per_layer(arch.layer_output)} ('-': the layer itself)"
        )
    if arch.spec.layers_shared:
        modules = len({m for m, _ in arch.layer_calls})
        lines.append(f"shared layers   {arch.num_layers} calls of {modules} module(s)")
    if any(arch.mixer):
        lines.append(f"mixer           {_per_layer(arch.mixer)}")
    if any(arch.cross_attention):
        lines.append(f"cross-attention {_per_layer(arch.cross_attention)}")
    if any(arch.router):
        lines.append(f"router          {_per_layer(arch.router)}")
    probes = sum(model.attention_probabilities.available(i) for i in range(arch.num_layers))
    lines.append(f"attention probs {probes}/{arch.num_layers} layers")
    heads = [layout for layout in model._head_layouts if layout is not None]
    if heads:
        h = heads[0]
        lines.append(
            f"per-head        {len(heads)}/{arch.num_layers} layers: {h.heads} heads "
            f"({h.kv_heads} key-value) x {h.head_dim}"
            + (f", fused q/k/v ({h.fused})" if h.fused != "none" else "")
        )
    lines.append(f"residual        {arch.spec.residual}; stream [{arch.spec.stream_layout}]")
    if arch.encoder is not None:
        lines.append(f"encoder         {arch.encoder.num_layers} layers at {arch.encoder.layers}")
    if len(set(kinds)) > 1:
        lines.append("layer kinds     " + ", ".join(f"{i}:{k}" for i, k in enumerate(kinds)))
    lines += [f"note            {note}" for note in arch.spec.notes]
    missing = model.missing_weights
    if missing:
        lines.append(
            f"RANDOM weights  {len(missing)} parameters the checkpoint lacks: " + ", ".join(missing)
        )
    return "\n".join(lines)


def _per_layer(paths: tuple[str | None, ...]) -> str:
    distinct = sorted({p or "-" for p in paths})
    return distinct[0] if len(distinct) == 1 else "/".join(distinct) + " (varies by layer)"
