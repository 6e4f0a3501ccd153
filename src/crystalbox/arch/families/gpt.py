"""GPT-2 style and other early decoder layouts."""

from crystalbox.arch.spec import ArchSpec

GPT2 = ArchSpec(
    model_types=("gpt2",),
    layers="transformer.h",
    embed_tokens="transformer.wte",
    ln_final="transformer.ln_f",
    lm_head="lm_head",
    attention=("attn",),
    mlp=("mlp",),
    notes=("learned absolute position embeddings (transformer.wpe) are added to token embeddings",),
)

GPT_NEOX = ArchSpec(
    model_types=("gpt_neox",),
    layers="gpt_neox.layers",
    embed_tokens="gpt_neox.embed_in",
    ln_final="gpt_neox.final_layer_norm",
    lm_head="lm_head",
    attention=("attention",),
    mlp=("mlp",),
    parallel_residual=True,
    notes=("parallel residual when config.use_parallel_residual (the default)",),
)

OPT = ArchSpec(
    model_types=("opt",),
    layers="model.decoder.layers",
    embed_tokens="model.decoder.embed_tokens",
    ln_final="model.decoder.final_layer_norm",
    lm_head="lm_head",
    attention=("self_attn",),
    mlp=("fc1",),
    mlp_output=("fc2",),
    notes=(
        "the MLP is two loose linears in the layer: mlps_input is fc1's input, mlps_output fc2's output",
    ),
)

BLOOM = ArchSpec(
    model_types=("bloom",),
    layers="transformer.h",
    embed_tokens="transformer.word_embeddings",
    ln_final="transformer.ln_f",
    lm_head="lm_head",
    attention=("self_attention",),
    mlp=("mlp",),
    notes=("ALiBi positions; embeddings pass through word_embeddings_layernorm",),
)

SPECS = (GPT2, GPT_NEOX, OPT, BLOOM)
