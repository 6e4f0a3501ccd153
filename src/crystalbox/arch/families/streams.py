"""Architectures whose residual stream is not one ``[batch, pos, d_model]`` tensor per token:
sequence-first layouts, several parallel streams, or positions that are not the input tokens."""

from crystalbox.arch.spec import quirks_only

XLNET = quirks_only(
    model_types=("xlnet",),
    attention=("rel_attn",),
    mlp=("ff",),
    residual="post_norm",
    stream_layout="pos batch d_model",
    attention_causal=False,
    notes=(
        "XLNet passes hidden states as [pos, batch, d_model]; the accessors transpose them",
        "post-norm: the attention and feed-forward modules add the residual and normalise",
        "its causal-LM head reads bidirectional attention (no permutation mask at inference)",
    ),
)

HYPER_CONNECTIONS = quirks_only(
    model_types=("deepseek_v4", "hy_v4"),
    residual="custom",
    stream_layout="batch pos streams d_model",
    positions="other",
    notes=(
        "hyper-connections: the layers carry hc_mult residual streams [batch, pos, streams, "
        "d_model], mixed by learned weights around each sub-layer",
        "attention keys include compressed blocks besides the tokens",
    ),
)

FLAT_HYPER_CONNECTIONS = quirks_only(
    model_types=("qwen4_exp", "qwen4_exp_text"),
    residual="custom",
    stream_layout="batch pos streams*d_model",
    notes=(
        "hyper-connections with the residual streams flattened into one axis "
        "[batch, pos, streams * d_model], mixed around each sub-layer",
    ),
)

ALTUP = quirks_only(
    model_types=("gemma3n_text", "gemma3n"),
    residual="custom",
    stream_layout="streams batch pos d_model",
    notes=(
        "AltUp: the layers carry altup_num_inputs streams [streams, batch, pos, d_model]; one is "
        "updated by attention and MLP, the others by learned predictions and corrections",
    ),
)

OTHER_POSITIONS = quirks_only(
    model_types=("blt", "longformer"),
    positions="other",
    notes=(
        "the stream's positions are not the input tokens: BLT runs over byte patches, "
        "Longformer pads the sequence to a multiple of its attention window",
    ),
)

PROPHETNET = quirks_only(
    model_types=("prophetnet",),
    positions="other",
    residual="post_norm",
    probe_softmax=False,
    notes=(
        "n-gram attention mixes the main and predicting streams: no attention probabilities",
        "the decoder carries the main stream and its n-gram prediction streams concatenated "
        "along pos; post-norm",
    ),
)

CPMANT = quirks_only(
    model_types=("cpmant",),
    attention=("self_att.self_attention",),
    mlp=("ffn.ffn",),
    positions="other",
    notes=(
        "CPM-Ant prepends learned prompt positions to the tokens",
        "self_att / ffn are blocks (norm, sub-layer, residual add); the roles name the "
        "sub-layers inside them",
    ),
)

SPECS = (
    XLNET,
    HYPER_CONNECTIONS,
    FLAT_HYPER_CONNECTIONS,
    ALTUP,
    OTHER_POSITIONS,
    PROPHETNET,
    CPMANT,
)
