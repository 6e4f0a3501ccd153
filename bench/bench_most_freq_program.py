"""Benchmark: a hand-written most_freq program in the model's own step semantics.

Ranking tokens by (−count, first index) needs, per token, how many tokens with the same count
occur *first* before it: a prefix count. This script writes that algorithm with the steps a
Transformer Program has (``semantics.match_matrix`` / ``select_closest`` heads and lookup
tables of 2 inputs each), in 4 layers, and scores it on the task's splits:

* layer 0: numerical heads ``count`` (same tokens anywhere) and ``seen`` (same tokens at or
  before: causal); table (count, seen) -> ``first``: the count at a first occurrence, else 0;
* layer 1: numerical heads over ``first``: ``more_d`` = first occurrences with count c + d
  (d = 1, 2, 3) and ``before`` = first occurrences with the same count at or before (causal);
  tables (more_1, more_2) -> a, (more_3, before) -> b (none where before is 0);
* layer 2: table (a, b) -> ``rank`` = a + b at first occurrences, else none;
* layer 3: a categorical head: position i selects the position whose rank is i and copies
  its token (BOS, the filler, when none has).

Counts above c + 3 are left out (a token with count c and another with count ≥ c + 4 in one
sequence of at most 7 symbols); two more heads would cover them. The paper's model gives
every head the same mask, so the causal heads ``seen`` and ``before`` are not available to a
non-causal task: ``--no-causal`` scores the same program with them non-causal. It then builds
the same program as a model (``crystalbox.programs.handwritten.most_freq_rank_model``: reads
and predicates set by hand, tables fitted into its MLPs; ``--tables``: its numerical MLPs are
lookup tables), scores it and decompiles it with verification; ``--retrain TAU ...`` trains
from that model (sharpened, the same program) with the temperature falling from each TAU, to
see whether training keeps the program;
``--checkpoint CKPT`` breaks a trained checkpoint's test accuracy down by rank and ties;
``--tie-orders`` scores outputs that know every count and order equal counts by other rules.
Example::

    python bench/bench_most_freq_program.py --retrain 0.1 0.3 1 3
"""

from __future__ import annotations

import argparse
import time

import torch

from crystalbox.programs.data import IGNORE, TaskData, make_data
from crystalbox.programs.decompile import decompile
from crystalbox.programs.handwritten import most_freq_rank_model, sharpened
from crystalbox.programs.model import ProgramTransformer
from crystalbox.programs.semantics import aggregate, aggregate_sum, match_matrix, select_closest
from crystalbox.programs.tasks import make_task
from crystalbox.programs.train import TrainConfig, accuracy, train_program


def rank_program(tokens: torch.Tensor, pad: int, causal: bool) -> torch.Tensor:
    """Output token ids ``[b, n]`` of the rank program for input ids ``tokens [b, n]``."""
    b, n = tokens.shape
    mask = (tokens != pad).clone()
    mask[:, 0] = True  # [b, n]: allowed keys
    k = 2 * n + 2
    never = k - 1  # a value no key holds: a predicate row pointing at it matches nothing
    identity = torch.arange(k)
    ones = torch.ones(b, n)

    def heads(keys: torch.Tensor, predicate: torch.Tensor, masked: bool) -> torch.Tensor:
        queries = keys  # every head here queries with the value it keys on
        return aggregate_sum(match_matrix(keys, queries, predicate, masked, mask), ones).long()

    def shifted(d: int) -> torch.Tensor:  # predicate c -> c + d for counts c >= 1
        table = torch.clamp(identity + d, max=never)
        table[0] = never
        return table

    # layer 0: the rows of pad and BOS (ids 0 and 1) match nothing, so they never rank
    same_symbol = identity.clone()
    same_symbol[:2] = never
    count, seen = heads(tokens, same_symbol, False), heads(tokens, same_symbol, causal)
    first = torch.where(seen == 1, count, 0)
    # layer 1
    more_1, more_2, more_3 = (heads(first, shifted(d), False) for d in (1, 2, 3))
    before = heads(first, shifted(0), causal)
    a = more_1 + more_2
    b_ = torch.where(before > 0, more_3 + before, never)
    # layer 2
    rank = torch.where(b_ != never, a + b_, never)
    # layer 3
    positions = torch.arange(n).expand(b, n)
    return aggregate(select_closest(rank, positions, identity, False, mask), tokens)


def retrain(model: ProgramTransformer, data: TaskData, tau: float, epochs: int, seed: int) -> None:
    """Train from the rank model, its logits sharpened (x100, the classifier x20: the same
    program, far from every decision boundary), with the paper's optimiser and a temperature
    falling from ``tau`` to 0.01; print what training keeps of the program."""
    config = TrainConfig(
        epochs=epochs, tau_start=tau, seed=seed, threads=1, progress=False, stop_patience=None
    )
    result = train_program(
        make_task("most_freq"), None, config, data, start=sharpened(model)
    ).result
    print(
        f"trained from the rank model, tau {tau:g} -> 0.01, {epochs} epochs, seed {seed}: val "
        f"{result.val_acc:.2f}, test {result.test_acc:.2f} (best epoch {result.best_epoch}, "
        f"{result.wall_s:.0f} s)"
    )


