"""An exponential moving average of a program model's parameters during training.

The discrete program is the argmax of the model's logits; late in training the Gumbel noise
keeps moving logits that are nearly tied, so the argmax of the latest parameters flickers
between programs. The average of recent parameters is a smoother candidate: training
validates its discrete model beside the trained one each epoch (``TrainConfig.ema_decay``).
Averaging reads the parameters and draws no random numbers, so the training run itself is the
same with or without it.
"""

from __future__ import annotations

import copy

import torch

from crystalbox.programs.model import ProgramTransformer

__all__ = ["ParameterAverage"]


class ParameterAverage:
    """``average <- decay * average + (1 - decay) * parameters`` after every ``update``."""

    def __init__(self, model: ProgramTransformer, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must lie strictly between 0 and 1, got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model)
        self.model.use_compiled_kernels(False)  # only its discrete model is ever run
        self.model.requires_grad_(False)
        self.model.eval()

    @torch.no_grad()
    def update(self, model: ProgramTransformer) -> None:
        """Move the average towards ``model``'s current parameters."""
        for average, current in zip(self.model.parameters(), model.parameters(), strict=True):
            average.lerp_(current, 1.0 - self.decay)
