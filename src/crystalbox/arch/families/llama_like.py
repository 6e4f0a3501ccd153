"""Pre-norm decoders laid out like Llama: ``model.layers[i].{self_attn,mlp}``, ``model.norm``."""

from crystalbox.arch.spec import ArchSpec

LLAMA_LIKE = ArchSpec(
    model_types=("llama", "mistral", "qwen2", "qwen3", "gemma", "phi3", "olmo"),
    layers="model.layers",
    embed_tokens="model.embed_tokens",
    ln_final="model.norm",
    lm_head="lm_head",
)

GEMMA2_LIKE = ArchSpec(
    model_types=("gemma2", "gemma3_text"),
    layers="model.layers",
    embed_tokens="model.embed_tokens",
    ln_final="model.norm",
    lm_head="lm_head",
    attention_output=("post_attention_layernorm",),
    mlp_output=("post_feedforward_layernorm",),
    notes=(
        "sandwich norms: attentions_output / mlps_output are the post-attention / post-MLP norms' "
        "outputs, the contributions added to the residual stream",
        "embeddings are scaled by sqrt(hidden_size) inside the model; logits are soft-capped",
    ),
)

OLMO2_LIKE = ArchSpec(
    model_types=("olmo2", "olmo3"),
    layers="model.layers",
    embed_tokens="model.embed_tokens",
    ln_final="model.norm",
    lm_head="lm_head",
    attention_output=("post_attention_layernorm",),
    mlp_output=("post_feedforward_layernorm",),
    notes=(
        "norms after attention and MLP only (no pre-norms): attentions_output / mlps_output are "
        "the normed contributions added to the residual stream",
    ),
)

MIXTRAL_LIKE = ArchSpec(
    model_types=("mixtral", "qwen2_moe", "qwen3_moe"),
    layers="model.layers",
    embed_tokens="model.embed_tokens",
    ln_final="model.norm",
    lm_head="lm_head",
    mlp=("mlp", "block_sparse_moe"),
    router=("mlp.gate", "block_sparse_moe.gate"),
    notes=("sparse MoE MLP; router logits are the output of the gate module",),
)

SPECS = (LLAMA_LIKE, GEMMA2_LIKE, OLMO2_LIKE, MIXTRAL_LIKE)
