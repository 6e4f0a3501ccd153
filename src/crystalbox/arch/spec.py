"""The declarative description of one architecture family."""

from __future__ import annotations

from dataclasses import dataclass, field

# Module paths are dotted attribute paths from the top-level HF model ("model.layers"), or,
# for per-layer roles, from one layer ("self_attn"). A tuple lists alternatives, tried in order:
# heterogeneous stacks (attention in some layers, an SSM mixer in others) name each kind.
Path = str
Paths = tuple[str, ...]

ABSENT = None  # a role declared absent for the whole architecture


@dataclass(frozen=True)
class ArchSpec:
    """Canonical role -> module path for one family, plus config keys and quirks."""

    model_types: tuple[str, ...]
    layers: Path
    embed_tokens: Path
    lm_head: Path
    ln_final: Path | None
    attention: Paths | None = ("self_attn",)
    mlp: Paths | None = ("mlp",)
    # module whose *output* is the MLP's contribution when it differs from the MLP's input module
    # (BERT: input at "intermediate", output at "output")
    mlp_output: Paths | None = None
    # linear-attention / SSM mixers, for layers without softmax attention
    mixer: Paths | None = None
    # MoE router module (its output holds the router logits), relative to a layer
    router: Paths | None = None
    # the layer computes attention and MLP from the same input (GPT-J, GPT-NeoX with parallel residual)
    parallel_residual: bool = False
    # norms sit after the residual sum (BERT): the residual identity does not hold
    post_norm: bool = False
    # config attribute names, first present wins
    num_layers_keys: tuple[str, ...] = ("num_hidden_layers", "n_layer", "num_layers")
    num_heads_keys: tuple[str, ...] = ("num_attention_heads", "n_head", "num_heads")
    hidden_size_keys: tuple[str, ...] = ("hidden_size", "n_embd", "d_model", "dim")
    vocab_size_keys: tuple[str, ...] = ("vocab_size",)
    # free-text quirks shown by `crystalbox info` and in the coverage matrix
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.model_types:
            raise ValueError("ArchSpec needs at least one model_type")
        for name in ("attention", "mlp", "mlp_output", "mixer", "router"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(
                    f"ArchSpec.{name} takes a tuple of alternative paths, e.g. ({value!r},), not a string"
                )
