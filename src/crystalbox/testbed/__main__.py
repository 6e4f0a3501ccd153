"""`python -m crystalbox.testbed [--kind causal] [model_type ...]`: build tiny models, print a table."""

from __future__ import annotations

import argparse
import time

from crystalbox.testbed.build import BuildRecord, iter_builds
from crystalbox.testbed.catalog import KINDS, Kind


def _row(record: BuildRecord) -> str:
    return (
        f"{record.model_type:28s} {record.n_params:>10,d} {record.seconds:6.2f}s  {record.status}"
    )


def main(argv: list[str] | None = None) -> int:
    """Print one row per architecture and the success count per kind; 0 when all ran."""
    parser = argparse.ArgumentParser(prog="python -m crystalbox.testbed", description=__doc__)
    parser.add_argument("--kind", choices=KINDS, action="append", help="default: every kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--attn", help="attn_implementation, e.g. eager (default: the model's)")
    parser.add_argument("model_types", nargs="*", help="only these architectures")
    args = parser.parse_args(argv)
    kinds: list[Kind] = args.kind or list(KINDS)
    failures = 0
    start = time.perf_counter()
    for kind in kinds:
        print(f"== {kind}\n{'model_type':28s} {'params':>10s} {'time':>7s}  status")
        ok = total = 0
        for record in iter_builds(kind, args.seed, args.model_types or None, args.attn):
            print(_row(record), flush=True)
            ok += record.ok
            total += 1
        failures += total - ok
        print(f"{kind}: {ok}/{total} built and ran\n")
    print(f"total {time.perf_counter() - start:.1f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
