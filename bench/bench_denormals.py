"""Benchmark: training steps with and without denormal floats flushed to zero.

For each checkpoint and temperature, times Gumbel-soft training steps (forward, backward,
Adam) of the checkpoint's model on its task's training data, with flushing on and off, each
setting in a fresh process (``bench_train_step.worker``: torch's intra-op threads take the
setting of the thread that starts them), and prints the medians and their ratio. Example::

    python bench/bench_denormals.py docs/programs-checkpoints/dyck2 --threads 2
"""

from __future__ import annotations

import argparse

from bench_train_step import DEFAULT_CHECKPOINTS, run_worker, shown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "checkpoints", nargs="*", help="checkpoint folders (default: dyck2, dyck1, most_freq)"
    )
    parser.add_argument("--taus", type=float, nargs="+", default=[1.0, 0.1, 0.01])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args(argv)
    print(f"{args.threads} thread(s), medians of {args.steps} steps of 512 examples")
    print("| checkpoint | tau | ms/step, denormals kept | flushed | speed-up |")
    print("| --- | --- | --- | --- | --- |")
    for checkpoint in args.checkpoints or DEFAULT_CHECKPOINTS:
        for tau in args.taus:
            ms = {
                flush: run_worker(checkpoint, tau, flush, args.threads, args.steps)["ms"]
                for flush in (False, True)
            }
            print(
                f"| {shown(checkpoint)} | {tau:g} | {ms[False]:.1f} | {ms[True]:.1f} | "
                f"{ms[False] / ms[True]:.2f}x |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
