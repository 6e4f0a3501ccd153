"""What stopping on a validation plateau (``--patience``) would have done to recorded runs.

Reads the validation history that each checkpoint records (one value per epoch) and, for each
patience, prints how many epochs the run would have taken and which epoch it would have
selected (``=`` the recorded one, ``!`` another), with the selection rule of ``train_program``
(the best validation, ties going to the later epoch).

    python bench/bench_plateau_stop.py docs/programs-checkpoints --patience 20 30 40 60
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def plateau_stop(history: list[float], patience: int) -> tuple[int, int, float]:
    """(epochs run, selected epoch, its validation) when stopping after ``patience`` epochs
    without validation reaching its best again."""
    best, best_epoch = -1.0, -1
    for epoch, value in enumerate(history):
        if value >= best:
            best, best_epoch = value, epoch
        if epoch - best_epoch >= patience:
            return epoch + 1, best_epoch, best
    return len(history), best_epoch, best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folder",
        type=Path,
        nargs="?",
        default=Path(__file__).resolve().parent.parent / "docs" / "programs-checkpoints",
        help="a folder of checkpoint folders (default: the committed ones)",
    )
    parser.add_argument("--patience", type=int, nargs="+", default=[20, 30, 40, 60])
    args = parser.parse_args(argv)
    configs = sorted(args.folder.glob("*/config.json"))
    if not configs:
        raise SystemExit(f"no checkpoints (*/config.json) under {args.folder}")
    header = " | ".join(f"patience {p}: epochs, selected" for p in args.patience)
    print(f"| checkpoint | epochs | selected epoch | {header} |")
    print("| --- " * (3 + len(args.patience)) + "|")
    for config in configs:
        result = json.loads(config.read_text()).get("result", {})
        history = result.get("val_history")
        if not history:
            continue
        cells = []
        for patience in args.patience:
            ran, chosen, value = plateau_stop(list(history), patience)
            mark = "=" if chosen == result.get("best_epoch") else "!"
            cells.append(f"{ran}, {chosen}{mark} ({value:.2f})")
        print(
            f"| {config.parent.name} | {len(history)} | {result.get('best_epoch')} | "
            + " | ".join(cells)
            + " |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
