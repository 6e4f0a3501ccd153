"""Checkpoints: ``model.safetensors`` (weights) + ``config.json`` (everything else). No pickle.

The JSON holds the format version, the model configuration, the task's name, settings and
vocabularies, the training configuration and the run's result, so a checkpoint loads (and
its predictions decode) without regenerating any data.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from crystalbox._files import apply_umask
from crystalbox.errors import CheckpointError
from crystalbox.programs.config import ProgramConfig
from crystalbox.programs.data import TaskData, make_data
from crystalbox.programs.model import ProgramTransformer
from crystalbox.programs.tasks import BOS, EOS, PAD, Task, make_task, task_identity
from crystalbox.programs.train import TrainedProgram

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LoadedProgram",
    "TaskInfo",
    "check_checkpoint_folder",
    "checkpoint_data",
    "load_program",
    "save_loaded",
    "save_program",
]

FORMAT = "crystalbox.programs"
FORMAT_VERSION = 1
WEIGHTS, CONFIG = "model.safetensors", "config.json"


@dataclass(frozen=True)
class TaskInfo:
    """What a checkpoint records about its task (enough to encode inputs and decode outputs)."""

    name: str
    settings: dict[str, Any]
    input_vocab: tuple[str, ...]
    output_vocab: tuple[str, ...]
    max_len: int
    causal: bool

    @property
    def bos(self) -> str:
        return BOS

    @property
    def pad(self) -> str:
        return PAD

    @property
    def eos(self) -> str | None:
        return EOS if EOS in self.input_vocab else None


@dataclass(frozen=True, eq=False)
class LoadedProgram:
    model: ProgramTransformer
    task: TaskInfo
    train_config: dict[str, Any]
    result: dict[str, Any]


def save_program(trained: TrainedProgram, directory: str | Path, **result: Any) -> Path:
    """Write ``directory/model.safetensors`` and ``directory/config.json``; returns the folder.
    ``result`` entries are recorded beside the run's result (e.g. where training started).

    Both files are written into a staging folder beside ``directory`` which then replaces it,
    so a crash never leaves a checkpoint whose weights and configuration disagree, and an
    earlier checkpoint in ``directory`` survives until the new one is complete.
    """
    task = trained.task
    task_record = {
        "name": task.name,
        "settings": task.settings,
        "input_vocab": list(task.input_vocab),
        "output_vocab": list(task.output_vocab),
        "max_len": task.max_len,
        "causal": task.causal,
    }
    return _save(
        trained.model,
        _record(
            trained.model,
            task_record,
            asdict(trained.train_config),
            {**trained.result.to_dict(), **result},
        ),
        Path(directory),
    )


def save_loaded(loaded: LoadedProgram, directory: str | Path, **result: Any) -> Path:
    """Write a loaded (possibly edited) checkpoint to ``directory`` like ``save_program``;
    ``result`` entries update the recorded result (e.g. accuracies after an edit)."""
    record = _record(
        loaded.model, asdict(loaded.task), loaded.train_config, {**loaded.result, **result}
    )
    return _save(loaded.model, record, Path(directory))


def _record(
    model: ProgramTransformer,
    task: dict[str, Any],
    train_config: dict[str, Any],
    result: dict[str, Any],
) -> dict[str, Any]:
    """The ``config.json`` of a checkpoint."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": model.config.to_dict(),
        "task": task,
        "train_config": train_config,
        "result": result,
    }


def _save(model: ProgramTransformer, record: dict[str, Any], path: Path) -> Path:
    """Stage both files beside ``path``, then swap the staging folder in (see save_program)."""
    check_checkpoint_folder(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.staging")
    retired = path.with_name(f".{path.name}.{os.getpid()}.retired")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        _write_checkpoint(model, record, staging)
        if path.exists():
            os.replace(path, retired)
        os.replace(staging, path)
    except BaseException:
        if retired.exists() and not path.exists():
            os.replace(retired, path)  # put the earlier checkpoint back
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(retired, ignore_errors=True)
    return path


def check_checkpoint_folder(directory: str | Path) -> None:
    """Raise ``ValueError`` unless a checkpoint may be saved to ``directory``: a new or empty
    folder, or one holding only an earlier checkpoint (which saving replaces)."""
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} exists and is not a folder; choose another checkpoint folder")
    if path.is_dir() and not _replaceable(path):
        raise ValueError(
            f"{path} holds files other than a programs checkpoint; saving would replace the "
            "whole folder, so choose a new or empty folder (or an earlier checkpoint's)"
        )


