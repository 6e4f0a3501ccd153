"""crystalbox: mechanistic interpretability of transformers.

The public API is re-exported here lazily, so importing ``crystalbox`` (or
``crystalbox.programs``) does not import nnsight or transformers until a name
that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "StandardizedTransformer": "crystalbox.standard.model",
    "load_model": "crystalbox.loading",
    "DEFAULT_MODEL": "crystalbox.default_model",
    "default_model_path": "crystalbox.default_model",
    "validate": "crystalbox.validation",
    "ValidationReport": "crystalbox.validation",
    "ArchSpec": "crystalbox.arch.spec",
    "register_spec": "crystalbox.arch.registry",
    "CrystalboxError": "crystalbox.errors",
    "ModelNotFoundError": "crystalbox.errors",
    "ArchitectureError": "crystalbox.errors",
    "RoleUnavailableError": "crystalbox.errors",
    "ValidationError": "crystalbox.errors",
    "CheckpointError": "crystalbox.errors",
}

__all__ = [
    "DEFAULT_MODEL",
    "ArchSpec",
    "ArchitectureError",
    "CheckpointError",
    "CrystalboxError",
    "ModelNotFoundError",
    "RoleUnavailableError",
    "StandardizedTransformer",
    "ValidationError",
    "ValidationReport",
    "__version__",
    "default_model_path",
    "load_model",
    "register_spec",
    "validate",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'crystalbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from crystalbox.arch.registry import register_spec
    from crystalbox.arch.spec import ArchSpec
    from crystalbox.default_model import DEFAULT_MODEL, default_model_path
    from crystalbox.errors import (
        ArchitectureError,
        CheckpointError,
        CrystalboxError,
        ModelNotFoundError,
        RoleUnavailableError,
        ValidationError,
    )
    from crystalbox.loading import load_model
    from crystalbox.standard.model import StandardizedTransformer
    from crystalbox.validation import ValidationReport, validate
