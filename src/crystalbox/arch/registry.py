"""The one place where architecture specs are registered, keyed by ``model_type``."""

from __future__ import annotations

import importlib
import pkgutil

from crystalbox.arch.spec import ArchSpec

_REGISTRY: dict[str, ArchSpec] = {}
_LOADED = False


def register_spec(spec: ArchSpec, *, replace: bool = False) -> ArchSpec:
    """Register ``spec`` for each of its model types (``replace=True`` to override one)."""
    for model_type in spec.model_types:
        if model_type in _REGISTRY and not replace and _REGISTRY[model_type] is not spec:
            raise ValueError(
                f"model_type {model_type!r} already has a spec; pass replace=True to override it"
            )
        _REGISTRY[model_type] = spec
    return spec


def _load_families() -> None:
    global _LOADED
    if _LOADED:
        return
    import crystalbox.arch.families as families

    for info in pkgutil.iter_modules(families.__path__):
        module = importlib.import_module(f"{families.__name__}.{info.name}")
        for spec in getattr(module, "SPECS", ()):
            register_spec(spec, replace=True)
    _LOADED = True


def get_spec(model_type: str) -> ArchSpec | None:
    """The registered spec for ``model_type``, or None (then discovery applies)."""
    _load_families()
    return _REGISTRY.get(model_type)


def registered_model_types() -> list[str]:
    _load_families()
    return sorted(_REGISTRY)
