"""Where each row's real tokens are, for left and right padding alike."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def last_positions(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of ``mask`` ``[batch, pos]`` -> ``[batch]``."""
    if mask.dim() != 2:
        raise ValueError(f"attention mask must be [batch, pos], got shape {list(mask.shape)}")
    flipped = mask.flip(1).to(torch.long)
    return mask.shape[1] - 1 - flipped.argmax(1)


class InputRecorder:
    """Remembers the attention mask of the model's latest forward (a plain torch pre-hook)."""

    def __init__(self, model: nn.Module) -> None:
        self.mask: torch.Tensor | None = None
        self.input_ids: torch.Tensor | None = None
        model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, _module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        self.input_ids = ids if isinstance(ids, torch.Tensor) else None
        if mask is None and isinstance(ids, torch.Tensor):
            mask = torch.ones_like(ids)
        self.mask = mask if isinstance(mask, torch.Tensor) else None

    def mask_for(self, batch: int) -> torch.Tensor:
        """The recorded mask when it covers ``batch`` rows."""
        if self.mask is None:
            raise ValueError(
                "no attention mask was recorded for this trace (pass input_ids or text)"
            )
        if self.mask.shape[0] != batch:
            if bool(
                (self.mask[:, -1] == 1).all()
            ):  # left padding: the last column is real in every row
                return torch.ones(
                    batch, self.mask.shape[1], dtype=self.mask.dtype, device=self.mask.device
                )
            raise ValueError(
                "next_token_probs inside one of several invokes needs left padding; "
                "use one invoke, or set model.tokenizer.padding_side = 'left'"
            )
        return self.mask
