"""Hybrid and recurrent stacks whose layers mix sub-layers in their own way.

Paths are discovered; each spec declares the per-layer roles and how the residual is formed.
"""

from crystalbox.arch.spec import quirks_only

INKLING = quirks_only(
    model_types=("inkling_text",),
    attention_output=("attn_sconv",),
    mlp_output=("mlp_sconv",),
    notes=(
        "a short convolution follows attention and the MLP: attentions_output / mlps_output are "
        "the convolutions' outputs, the contributions added to the residual stream",
    ),
)

INKLING2 = quirks_only(
    model_types=("inkling2_text",),
    residual="custom",
    head_reads_last_layer=False,
    notes=(
        "layers mix a running set of earlier block outputs into the residual (block residuals), "
        "in float32; attention has learned sink logits",
        "the head reads model.final_input(block outputs, last layer output), not the last layer "
        "alone: project_on_vocab is a lens (norm and head) without that mixing",
    ),
)

INKLING2_LOOP = quirks_only(
    model_types=("inkling2_loop_text",),
    residual="custom",
    head_reads_last_layer=False,
    notes=(
        "Inkling 2 with looped layers: layers loop_layer_index_start..loop_layer_index_end - 1 "
        "run loop_num_passes times, each later pass restarting from the pre-loop state and "
        "reading gated messages from the previous pass",
        "accessors of a looped layer see its first pass (its later calls are further passes of "
        "the same module)",
        "layers mix earlier block outputs into the residual (block residuals), as in Inkling 2; "
        "the head reads model.final_input(...), so project_on_vocab is a lens",
    ),
)

HRM = quirks_only(
    model_types=("hrm_text",),
    head_reads_last_layer=False,
    notes=(
        "hierarchical recurrence: the L stack (the layers here) and the H stack "
        "(model.H_module) each run several cycles per forward; the head reads the H stack's "
        "final state, so project_on_vocab is a lens, not the logits",
        "accessors see each module's first call (the first L cycle)",
    ),
)

LFM3 = quirks_only(
    model_types=("lfm3",),
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

RECURRENT_GEMMA = quirks_only(
    model_types=("recurrent_gemma",),
    attention=None,
    mixer=("temporal_block",),
    mlp=("mlp_block",),
    notes=(
        "Griffin: the temporal block is a recurrent block or local attention depending on the layer;"
        " both are exposed as mixers",
    ),
)

GRANITE_MOE_HYBRID = quirks_only(
    model_types=("granitemoehybrid",),
    mixer=("mamba",),
    mlp=("block_sparse_moe", "shared_mlp"),
    router=("block_sparse_moe.router",),
    residual="scaled",
    notes=(
        "each branch is multiplied by config.residual_multiplier before the add",
        "the MLP contribution is the MoE plus a shared MLP: mlps_output is the MoE's part",
    ),
)

MINIMAX = quirks_only(
    model_types=("minimax",),
    mixer=None,
    residual="scaled",
    notes=(
        "residual = alpha * normed input + beta * branch (config *_alpha_factor / *_beta_factor)",
    ),
)

ZAMBA = quirks_only(
    model_types=("zamba", "zamba2"),
    residual="custom",
    notes=(
        "hybrid layers run a shared transformer block on [hidden, embeddings] and feed its "
        "projection into the Mamba mixer: not an additive sum of sub-layers",
    ),
)

LONGCAT_FLASH = quirks_only(
    model_types=("longcat_flash",),
    residual="custom",
    notes=(
        "each layer holds two attention + MLP pairs (self_attn[0..1], mlps[0..1]) and a shortcut "
        "MoE; the standard roles expose the shortcut MoE as the MLP",
    ),
)

XLSTM = quirks_only(
    model_types=("xlstm",),
    residual="custom",
    notes=("xLSTM blocks (mLSTM cell and feed-forward) are not split into sub-layers",),
)

SPECS = (
    INKLING,
    INKLING2,
    INKLING2_LOOP,
    HRM,
    LFM3,
    RECURRENT_GEMMA,
    GRANITE_MOE_HYBRID,
    MINIMAX,
    ZAMBA,
    LONGCAT_FLASH,
    XLSTM,
)
