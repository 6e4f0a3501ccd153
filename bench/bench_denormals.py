"""Benchmark: training steps with and without denormal floats flushed to zero.

For each checkpoint and temperature, times Gumbel-soft training steps (forward, backward,
Adam) of the checkpoint's model on its task's training data, with flushing on and off, each
setting in a fresh process (torch's intra-op threads take the setting of the thread that
starts them), and prints the medians and their ratio. Example::

    python bench/bench_denormals.py docs/programs-checkpoints/dyck2 --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def worker(checkpoint: str, tau: float, flush: bool, threads: int, steps: int) -> dict:
    """Median milliseconds per step in this process (flushing set before any torch work)."""
    import torch

    torch.set_flush_denormal(flush)
    torch.set_num_threads(threads)
    from crystalbox.programs.checkpoint import checkpoint_data, load_program
    from crystalbox.programs.train import _loss

    loaded = load_program(checkpoint)
    model = loaded.model.train()
    train = checkpoint_data(loaded.task, loaded.train_config).train
    inputs = torch.as_tensor(train.inputs[:512])
    targets = torch.as_tensor(train.targets[:512])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)  # small: the model stays put
    times = []
    for step in range(steps + 2):
        tick = time.perf_counter()
        loss = _loss(model(inputs, "gumbel_soft", tau), targets, "token")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= 2:  # the first steps warm up
            times.append(time.perf_counter() - tick)
    return {"ms": 1000 * statistics.median(times)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", help="checkpoint folders")
    parser.add_argument("--taus", type=float, nargs="+", default=[1.0, 0.1, 0.01])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--worker", nargs=3, metavar=("CHECKPOINT", "TAU", "FLUSH"))
    args = parser.parse_args(argv)
    if args.worker:
        checkpoint, tau, flush = args.worker
        result = worker(checkpoint, float(tau), flush == "1", args.threads, args.steps)
        print(json.dumps(result))
        return 0
    if not args.checkpoints:
        parser.error("name at least one checkpoint folder")
    print(f"{args.threads} thread(s), medians of {args.steps} steps of 512 examples")
    print("| checkpoint | tau | ms/step, denormals kept | flushed | speed-up |")
    print("| --- | --- | --- | --- | --- |")
    for checkpoint in args.checkpoints:
        for tau in args.taus:
            ms = {}
            for flush in ("0", "1"):
                command = [sys.executable, __file__, "--worker", checkpoint, str(tau), flush]
                command += ["--threads", str(args.threads), "--steps", str(args.steps)]
                output = subprocess.run(command, check=True, capture_output=True, text=True)
                ms[flush] = json.loads(output.stdout.strip().splitlines()[-1])["ms"]
            print(
                f"| {checkpoint} | {tau:g} | {ms['0']:.1f} | {ms['1']:.1f} | "
                f"{ms['0'] / ms['1']:.2f}x |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
