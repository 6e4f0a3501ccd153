"""GGUF files as models: converted once into a cached safetensors + tokenizer folder.

transformers reads a GGUF file by dequantizing it to float32 (tens of seconds for a small
model); the converted folder loads in about a second. A folder is written under a temporary
name and renamed into place, so an interrupted conversion never leaves a folder that later
loads. A file's folder is keyed by its resolved path, size and modification time, so an
edited or replaced file is converted again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from crystalbox.errors import CheckpointError

__all__ = ["COMPLETE_MARKER", "cache_dir", "convert_gguf", "gguf_model_path"]

COMPLETE_MARKER = "crystalbox-conversion.json"
_CACHE_ENV = "CRYSTALBOX_CACHE"


def cache_dir() -> Path:
    """The crystalbox cache folder (``$CRYSTALBOX_CACHE``, else ``~/.cache/crystalbox``)."""
    override = os.environ.get(_CACHE_ENV)
    base = Path(override) if override else Path.home() / ".cache" / "crystalbox"
    return base.expanduser()


def gguf_model_path(file: str | os.PathLike[str], *, progress: bool = True) -> Path:
    """Folder of the converted ``file`` (a ``.gguf`` model), converting it on first use."""
    source = Path(file).expanduser().resolve()
    if not source.is_file():
        raise CheckpointError(f"GGUF file {file} does not exist")
    stat = source.stat()
    key = hashlib.sha256(f"{source}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", source.stem)[:60]
    target = cache_dir() / "models" / f"gguf-{name}-{key[:12]}"
    if (target / COMPLETE_MARKER).is_file():
        return target
    return convert_gguf(source, target, progress=progress)


def convert_gguf(source: Path, target: Path, *, progress: bool) -> Path:
    """Dequantize the GGUF file ``source`` into the folder ``target`` (written atomically)."""
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
        try:
            model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name)
            tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
        except (ValueError, KeyError, OSError, RuntimeError, TypeError) as exc:
            raise CheckpointError(
                f"transformers cannot read {source} as a GGUF language model ({exc}); check that "
                "the file is complete and that transformers supports its architecture for GGUF "
                "(or convert it to a HuggingFace folder elsewhere and pass that folder)"
            ) from exc
        # the dequantized fp32 weights are ordinary tensors; detach the GGUF quantizer so they save
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        marker = {"source": str(source), "seconds": round(time.perf_counter() - start, 2)}
        (staging / COMPLETE_MARKER).write_text(json.dumps(marker, indent=2))
        if (target / COMPLETE_MARKER).is_file():  # another process finished first
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
