"""Per-layer curves (e.g. target probability through the logit lens)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from crystalbox.plotting.html import write_curves_html


def layer_curves(
    curves: Mapping[str, Sequence[float]],
    layers: Sequence[int],
    *,
    title: str,
    path: str | Path,
    y_label: str = "probability",
) -> Path:
    """One line per named curve over ``layers``; PNG unless ``path`` ends in ``.html``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for name, values in curves.items():
        if len(values) != len(layers):
            raise ValueError(f"curve {name!r} has {len(values)} values for {len(layers)} layers")
    if path.suffix.lower() == ".html":
        return write_curves_html(curves, layers, title, path, y_label)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, values in curves.items():
        ax.plot(list(layers), list(values), marker="o", markersize=3, label=name)
    ax.set_xlabel("layer")
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=10)
    if curves:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
