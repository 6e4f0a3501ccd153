"""Annotated heatmaps (e.g. logit lens: layers x positions with the top token in each cell)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def token_heatmap(
    values: np.ndarray,  # [rows, cols]
    labels: Sequence[Sequence[str]],  # [rows][cols] text in each cell
    *,
    row_names: Sequence[str],
    col_names: Sequence[str],
    title: str,
    path: Path,
    colorbar_label: str = "probability",
) -> Path:
    """Write a PNG heatmap with one text label per cell (HTML when ``path`` ends in ``.html``)."""
    path = Path(path)
    if path.suffix.lower() == ".html":
        from crystalbox.plotting.html import write_heatmap_html

        path.parent.mkdir(parents=True, exist_ok=True)
        return write_heatmap_html(
            np.asarray(values, dtype=float),
            list(row_names),
            [repr(c)[1:-1] for c in col_names],
            title,
            path,
            "position",
            "layer",
            labels=labels,
            diverging=False,
        )
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows, cols = values.shape
    fig = Figure(figsize=(max(6.0, 1.1 * cols + 2), max(4.0, 0.32 * rows + 1.5)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(values, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, origin="lower")
    ax.set_xticks(
        range(cols), [repr(c)[1:-1] for c in col_names], rotation=45, ha="right", fontsize=8
    )
    ax.set_yticks(range(rows), list(row_names), fontsize=7)
    ax.set_xlabel("input position (token)")
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=10)
    for r in range(rows):
        for c in range(cols):
            text = repr(labels[r][c])[1:-1][:10]
            ax.text(
                c,
                r,
                text,
                ha="center",
                va="center",
                fontsize=6,
                color="black" if values[r, c] > 0.6 else "white",
            )
    fig.colorbar(image, ax=ax, label=colorbar_label)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
