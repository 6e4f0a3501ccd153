"""Interpretability methods written once against the standard names."""

from crystalbox.methods.lens import LensResult, logit_lens
from crystalbox.methods.metrics import (
    LogitDiff,
    Metric,
    TargetLogProb,
    TargetProb,
    logit_diff,
    target_logprob,
    target_prob,
)
from crystalbox.methods.patching import PatchingResult, activation_patching
from crystalbox.methods.prompts import (
    Prompt,
    PromptResults,
    get_first_tokens,
    run_prompts,
    single_token_id,
)

__all__ = [
    "LensResult",
    "LogitDiff",
    "Metric",
    "PatchingResult",
    "Prompt",
    "PromptResults",
    "TargetLogProb",
    "TargetProb",
    "activation_patching",
    "get_first_tokens",
    "logit_diff",
    "logit_lens",
    "run_prompts",
    "single_token_id",
    "target_logprob",
    "target_prob",
]
