"""Shrink an architecture's default config to a tiny one, by rules on attribute names.

The rules walk the config's dictionary (and every nested sub-config) and clamp each size
attribute to a small target, never growing it. Per-layer lists (layer types, hybrid patterns,
index lists such as cross-attention layers) are cut to one layer per distinct kind, so every
layer kind stays represented. Special token ids are remapped into the shrunk vocabulary.
A small table of per-`model_type` overrides covers what the generic rules cannot infer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crystalbox.testbed.catalog import Kind, config_class, get_architecture

if TYPE_CHECKING:
    from transformers import PretrainedConfig


@dataclass(frozen=True)
class TinySizes:
    """Target sizes of a tiny model; every size attribute is clamped to at most these."""

    hidden: int = 64
    layers: int = 2
    max_layers: int = 6
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 16
    ffn: int = 128
    vocab: int = 512
    positions: int = 512
    experts: int = 4
    experts_per_token: int = 2
    sliding_window: int = 4


SIZES = TinySizes()

_HIDDEN = {
    "hidden_size", "d_model", "n_embd", "n_embed", "dim", "embed_dim", "emb_dim",
    "embedding_dim", "embedding_size", "word_embed_proj_dim", "attention_hidden_size",
    "lru_width", "pooler_hidden_size", "true_hidden_size", "intra_bottleneck_size",
    "input_embedding_size", "out_hidden_size", "hidden_size_global", "d_latents",
    "cross_attention_hidden_size", "projector_input_dim", "projector_output_dim",
    "encoder_hidden_size", "router_hidden_size", "prediction_head_size", "audio_hidden_size",
    "shape_embed_dim", "pronunciation_embed_dim",
}  # fmt: skip
_LAYERS = {
    "num_hidden_layers", "n_layer", "n_layers", "num_layers", "num_decoder_layers",
    "num_encoder_layers", "encoder_layers", "decoder_layers", "speech_encoder_layers",
    "t2u_encoder_layers", "t2u_decoder_layers", "num_blocks", "depth", "conf_num_hidden_layers",
    "num_self_attends_per_block",
}  # fmt: skip
_HEADS = {
    "num_attention_heads", "n_head", "n_heads", "num_heads", "encoder_attention_heads",
    "decoder_attention_heads", "num_encoder_attention_heads", "num_decoder_attention_heads",
    "attention_heads", "swa_num_attention_heads", "index_n_heads", "linear_num_heads",
    "num_cross_attention_heads", "num_self_attention_heads", "linear_num_value_heads",
    "speech_encoder_attention_heads", "t2u_encoder_attention_heads",
    "t2u_decoder_attention_heads", "conf_num_attention_heads",
}  # fmt: skip
_KV_HEADS = {
    "num_key_value_heads", "n_kv_heads", "num_kv_heads", "swa_num_key_value_heads",
    "num_query_groups", "multi_query_group_num", "kv_n_heads", "linear_num_key_heads",
}  # fmt: skip
_HEAD_DIM = {
    "head_dim", "d_kv", "kv_channels", "attention_head_dim", "attention_head_size", "d_head",
    "dim_head", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "linear_key_head_dim",
    "linear_value_head_dim", "linear_head_dim", "swa_head_dim", "index_head_dim",
    "mamba_head_dim", "mamba_d_head", "mamba_headdim",
}  # fmt: skip
_FFN = {
    "intermediate_size", "d_ff", "n_inner", "ffn_dim", "encoder_ffn_dim", "decoder_ffn_dim",
    "ffn_hidden_size", "moe_intermediate_size", "shared_expert_intermediate_size",
    "moe_shared_expert_intermediate_size", "shared_experts_intermediate_size",
    "dense_intermediate_size", "expert_ffn_hidden_size", "intermediate_size_mlp", "d_inner",
    "dim_ff", "dff", "feed_forward_size", "mlp_dim", "speech_encoder_intermediate_size",
    "t2u_encoder_ffn_dim", "t2u_decoder_ffn_dim", "shared_intermediate_size", "mamba_d_ssm",
    "hidden_dim",
}  # fmt: skip
_VOCAB = {
    "vocab_size", "decoder_vocab_size", "src_vocab_size", "tgt_vocab_size",
    "vocab_size_per_layer_input", "unpadded_vocab_size", "encoder_hash_byte_group_vocab",
    "entity_vocab_size", "shape_vocab_size", "pronunciation_vocab_size",
}  # fmt: skip
_POSITIONS = {
    "max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "max_target_positions",
    "max_encoder_position_embeddings", "max_decoder_position_embeddings", "context_length",
    "t2u_max_position_embeddings", "max_2d_position_embeddings",
}  # fmt: skip
_EXPERTS = {"num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts"}
_TOP_K = {
    "num_experts_per_tok", "num_experts_per_token", "moe_top_k", "moe_topk", "moe_k", "top_k",
}  # fmt: skip
# Smaller fixed targets: (keys, value).
_OTHER: tuple[tuple[frozenset[str], int], ...] = (
    (frozenset({"n_shared_experts", "num_shared_experts", "moe_num_shared_experts"}), 1),
    (frozenset({"n_group", "num_expert_group"}), 2),
    (frozenset({"topk_group"}), 1),
    (frozenset({"zero_expert_num"}), 2),
    (frozenset({"kv_lora_rank", "q_lora_rank", "o_lora_rank", "embedding_rank"}), 32),
    (frozenset({"mamba_n_heads", "mamba_num_heads", "n_mamba_heads"}), 8),
    (frozenset({"mamba_d_state", "ssm_state_size", "state_size", "d_state"}), 16),
    (frozenset({"mamba_dt_rank", "time_step_rank"}), 8),
    (frozenset({"mamba_n_groups", "mamba_ngroups", "n_groups"}), 1),
    (frozenset({"index_topk"}), 4),
    (frozenset({"first_k_dense_replace", "num_dense_layers", "moe_layer_start_index"}), 1),
    (frozenset({"attn_layer_period", "expert_layer_period", "global_attn_every_n_layers"}), 2),
    (frozenset({"attn_layer_offset", "expert_layer_offset"}), 1),
    (frozenset({"sliding_window_pattern", "_sliding_window_pattern", "no_rope_layer_interval"}), 2),
    (frozenset({"decoder_sparse_step", "encoder_sparse_step", "interleave_moe_layer_step"}), 2),
    (frozenset({"num_kv_shared_layers"}), 1),
    (frozenset({"hidden_size_per_layer_input", "laurel_rank", "hc_lowrank"}), 16),
    (frozenset({"rotary_dim"}), 8),
    (frozenset({"depths"}), 1),  # blocks per stage of convolutional encoders
    (frozenset({"num_filters"}), 4),
)
_TARGETS: dict[str, int] = {
    **dict.fromkeys(_HIDDEN, SIZES.hidden),
    **dict.fromkeys(_HEADS, SIZES.heads),
    **dict.fromkeys(_KV_HEADS, SIZES.kv_heads),
    **dict.fromkeys(_HEAD_DIM, SIZES.head_dim),
    **dict.fromkeys(_FFN, SIZES.ffn),
    **dict.fromkeys(_VOCAB, SIZES.vocab),
    **dict.fromkeys(_POSITIONS, SIZES.positions),
    **dict.fromkeys(_EXPERTS, SIZES.experts),
    **dict.fromkeys(_TOP_K, SIZES.experts_per_token),
    **{key: value for keys, value in _OTHER for key in keys},
}
# Attributes that need a value even when the default is None.
_FILL_IF_NONE = {"head_dim", "num_key_value_heads"}
_NOT_SUBCONFIGS = {
    "id2label",
    "label2id",
    "rope_parameters",
    "rope_scaling",
    "task_specific_params",
}
_INDEX_SUFFIXES = ("_layers", "_idxs", "_ids", "_indexes", "_indices", "_layer_ids")
_TOKEN_SUFFIXES = ("_token_id", "_token_index", "_token_ids")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_index_list(key: str, value: Any, n_layers: int) -> bool:
    return (
        key.endswith(_INDEX_SUFFIXES)
        and isinstance(value, list)
        and all(_is_int(v) and 0 <= v < n_layers for v in value)
        and value == sorted(set(value))
    )


def _select_layers(
    per_layer: dict[str, Any], index_lists: dict[str, list[int]], n: int
) -> list[int]:
    """Indices of the layers to keep: the first layer of each distinct kind, at least two."""
    signatures = [
        tuple(str(v[i]) for v in per_layer.values())
        + tuple(i in idx for idx in index_lists.values())
        for i in range(n)
    ]
    keep: list[int] = []
    seen: set[tuple[Any, ...]] = set()
    for i, signature in enumerate(signatures):
        if signature not in seen:
            seen.add(signature)
            keep.append(i)
    keep = keep[: SIZES.max_layers]
    for i in range(n):
        if len(keep) >= min(SIZES.layers, n):
            break
        if i not in keep:
            keep.append(i)
    return sorted(keep)


def _index_keys(value: Any) -> list[int] | None:
    """The layer indices keying a per-layer dict (e.g. gemma4's `per_layer_config`), if any."""
    if not isinstance(value, dict) or not value:
        return None
    try:
        return sorted(int(k) for k in value)
    except (TypeError, ValueError):
        return None


def _shrink_layers(d: dict[str, Any]) -> None:
    """Cut per-layer lists and patterns of `d` to a few layers keeping every kind (in place)."""
    counts = {k: d[k] for k in _LAYERS if _is_int(d.get(k)) and d[k] > 0}
    for n in sorted(set(counts.values()), reverse=True):
        per_layer = {
            k: v
            for k, v in d.items()
            if (isinstance(v, list) or (isinstance(v, str) and "pattern" in k))
            and len(v) == n
            and not _is_index_list(k, v, n)
        }
        index_lists = {k: v for k, v in d.items() if _is_index_list(k, v, n) and len(v) > 0}
        index_dicts = {
            k: v
            for k, v in d.items()
            if (keys := _index_keys(v)) is not None and k not in _NOT_SUBCONFIGS and keys[-1] < n
        }
        index_lists.update({k: _index_keys(v) or [] for k, v in index_dicts.items()})
        if not per_layer and not index_lists:
            new_n = min(n, SIZES.layers)
        else:
            keep = _select_layers(per_layer, index_lists, n)
            for k, v in per_layer.items():
                cut = [v[i] for i in keep]
                d[k] = "".join(cut) if isinstance(v, str) else cut
            for k, v in index_lists.items():
                if k in index_dicts:
                    old = {int(i): x for i, x in index_dicts[k].items()}
                    d[k] = {new: old[i] for new, i in enumerate(keep) if i in old}
                else:
                    d[k] = [new for new, i in enumerate(keep) if i in v]
            new_n = len(keep)
        # Short cyclic patterns (e.g. recurrent_gemma's block_types) need one full cycle.
        for k, v in d.items():
            if k.endswith("types") and isinstance(v, list) and 0 < len(v) < n:
                new_n = max(new_n, len(v))
        for k, v in counts.items():
            if v == n:
                d[k] = new_n
    # A layer count derived from a list (e.g. nemotron_h's layers_block_type) has no key to set.
    if not counts:
        for k, v in list(d.items()):
            if k.endswith("block_type") and isinstance(v, list):
                d[k] = list(dict.fromkeys(v))[: SIZES.max_layers]


def _clamp(key: str, value: Any) -> Any:
    target = _TARGETS.get(key)
    if target is None:
        return value
    if value is None:
        return target if key in _FILL_IF_NONE else None
    if _is_int(value) and value > target:
        return target
    if isinstance(value, list) and value and all(_is_int(x) for x in value):
        return [min(x, target) for x in value]
    return value


def _shrink_dict(d: dict[str, Any]) -> None:
    """Shrink one config dictionary and its nested sub-configs in place."""
    for k, v in d.items():
        if isinstance(v, dict) and k not in _NOT_SUBCONFIGS:
            _shrink_dict(v)
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for x in v:
                _shrink_dict(x)
    multi_head = d.get("num_key_value_heads") == d.get("num_attention_heads")
    all_shared = d.get("num_kv_shared_layers") == d.get("num_hidden_layers")
    _shrink_layers(d)
    for k in list(d):
        d[k] = _clamp(k, d[k])
    _restore_invariants(d, multi_head=multi_head, all_shared=all_shared)


def _restore_invariants(d: dict[str, Any], *, multi_head: bool, all_shared: bool) -> None:
    """Re-tie attributes that the default config ties together and clamping may have split."""
    if multi_head and "num_key_value_heads" in d:  # plain multi-head attention stays so
        d["num_key_value_heads"] = d.get("num_attention_heads")
    if all_shared and "num_kv_shared_layers" in d:  # drafting assistants share every cache
        d["num_kv_shared_layers"] = d.get("num_hidden_layers")
    if any(_is_int(d.get(k)) for k in _EXPERTS):
        for k in _TOP_K & d.keys():
            if d[k] is None:
                d[k] = SIZES.experts_per_token
    # Multi-head latent attention: the full query/key head is the no-rope and rope parts,
    # and keys/values are expanded to every query head.
    if _is_int(d.get("qk_nope_head_dim")) and _is_int(d.get("qk_rope_head_dim")):
        for key in ("qk_head_dim", "swa_head_dim"):
            if key in d:
                d[key] = d["qk_nope_head_dim"] + d["qk_rope_head_dim"]
    if _is_int(d.get("kv_lora_rank")) and "num_key_value_heads" in d:
        d["num_key_value_heads"] = d.get("num_attention_heads", SIZES.heads)
    _fix_mamba(d)
    if _is_int(d.get("sliding_window")):  # shorter than the example inputs: windows bite
        d["sliding_window"] = min(d["sliding_window"], SIZES.sliding_window)


# (heads key, head-dim key) pairs of Mamba-2 mixers: heads x head_dim = expand x hidden.
_MAMBA_HEADS = (
    ("mamba_n_heads", "mamba_d_head"),
    ("mamba_num_heads", "mamba_head_dim"),
    ("n_mamba_heads", "mamba_headdim"),
)


def _fix_mamba(d: dict[str, Any]) -> None:
    hidden, expand = d.get("hidden_size"), d.get("mamba_expand", d.get("expand"))
    inner = d.get("mamba_d_ssm")
    if not _is_int(inner) and isinstance(hidden, int) and isinstance(expand, int):
        inner = hidden * expand
    if not _is_int(inner):
        return
    for heads, head_dim in _MAMBA_HEADS:
        if _is_int(d.get(heads)) and head_dim in d:
            d[head_dim] = inner // d[heads]


def _vocab_sizes(d: dict[str, Any]) -> list[int]:
    sizes = [v for k, v in d.items() if k == "vocab_size" and _is_int(v)]
    for v in d.values():
        if isinstance(v, dict):
            sizes += _vocab_sizes(v)
    return sizes


def _token_keys(d: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    found = [
        (d, k)
        for k in d
        if isinstance(k, str) and (k.endswith(_TOKEN_SUFFIXES) or k == "mask_index")
    ]
    for k, v in d.items():
        if isinstance(v, dict) and k not in _NOT_SUBCONFIGS:
            found += _token_keys(v)
    return found


def _remap_tokens(d: dict[str, Any], vocab: int) -> None:
    """Move every special token id at or above `vocab` to the top of the vocabulary."""
    places = _token_keys(d)
    ids: set[int] = set()
    for sub, k in places:
        v = sub[k]
        ids.update(x for x in (v if isinstance(v, list) else [v]) if _is_int(x) and x >= vocab)
    mapping = {old: vocab - 1 - i for i, old in enumerate(sorted(ids))}
    for sub, k in places:
        v = sub[k]
        if isinstance(v, list):
            sub[k] = [mapping.get(x, x) if _is_int(x) else x for x in v]
        elif _is_int(v):
            sub[k] = mapping.get(v, v)


Override = Callable[[dict[str, Any]], None]


def _subdicts(d: dict[str, Any]) -> list[dict[str, Any]]:
    found = [d]
    for k, v in d.items():
        if isinstance(v, dict) and k not in _NOT_SUBCONFIGS:
            found += _subdicts(v)
    return found


def _set(**values: Any) -> Override:
    """Set each key in every (sub-)config that has it, or at the top level if none has it."""

    def apply(d: dict[str, Any]) -> None:
        subs = _subdicts(d)
        for key, value in values.items():
            holders = [sub for sub in subs if key in sub] or [d]
            for sub in holders:
                sub[key] = value

    return apply


def _put(path: str, **values: Any) -> Override:
    """Set keys in the sub-config at dotted `path` (e.g. `attn_config`)."""

    def apply(d: dict[str, Any]) -> None:
        sub = d
        for part in path.split("."):
            sub = sub[part]
        sub.update(values)

    return apply


_DEFAULT_ROPE = {"rope_type": "default", "rope_theta": 10000.0}
_QWEN4_INDEXER = _set(
    indexer_n_heads=2,
    indexer_kv_heads=1,
    indexer_head_dim=16,
    indexer_budget=8,
    indexer_compress_ratio=4,
)
# Per-model_type fixes applied after the generic rules (defaults transformers leaves unset,
# or constraints between attributes that the generic rules cannot infer).
OVERRIDES: dict[str, Override] = {
    "bamba": _set(attn_layer_indices=[1]),
    "cohere_compass_text": _set(
        rope_parameters={"full_attention": _DEFAULT_ROPE, "sliding_attention": _DEFAULT_ROPE}
    ),
    "dbrx": _put("attn_config", rope_theta=10000.0, clip_qkv=8.0),
    "dots1": _set(n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1),
    "dots3_note": _set(head_dim=32),  # its sliding-window layers use nope + rope head dims
    "dots3_note_text": _set(head_dim=32),
    "esm": _set(vocab_size=33, pad_token_id=1, mask_token_id=32),  # defaults leave these unset
    "granitemoehybrid": _set(layer_types=["mamba", "attention"]),
    "hrm_text": _set(num_layers_per_stack=1, H_cycles=1, L_cycles=1, num_hidden_layers=2),
    # one block per layer and layer 1 looped twice, so the tiny model exercises the loop
    "inkling2_loop_text": _set(
        n_layers_per_attn_res_block=1,
        loop_layer_index_start=1,
        loop_layer_index_end=2,
        loop_num_passes=2,
    ),
    "lfm2_moe": _set(layer_types=["conv", "full_attention"]),
    "mamba2": _set(num_heads=8),
    "musicgen": _set(num_codebooks=1),
    "musicgen_melody": _set(num_codebooks=1),
    "qwen4_exp": _QWEN4_INDEXER,
    "qwen4_exp_text": _QWEN4_INDEXER,
    "reformer": _set(
        hash_seed=0,  # otherwise LSH attention draws new random rotations at every forward
        axial_pos_shape=[16, 32],
        axial_pos_embds_dim=[16, 48],
        local_attn_chunk_length=4,
        lsh_attn_chunk_length=4,
    ),
    # qk/v widths round up to multiples of 64 in the config but not in the model
    "xlstm": _set(hidden_size=128, embedding_dim=128),
    "xmod": _set(default_language="en_XX"),
    "zamba": _set(
        attention_hidden_size=128,
        num_hidden_layers=4,  # the shared transformer is tied across two hybrid layers
        layers_block_type=["linear_attention", "hybrid"] * 2,
    ),
    "zamba2": _set(attention_hidden_size=128),
}


# Fixes that depend on the task kind as well.
KIND_OVERRIDES: dict[tuple[str, Kind], Override] = {}


# Arguments for the default config where the plain default fails validation.
DEFAULT_KWARGS: dict[str, dict[str, Any]] = {
    "gemma4_assistant": {
        "text_config": {"hidden_size_per_layer_input": 0, "vocab_size_per_layer_input": 0}
    },
}


def tiny_config_dict(model_type: str, kind: Kind) -> dict[str, Any]:
    """The shrunk config of `model_type` as a dictionary (before building the config object)."""
    arch = get_architecture(model_type, kind)
    d = config_class(arch)(**DEFAULT_KWARGS.get(model_type, {})).to_dict()
    _shrink_dict(d)
    vocabs = _vocab_sizes(d)
    _remap_tokens(d, min(vocabs) if vocabs else SIZES.vocab)
    if model_type in OVERRIDES:
        OVERRIDES[model_type](d)
    if (model_type, kind) in KIND_OVERRIDES:
        KIND_OVERRIDES[model_type, kind](d)
    if kind == "causal":
        # what transformers asks of encoder families used as causal LMs (BERT, RoFormer, ...);
        # decoder-only families ignore it
        d["is_decoder"] = True
    return d


def tiny_config(model_type: str, kind: Kind) -> PretrainedConfig:
    """The config of `model_type` with tiny sizes; `ValueError` for an unknown `model_type`."""
    arch = get_architecture(model_type, kind)
    d = tiny_config_dict(model_type, kind)
    d.pop("transformers_version", None)
    config: PretrainedConfig = config_class(arch).from_dict(d)  # type: ignore[attr-defined]
    return config


def special_token_ids(config: PretrainedConfig) -> frozenset[int]:
    """Every special token id named anywhere in `config` (and its sub-configs)."""
    ids: set[int] = set()
    for sub, k in _token_keys(config.to_dict()):
        v = sub[k]
        ids.update(x for x in (v if isinstance(v, list) else [v]) if _is_int(x))
    return frozenset(ids)
