"""Offline test bed: tiny random models of every architecture transformers registers.

`list_architectures(kind)` enumerates the causal / masked / seq2seq architectures,
`tiny_config` shrinks one's config, `build_tiny_model` builds and runs it, and `build_all`
tries them all, reporting each failure with its stage and reason.
"""

from crystalbox.testbed.build import (
    BuildFailure,
    BuildRecord,
    TinyBuildError,
    TinyModel,
    build_all,
    build_tiny_model,
)
from crystalbox.testbed.catalog import KINDS, Architecture, Kind, list_architectures
from crystalbox.testbed.shrink import SIZES, TinySizes, tiny_config

__all__ = [
    "KINDS",
    "SIZES",
    "Architecture",
    "BuildFailure",
    "BuildRecord",
    "Kind",
    "TinyBuildError",
    "TinyModel",
    "TinySizes",
    "build_all",
    "build_tiny_model",
    "list_architectures",
    "tiny_config",
]
