"""Self-contained interactive HTML plots (inline SVG + a few lines of JS; no external assets)."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif}} #tip{{position:fixed;background:#fff;border:1px solid #888;
padding:3px 6px;font-size:12px;display:none;pointer-events:none}}</style></head><body>
<h3>{title}</h3><div id="tip"></div>{svg}
<script>const tip=document.getElementById('tip');
document.querySelectorAll('[data-tip]').forEach(e=>{{
e.addEventListener('mousemove',ev=>{{tip.style.display='block';tip.style.left=(ev.clientX+12)+'px';
tip.style.top=(ev.clientY+12)+'px';tip.textContent=e.dataset.tip;}});
e.addEventListener('mouseleave',()=>{{tip.style.display='none';}});}});</script></body></html>"""


def _color(value: float, bound: float) -> str:
    if not np.isfinite(value):
        return "#cccccc"
    t = max(-1.0, min(1.0, value / bound))
    if t >= 0:
        r, g, b = 255, int(255 * (1 - t)), int(255 * (1 - t))
    else:
        r, g, b = int(255 * (1 + t)), int(255 * (1 + t)), 255
    return f"rgb({r},{g},{b})"


def write_heatmap_html(
    values: np.ndarray,
    row_names: Sequence[str],
    col_names: Sequence[str],
    title: str,
    path: Path,
    x_label: str,
    y_label: str,
    labels: Sequence[Sequence[str]] | None = None,
    diverging: bool = True,
) -> Path:
    """Heatmap with a tooltip per cell (row, column, value, and its label when given)."""
    rows, cols = values.shape
    cell, left, top = 28, 90, 20
    finite = values[np.isfinite(values)]
    bound = float(np.abs(finite).max()) if finite.size else 1.0
    bound = bound or 1.0
    parts = [f'<svg width="{left + cell * cols + 20}" height="{top + cell * rows + 90}">']
    for r in range(rows):
        y = top + cell * (rows - 1 - r)  # layer 0 at the bottom
        parts.append(
            f'<text x="{left - 6}" y="{y + cell * 0.65}" text-anchor="end" font-size="11">'
            f"{html.escape(str(row_names[r]))}</text>"
        )
        for c in range(cols):
            tip = f"{y_label} {row_names[r]}, {x_label} {col_names[c]!r}: {values[r, c]:.4g}"
            if labels is not None:
                tip += f" ({labels[r][c]!r})"
            value = float(values[r, c]) if diverging else 2 * float(values[r, c]) - bound
            parts.append(
                f'<rect x="{left + cell * c}" y="{y}" width="{cell}" height="{cell}" '
                f'fill="{_color(value, bound)}" data-tip="{html.escape(tip)}"/>'
            )
            if labels is not None:
                parts.append(
                    f'<text x="{left + cell * c + cell / 2}" y="{y + cell * 0.6}" text-anchor="middle" '
                    f'font-size="7" pointer-events="none">{html.escape(str(labels[r][c])[:6])}</text>'
                )
    base = top + cell * rows + 12
    for c in range(cols):
        x = left + cell * c + cell / 2
        parts.append(
            f'<text transform="translate({x},{base}) rotate(45)" font-size="11">'
            f"{html.escape(str(col_names[c]))}</text>"
        )
    parts.append("</svg>")
    path.write_text(_PAGE.format(title=html.escape(title), svg="".join(parts)), encoding="utf-8")
    return path


def write_curves_html(
    curves: Mapping[str, Sequence[float]],
    layers: Sequence[int],
    title: str,
    path: Path,
    y_label: str,
    x_label: str = "layer",
) -> Path:
    """Line plot with a tooltip on every point; ``layers`` are the x values (``x_label``)."""
    width, height, pad = 640, 320, 40
    all_values = [v for values in curves.values() for v in values if np.isfinite(v)]
    hi = max(all_values, default=1.0) or 1.0
    lo = min(min(all_values, default=0.0), 0.0)
    span_x = max(len(layers) - 1, 1)
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    parts = [f'<svg width="{width + 2 * pad}" height="{height + 2 * pad}">']
    for k, (name, values) in enumerate(curves.items()):
        color = palette[k % len(palette)]
        points = [
            (pad + width * i / span_x, pad + height * (1 - (v - lo) / ((hi - lo) or 1.0)))
            for i, v in enumerate(values)
        ]
        parts.append(
            f'<polyline fill="none" stroke="{color}" points="'
            + " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            + '"/>'
        )
        for (x, y), layer, v in zip(points, layers, values, strict=True):
            tip = html.escape(f"{name}, {x_label} {layer}: {y_label} {v:.4g}")
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}" data-tip="{tip}"/>'
            )
        parts.append(
            f'<text x="{pad + 5}" y="{pad + 14 * (k + 1)}" fill="{color}" font-size="12">'
            f"{html.escape(name)}</text>"
        )
    parts.append(
        f'<text x="{pad + width / 2}" y="{height + 2 * pad - 5}" font-size="12">{x_label} '
        f"{json.dumps(list(layers)[:1])[1:-1]}..{json.dumps(list(layers)[-1:])[1:-1]}</text></svg>"
    )
    path.write_text(_PAGE.format(title=html.escape(title), svg="".join(parts)), encoding="utf-8")
    return path
