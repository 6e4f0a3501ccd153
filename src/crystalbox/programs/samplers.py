"""Samplers that turn logits into (relaxed) one-hot choices, and the temperature schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F

__all__ = ["SAMPLERS", "Sampler", "TemperatureSchedule", "sample"]

Sampler = Literal["softmax", "gumbel_soft", "gumbel_hard", "argmax"]
SAMPLERS: tuple[str, ...] = get_args(Sampler)


def _gumbel_like(logits: torch.Tensor) -> torch.Tensor:
    """Gumbel(0, 1) noise shaped like ``logits``: ``-log(-log(u))``, computed in place."""
    noise = torch.rand_like(logits).clamp_(1e-10, 1.0 - 1e-7)
    return noise.log_().neg_().log_().neg_()


def sample(
    logits: torch.Tensor, sampler: Sampler, tau: float | torch.Tensor, dim: int = -1
) -> torch.Tensor:
    """A distribution over ``dim`` from ``logits`` (``-inf`` entries are never chosen).

    softmax: ``softmax(logits / tau)``; gumbel_soft: the same with Gumbel noise added to the
    logits; gumbel_hard: the one-hot argmax of the noisy logits in the forward pass with the
    gumbel_soft gradient (straight-through); argmax: the exact one-hot argmax.
    """
    if sampler == "argmax":
        index = logits.argmax(dim=dim, keepdim=True)
        return torch.zeros_like(logits).scatter_(dim, index, 1.0)
    if not isinstance(tau, torch.Tensor) and tau <= 0:
        raise ValueError(f"temperature must be positive, got tau={tau}")
    if sampler == "softmax":
        return F.softmax(logits / tau, dim=dim)
    if sampler not in ("gumbel_soft", "gumbel_hard"):
        raise ValueError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}")
    soft = F.softmax((logits + _gumbel_like(logits)) / tau, dim=dim)
    if sampler == "gumbel_soft":
        return soft
    index = soft.argmax(dim=dim, keepdim=True)
    hard = torch.zeros_like(soft).scatter_(dim, index, 1.0)
    return hard - soft.detach() + soft


@dataclass(frozen=True)
class TemperatureSchedule:
    """Geometric decay from ``start`` to ``end`` over ``n_steps`` steps (per batch)."""

    start: float = 3.0
    end: float = 0.01
    n_steps: int = 8000

    def __post_init__(self) -> None:
        if self.start <= 0 or self.end <= 0:
            raise ValueError(f"temperatures must be positive, got {self.start} -> {self.end}")
        if self.n_steps < 1:
            raise ValueError(f"n_steps must be at least 1, got {self.n_steps}")

    def __call__(self, step: int) -> float:
        """Temperature at ``step`` (0-based), clamped to the schedule's ends."""
        if self.n_steps == 1:
            return self.end
        fraction = min(max(step / (self.n_steps - 1), 0.0), 1.0)
        return math.exp(
            math.log(self.start) + fraction * (math.log(self.end) - math.log(self.start))
        )
