"""Resolve what a user names (short name, local folder, hub id, or ``nn.Module``) into a HF model."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from torch import nn

from crystalbox.default_model import SHORT_NAMES, default_model_path
from crystalbox.errors import CheckpointError, ModelNotFoundError
from crystalbox.gguf import gguf_model_path

Task = Literal["causal", "masked", "seq2seq"]

# nnsight / transformers pipeline task for each kind of head
PIPELINE_TASK: dict[Task, str] = {
    "causal": "text-generation",
    "masked": "feature-extraction",  # fill-mask's preprocessing demands exactly one [MASK]
    "seq2seq": "feature-extraction",  # transformers 5 has no text2text-generation pipeline
}


@dataclass(frozen=True)
class LoadedModel:
    """A HuggingFace model in eval mode, its tokenizer, and what kind of head it has."""

    model: Any  # transformers.PreTrainedModel
    tokenizer: Any | None
    task: Task
    source: str
    # parameters the checkpoint had no weights for (initialised at random; see load_model)
    missing_weights: tuple[str, ...] = ()


def load_model(
    model: str | os.PathLike[str] | nn.Module | None = None,
    tokenizer: Any | None = None,
    *,
    device_map: str | dict[str, Any] | None = None,
    dtype: Any = None,
    attn_implementation: str | None = None,
    allow_missing_weights: bool = False,
) -> LoadedModel:
    """Load ``model`` (default: the embedded SmolLM2) and its tokenizer, offline when needed.

    A checkpoint without weights for some of its parameters (e.g. a base encoder with no
    language-model head) raises ``CheckpointError``: transformers would initialise them at
    random. ``allow_missing_weights=True`` loads it anyway and lists them in
    ``LoadedModel.missing_weights``.
    """
    if isinstance(model, nn.Module):
        return _from_module(model, tokenizer)
    if model is None or (isinstance(model, str) and model.lower() in SHORT_NAMES):
        path: str = str(default_model_path())
        source = "smollm2-135m (embedded)"
    elif isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        source = path
        if Path(path).expanduser().is_file():
            path = str(_folder_of_file(path))
    else:
        raise TypeError(
            f"model must be a hub name, a local folder, an nn.Module or None, not {type(model).__name__}"
        )
    if _is_program_checkpoint(path):
        options = {
            "device_map": device_map,
            "dtype": dtype,
            "attn_implementation": attn_implementation,
        }
        return _from_program_checkpoint(path, tokenizer, options)
    config = _load_config(path)
    task = _task_of_config(config)
    kwargs: dict[str, Any] = {}
    if device_map is not None:
        kwargs["device_map"] = device_map
    if dtype is not None:
        kwargs["dtype"] = dtype
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    hf_model, missing = _load_weights(task, path, source, config, allow_missing_weights, kwargs)
    hf_model.eval()
    if tokenizer is None:
        tokenizer = _tokenizer_at(path, source)
    return LoadedModel(hf_model, tokenizer, task, source, missing)


def _load_weights(
    task: Task,
    path: str,
    source: str,
    config: Any,
    allow_missing_weights: bool,
    kwargs: dict[str, Any],
) -> tuple[Any, tuple[str, ...]]:
    """The model at ``path`` with the head of ``task``, and the parameters it had no weights
    for; ``CheckpointError`` for weights that are absent, missing or of the wrong shape."""
    try:
        with _held_load_messages() as held:
            hf_model, info = _auto_class(task).from_pretrained(
                path, output_loading_info=True, **kwargs
            )
    except OSError as exc:
        if not Path(path).expanduser().is_dir():
            raise
        raise CheckpointError(
            f"{source} has a config.json but no weights that transformers can read ({exc}); "
            "copy the weights (model.safetensors, or the shards and their index) into it"
        ) from exc
    except RuntimeError as exc:
        if "above report" not in str(exc):
            raise
        raise CheckpointError(
            f"the weights in {source} do not fit the model its config.json describes (the load "
            "report above marks each parameter whose shape differs or whose conversion failed); "
            "fix config.json to match the weights, or load the folder the weights were saved with"
        ) from exc
    missing = tuple(sorted(info.get("missing_keys") or ()))
    if missing and not allow_missing_weights:
        raise CheckpointError(_missing_weights_message(source, hf_model, config, missing))
    # missing weights are reported by crystalbox (model.missing_weights, info()); the rest as is
    _release(held, drop=_MISSING_WEIGHT_MESSAGES if missing else ())
    return hf_model, missing


# transformers' messages about weights a checkpoint lacks (its load report, untied weights)
_MISSING_WEIGHT_MESSAGES = ("LOAD REPORT", "This checkpoint seem corrupted")
_LOAD_LOGGER = "transformers.modeling_utils"


@contextmanager
def _held_load_messages() -> Iterator[list[logging.LogRecord]]:
    """Hold back what transformers logs while loading weights, for ``_release`` to decide:
    its report of missing weights would otherwise precede crystalbox's own error. When loading
    fails, everything held is logged before the error propagates (it may be the error's detail).
    """
    held: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        held.append(record)
        return False

    logger = logging.getLogger(_LOAD_LOGGER)
    logger.addFilter(hold)
    try:
        yield held
    except BaseException:
        logger.removeFilter(hold)
        _release(held, drop=())
        raise
    finally:
        logger.removeFilter(hold)


def _release(held: list[logging.LogRecord], drop: tuple[str, ...]) -> None:
    """Log the held records again, except those whose message contains one of ``drop``."""
    logger = logging.getLogger(_LOAD_LOGGER)
    for record in held:
        if not any(marker in record.getMessage() for marker in drop):
            logger.handle(record)


def _tokenizer_at(path: str, source: str) -> Any:
    """The tokenizer saved with the model at ``path``; a clear error when there is none."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, TypeError) as exc:
        said = " ".join(str(exc).split()) or type(exc).__name__
        said = said if len(said) <= 240 else said[:237] + "..."
        raise ModelNotFoundError(
            f"{source} has a model but no tokenizer that loads ({said}); save one beside it "
            "(tokenizer.save_pretrained(folder)) or pass tokenizer=... (in Python, e.g. "
            "AutoTokenizer.from_pretrained of the model it was trained from)"
        ) from exc


def _missing_weights_message(
    source: str, hf_model: Any, config: Any, missing: tuple[str, ...]
) -> str:
    """Which parameters a checkpoint lacks, what that breaks, and how to load it anyway."""
    prefix = f"{getattr(hf_model, 'base_model_prefix', '')}."
    head_only = prefix != "." and not any(key.startswith(prefix) for key in missing)
    shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
    if head_only:
        why = (
            f"they are the language-model head of {type(hf_model).__name__}, so the logits, the "
            "logit lens and every method that reads logits would be meaningless (the checkpoint "
            f"was saved without that head: architectures {config.architectures})"
        )
    else:
        why = "the model would not be the checkpoint's"
    return (
        f"{source} has no weights for {len(missing)} parameters ({shown}); transformers would "
        f"initialise them at random, and {why}. Load a checkpoint that has them, or pass "
        "allow_missing_weights=True (CLI: --allow-missing-weights) to read the model's other "
        "parts knowing that these are random."
    )


def _from_module(module: nn.Module, tokenizer: Any | None) -> LoadedModel:
    config = getattr(module, "config", None)
    if config is None:
        raise TypeError(
            f"{type(module).__name__} has no HuggingFace config; crystalbox wraps transformers "
            f"PreTrainedModel objects (e.g. AutoModelForCausalLM.from_pretrained(...))"
        )
    module.eval()
    if tokenizer is None:
        tokenizer = _tokenizer_of(module)
    return LoadedModel(module, tokenizer, _task_of_model(module), type(module).__name__)


def _is_program_checkpoint(path: str) -> bool:
    """Whether ``path`` is a folder written by ``crystalbox.programs.save_program``."""
    config = Path(path).expanduser() / "config.json"
    if not config.is_file():
        return False
    from crystalbox.programs.checkpoint import FORMAT

    try:
        return bool(json.loads(config.read_text()).get("format") == FORMAT)
    except (json.JSONDecodeError, OSError, AttributeError):
        return False


def _from_program_checkpoint(
    path: str, tokenizer: Any | None, options: dict[str, Any]
) -> LoadedModel:
    """A Transformer Program checkpoint, seen as a HF model (``programs.transformer_view``);
    ``TypeError`` for any of the HF loading ``options`` given."""
    given = [name for name, value in options.items() if value is not None]
    if given:
        raise TypeError(
            f"{path} is a Transformer Program checkpoint: it loads in float32 on the CPU, so "
            f"{', '.join(given)} does not apply; leave it unset (move the wrapped model with "
            ".to(...) afterwards if needed)"
        )
    from crystalbox.programs.transformer_view import as_transformer

    view = as_transformer(path)
    return LoadedModel(view.model, tokenizer or view.tokenizer, _task_of_model(view.model), path)


def _tokenizer_of(module: nn.Module) -> Any:
    from transformers import AutoTokenizer

    name = str(getattr(module, "name_or_path", "") or "")
    fix = (
        "pass tokenizer=... (e.g. AutoTokenizer.from_pretrained(...)); for a random tiny model, "
        "crystalbox.synthetic_tokenizer.synthetic_tokenizer(vocab_size) gives a character-level one"
    )
    if not name:
        raise ModelNotFoundError(
            f"{type(module).__name__} was not loaded from a folder or hub name, so it has no tokenizer; {fix}"
        )
    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"no tokenizer found for {name!r} ({exc}); {fix}") from exc


