"""What reading a program through the standardized interface costs.

For each committed checkpoint: the median time of the program's own forward on its 2,000 test
inputs, of its transformer view's forward on the same ids, and of a standardized trace that
saves every layer's output, plus the ratios to the program's forward (all in this process,
one thread); and that the view's class logits equal the program's bit for bit.

    python bench/bench_program_view.py [CHECKPOINT_DIR] [--repeats N]
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import torch

from _timing import median_seconds
from crystalbox import StandardizedTransformer
from crystalbox._nnsight import save
from crystalbox.programs import checkpoint_data, load_program
from crystalbox.programs.transformer_view import as_transformer


def traced(model: StandardizedTransformer, ids: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's output saved in one standardized trace."""
    saved: list[torch.Tensor] = []
    with model.trace({"input_ids": ids, "attention_mask": torch.ones_like(ids)}):
        for i in range(model.num_layers):
            saved.append(save(model.layers_output[i]))
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "checkpoints",
        nargs="?",
        default=str(Path(__file__).parents[1] / "docs" / "programs-checkpoints"),
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'checkpoint':<14} {'d_model':>7} {'program ms':>10} {'view ms':>8} {'x':>5} "
          f"{'trace ms':>9} {'x':>5}  logits equal")  # fmt: skip
    for folder in sorted(Path(args.checkpoints).iterdir()):
        loaded = load_program(folder)
        ids = torch.as_tensor(checkpoint_data(loaded.task, loaded.train_config).test.inputs)
        view = as_transformer(loaded)
        model = StandardizedTransformer(view.model, tokenizer=view.tokenizer)
        classes = [view.tokenizer.convert_tokens_to_ids(t) for t in loaded.task.output_vocab]
        with torch.no_grad():
            equal = torch.equal(view.model(input_ids=ids).logits[..., classes], loaded.model(ids))
            program = median_seconds(partial(loaded.model, ids), args.repeats, warmup=1)
            hf = median_seconds(partial(view.model, input_ids=ids), args.repeats, warmup=1)
            trace = median_seconds(partial(traced, model, ids), args.repeats, warmup=1)
        print(
            f"{folder.name:<14} {model.hidden_size:>7} {1000 * program:>10.1f} {1000 * hf:>8.1f} "
            f"{hf / program:>5.2f} {1000 * trace:>9.1f} {trace / program:>5.2f}  {equal}"
        )


if __name__ == "__main__":
    main()
