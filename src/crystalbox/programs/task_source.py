"""Tasks named by a string: a built-in task's name, or ``FILE.py:NAME`` / ``module:NAME``
for a user task (``custom_task``) defined in the user's own code.

``NAME`` is a ``Task`` or a function of no arguments that returns one. The command line
takes these strings wherever it takes a task, and a checkpoint of a user task trained from
the command line records its source, so later commands regenerate its data without being told.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from crystalbox.programs.tasks import TASKS, Task, make_task

__all__ = ["is_task_reference", "load_task", "with_source"]


def is_task_reference(spec: str) -> bool:
    """Whether ``spec`` names a user task (``FILE.py:NAME`` or ``module:NAME``)."""
    return ":" in spec


def load_task(spec: str, vocab_size: int | None = None, max_len: int | None = None) -> Task:
    """The task ``spec`` names: a built-in name (with optional sizes), or a user task's
    ``FILE.py:NAME`` / ``module:NAME``."""
    if not is_task_reference(spec):
        return make_task(spec, vocab_size=vocab_size, max_len=max_len)
    if vocab_size is not None or max_len is not None:
        raise ValueError(
            f"vocabulary size and length apply to the built-in tasks; the user task {spec!r} "
            "sets its own (change them where it is defined)"
        )
    where, _, name = spec.rpartition(":")
    if not where or not name.isidentifier():
        raise ValueError(
            f"task reference {spec!r} is not FILE.py:NAME or module:NAME "
            f"(built-in tasks: {', '.join(TASKS)})"
        )
    module = _import(where)
    if not hasattr(module, name):
        found = sorted(k for k, v in vars(module).items() if isinstance(v, Task))
        listed = ", ".join(found) if found else "none"
        raise ValueError(f"{where} has no {name!r}; the tasks defined there: {listed}")
    value: Any = getattr(module, name)
    if callable(value) and not isinstance(value, Task):
        value = value()
    if not isinstance(value, Task):
        raise TypeError(
            f"{spec} is a {type(value).__name__}, not a Task: define it with custom_task(...) "
            "or as a function of no arguments that returns one"
        )
    return value


def with_source(task: Task, spec: str) -> Task:
    """``task`` with its source recorded in its settings (a file as an absolute path), so a
    checkpoint can regenerate its data later (``load_task(settings["source"])``)."""
    where, _, name = spec.rpartition(":")
    if _is_file(where):
        where = str(Path(where).resolve())
    return dataclasses.replace(task, settings={**task.settings, "source": f"{where}:{name}"})


def _is_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where


def _import_module(name: str) -> ModuleType:
    """``name`` from ``sys.path``, else from the working folder (as ``python -m`` would find
    it: the ``crystalbox`` entry point does not put the working folder on ``sys.path``)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        here = os.getcwd()
        if exc.name != name.partition(".")[0] or here in sys.path:
            raise
    sys.path.insert(0, here)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(here)


def _import(where: str) -> ModuleType:
    """The module of a ``FILE.py`` path or a dotted module name."""
    if not _is_file(where):
        try:
            return _import_module(where)
        except ImportError as exc:
            raise ValueError(f"cannot import module {where!r} for the task: {exc}") from exc
    path = Path(where)
    if not path.is_file():
        raise ValueError(f"task file {where} does not exist")
    module_name = f"crystalbox_user_tasks_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{where} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # so dataclasses and pickling inside it resolve
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise ValueError(f"importing {where} failed: {type(exc).__name__}: {exc}") from exc
    return module
