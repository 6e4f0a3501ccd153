"""Read a trained Transformer Program through the standardized interface.

    python examples/program_circuits.py [CHECKPOINT]   # default: the committed icl program

The program is loaded like any model, validated against itself, and then looked at with the
ordinary methods: the logit lens at every position, per-head activation patching between a
prompt and a corrupted copy, and the attention probabilities of the head that matters.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from crystalbox import StandardizedTransformer
from crystalbox._nnsight import save
from crystalbox.methods.lens import logit_lens
from crystalbox.methods.patching import activation_patching

ICL = Path(__file__).resolve().parents[1] / "docs" / "programs-checkpoints" / "icl"


def main(
    checkpoint: str = str(ICL), clean: str = "a 1 b 2 a", corrupted: str = "a 1 b 2 b"
) -> None:
    model = StandardizedTransformer(checkpoint)
    print(model.info(), end="\n\n")
    print(model.validate().table(), end="\n\n")

    lens = logit_lens(model, clean)
    print(f"logit lens of {clean!r}: top class per layer (rows) and position (columns)")
    for layer, row in zip(lens.layers, lens.top_strings[0], strict=True):
        print(f"  layer {layer}: " + " ".join(f"{top[0]:>5}" for top in row))

    patched = activation_patching(model, clean, corrupted, component="heads")
    recovered = patched.normalized()  # [layers, heads]: 1 = the clean answer back
    layer, head = divmod(int(recovered.argmax()), recovered.shape[1])
    print(f"\npatching single heads from {clean!r} into {corrupted!r}:")
    print(f"  layer {layer} head {head} recovers {float(recovered[layer, head]):.3f} of the answer")

    with torch.no_grad(), model.trace(clean):
        probs = save(model.attention_probabilities[layer])  # [batch, heads, q, k], one-hot rows
    tokens = ["<s>", *clean.split()]
    picks = probs[0, head].argmax(-1).tolist()
    print(f"  it selects, for each query position, key: {[tokens[k] for k in picks]}")


if __name__ == "__main__":
    main(*sys.argv[1:])
