"""Which modules run on the probe input, in what order, and what their outputs look like.

Recorded once, on the raw model before crystalbox changes anything: discovery keeps only
the block lists that run on text input, and validation reads sub-layers in the order the
model calls them (nnsight requires reads in execution order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class ExecutionTrace:
    """``order[path]``: index of the first call of the module at ``path``; absent if it never ran."""

    order: dict[str, int] = field(default_factory=dict)
    # number of elements of a tuple/list output; 0 for a bare tensor (or anything else)
    output_arity: dict[str, int] = field(default_factory=dict)
    # every module call in order (a module the model calls k times appears k times)
    calls: tuple[str, ...] = ()

    def ran(self, path: str) -> bool:
        return path in self.order


def record_execution(
    model: nn.Module, inputs: dict[str, torch.Tensor]
) -> tuple[torch.Tensor | None, ExecutionTrace]:
    """Run ``model(**inputs)`` once with hooks on every module; return its logits (None when
    its output has none) and the trace."""
    order: dict[str, int] = {}
    output_arity: dict[str, int] = {}
    calls: list[str] = []
    handles = []

    def pre_hook(name: str) -> Any:
        def hook(_module: nn.Module, _args: Any) -> None:
            order.setdefault(name, len(order))
            calls.append(name)

        return hook

    def post_hook(name: str) -> Any:
        def hook(_module: nn.Module, _args: Any, output: Any) -> None:
            output_arity.setdefault(name, len(output) if isinstance(output, (tuple, list)) else 0)

        return hook

    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_pre_hook(pre_hook(name)))
            handles.append(module.register_forward_hook(post_hook(name)))
    try:
        with torch.no_grad():
            logits = getattr(model(**inputs), "logits", None)
    finally:
        for handle in handles:
            handle.remove()
    return logits, ExecutionTrace(order, output_arity, tuple(calls))
