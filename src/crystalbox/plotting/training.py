"""A Transformer Program's training run: validation accuracy per epoch and the temperature."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from crystalbox._files import write_atomically
from crystalbox.plotting.html import write_curves_html

__all__ = ["epoch_temperatures", "training_curve"]


def epoch_temperatures(tau_start: float, tau_end: float, epochs: int, n: int) -> list[float]:
    """The temperature at the end of each of the first ``n`` epochs of a geometric schedule
    from ``tau_start`` to ``tau_end`` over ``epochs`` epochs (``samplers.TemperatureSchedule``
    decays per batch; at epoch ends that is the same curve, so it is that schedule per epoch)."""
    if not (tau_start > 0 and tau_end > 0) or epochs < 1:
        raise ValueError(
            f"need positive temperatures and epochs, got {tau_start}, {tau_end}, {epochs}"
        )
    from crystalbox.programs.samplers import TemperatureSchedule

    # one step per epoch: step e + 1 is the end of epoch e
    per_epoch = TemperatureSchedule(tau_start, tau_end, n_steps=epochs + 1)
    return [per_epoch(e + 1) for e in range(n)]


def training_curve(
    val_history: Sequence[float],
    *,
    temperatures: Sequence[float] | None = None,
    best_epoch: int | None = None,
    average_history: Sequence[float] = (),
    selected: str = "trained",
    title: str,
    path: str | Path,
) -> Path:
    """Validation accuracy (%) of the discrete model per epoch, the temperature on a second,
    logarithmic axis, the selected epoch marked. ``average_history``: the averaged parameters'
    model per epoch (``TrainConfig.ema_decay``), drawn beside it; ``selected`` says which of
    the two the selected epoch took (``RunResult.selected``). PNG, or HTML when ``path`` ends
    in ``.html`` (accuracy only, with a tooltip per epoch)."""
    if not val_history:
        raise ValueError("the run has no validation history to plot (no epoch was recorded)")
    lengths = {"temperatures": temperatures, "averaged accuracies": average_history or None}
    for name, values in lengths.items():
        if values is not None and len(values) != len(val_history):
            raise ValueError(
                f"{len(values)} {name} for {len(val_history)} epochs; pass one per epoch"
            )
    epochs = list(range(len(val_history)))
    averaged = selected == "average" and bool(average_history)
    marked = average_history if averaged else val_history
    out = Path(path)
    if out.suffix.lower() == ".html":
        out.parent.mkdir(parents=True, exist_ok=True)
        curves = {"validation accuracy (%)": list(val_history)}
        if average_history:
            curves["averaged parameters (%)"] = list(average_history)
        return write_curves_html(curves, epochs, title, out, "accuracy", x_label="epoch")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(epochs, list(val_history), color="#1f77b4", lw=1.2, label="validation (discrete)")
    if average_history:
        ax.plot(epochs, list(average_history), color="#2ca02c", lw=1.0, label="averaged parameters")
        ax.legend(loc="lower right", fontsize=8)
    if best_epoch is not None and 0 <= best_epoch < len(val_history):
        best = marked[best_epoch]
        which = ", averaged" if averaged else ""
        ax.scatter([best_epoch], [best], color="#d62728", zorder=3)
        ax.annotate(
            f"selected: epoch {best_epoch}{which}, {best:.2f}%",
            (best_epoch, best),
            textcoords="offset points",
            xytext=(6, -14),
            fontsize=8,
            color="#d62728",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("token accuracy (%)")
    ax.set_title(title, fontsize=10)
    if temperatures is not None:
        twin = ax.twinx()
        twin.plot(epochs, list(temperatures), color="#7f7f7f", lw=1.0, ls="--", label="τ")
        twin.set_yscale("log")
        twin.set_ylabel("temperature τ (log scale)", color="#7f7f7f")
    fig.tight_layout()
    return write_atomically(out, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
