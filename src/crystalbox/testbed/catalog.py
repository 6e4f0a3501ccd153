"""Enumerate the architectures transformers can build for each task kind."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal, get_args

Kind = Literal["causal", "masked", "seq2seq"]
KINDS: tuple[Kind, ...] = get_args(Kind)

_MAPPING_NAMES: dict[Kind, str] = {
    "causal": "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
    "masked": "MODEL_FOR_MASKED_LM_MAPPING_NAMES",
    "seq2seq": "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
}


@dataclass(frozen=True)
class Architecture:
    """One `model_type` registered for a task kind, with its config and model class names."""

    model_type: str
    kind: Kind
    config_class: str
    model_class: str


def _check_kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    return kind  # type: ignore[return-value]


def _model_names(kind: Kind) -> dict[str, str]:
    from transformers.models.auto import modeling_auto

    names: dict[str, str | tuple[str, ...]] = getattr(modeling_auto, _MAPPING_NAMES[kind])
    # A mapping value may list several classes; the first is the default one.
    return {k: v if isinstance(v, str) else v[0] for k, v in names.items()}


def list_architectures(kind: Kind) -> tuple[Architecture, ...]:
    """Every architecture transformers registers for `kind`, sorted by `model_type`."""
    kind = _check_kind(kind)
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return tuple(
        Architecture(model_type, kind, CONFIG_MAPPING_NAMES[model_type], model_class)
        for model_type, model_class in sorted(_model_names(kind).items())
    )


def get_architecture(model_type: str, kind: Kind) -> Architecture:
    """The architecture `model_type` of `kind`; `ValueError` naming close matches if unknown."""
    kind = _check_kind(kind)
    for arch in list_architectures(kind):
        if arch.model_type == model_type:
            return arch
    known = [a.model_type for a in list_architectures(kind)]
    close = difflib.get_close_matches(model_type, known, n=5)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise ValueError(f"unknown {kind} model_type {model_type!r}{hint}")


def config_class(arch: Architecture) -> type:
    """The config class `arch`'s model class expects (e.g. a decoder config for musicgen)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    expected = getattr(model_class(arch), "config_class", None)
    return expected if isinstance(expected, type) else CONFIG_MAPPING[arch.model_type]


def model_class(arch: Architecture) -> type:
    """The model class of `arch` (e.g. `LlamaForCausalLM`)."""
    import transformers

    return getattr(transformers, arch.model_class)
