"""Numeric heatmaps (patching grids, attention patterns): PNG through Agg, or self-contained HTML."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from crystalbox.plotting.html import write_heatmap_html


def grid_heatmap(
    values: np.ndarray,  # [rows, cols]
    *,
    row_names: Sequence[str],
    col_names: Sequence[str],
    title: str,
    path: Path,
    x_label: str = "position",
    y_label: str = "layer",
    diverging: bool = True,
    colorbar_label: str = "score",
) -> Path:
    """Heatmap of ``values``; PNG unless ``path`` ends in ``.html`` (interactive, no dependencies)."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"grid_heatmap needs a 2-D array [rows, cols], got shape {values.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".html":
        return write_heatmap_html(values, row_names, col_names, title, path, x_label, y_label)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows, cols = values.shape
    fig = Figure(figsize=(max(5.0, 0.55 * cols + 2.5), max(3.5, 0.25 * rows + 1.5)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    finite = values[np.isfinite(values)]
    bound = float(np.abs(finite).max()) if finite.size else 1.0
    bound = bound or 1.0
    if diverging:
        image = ax.imshow(
            values, aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound, origin="lower"
        )
    else:
        image = ax.imshow(values, aspect="auto", cmap="viridis", origin="lower")
    ax.set_xticks(
        range(cols),
        [repr(c)[1:-1] if isinstance(c, str) else str(c) for c in col_names],
        rotation=45,
        ha="right",
        fontsize=7,
    )
    ax.set_yticks(range(rows), list(row_names), fontsize=7)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label=colorbar_label)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def attention_pattern(
    probs: np.ndarray,  # [q, k]
    tokens: Sequence[str],
    *,
    title: str,
    path: Path,
) -> Path:
    """Attention pattern of one head (query rows x key columns)."""
    return grid_heatmap(
        probs,
        row_names=[repr(t)[1:-1] for t in tokens],
        col_names=list(tokens),
        title=title,
        path=path,
        x_label="key",
        y_label="query",
        diverging=False,
        colorbar_label="attention",
    )
