"""Task definitions: generators of (input tokens, target tokens) pairs and their vocabularies.

A ``Task`` is a seeded generator plus vocabularies. Built-in tasks follow the reference
(reverse, hist, double_hist, sort, most_freq, dyck1, dyck2, icl), plus dyck2_authors (dyck2
on the data distribution of the authors' code); ``custom_task`` wraps
any user function ``generate(rng) -> (inputs, targets)``. Targets are aligned with the
inputs; ``None`` marks a position that is not scored (e.g. BOS).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "PUBLISHED",
    "TASKS",
    "UNK",
    "PublishedConfig",
    "Task",
    "custom_task",
    "double_hist_targets",
    "dyck_labels",
    "dyck_task",
    "hist_targets",
    "icl_targets",
    "make_task",
    "most_freq_targets",
    "task_identity",
]

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"

Example = tuple[list[str], list[str | None]]
Generator = Callable[[np.random.Generator], Example]


@dataclass(frozen=True, eq=False)
class Task:
    """A sequence-labelling task. ``input_vocab[0]`` is PAD and ``input_vocab[1]`` is BOS."""

    name: str
    generate: Generator
    input_vocab: tuple[str, ...]
    output_vocab: tuple[str, ...]
    max_len: int
    causal: bool = False
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.input_vocab[:2] != (PAD, BOS):
            raise ValueError(
                f"input_vocab must start with ({PAD!r}, {BOS!r}), got {self.input_vocab[:2]}"
            )
        for name, vocab in (("input_vocab", self.input_vocab), ("output_vocab", self.output_vocab)):
            if len(set(vocab)) != len(vocab):
                raise ValueError(f"{name} of task {self.name!r} has duplicate entries: {vocab}")
        if self.max_len < 2:
            raise ValueError(f"max_len must be at least 2 (BOS and one token), got {self.max_len}")


def task_identity(task: Any) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """What two tasks (``Task`` or a checkpoint's ``TaskInfo``) must share for a model or data
    of one to serve the other: name and both vocabularies."""
    return (task.name, tuple(task.input_vocab), tuple(task.output_vocab))


def custom_task(
    name: str,
    generate: Generator,
    symbols: Sequence[str],
    output_vocab: Sequence[str],
    max_len: int,
    causal: bool = False,
    eos: bool = False,
) -> Task:
    """A user task: ``generate(rng)`` returns inputs (starting with ``"<s>"``) and targets.

    ``symbols`` are the input tokens besides the specials; the input vocabulary becomes
    ``("<pad>", "<s>", ["</s>",] *symbols)``.
    """
    specials = (PAD, BOS, EOS) if eos else (PAD, BOS)
    clash = sorted(set(symbols) & set(specials))
    if clash:
        raise ValueError(f"symbols {clash} collide with the special tokens {specials}")
    return Task(
        name,
        generate,
        (*specials, *symbols),
        tuple(output_vocab),
        max_len,
        causal,
        {"custom": True},
    )


def _symbols(n: int) -> list[str]:
    if n < 1:
        raise ValueError(
            f"the vocabulary leaves {n} symbols after the special tokens; raise vocab_size"
        )
    return [str(i) for i in range(n)]


def _length(rng: np.random.Generator, low: int, high: int) -> int:
    return int(rng.integers(low, high + 1))


def _reverse(vocab_size: int, max_len: int, sort: bool) -> Task:
    symbols = _symbols(vocab_size - 3)
    if max_len < 3:
        raise ValueError(f"max_len must be at least 3 (BOS, a symbol, EOS), got {max_len}")

    def generate(rng: np.random.Generator) -> Example:
        length = _length(rng, 1, max_len - 2)
        xs = [symbols[i] for i in rng.integers(0, len(symbols), length)]
        ys = sorted(xs, key=int) if sort else xs[::-1]
        return [BOS, *xs, EOS], [None, *ys, None]

    name = "sort" if sort else "reverse"
    settings = {"vocab_size": vocab_size, "max_len": max_len}
    return Task(name, generate, (PAD, BOS, EOS, *symbols), tuple(symbols), max_len, False, settings)


def hist_targets(xs: Sequence[str]) -> list[str]:
    """How often each token occurs in the sequence."""
    counts = Counter(xs)
    return [str(counts[x]) for x in xs]


def double_hist_targets(xs: Sequence[str]) -> list[str]:
    """How many distinct tokens occur exactly as often as this token."""
    counts = Counter(xs)
    count_of_counts = Counter(counts.values())
    return [str(count_of_counts[counts[x]]) for x in xs]


def most_freq_targets(xs: Sequence[str]) -> list[str]:
    """Distinct tokens by decreasing count, ties by first occurrence; then BOS to the end."""
    counts = Counter(xs)
    first = {x: list(xs).index(x) for x in counts}
    order = sorted(counts, key=lambda x: (-counts[x], first[x]))
    return [*order, *([BOS] * (len(xs) - len(order)))]


_COUNTING = {
    "hist": hist_targets,
    "double_hist": double_hist_targets,
    "most_freq": most_freq_targets,
}


def _counting(name: str, vocab_size: int, max_len: int) -> Task:
    symbols = _symbols(vocab_size - 2)
    targets_of = _COUNTING[name]

    def generate(rng: np.random.Generator) -> Example:
        length = _length(rng, 1, max_len - 1)
        xs = [symbols[i] for i in rng.integers(0, len(symbols), length)]
        return [BOS, *xs], [None, *targets_of(xs)]

    outputs = (
        tuple([*symbols, BOS]) if name == "most_freq" else tuple(str(c) for c in range(1, max_len))
    )
    settings = {"vocab_size": vocab_size, "max_len": max_len}
    return Task(name, generate, (PAD, BOS, *symbols), outputs, max_len, False, settings)


def dyck_labels(tokens: Sequence[str], pairs: dict[str, str]) -> list[str]:
    """Per-prefix label: ``T`` balanced, ``P`` valid unbalanced prefix, ``F`` invalid."""
    stack: list[str] = []
    failed = False
    labels = []
    for token in tokens:
        if not failed:
            if token in pairs:
                stack.append(token)
            elif stack and pairs[stack[-1]] == token:
                stack.pop()
            else:
                failed = True
        labels.append("F" if failed else ("T" if not stack else "P"))
    return labels


def dyck_task(n_pairs: int, max_len: int = 16, generator: str = "walk") -> Task:
    """Dyck-n over the first ``n_pairs`` of ``() {} [] <>``: per-prefix labels T / P / F.

    Half of the examples start with a balanced string, the rest of each is uniform tokens.
    ``generator="walk"`` (dyck1, dyck2): a balanced string of random even length drawn as a
    random walk. ``generator="authors"`` (dyck2_authors): the authors' code's distribution,
    ``ceil(body / 2)`` steps that each append a random pair or wrap the string in one, cut to
    the body, so every prefix of that half is valid (for one pair this yields at most 256
    distinct strings, too few for unique splits, so only dyck2_authors is a built-in task).
    """
    pairs = dict(list({"(": ")", "{": "}", "[": "]", "<": ">"}.items())[:n_pairs])
    if not 1 <= n_pairs <= len(pairs) or len(pairs) != n_pairs:
        raise ValueError(f"dyck supports 1 to 4 bracket pairs, got {n_pairs}")
    if generator not in ("walk", "authors"):
        raise ValueError(f"dyck generator must be 'walk' or 'authors', got {generator!r}")
    if max_len < 2:
        raise ValueError(f"max_len must be at least 2 (BOS and one bracket), got {max_len}")
    opens, closes = list(pairs), list(pairs.values())
    alphabet = opens + closes
    body = max_len - 1

    def walk(rng: np.random.Generator) -> list[str]:
        """A balanced string of random even length (a random walk), then random tokens."""
        tokens: list[str] = []
        size = 2 * _length(rng, 1, body // 2)
        stack: list[str] = []
        for i in range(size):
            remaining = size - i
            if stack and (remaining == len(stack) or rng.random() < 0.5):
                tokens.append(pairs[stack.pop()])
            else:
                stack.append(opens[int(rng.integers(len(opens)))])
                tokens.append(stack[-1])
        return tokens

    def append_or_wrap(rng: np.random.Generator) -> list[str]:
        """The authors' balanced half: pairs appended to or wrapped around the string, cut."""
        tokens: list[str] = []
        for _ in range((body + 1) // 2):
            bracket = opens[int(rng.integers(len(opens)))]
            if rng.random() < 0.5:
                tokens = [*tokens, bracket, pairs[bracket]]
            else:
                tokens = [bracket, *tokens, pairs[bracket]]
        return tokens[:body]

    balanced = append_or_wrap if generator == "authors" else walk

    def generate(rng: np.random.Generator) -> Example:
        tokens = balanced(rng) if rng.random() < 0.5 else []
        tokens += [alphabet[i] for i in rng.integers(0, len(alphabet), body - len(tokens))]
        return [BOS, *tokens], [None, *dyck_labels(tokens, pairs)]

    name = f"dyck{n_pairs}" + ("_authors" if generator == "authors" else "")
    symbols = [s for pair in pairs.items() for s in pair]
    return Task(
        name, generate, (PAD, BOS, *symbols), ("T", "P", "F"), max_len, True, {"max_len": max_len}
    )


def icl_targets(xs: Sequence[str]) -> list[str | None]:
    """Letters at even offsets (after BOS): the number that followed the letter's previous
    occurrence, else UNK; numbers (odd offsets) are not scored."""
    targets: list[str | None] = []
    last: dict[str, str] = {}
    for i, token in enumerate(xs):
        if i % 2:
            targets.append(None)
            last[xs[i - 1]] = token
        else:
            targets.append(last.get(token, UNK))
    return targets


def _icl(vocab_size: int, max_len: int) -> Task:
    n = (vocab_size - 2) // 2
    if n < 1:
        raise ValueError(
            f"icl needs vocab_size >= 4 (2 specials, letters, numbers), got {vocab_size}"
        )
    if max_len < 4 or max_len % 2:
        raise ValueError(f"icl needs an even max_len >= 4 (BOS, pairs, query), got {max_len}")
    letters = [chr(ord("a") + i) for i in range(n)]
    numbers = [str(i) for i in range(n)]
    n_pairs = (max_len - 2) // 2

    def generate(rng: np.random.Generator) -> Example:
        mapping = rng.integers(0, n, n)
        xs: list[str] = []
        for i in range(n_pairs + 1):
            letter = int(rng.integers(n))
            xs.append(letters[letter])
            if i < n_pairs:
                xs.append(numbers[mapping[letter]])
        return [BOS, *xs], [None, *icl_targets(xs)]

    settings = {"vocab_size": vocab_size, "max_len": max_len}
    return Task(
        "icl", generate, (PAD, BOS, *letters, *numbers), (*numbers, UNK), max_len, True, settings
    )


TASKS: dict[str, Callable[..., Task]] = {
    "reverse": lambda vocab_size=8, max_len=8: _reverse(vocab_size, max_len, sort=False),
    "hist": lambda vocab_size=8, max_len=8: _counting("hist", vocab_size, max_len),
    "double_hist": lambda vocab_size=8, max_len=8: _counting("double_hist", vocab_size, max_len),
    "sort": lambda vocab_size=8, max_len=8: _reverse(vocab_size, max_len, sort=True),
    "most_freq": lambda vocab_size=8, max_len=8: _counting("most_freq", vocab_size, max_len),
    "dyck1": lambda vocab_size=None, max_len=16: dyck_task(1, max_len),
    "dyck2": lambda vocab_size=None, max_len=16: dyck_task(2, max_len),
    # dyck2 on the data distribution of the authors' code (see docs/programs.md)
    "dyck2_authors": lambda vocab_size=None, max_len=16: dyck_task(2, max_len, "authors"),
    "icl": lambda vocab_size=10, max_len=10: _icl(vocab_size, max_len),
}


def make_task(name: str, vocab_size: int | None = None, max_len: int | None = None) -> Task:
    """A built-in task; ``vocab_size`` (specials included) and ``max_len`` default to the paper's."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    kwargs = {
        key: value
        for key, value in (("vocab_size", vocab_size), ("max_len", max_len))
        if value is not None
    }
    return TASKS[name](**kwargs)


@dataclass(frozen=True)
class PublishedConfig:
    """The paper's configuration of a task and the accuracies it reported (percent)."""

    d_var: int
    n_layers: int
    n_heads: int  # split evenly categorical / numerical
    n_mlps: int  # split evenly categorical / numerical
    epochs: int
    paper: float | None
    reproduction: float | None
    cat_heads_only: bool = False


PUBLISHED: dict[str, PublishedConfig] = {
    "reverse": PublishedConfig(8, 3, 8, 2, 250, 99.79, 99.89),
    "hist": PublishedConfig(8, 1, 4, 2, 250, 100.0, 99.99),
    "double_hist": PublishedConfig(8, 3, 4, 2, 250, 98.40, 99.67),
    "sort": PublishedConfig(8, 3, 8, 4, 250, 99.83, 100.00),
    "most_freq": PublishedConfig(8, 3, 8, 4, 250, 75.69, 82.39),
    "dyck1": PublishedConfig(16, 3, 8, 2, 250, 99.30, 99.65),
    "dyck2": PublishedConfig(16, 3, 4, 4, 250, 99.09, 99.22),
    "dyck2_authors": PublishedConfig(16, 3, 4, 4, 250, 99.09, 99.22),
    "icl": PublishedConfig(10, 2, 1, 0, 500, 100.0, None, cat_heads_only=True),
}
