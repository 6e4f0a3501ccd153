"""Logit lens: the vocabulary projection of every layer's residual stream."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from crystalbox import _nnsight
from crystalbox.standard.accessors import check_layer
from crystalbox.standard.positions import last_positions

if TYPE_CHECKING:
    from crystalbox.standard.model import StandardizedTransformer


@dataclass(frozen=True)
class LensResult:
    """Logit lens of ``prompts`` over ``layers``.

    ``last_probs`` ``[prompts, layers, vocab]``: distribution at each prompt's last real token.
    ``top_ids`` / ``top_probs`` ``[prompts, layers, positions, k]``: top-k at every real position.
    ``target_probs`` / ``target_ranks`` ``[prompts, layers, targets]`` at the last real token (rank 1 = top).
    """

    prompts: tuple[str, ...]
    layers: tuple[int, ...]
    tokens: tuple[tuple[str, ...], ...]  # per prompt, its real input tokens
    last_probs: torch.Tensor
    top_ids: torch.Tensor
    top_probs: torch.Tensor
    top_strings: tuple[tuple[tuple[tuple[str, ...], ...], ...], ...]  # [prompt][layer][pos][k]
    targets: tuple[str, ...] = ()
    target_probs: torch.Tensor | None = None
    target_ranks: torch.Tensor | None = None

    def table(self, prompt: int = 0) -> str:
        """Top-1 token and probability per layer at the last position of one prompt."""
        lines = [f"logit lens of {self.prompts[prompt]!r} (last token {self.tokens[prompt][-1]!r})"]
        header = f"{'layer':>5}  {'top token':<18} {'p':>6}"
        if self.targets:
            header += "".join(f"  {('p(' + t + ')'):>12} {'rank':>5}" for t in self.targets)
        lines.append(header)
        for j, layer in enumerate(self.layers):
            token = self.top_strings[prompt][j][-1][0]
            prob = float(self.top_probs[prompt, j, len(self.tokens[prompt]) - 1, 0])
            row = f"{layer:>5}  {token!r:<18} {prob:6.3f}"
            if self.target_probs is not None and self.target_ranks is not None:
                for t in range(len(self.targets)):
                    row += f"  {float(self.target_probs[prompt, j, t]):12.4f} {int(self.target_ranks[prompt, j, t]):5d}"
            lines.append(row)
        return "\n".join(lines)

    def plot(self, path: str | Path, prompt: int = 0) -> Path:
        """Heatmap (layers x positions) of the top-1 probability, annotated with the top token."""
        from crystalbox.plotting.heatmap import token_heatmap

        n = len(self.tokens[prompt])
        values = self.top_probs[prompt, :, :n, 0].float().numpy()
        labels = [[self.top_strings[prompt][j][p][0] for p in range(n)] for j in range(len(self.layers))]
        return token_heatmap(
            values,
            labels,
            row_names=[str(layer) for layer in self.layers],
            col_names=list(self.tokens[prompt]),
            title=f"logit lens: {self.prompts[prompt]!r}",
            path=Path(path),
        )


def logit_lens(
    model: StandardizedTransformer,
    prompts: str | Sequence[str],
    *,
    layers: Sequence[int] | None = None,
    targets: Sequence[str] = (),
    k: int = 5,
) -> LensResult:
    """Project every chosen layer's output through ``ln_final`` and ``lm_head`` (one forward pass)."""
    prompt_list = (prompts,) if isinstance(prompts, str) else tuple(prompts)
    if not prompt_list or any(not isinstance(p, str) or not p.strip() for p in prompt_list):
        raise ValueError("logit_lens needs one or more non-empty prompt strings")
    layer_ids = tuple(check_layer(i, model.num_layers) for i in (layers if layers is not None else range(model.num_layers)))
    target_ids = [_single_token(model, t) for t in targets]
    hidden: list[torch.Tensor] = []
    with torch.no_grad():
        with model.trace(list(prompt_list)):
            for i in layer_ids:
                hidden.append(_nnsight.save(model.layers_output[i]))
        mask = model._recorder.mask_for(len(prompt_list))
        ids = model._recorder.input_ids
        stacked = torch.stack(hidden, 1)  # [prompts, layers, pos, d_model]
        probs = _project(model, stacked).softmax(-1)  # [prompts, layers, pos, vocab]
    last = last_positions(mask)
    rows = torch.arange(len(prompt_list))
    last_probs = probs[rows, :, last]  # [prompts, layers, vocab]
    top_probs, top_ids = probs.topk(k, dim=-1)
    real = [torch.nonzero(mask[r]).flatten() for r in range(len(prompt_list))]
    # compact every prompt's real positions to the left: [prompts, layers, max_real, k]
    width = max(len(r) for r in real)
    top_probs_c = torch.zeros(len(prompt_list), len(layer_ids), width, k)
    top_ids_c = torch.zeros(len(prompt_list), len(layer_ids), width, k, dtype=torch.long)
    for r, pos in enumerate(real):
        top_probs_c[r, :, : len(pos)] = top_probs[r][:, pos]
        top_ids_c[r, :, : len(pos)] = top_ids[r][:, pos]
    tok = model.tokenizer
    assert ids is not None
    tokens = tuple(tuple(tok.decode([int(t)]) for t in ids[r, pos]) for r, pos in enumerate(real))
    strings = tuple(
        tuple(
            tuple(tuple(tok.decode([int(t)]) for t in top_ids_c[r, j, p]) for p in range(len(real[r])))
            for j in range(len(layer_ids))
        )
        for r in range(len(prompt_list))
    )
    target_probs = target_ranks = None
    if target_ids:
        index = torch.tensor(target_ids)
        target_probs = last_probs[:, :, index]
        target_ranks = (last_probs.unsqueeze(-1) > target_probs.unsqueeze(-2)).sum(-2) + 1  # 1 = top
    return LensResult(
        prompt_list, layer_ids, tokens, last_probs, top_ids_c, top_probs_c, strings,
        tuple(targets), target_probs, target_ranks,
    )


def _project(model: StandardizedTransformer, hidden: torch.Tensor) -> torch.Tensor:
    """``lm_head(ln_final(hidden))`` on the raw modules, outside any trace."""
    hf = model.hf_model
    if model.arch.ln_final is not None:
        hidden = hf.get_submodule(model.arch.ln_final)(hidden)
    return hf.get_submodule(model.arch.lm_head)(hidden)


def _single_token(model: StandardizedTransformer, text: str) -> int:
    ids: Any = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = [model.tokenizer.decode([i]) for i in ids]
        raise ValueError(f"target {text!r} is not a single token: it tokenizes to {pieces}; pass a single-token target")
    return int(ids[0])