def tie_breakdown(checkpoint: str) -> None:
    """Print a checkpoint's test accuracy by output rank and by whether the token at that
    rank shares its count with a neighbouring rank (a tie broken by first occurrence)."""
    from collections import Counter

    from crystalbox.programs.checkpoint import checkpoint_data, load_program

    loaded = load_program(checkpoint)
    test = checkpoint_data(loaded.task, loaded.train_config).test
    vocab = loaded.task.input_vocab
    predicted = loaded.model.predict(torch.as_tensor(test.inputs)).numpy()
    right: Counter[tuple[int, str]] = Counter()
    total: Counter[tuple[int, str]] = Counter()
    for inputs, targets, guess in zip(test.inputs, test.targets, predicted, strict=True):
        symbols = [vocab[t] for t in inputs[1:] if vocab[t] != "<pad>"]
        counts = Counter(symbols)
        order = sorted(counts, key=lambda t: (-counts[t], symbols.index(t)))
        for i in range(1, len(symbols) + 1):
            if targets[i] == IGNORE:
                continue
            r = i - 1
            if r >= len(order):
                kind = "filler"
            else:
                c = counts[order[r]]
                tied = any(0 <= s < len(order) and counts[order[s]] == c for s in (r - 1, r + 1))
                kind = f"{'tie' if tied else 'unique'} c={c}"
            total[i, kind] += 1
            right[i, kind] += int(guess[i] == targets[i])
    print(f"{checkpoint}: test accuracy by output rank and count (groups of >= 20 tokens)")
    for key in sorted(total):
        if total[key] >= 20:
            print(
                f"  rank {key[0]} {key[1]:<10} {total[key]:>5} tokens  {100 * right[key] / total[key]:6.2f}%"
            )


def tie_orders(task_data: TaskData) -> None:
    """Print the test accuracy of outputs that know every count exactly and order tokens of
    equal count by another rule than first occurrence: how much of the task is the ties."""
    import random
    from collections import Counter

    vocab = task_data.task.input_vocab
    output = task_data.task.output_vocab

    def last(t: str, symbols: list[str]) -> int:
        return max(i for i, s in enumerate(symbols) if s == t)

    rules = {
        "first occurrence (the target)": lambda t, symbols: symbols.index(t),
        "last occurrence": last,
        "last occurrence, latest first": lambda t, symbols: -last(t, symbols),
        "token value": lambda t, symbols: t,
    }
    shuffle = random.Random(0)
    rules["random (one draw per sequence)"] = lambda t, symbols: shuffle.random()
    test = task_data.test
    print("outputs with exact counts, equal counts ordered by another rule (test split):")
    for name, rule in rules.items():
        right = total = 0
        for inputs, targets in zip(test.inputs, test.targets, strict=True):
            symbols = [vocab[t] for t in inputs[1:] if vocab[t] != "<pad>"]
            counts = Counter(symbols)
            order = sorted(counts, key=lambda t: (-counts[t], rule(t, symbols)))
            for i in range(1, len(symbols) + 1):
                if targets[i] != IGNORE:
                    guess = order[i - 1] if i - 1 < len(order) else "<s>"
                    right += int(output.index(guess) == targets[i])
                    total += 1
        print(f"  {name:<32} {100 * right / total:6.2f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-causal", action="store_true", help="every head non-causal")
    parser.add_argument(
        "--tables", action="store_true", help="the model's numerical MLPs are lookup tables"
    )
    parser.add_argument(
        "--checkpoint", default=None, help="also break this checkpoint's test accuracy down"
    )
    parser.add_argument("--source", default=None, help="write the decompiled program here")
    parser.add_argument(
        "--retrain",
        type=float,
        nargs="*",
        default=[],
        metavar="TAU",
        help="train from the (sharpened) rank model with the temperature falling from TAU",
    )
    parser.add_argument("--retrain-epochs", type=int, default=40)
    parser.add_argument("--retrain-seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--tie-orders",
        action="store_true",
        help="only score exact counts with other tie rules than first occurrence",
    )
    args = parser.parse_args()
    task = make_task("most_freq")
    data = make_data(task, 0)
    if args.tie_orders:
        tie_orders(data)
        return
    pad, output = task.input_vocab.index("<pad>"), task.output_vocab
    to_output = torch.tensor(
        [output.index(t) if t in output else -1 for t in task.input_vocab], dtype=torch.long
    )
    causal = "with" if not args.no_causal else "without"
    print(f"the rank algorithm in step semantics, {causal} causal heads:")
    for name in ("train", "val", "test"):
        split = getattr(data, name)
        tokens = torch.as_tensor(split.inputs)
        predicted = to_output[rank_program(tokens, pad, not args.no_causal)]
        targets = torch.as_tensor(split.targets)
        scored = targets != IGNORE
        right = (predicted == targets)[scored].float().mean().item() * 100
        print(f"  {name}: {len(split)} examples, token accuracy {right:.2f}%")
    started = time.perf_counter()
    model = most_freq_rank_model(task, tables=args.tables)
    built = time.perf_counter() - started
    print(f"as a model (most_freq_rank_model, {model.config.summary()}, built in {built:.1f} s):")
    for name in ("train", "val", "test"):
        print(f"  {name}: token accuracy {accuracy(model, getattr(data, name)):.2f}%")
    started = time.perf_counter()
    inputs = {name: getattr(data, name).inputs for name in ("train", "val", "test")}
    result = decompile(
        model, input_vocab=task.input_vocab, output_vocab=task.output_vocab, inputs=inputs
    )
    report = result.report
    verified = report is not None and report.ok
    lines = len(result.source.splitlines())
    print(
        f"decompiled: {lines} lines of Python, program == model on every split: {verified} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    if args.source:
        with open(args.source, "w", encoding="utf-8") as handle:
            handle.write(result.source)
        print(f"  written to {args.source}")
    for tau in args.retrain:
        for seed in args.retrain_seeds:
            retrain(model, data, tau, args.retrain_epochs, seed)
    if args.checkpoint:
        tie_breakdown(args.checkpoint)


if __name__ == "__main__":
    main()
