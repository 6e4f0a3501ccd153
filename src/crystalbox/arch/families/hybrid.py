"""Hybrid and recurrent stacks whose layers mix sub-layers in their own way.

Paths are discovered; each spec declares the per-layer roles and how the residual is formed.
"""

from crystalbox.arch.spec import DISCOVER, ArchSpec

_FOUND = {"layers": DISCOVER, "embed_tokens": DISCOVER, "lm_head": DISCOVER, "ln_final": DISCOVER}

INKLING = ArchSpec(
    model_types=("inkling_text",),
    **_FOUND,
    attention_output=("attn_sconv",),
    mlp_output=("mlp_sconv",),
    notes=(
        "a short convolution follows attention and the MLP: attentions_output / mlps_output are "
        "the convolutions' outputs, the contributions added to the residual stream",
    ),
)

INKLING2 = ArchSpec(
    model_types=("inkling2_text",),
    **_FOUND,
    residual="custom",
    notes=(
        "layers mix a running set of earlier block outputs into the residual (block residuals), "
        "in float32; attention has learned sink logits",
    ),
)

LFM3 = ArchSpec(
    model_types=("lfm3",),
    **_FOUND,
    attention=("self_attn",),
    mixer=("conv",),
    mlp=("feed_forward",),
    attention_output=("post_operator_norm",),
    mixer_output=("post_operator_norm",),
    mlp_output=("post_ffn_norm",),
    notes=(
        "short-convolution and attention layers; each operator's output is normed before the add",
    ),
)

RECURRENT_GEMMA = ArchSpec(
    model_types=("recurrent_gemma",),
    **_FOUND,
    attention=None,
    mixer=("temporal_block",),
    mlp=("mlp_block",),
    notes=(
        "Griffin: the temporal block is a recurrent block or local attention depending on the layer;"
        " both are exposed as mixers",
    ),
)

GRANITE_MOE_HYBRID = ArchSpec(
    model_types=("granitemoehybrid",),
    **_FOUND,
    mixer=("mamba",),
    mlp=("block_sparse_moe", "shared_mlp"),
    router=("block_sparse_moe.router",),
    residual="scaled",
    notes=(
        "each branch is multiplied by config.residual_multiplier before the add",
        "the MLP contribution is the MoE plus a shared MLP: mlps_output is the MoE's part",
    ),
)

MINIMAX = ArchSpec(
    model_types=("minimax",),
    **_FOUND,
    mixer=None,
    residual="scaled",
    notes=(
        "residual = alpha * normed input + beta * branch (config *_alpha_factor / *_beta_factor)",
    ),
)

ZAMBA = ArchSpec(
    model_types=("zamba", "zamba2"),
    **_FOUND,
    residual="custom",
    notes=(
        "hybrid layers run a shared transformer block on [hidden, embeddings] and feed its "
        "projection into the Mamba mixer: not an additive sum of sub-layers",
    ),
)

LONGCAT_FLASH = ArchSpec(
    model_types=("longcat_flash",),
    **_FOUND,
    residual="custom",
    notes=(
        "each layer holds two attention + MLP pairs (self_attn[0..1], mlps[0..1]) and a shortcut "
        "MoE; the standard roles expose the shortcut MoE as the MLP",
    ),
)

XLSTM = ArchSpec(
    model_types=("xlstm",),
    **_FOUND,
    residual="custom",
    notes=("xLSTM blocks (mLSTM cell and feed-forward) are not split into sub-layers",),
)

SPECS = (
    INKLING,
    INKLING2,
    LFM3,
    RECURRENT_GEMMA,
    GRANITE_MOE_HYBRID,
    MINIMAX,
    ZAMBA,
    LONGCAT_FLASH,
    XLSTM,
)
