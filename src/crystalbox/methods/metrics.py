"""Metrics on last-position logits ``[batch, vocab]`` -> ``[batch]``, for patching and attribution."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from crystalbox.methods.prompts import single_token_id

__all__ = [
    "LogitDiff",
    "Metric",
    "TargetLogProb",
    "TargetProb",
    "logit_diff",
    "target_logprob",
    "target_prob",
]

Metric = Callable[[torch.Tensor], torch.Tensor]  # logits [batch, vocab] -> score [batch]


@dataclass(frozen=True)
class LogitDiff:
    """``logit[correct] - logit[incorrect]``."""

    correct: int
    incorrect: int

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return logits[..., self.correct] - logits[..., self.incorrect]


@dataclass(frozen=True)
class TargetProb:
    """Softmax probability of ``target``."""

    target: int

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float().softmax(-1)[..., self.target]


@dataclass(frozen=True)
class TargetLogProb:
    """Log-softmax probability of ``target``."""

    target: int

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float().log_softmax(-1)[..., self.target]


def logit_diff(correct: int | str, incorrect: int | str, tokenizer: Any = None) -> LogitDiff:
    """Logit difference of two single tokens (strings need ``tokenizer``)."""
    return LogitDiff(_token(correct, tokenizer), _token(incorrect, tokenizer))


def target_prob(target: int | str, tokenizer: Any = None) -> TargetProb:
    return TargetProb(_token(target, tokenizer))


def target_logprob(target: int | str, tokenizer: Any = None) -> TargetLogProb:
    return TargetLogProb(_token(target, tokenizer))


def _token(value: int | str, tokenizer: Any) -> int:
    if isinstance(value, str) and tokenizer is None:
        raise ValueError(
            f"target {value!r} is a string: pass tokenizer=model.tokenizer, or a token id"
        )
    return single_token_id(tokenizer, value)
