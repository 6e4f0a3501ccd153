"""Pre-norm decoders laid out like Llama: ``model.layers[i].{self_attn,mlp}``, ``model.norm``."""

from crystalbox.arch.spec import ArchSpec

LLAMA_LIKE = ArchSpec(
    model_types=("llama", "mistral", "qwen2", "qwen3", "gemma", "phi3", "olmo", "olmo2"),
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
    notes=(
        "sandwich norms: attention and MLP outputs are normed inside the layer before the residual add",
        "embeddings are scaled by sqrt(hidden_size) inside the model; logits are soft-capped",
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

SPECS = (LLAMA_LIKE, GEMMA2_LIKE, MIXTRAL_LIKE)