def _replaceable(path: Path) -> bool:
    """Whether the folder ``path`` is empty or holds only a checkpoint of this format."""
    names = {entry.name for entry in path.iterdir()}
    if not names:
        return True
    if not names <= {CONFIG, WEIGHTS} or CONFIG not in names:
        return False
    try:
        return bool(json.loads((path / CONFIG).read_text()).get("format") == FORMAT)
    except (OSError, ValueError, AttributeError):
        return False


def _write_checkpoint(model: ProgramTransformer, record: dict[str, Any], path: Path) -> None:
    state = {
        name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()
    }
    save_file(
        state,
        str(path / WEIGHTS),
        metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)},
    )
    apply_umask(path / WEIGHTS)
    (path / CONFIG).write_text(json.dumps(record, indent=2) + "\n")


def load_program(directory: str | Path) -> LoadedProgram:
    """Load a checkpoint written by ``save_program``; ``CheckpointError`` when unusable."""
    path = Path(directory)
    if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
        raise CheckpointError(
            f"{path} is not a programs checkpoint: expected {CONFIG} and {WEIGHTS}"
        )
    try:
        config = json.loads((path / CONFIG).read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path / CONFIG} is not valid JSON: {exc}") from exc
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {config.get('format')!r}, expected {FORMAT!r}")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {config.get('format_version')!r}; this crystalbox reads "
            f"version {FORMAT_VERSION}: retrain, or load it with the crystalbox that wrote it"
        )
    try:
        model_config = ProgramConfig.from_dict(config["model_config"])
        task_data = config["task"]
        task = TaskInfo(
            name=task_data["name"],
            settings=dict(task_data["settings"]),
            input_vocab=tuple(task_data["input_vocab"]),
            output_vocab=tuple(task_data["output_vocab"]),
            max_len=int(task_data["max_len"]),
            causal=bool(task_data["causal"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path / CONFIG} is incomplete or invalid: {exc}") from exc
    model = ProgramTransformer(model_config)
    try:
        weights = load_file(str(path / WEIGHTS))
    except SafetensorError as exc:
        raise CheckpointError(
            f"{path / WEIGHTS} cannot be read ({exc}): the file is damaged or incomplete; "
            "restore it from a copy or retrain"
        ) from exc
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(
            f"weights in {path / WEIGHTS} do not match its config: {exc}"
        ) from exc
    model.eval()
    return LoadedProgram(
        model, task, dict(config.get("train_config", {})), dict(config.get("result", {}))
    )


def checkpoint_data(
    info: TaskInfo,
    train_config: dict[str, Any],
    data_seed: int | None = None,
    task: Task | None = None,
) -> TaskData:
    """A checkpoint's task data, regenerated from its task and training config (``data_seed``
    overrides the recorded one). ``task``: the task itself, needed for a user task whose
    checkpoint records no loadable source. ``ValueError`` if the task does not match."""
    task = task or _recorded_task(info)
    if task_identity(task) != task_identity(info):
        raise ValueError(
            f"task {task.name!r} (vocabularies {list(task.input_vocab)} -> "
            f"{list(task.output_vocab)}) is not the checkpoint's task {info.name!r} "
            f"({list(info.input_vocab)} -> {list(info.output_vocab)}); pass the task it was "
            "trained on, or load it with the crystalbox that wrote it"
        )
    return make_data(
        task,
        data_seed if data_seed is not None else int(train_config.get("data_seed", 0)),
        int(train_config.get("n_train", 16000)),
        int(train_config.get("n_val", 2000)),
        int(train_config.get("n_test", 2000)),
    )


def _recorded_task(info: TaskInfo) -> Task:
    """The checkpoint's task from what it records: a built-in task's settings, or a user
    task's source (``task_source.load_task``)."""
    if not info.settings.get("custom"):
        return make_task(info.name, info.settings.get("vocab_size"), info.settings.get("max_len"))
    from crystalbox.programs.task_source import load_task

    hint = (
        "pass the task: --task FILE.py:NAME on the command line, checkpoint_data(..., task=) "
        "or decompile(..., task=) in Python"
    )
    source = info.settings.get("source")
    if not source:
        raise ValueError(
            f"{info.name!r} is a user task (custom_task) and its checkpoint does not record "
            f"where it is defined, so its data cannot be regenerated; {hint}"
        )
    try:
        return load_task(str(source))
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"the user task {info.name!r} was recorded as {source}, which does not load now "
            f"({exc}); {hint}"
        ) from exc
