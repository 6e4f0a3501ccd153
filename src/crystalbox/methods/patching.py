"""Activation patching: clean activations into a corrupted run, per layer x position or per head."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from crystalbox import _nnsight
from crystalbox.methods._common import (
    Component,
    check_component,
    component_envoy_value,
    encode,
    head_dim,
    layer_list,
    position_list,
    set_component,
    token_strings,
)
from crystalbox.methods.metrics import LogitDiff, Metric, TargetProb

if TYPE_CHECKING:
    from crystalbox.standard.model import StandardizedTransformer

__all__ = ["PatchingResult", "activation_patching", "default_metric", "prepare_pair"]


@dataclass(frozen=True)
class PatchingResult:
    """Metric of the corrupted run with one activation patched, per (layer, column).

    ``scores`` ``[layers, columns]``: columns are positions (``resid*``, ``attn``, ``mlp``) or heads.
    For ``method='attribution'`` the scores are the linear estimate ``corrupted + grad . (clean - corrupted)``.
    """

    scores: torch.Tensor
    layers: tuple[int, ...]
    columns: tuple[int, ...]
    column_names: tuple[str, ...]
    component: str
    clean_score: float
    corrupted_score: float
    metric: str
    method: str = "exact"

    @property
    def effect(self) -> torch.Tensor:
        """``scores - corrupted_score`` ``[layers, columns]``."""
        return self.scores - self.corrupted_score

    def normalized(self) -> torch.Tensor:
        """Fraction of the clean-corrupted gap recovered (1 = clean, 0 = corrupted)."""
        gap = self.clean_score - self.corrupted_score
        if gap == 0:
            raise ValueError(
                "clean and corrupted metrics are equal: the normalized score is undefined"
            )
        return self.effect / gap

    def plot(self, path: str | Path, *, normalized: bool = True) -> Path:
        """Heatmap (layers x columns) as PNG, or HTML when ``path`` ends in ``.html``."""
        from crystalbox.plotting.grid import grid_heatmap

        gap = self.clean_score - self.corrupted_score
        values = self.normalized() if normalized and gap != 0 else self.effect
        x_label = "head" if self.component == "heads" else "position"
        return grid_heatmap(
            values.float().numpy(),
            row_names=[str(i) for i in self.layers],
            col_names=list(self.column_names),
            title=f"{self.method} patching of {self.component} ({self.metric})",
            x_label=x_label,
            y_label="layer",
            path=Path(path),
        )


@dataclass(frozen=True)
class _Pair:
    clean: dict[str, torch.Tensor]
    corrupted: dict[str, torch.Tensor]
    tokens: tuple[str, ...]


def prepare_pair(model: StandardizedTransformer, clean: str, corrupted: str) -> _Pair:
    """Tokenize a clean/corrupted pair; ValueError when their token counts differ."""
    if not isinstance(clean, str) or not isinstance(corrupted, str) or not clean or not corrupted:
        raise ValueError(
            "patching needs a non-empty clean prompt and a non-empty corrupted prompt (strings)"
        )
    clean_in, corrupted_in = encode(model, [clean]), encode(model, [corrupted])
    n_clean, n_corrupted = clean_in["input_ids"].shape[1], corrupted_in["input_ids"].shape[1]
    if n_clean != n_corrupted:
        raise ValueError(
            f"clean and corrupted prompts must have the same number of tokens to be patched position "
            f"by position: clean has {n_clean} {list(token_strings(model, clean_in['input_ids'][0]))}, "
            f"corrupted has {n_corrupted} {list(token_strings(model, corrupted_in['input_ids'][0]))}"
        )
    return _Pair(clean_in, corrupted_in, token_strings(model, clean_in["input_ids"][0]))


def default_metric(
    model: StandardizedTransformer, clean_last: torch.Tensor, corrupted_last: torch.Tensor
) -> tuple[Metric, str]:
    """Logit difference of the clean and corrupted top tokens (target probability when they agree)."""
    a, b = int(clean_last.argmax()), int(corrupted_last.argmax())
    tok = model.tokenizer
    if a != b:
        return LogitDiff(a, b), f"logit({tok.decode([a])!r}) - logit({tok.decode([b])!r})"
    return TargetProb(a), f"p({tok.decode([a])!r})"


def metric_name(metric: Any) -> str:
    return getattr(metric, "__name__", None) or repr(metric)


def _clean_activations(
    model: StandardizedTransformer,
    inputs: dict[str, torch.Tensor],
    component: Component,
    layers: tuple[int, ...],
) -> tuple[list[torch.Tensor], torch.Tensor]:
    acts: list[torch.Tensor] = []
    with torch.no_grad(), model.trace(dict(inputs)):
        for layer in layers:
            acts.append(_nnsight.save(component_envoy_value(model, component, layer)))
        logits = _nnsight.save(model.logits)
    return acts, logits[:, -1]


def _logits_last(model: StandardizedTransformer, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad(), model.trace(dict(inputs)):
        logits = _nnsight.save(model.logits)
    return logits[:, -1]


def activation_patching(
    model: StandardizedTransformer,
    clean: str,
    corrupted: str,
    *,
    metric: Metric | None = None,
    component: str = "resid",
    layers: int | list[int] | None = None,
    positions: int | list[int] | None = None,
    batch_size: int = 32,
) -> PatchingResult:
    """Patch each clean activation into the corrupted run, one (layer, position) or (layer, head) at a time.

    ``component``: ``resid`` (layer output), ``resid_pre`` (layer input), ``attn``, ``mlp``, or
    ``heads`` (one head's output, before the attention output projection, at ``positions``).
    ``metric`` maps last-position logits ``[batch, vocab]`` to ``[batch]`` (default: logit difference
    of the clean and corrupted top tokens). Patches run ``batch_size`` at a time in one forward each.
    """
    comp = check_component(component)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pair = prepare_pair(model, clean, corrupted)
    n_pos = len(pair.tokens)
    layer_ids = layer_list(model, layers)
    pos_ids = position_list(positions, n_pos)
    acts, clean_last = _clean_activations(model, pair.clean, comp, layer_ids)
    corrupted_last = _logits_last(model, pair.corrupted)
    name = metric_name(metric)
    if metric is None:
        metric, name = default_metric(model, clean_last[0], corrupted_last[0])
    clean_score, corrupted_score = float(metric(clean_last)[0]), float(metric(corrupted_last)[0])
    if comp == "heads":
        n_heads = int(model.num_heads or 0)
        columns: tuple[int, ...] = tuple(range(n_heads))
        names = tuple(f"h{h}" for h in columns)
    else:
        columns, names = pos_ids, tuple(pair.tokens[p] for p in pos_ids)
    patches = [(li, c) for li in range(len(layer_ids)) for c in range(len(columns))]
    scores = torch.empty(len(layer_ids), len(columns))
    for start in range(0, len(patches), batch_size):
        chunk = patches[start : start + batch_size]
        logits = _run_patches(model, pair.corrupted, comp, layer_ids, acts, chunk, columns, pos_ids)
        values = metric(logits).detach().float().cpu()
        for (li, c), v in zip(chunk, values, strict=True):
            scores[li, c] = v
    return PatchingResult(
        scores, layer_ids, columns, names, comp, clean_score, corrupted_score, name, "exact"
    )


def _run_patches(
    model: StandardizedTransformer,
    inputs: dict[str, torch.Tensor],
    component: Component,
    layer_ids: tuple[int, ...],
    acts: list[torch.Tensor],
    chunk: list[tuple[int, int]],
    columns: tuple[int, ...],
    positions: tuple[int, ...],
) -> torch.Tensor:
    """One forward of ``len(chunk)`` copies of the corrupted input, row r patched at ``chunk[r]``."""
    batch = {k: v.expand(len(chunk), -1).contiguous() for k, v in inputs.items()}
    by_layer: dict[int, list[tuple[int, int]]] = {}
    for row, (li, c) in enumerate(chunk):
        by_layer.setdefault(li, []).append((row, columns[c]))
    hd = head_dim(model) if component == "heads" else 0
    pos_index = torch.tensor(positions)
    with torch.no_grad(), model.trace(batch):
        for li in sorted(by_layer):
            value = component_envoy_value(model, component, layer_ids[li])
            patched = value.clone()
            source = acts[li].to(patched.device, patched.dtype)  # [1, pos, width]
            rows = torch.tensor([r for r, _ in by_layer[li]])
            cols = torch.tensor([c for _, c in by_layer[li]])
            if component == "heads":
                shaped = patched.view(patched.shape[0], patched.shape[1], -1, hd)
                clean_heads = source.view(1, source.shape[1], -1, hd)[0]  # [pos, heads, hd]
                for r, h in zip(rows.tolist(), cols.tolist(), strict=True):
                    shaped[r, pos_index, h] = clean_heads[pos_index, h]
            else:
                patched[rows, cols] = source[0, cols]
            set_component(model, component, layer_ids[li], patched)
        logits = _nnsight.save(model.logits)
    return logits[:, -1]
