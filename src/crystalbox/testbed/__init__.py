"""Offline test bed: tiny random models of every architecture transformers registers.

`list_architectures(kind)` enumerates the causal / masked / seq2seq architectures,
`tiny_config` shrinks one's config, `build_tiny_model` builds and runs it, and `build_all`
(or `iter_builds`, one at a time) tries them all, reporting each failure with its stage and
reason. `python -m crystalbox.testbed [--kind causal]` prints the table.
"""

from crystalbox.testbed.build import (
    BuildFailure,
    BuildRecord,
    TinyBuildError,
    TinyModel,
    build_all,
    build_tiny_model,
    iter_builds,
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
    "iter_builds",
    "list_architectures",
    "tiny_config",
]