def _folder_of_file(path: str) -> Path:
    """The model folder for a file the user named: a ``.gguf`` file's converted folder."""
    if Path(path).suffix.lower() == ".gguf":
        return gguf_model_path(path)
    raise ModelNotFoundError(
        f"{path!r} is a file; pass the folder that holds config.json and the weights (written by "
        f"save_pretrained()), a .gguf file, a hub name, or {SHORT_NAMES[0]!r} for the embedded "
        "default model"
    )


def _load_config(path: str) -> Any:
    from transformers import AutoConfig

    local = Path(path).expanduser()
    if local.exists() and not (local / "config.json").is_file():
        ggufs = sorted(p.name for p in local.glob("*.gguf"))
        hint = f" (it holds {', '.join(ggufs)}: pass one of those files)" if ggufs else ""
        raise ModelNotFoundError(
            f"{path!r} is a folder without config.json{hint}; pass a folder written by "
            f"save_pretrained(), a .gguf file, a hub name, or {SHORT_NAMES[0]!r} for the "
            "embedded default model"
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    try:
        return AutoConfig.from_pretrained(path, local_files_only=offline)
    except OSError as exc:
        where = "offline (HF_HUB_OFFLINE=1) and not in the local cache" if offline else str(exc)
        raise ModelNotFoundError(
            f"cannot load model {path!r}: it is not a local folder, not a short name "
            f"({', '.join(SHORT_NAMES)}), and it is {where}. Download it on a machine with "
            f"network access (huggingface-cli download {path}) or pass a local folder."
        ) from exc


def _auto_class(task: Task) -> Any:
    import transformers

    name = {
        "causal": "AutoModelForCausalLM",
        "masked": "AutoModelForMaskedLM",
        "seq2seq": "AutoModelForSeq2SeqLM",
    }[task]
    return getattr(transformers, name)


def _task_of_config(config: Any) -> Task:
    """The head to load: the one the checkpoint's ``architectures`` name, else the model
    type's (an encoder that can also run as a decoder, e.g. BERT, is a masked LM unless its
    config says ``is_decoder``)."""
    from transformers.models.auto import modeling_auto as ma

    model_type = config.model_type
    if (
        getattr(config, "is_encoder_decoder", False)
        and model_type in ma.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES
    ):
        return "seq2seq"
    named = _task_of_architectures(config.architectures or [], model_type)
    if named is not None:
        return named
    if (
        model_type in ma.MODEL_FOR_MASKED_LM_MAPPING_NAMES
        and model_type in ma.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and not getattr(config, "is_decoder", False)
    ):
        return "masked"
    if model_type in ma.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "causal"
    if model_type in ma.MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "masked"
    if model_type in ma.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
        return "seq2seq"
    raise ModelNotFoundError(
        f"model type {model_type!r} has no causal-LM, masked-LM or seq2seq head in transformers; "
        f"crystalbox needs a language-model head to read logits"
    )


def _task_of_architectures(architectures: list[str], model_type: str) -> Task | None:
    """The head that the class names in a config's ``architectures`` have, if it exists for
    ``model_type``."""
    from transformers.models.auto import modeling_auto as ma

    mappings: tuple[tuple[Task, dict[str, Any]], ...] = (
        ("causal", ma.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES),
        ("masked", ma.MODEL_FOR_MASKED_LM_MAPPING_NAMES),
        ("seq2seq", ma.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES),
    )
    for task, mapping in mappings:
        if any(name == mapping.get(model_type) for name in architectures):
            return task
    return None


def _task_of_model(module: nn.Module) -> Task:
    from transformers.models.auto import modeling_auto as ma

    cls = type(module).__name__
    if cls in ma.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES.values():
        # audio/vision "seq2seq" classes that are decoder-only LMs read text like causal ones
        config = getattr(module, "config", None)
        return "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"
    if cls in ma.MODEL_FOR_MASKED_LM_MAPPING_NAMES.values() and "ForMaskedLM" in cls:
        return "masked"
    if cls in ma.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
        return "causal"
    if "ForMaskedLM" in cls:
        return "masked"
    return "causal"
