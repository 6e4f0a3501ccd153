"""``crystalbox programs train --start CHECKPOINT``: train on from a checkpoint's weights.

The checkpoint fixes the model (so no model option may compete with it), the task and the
data (other splits would put examples it was trained on into validation and test).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crystalbox.programs.checkpoint import LoadedProgram
    from crystalbox.programs.tasks import Task
    from crystalbox.programs.train import TrainConfig

__all__ = ["check_start_data", "describe_accuracies", "start_checkpoint", "start_record"]


#: model options of ``train`` that ``--start`` takes from its checkpoint: (dest, unset value)
_MODEL_OPTIONS = (
    ("layers", None),
    ("heads", None),
    ("mlps", None),
    ("d_var", None),
    ("count_only", False),
    ("tables", False),
    ("causal_heads", 0),
    ("init", "default"),
)


def start_checkpoint(args: argparse.Namespace, task: Task) -> LoadedProgram:
    """``--start``'s checkpoint, refused unless it was trained on ``task`` and no model
    option competes with its configuration."""
    from crystalbox.programs.checkpoint import load_program
    from crystalbox.programs.tasks import task_identity

    given = [
        f"--{name.replace('_', '-')}"
        for name, unset in _MODEL_OPTIONS
        if getattr(args, name) != unset
    ]
    if given:
        raise ValueError(
            f"--start {args.start} trains that checkpoint's model, so {', '.join(given)} "
            "cannot apply; drop them (or train afresh without --start)"
        )
    loaded = load_program(args.start)
    info = loaded.task
    if task_identity(info) != task_identity(task) or info.max_len != task.max_len:
        raise ValueError(
            f"--start {args.start} holds a model of task {info.name!r} (vocabulary size "
            f"{len(info.input_vocab)}, length {info.max_len}), not of {task.name!r} (vocabulary "
            f"size {len(task.input_vocab)}, length {task.max_len}); name its task and sizes"
        )
    return loaded


def check_start_data(start: LoadedProgram, path: str, train_config: TrainConfig) -> None:
    """``ValueError`` unless training on from ``start`` uses the data it was trained on
    (other splits would let its validation and test examples overlap what it has seen)."""
    recorded = start.train_config
    names = ("data_seed", "n_train", "n_val", "n_test")
    differ = [n for n in names if n in recorded and recorded[n] != getattr(train_config, n)]
    if differ:
        wanted = " ".join(
            f"--{n.replace('_', '-')} {recorded.get(n, getattr(train_config, n))}" for n in names
        )
        raise ValueError(
            f"--start {path} was trained on other data ({', '.join(differ)} differ): its "
            f"examples would fall into the new validation and test splits; pass {wanted}"
        )


def describe_accuracies(result: dict[str, Any]) -> str:
    """A checkpoint's recorded accuracies for printing ("?" where it records none)."""
    values = {name: result.get(f"{name}_acc") for name in ("val", "test")}
    return "  ".join(
        f"{name} {value:.2f}" if isinstance(value, int | float) else f"{name} ?"
        for name, value in values.items()
    )


def start_record(start: LoadedProgram, path: str) -> dict[str, Any]:
    """What a checkpoint trained on from ``start`` records about it."""
    result = start.result
    return {
        "start": {
            "checkpoint": str(path),
            "val_acc": result.get("val_acc"),
            "test_acc": result.get("test_acc"),
            "train_config": start.train_config,
        }
    }
