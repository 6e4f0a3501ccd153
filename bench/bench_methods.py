"""Figures of the methods library on the default model (SmolLM2-135M, CPU).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_methods.py [--repeats 5] [--threads 2] [--json out.json]

1. logit lens of 8 prompts x 16 tokens: time / plain forward of the same batch (goal <= 1.3);
2. activation collection throughput (tokens/s) / plain forward throughput on the same texts (goal >= 0.85),
   with the peak resident memory;
3. activation patching of the residual stream over all layers x positions for one prompt pair.
Timings are medians over ``--repeats`` runs, interleaved with their baselines in the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch

from _timing import median_seconds

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_lens(model: Any, repeats: int) -> dict[str, float]:
    from crystalbox.methods import logit_lens
    from crystalbox.methods._common import encode

    words = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "the",
        "lazy",
        "dog",
        "while",
        "a",
        "cat",
        "sleeps",
        "near",
        "an",
        "open",
        "window",
    ]
    prompts = [" ".join(words[i:] + words[:i]) for i in range(8)]
    inputs = encode(model, prompts, max_length=16)
    texts = [model.tokenizer.decode(row) for row in inputs["input_ids"]]
    inputs = encode(model, texts)

    def forward() -> None:
        with torch.no_grad():
            model.hf_model(**inputs)

    def lens_last() -> None:
        logit_lens(model, texts, positions="last")

    def lens_all() -> None:
        logit_lens(model, texts, positions="all")

    forward(), lens_last(), lens_all()  # warm up
    runs = [
        (median_seconds(forward, 1), median_seconds(lens_last, 1), median_seconds(lens_all, 1))
        for _ in range(repeats)
    ]
    fwd = statistics.median(r[0] for r in runs)
    last = statistics.median(r[1] for r in runs)
    every = statistics.median(r[2] for r in runs)
    return {
        "tokens": int(inputs["input_ids"].numel()),
        "forward_ms": fwd * 1e3,
        "lens_last_ms": last * 1e3,
        "ratio_last": last / fwd,
        "lens_all_positions_ms": every * 1e3,
        "ratio_all_positions": every / fwd,
    }


def bench_collection(model: Any, repeats: int) -> dict[str, float]:
    from crystalbox.methods import collect_activations
    from crystalbox.methods._common import encode

    base = "In the middle of the night the old library kept its secrets among dusty shelves and quiet rooms"
    texts = [f"{base} number {i} " + "more words " * (i % 7) for i in range(64)]
    layers = [0, 6, 12, 18, 24, 29]
    batch = 8
    batches = [
        encode(model, texts[i : i + batch], max_length=512) for i in range(0, len(texts), batch)
    ]
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)

    def forward() -> None:
        with torch.no_grad():
            for b in batches:
                model.hf_model(**b)

    def collect() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            collect_activations(
                model,
                texts,
                Path(tmp),
                layers=layers,
                dtype="float16",
                batch_size=batch,
                progress=False,
            )

    forward(), collect()
    pairs = [(median_seconds(forward, 1), median_seconds(collect, 1)) for _ in range(repeats)]
    fwd = statistics.median(p[0] for p in pairs)
    col = statistics.median(p[1] for p in pairs)
    return {
        "tokens": tokens,
        "layers": len(layers),
        "forward_tokens_per_s": tokens / fwd,
        "collect_tokens_per_s": tokens / col,
        "ratio": fwd / col,
        "peak_rss_mb": _peak_rss_mb(),
    }


def bench_patching(model: Any, repeats: int) -> dict[str, float]:
    from crystalbox.methods import activation_patching, attribution_patching, logit_diff

    metric = logit_diff(" Paris", " Rome", model.tokenizer)
    clean, corrupted = "The capital of France is", "The capital of Italy is"
    result = activation_patching(model, clean, corrupted, metric=metric)
    patches = result.scores.numel()
    exact = median_seconds(
        lambda: activation_patching(model, clean, corrupted, metric=metric), repeats
    )
    attribution = median_seconds(
        lambda: attribution_patching(model, clean, corrupted, metric=metric), repeats
    )
    return {
        "patches": patches,
        "exact_s": exact,
        "exact_ms_per_patch": exact / patches * 1e3,
        "attribution_s": attribution,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--only", choices=["lens", "collection", "patching"], default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from crystalbox import StandardizedTransformer

    model = StandardizedTransformer()
    results: dict[str, Any] = {"threads": args.threads, "repeats": args.repeats}
    for name, func in (
        ("lens", bench_lens),
        ("collection", bench_collection),
        ("patching", bench_patching),
    ):
        if args.only in (None, name):
            results[name] = func(model, args.repeats)
            print(name, json.dumps(results[name], indent=1), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
