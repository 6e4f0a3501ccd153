"""Benchmark: training-step time of this checkout's code against another git revision's.

For each checkpoint and temperature, times Gumbel-soft training steps (forward, backward,
Adam; denormals flushed, as training does) of the checkpoint's model on its task's training
data, once with this checkout's ``src`` and once with REV's (exported with ``git archive``),
each in a fresh process, alternating for ``--rounds`` rounds, and prints the medians and
their ratio. Example::

    python bench/bench_train_step.py docs/programs-checkpoints/dyck2 --against HEAD~1 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the committed checkpoints of the three tasks with the slowest steps
DEFAULT_CHECKPOINTS = [
    str(ROOT / "docs" / "programs-checkpoints" / task) for task in ("dyck2", "dyck1", "most_freq")
]


def shown(checkpoint: str) -> str:
    """A checkpoint's path as printed: relative to the repository when it lies inside it."""
    path = Path(checkpoint).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else checkpoint


def worker(checkpoint: str, tau: float, flush: bool, threads: int, steps: int) -> dict:
    """Median milliseconds per step in this process (flushing set before any torch work)."""
    import torch

    torch.set_flush_denormal(flush)
    torch.set_num_threads(threads)
    import crystalbox
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
    return {"ms": 1000 * statistics.median(times), "code": str(Path(crystalbox.__file__).parent)}


def run_worker(
    checkpoint: str, tau: float, flush: bool, threads: int, steps: int, src: str | None = None
) -> dict:
    """``worker`` in a fresh process; ``src``: the ``src`` folder to import crystalbox from."""
    command = [sys.executable, __file__, "--worker", checkpoint, str(tau), "1" if flush else "0"]
    command += ["--threads", str(threads), "--steps", str(steps)]
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(output.stdout.strip().splitlines()[-1])


def export_src(revision: str, into: str) -> str:
    """``src`` of git ``revision`` written under ``into``; returns its path."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision, "src"],
        check=True,
        capture_output=True,
    ).stdout
    archive_path = Path(into) / "src.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(into, filter="data")
    return str(Path(into) / "src")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "checkpoints", nargs="*", help="checkpoint folders (default: dyck2, dyck1, most_freq)"
    )
    parser.add_argument(
        "--against",
        default="HEAD",
        help="git revision to compare with (default HEAD: what uncommitted changes do; on a "
        "clean checkout the ratio shows the noise of the measurement)",
    )
    parser.add_argument("--taus", type=float, nargs="+", default=[1.0, 0.1, 0.01])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternations per setting")
    parser.add_argument("--worker", nargs=3, metavar=("CHECKPOINT", "TAU", "FLUSH"))
    args = parser.parse_args(argv)
    if args.worker:
        checkpoint, tau, flush = args.worker
        print(json.dumps(worker(checkpoint, float(tau), flush == "1", args.threads, args.steps)))
        return 0
    checkpoints = args.checkpoints or DEFAULT_CHECKPOINTS
    with tempfile.TemporaryDirectory() as tmp:
        baseline = export_src(args.against, tmp)
        print(
            f"{args.threads} thread(s), medians of {args.steps} steps of 512 examples per "
            f"process, median over {args.rounds} alternating processes per side"
        )
        print(f"| checkpoint | tau | ms/step, {args.against} | this checkout | speed-up |")
        print("| --- | --- | --- | --- | --- |")
        for checkpoint in checkpoints:
            for tau in args.taus:
                ms: dict[str, list[float]] = {"base": [], "this": []}
                for _ in range(args.rounds):
                    for side, src in (("base", baseline), ("this", str(ROOT / "src"))):
                        result = run_worker(checkpoint, tau, True, args.threads, args.steps, src)
                        if not result["code"].startswith(src):
                            raise RuntimeError(f"worker imported {result['code']}, not {src}")
                        ms[side].append(result["ms"])
                base, this = statistics.median(ms["base"]), statistics.median(ms["this"])
                name = shown(checkpoint)
                print(
                    f"| {name} | {tau:g} | {base:.1f} | {this:.1f} | {base / this:.2f}x |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
