"""Foundation figures on the embedded default model (SmolLM2-135M), printed, never asserted.

1. Overhead: median time of a standardized trace saving every layer's output, divided by the
   median of a plain HuggingFace forward of the same 32-token input, same process and threads.
2. Load time of a validated, ready model from the cache; first-run conversion time (fresh cache).

Run: .venv/bin/python bench/bench_foundation.py [--runs 20] [--skip-conversion]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from _timing import median_seconds
from crystalbox import StandardizedTransformer, _nnsight

PROMPT_WORDS = 32


def overhead(runs: int) -> None:
    model = StandardizedTransformer()
    ids = torch.arange(1000, 1000 + PROMPT_WORDS).unsqueeze(0)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    n = model.num_layers

    def plain() -> None:
        with torch.no_grad():
            model.hf_model(**inputs)

    def traced() -> None:
        saved: list[torch.Tensor] = []
        with torch.no_grad(), model.trace(dict(inputs)):
            for i in range(n):
                saved.append(_nnsight.save(model.layers_output[i]))
        assert len(saved) == n

    # interleave the two measurements so drift in machine load hits both alike
    plain_ms, traced_ms = [], []
    for _ in range(3):
        plain_ms.append(1000 * median_seconds(plain, runs // 3 + 1, warmup=3))
        traced_ms.append(1000 * median_seconds(traced, runs // 3 + 1, warmup=3))
    p, t = statistics.median(plain_ms), statistics.median(traced_ms)
    print(
        f"threads {torch.get_num_threads()}, {PROMPT_WORDS} tokens, {3 * (runs // 3 + 1)} runs each"
    )
    print(f"plain HF forward (no_grad)              {p:8.1f} ms")
    print(f"trace saving all {n} layer outputs      {t:8.1f} ms")
    print(f"overhead ratio (goal <= 1.05)           {t / p:8.3f}")


def load_times(skip_conversion: bool) -> None:
    code = (
        "import time; t=time.perf_counter(); from crystalbox import StandardizedTransformer; "
        "StandardizedTransformer(); print(time.perf_counter()-t)"
    )
    env = dict(os.environ)
    warm = float(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        ).stdout.split()[-1]
    )
    print(f"load + check from cache (new process, incl. imports)  {warm:6.2f} s")
    start = time.perf_counter()
    StandardizedTransformer()
    print(
        f"load + check from cache (warm process)                {time.perf_counter() - start:6.2f} s"
    )
    if skip_conversion:
        return
    with tempfile.TemporaryDirectory() as cache:
        env["CRYSTALBOX_CACHE"] = cache
        code = (
            "import time; from crystalbox.default_model import default_model_path; "
            "t=time.perf_counter(); default_model_path(progress=False); print(time.perf_counter()-t)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        print(
            f"first-run conversion GGUF -> safetensors (fresh cache) {float(out.stdout.split()[-1]):6.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--skip-conversion", action="store_true")
    args = parser.parse_args()
    overhead(args.runs)
    load_times(args.skip_conversion)


if __name__ == "__main__":
    main()
