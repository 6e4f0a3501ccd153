"""T5-style blocks: a list of sub-layers (self-attention, cross-attention, feed-forward), each
adding its own residual; and T5Gemma's encoder-decoder with sandwich norms."""

from crystalbox.arch.spec import quirks_only

T5_LIKE = quirks_only(
    model_types=("t5", "mt5", "umt5", "longt5", "switch_transformers"),
    attention=(
        "layer.0.SelfAttention",
        "layer.0.LocalSelfAttention",
        "layer.0.TransientGlobalSelfAttention",
    ),
    cross_attention=("layer.1.EncDecAttention",),
    # decoder blocks: [self, cross, ff]; encoder blocks: [self, ff]
    mlp=("layer.2.DenseReluDense", "layer.2.mlp", "layer.1.DenseReluDense", "layer.1.mlp"),
    router=("layer.2.mlp.router", "layer.1.mlp.router"),
    notes=(
        "each block is a list of sub-layers (block.layer[0..2]) that add their own residual; "
        "the standard roles name the attention / feed-forward modules inside them",
        "T5 computes attention scores itself (no attention interface): no attention probabilities",
    ),
)

T5GEMMA = quirks_only(
    model_types=("t5gemma",),
    attention=("self_attn",),
    attention_output=("post_self_attn_layernorm",),
    cross_attention=("cross_attn",),
    cross_attention_output=("post_cross_attn_layernorm",),
    mlp_output=("post_feedforward_layernorm",),
    notes=("sandwich norms: each sub-layer's contribution is its post-norm's output",),
)

SPECS = (T5_LIKE, T5GEMMA)
