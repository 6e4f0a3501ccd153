"""Interpretability methods written once against the standard names."""

from crystalbox.methods.ablation import Ablation, AblationResult, ablate, run_with_ablations
from crystalbox.methods.attention import AttentionPattern, attention_pattern
from crystalbox.methods.attribution import (
    PatchingComparison,
    attribution_patching,
    compare_patching,
)
from crystalbox.methods.collection import (
    CollectionSummary,
    collect_activations,
    get_token_activations,
)
from crystalbox.methods.collection_io import ActivationDataset
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
from crystalbox.methods.patchscopes import (
    TargetPrompt,
    patchscope_generate,
    patchscope_lens,
    repeat_prompt,
)
from crystalbox.methods.prompts import (
    Prompt,
    PromptResults,
    get_first_tokens,
    run_prompts,
    single_token_id,
)
from crystalbox.methods.steering import (
    SteeringVector,
    contrastive_steering_vector,
    steered_generate,
    steered_next_token_probs,
)

__all__ = [
    "Ablation",
    "AblationResult",
    "ActivationDataset",
    "AttentionPattern",
    "CollectionSummary",
    "LensResult",
    "LogitDiff",
    "Metric",
    "PatchingComparison",
    "PatchingResult",
    "Prompt",
    "PromptResults",
    "SteeringVector",
    "TargetLogProb",
    "TargetProb",
    "TargetPrompt",
    "ablate",
    "activation_patching",
    "attention_pattern",
    "attribution_patching",
    "collect_activations",
    "compare_patching",
    "contrastive_steering_vector",
    "get_first_tokens",
    "get_token_activations",
    "logit_diff",
    "logit_lens",
    "patchscope_generate",
    "patchscope_lens",
    "repeat_prompt",
    "run_prompts",
    "run_with_ablations",
    "single_token_id",
    "steered_generate",
    "steered_next_token_probs",
    "target_logprob",
    "target_prob",
]
