"""What some families do to the head's output before returning logits, as one function."""

from __future__ import annotations

from typing import Any

import torch

# T5-style decoders rescale by d_model**-0.5 before their bias-free head, under this config flag
_T5_SCALED = {
    "t5": "scale_decoder_outputs",
    "longt5": "scale_decoder_outputs",
    "umt5": "tie_word_embeddings",
    "switch_transformers": "tie_word_embeddings",
}


def finish_logits(model_type: str, config: Any, logits: torch.Tensor) -> torch.Tensor:
    """Apply the scaling a family applies around ``lm_head``: Cohere's ``logit_scale``
    (multiplies), Granite's ``logits_scaling`` (divides), T5's rescaling, Inkling's muP width
    multiplier and vocabulary padding, and soft-capping
    (Gemma-2/3 ``final_logit_softcapping``, RecurrentGemma, xLSTM)."""
    mup = getattr(config, "logits_mup_width_multiplier", None)  # Inkling: divides the input
    if isinstance(mup, (int, float)) and mup != 1:
        logits = logits / mup
    unpadded = getattr(config, "unpadded_vocab_size", None)  # Inkling: drop padding ids
    if isinstance(unpadded, int) and unpadded < logits.shape[-1]:
        logits = logits[..., :unpadded]
    scale = getattr(config, "logit_scale", None)
    if isinstance(scale, (int, float)) and model_type.startswith("cohere"):
        logits = logits * scale
    divide = getattr(config, "logits_scaling", None)
    if isinstance(divide, (int, float)) and divide != 1:
        logits = logits / divide
    flag = _T5_SCALED.get(model_type)
    if flag is not None and getattr(config, flag, False):
        logits = logits * config.d_model**-0.5
    cap = (
        getattr(config, "final_logit_softcapping", None)
        or getattr(config, "logits_soft_cap", None)  # RecurrentGemma
        or getattr(config, "output_logit_soft_cap", None)  # xLSTM
    )
    if isinstance(cap, (int, float)) and cap > 0:
        logits = torch.tanh(logits / cap) * cap
    return logits
