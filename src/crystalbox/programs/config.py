"""The constrained model's configuration and the layout of its residual-stream variables."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = [
    "KindCounts",
    "ProgramConfig",
    "VariableSpec",
    "parse_kind_counts",
    "split_kinds",
    "variable_layout",
]

VariableKind = Literal["categorical", "numerical"]

#: heads or MLPs per layer: a total split evenly (categorical gets the odd one) or ``(cat, num)``
KindCounts = int | tuple[int, int]


def split_kinds(value: KindCounts, name: str) -> tuple[int, int]:
    """``(categorical, numerical)`` counts of ``value``: an ``int`` n is split as
    ``(n - n // 2, n // 2)``, a pair is taken as is; ``name`` labels the errors."""
    if isinstance(value, bool) or not isinstance(value, int | tuple):
        raise TypeError(f"{name} must be an int or a (categorical, numerical) pair, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}")
        return value - value // 2, value // 2
    if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise TypeError(f"{name} must be a (categorical, numerical) pair of ints, got {value!r}")
    if min(value) < 0:
        raise ValueError(f"{name} must be non-negative, got {value[0]}+{value[1]}")
    return value[0], value[1]


def parse_kind_counts(text: str) -> KindCounts:
    """Command-line form of ``KindCounts``: ``"4"`` (split evenly) or ``"1+2"`` (cat+num,
    as ``ProgramConfig.summary`` prints them)."""
    parts = text.strip().split("+")
    if len(parts) in (1, 2) and all(p.strip().isascii() and p.strip().isdigit() for p in parts):
        numbers = [int(p) for p in parts]
        return numbers[0] if len(numbers) == 1 else (numbers[0], numbers[1])
    raise ValueError(
        f"expected a count per layer, N (split evenly between categorical and numerical) or "
        f"CAT+NUM (e.g. 1+2), got {text!r}"
    )


@dataclass(frozen=True)
class ProgramConfig:
    """Shape of a Transformer Program.

    ``d_var`` is the shared cardinality k of categorical variables; the input vocabulary and
    the context (one-hot positions) must both fit in it. Head and MLP counts are per layer.
    ``count_only``: numerical heads always sum ``ones`` (they count their matches, RASP's
    selector width) instead of choosing which numerical variable to sum.
    ``n_causal_cat_heads`` / ``n_causal_num_heads`` (an extension of the paper's model, for
    non-causal tasks): the first that many heads of each kind in every layer attend only to
    keys at or before the query (prefix selections and counts); the others see every key.
    ``num_mlp_tables`` (an extension of the paper's model; needs ``count_only``): each
    numerical MLP is a table of output logits over count pairs ``[0, n_ctx]^2``, read in
    training by interpolating between neighbouring counts, instead of a ReLU MLP.
    """

    vocab_size: int
    n_classes: int
    n_ctx: int
    d_var: int = 8
    n_layers: int = 2
    n_cat_heads: int = 2
    n_num_heads: int = 2
    n_cat_mlps: int = 1
    n_num_mlps: int = 1
    d_mlp: int = 64
    causal: bool = False
    pad_id: int = 0
    count_only: bool = False
    n_causal_cat_heads: int = 0
    n_causal_num_heads: int = 0
    num_mlp_tables: bool = False

    def __post_init__(self) -> None:
        problems = []
        for name in ("vocab_size", "n_classes", "n_ctx", "d_var", "n_layers", "d_mlp"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        for name in ("n_cat_heads", "n_num_heads", "n_cat_mlps", "n_num_mlps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                problems.append(f"{name} must be a non-negative integer, got {value!r}")
        if not problems:
            if self.vocab_size > self.d_var:
                problems.append(
                    f"vocab_size {self.vocab_size} exceeds d_var {self.d_var}: token one-hots must "
                    "fit in a categorical variable; raise d_var"
                )
            if self.n_ctx > self.d_var:
                problems.append(
                    f"n_ctx {self.n_ctx} exceeds d_var {self.d_var}: position one-hots must fit "
                    "in a categorical variable; raise d_var"
                )
            if not 0 <= self.pad_id < self.vocab_size:
                problems.append(
                    f"pad_id {self.pad_id} is outside the vocabulary [0, {self.vocab_size})"
                )
        for kind in ("cat", "num"):
            n_causal, n_heads = (
                getattr(self, f"n_causal_{kind}_heads"),
                getattr(self, f"n_{kind}_heads"),
            )
            if not isinstance(n_causal, int) or not 0 <= n_causal <= n_heads:
                problems.append(
                    f"n_causal_{kind}_heads must be an integer in [0, n_{kind}_heads = {n_heads}], "
                    f"got {n_causal!r}"
                )
            elif n_causal and self.causal:
                problems.append(
                    f"n_causal_{kind}_heads is for non-causal models (causal=True masks every "
                    "head already); set it to 0"
                )
        for name in ("count_only", "num_mlp_tables"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.num_mlp_tables is True and self.count_only is not True:
            problems.append(
                "num_mlp_tables needs count_only=True: a table covers the counts [0, n_ctx], "
                "while summed numerical values can exceed them"
            )
        if problems:
            raise ValueError("invalid ProgramConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def n_counts(self) -> int:
        """How many count values ``[0, n_ctx]`` a numerical table MLP covers per input."""
        return self.n_ctx + 1

    def head_causal(self, kind: Literal["cat", "num"]) -> tuple[bool, ...]:
        """Whether each head of ``kind`` (in every layer) has a causal mask."""
        n_heads = self.n_cat_heads if kind == "cat" else self.n_num_heads
        n_causal = self.n_causal_cat_heads if kind == "cat" else self.n_causal_num_heads
        return tuple(self.causal or h < n_causal for h in range(n_heads))

    def summary(self) -> str:
        """The shape in one line, e.g. ``k=8 L=3 H=2+2 M=1+1`` (heads and MLPs: cat+num; a
        `` count-only`` suffix when numerical heads only count, `` tables`` when numerical MLPs
        are tables)."""
        return (
            f"k={self.d_var} L={self.n_layers} H={self.n_cat_heads}+{self.n_num_heads} "
            f"M={self.n_cat_mlps}+{self.n_num_mlps}"
            + (" count-only" if self.count_only else "")
            + (" tables" if self.num_mlp_tables else "")
            + (
                f" causal={self.n_causal_cat_heads}+{self.n_causal_num_heads}"
                if self.n_causal_cat_heads or self.n_causal_num_heads
                else ""
            )
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProgramConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ProgramConfig fields {unknown}; known: {sorted(known)}")
        return cls(**data)


@dataclass(frozen=True)
class VariableSpec:
    """One named variable of the residual stream.

    ``source`` is the module that writes it: ``"embedding"`` or the module's name (the
    name of a head or MLP is also the name of its output variable).
    """

    name: str
    kind: VariableKind
    cardinality: int | None  # k for categorical variables, None for numerical ones
    source: str
    layer: int | None  # None for the embeddings


def cat_head_name(layer: int, head: int) -> str:
    return f"attn_{layer}_{head}"


def num_head_name(layer: int, head: int) -> str:
    return f"num_attn_{layer}_{head}"


def cat_mlp_name(layer: int, mlp: int) -> str:
    return f"mlp_{layer}_{mlp}"


def num_mlp_name(layer: int, mlp: int) -> str:
    return f"num_mlp_{layer}_{mlp}"


def variable_layout(
    config: ProgramConfig,
) -> tuple[tuple[VariableSpec, ...], tuple[VariableSpec, ...]]:
    """Categorical and numerical variables of the final stream, in stream order.

    Categorical: ``tokens``, ``positions``, then per layer its categorical heads, categorical
    MLPs and numerical MLPs (which write categorical variables). Numerical: ``ones``, then
    per layer its numerical heads.
    """
    k = config.d_var
    cat = [
        VariableSpec("tokens", "categorical", k, "embedding", None),
        VariableSpec("positions", "categorical", k, "embedding", None),
    ]
    num = [VariableSpec("ones", "numerical", None, "embedding", None)]
    for layer in range(config.n_layers):
        for h in range(config.n_cat_heads):
            name = cat_head_name(layer, h)
            cat.append(VariableSpec(name, "categorical", k, name, layer))
        for h in range(config.n_num_heads):
            name = num_head_name(layer, h)
            num.append(VariableSpec(name, "numerical", None, name, layer))
        for m in range(config.n_cat_mlps):
            name = cat_mlp_name(layer, m)
            cat.append(VariableSpec(name, "categorical", k, name, layer))
        for m in range(config.n_num_mlps):
            name = num_mlp_name(layer, m)
            cat.append(VariableSpec(name, "categorical", k, name, layer))
    return tuple(cat), tuple(num)


def n_cat_before(config: ProgramConfig, layer: int) -> int:
    """Categorical variables in the stream when ``layer`` starts."""
    return 2 + layer * (config.n_cat_heads + config.n_cat_mlps + config.n_num_mlps)


def n_num_before(config: ProgramConfig, layer: int) -> int:
    """Numerical variables in the stream when ``layer`` starts."""
    return 1 + layer * config.n_num_heads
