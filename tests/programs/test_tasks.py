"""Task targets on hand-checked examples, deterministic disjoint splits, clear input errors."""

from __future__ import annotations

import numpy as np
import pytest

from crystalbox.programs.data import IGNORE, encode_inputs, make_data
from crystalbox.programs.tasks import (
    BOS,
    EOS,
    TASKS,
    UNK,
    custom_task,
    double_hist_targets,
    dyck_labels,
    dyck_task,
    hist_targets,
    icl_targets,
    make_task,
    most_freq_targets,
)

HAND_CHECKED = [
    ("hist", hist_targets, "3 1 3 3 0", "3 1 3 3 1"),
    ("double_hist", double_hist_targets, "3 1 3 0 1", "2 2 2 1 2"),
    ("double_hist all distinct", double_hist_targets, "0 1 2", "3 3 3"),
    ("most_freq", most_freq_targets, "2 5 5 2 0", f"2 5 0 {BOS} {BOS}"),
    (
        "most_freq ties by first",
        most_freq_targets,
        "4 1 1 4 3 3 3",
        f"3 4 1 {BOS} {BOS} {BOS} {BOS}",
    ),
]


@pytest.mark.parametrize(
    ("fn", "inputs", "expected"), [c[1:] for c in HAND_CHECKED], ids=[c[0] for c in HAND_CHECKED]
)
def test_counting_targets(fn, inputs, expected):
    assert fn(inputs.split()) == expected.split()


@pytest.mark.parametrize(
    ("tokens", "pairs", "expected"),
    [
        ("( ) ( ( )", {"(": ")"}, "P T P P P"),
        ("( ) ) ( )", {"(": ")"}, "P T F F F"),
        ("( { } ) {", {"(": ")", "{": "}"}, "P P P T P"),
        ("( { ) }", {"(": ")", "{": "}"}, "P P F F"),
    ],
    ids=["dyck1-valid", "dyck1-error-sticks", "dyck2-nested", "dyck2-crossed"],
)
def test_dyck_labels(tokens, pairs, expected):
    assert dyck_labels(tokens.split(), pairs) == expected.split()


def test_icl_targets():
    xs = ["a", "1", "b", "2", "a", "1", "c", "3", "b"]
    assert icl_targets(xs) == [UNK, None, UNK, None, "1", None, UNK, None, "2"]


@pytest.mark.parametrize("name", list(TASKS))
def test_generators_are_consistent_and_fit_the_vocabulary(name):
    task = make_task(name)
    rng = np.random.default_rng(0)
    for _ in range(50):
        inputs, targets = task.generate(rng)
        assert inputs[0] == BOS and len(inputs) == len(targets) <= task.max_len
        assert set(inputs) <= set(task.input_vocab)
        assert {t for t in targets if t is not None} <= set(task.output_vocab)
        body = inputs[1:]
        if name == "reverse":
            assert targets[1:-1] == body[:-1][::-1] and body[-1] == EOS
        elif name == "sort":
            assert targets[1:-1] == sorted(body[:-1], key=int)
        elif name in ("hist", "double_hist", "most_freq"):
            fn = {
                "hist": hist_targets,
                "double_hist": double_hist_targets,
                "most_freq": most_freq_targets,
            }
            assert targets[1:] == fn[name](body)
        elif name == "icl":
            assert targets[1:] == icl_targets(body)
        else:
            pairs = {"(": ")"} if name == "dyck1" else {"(": ")", "{": "}"}
            assert len(inputs) == task.max_len
            assert targets[1:] == dyck_labels(body, pairs)


def test_authors_dyck_balanced_half_is_valid_throughout():
    """The authors' generator: half of the strings are prefixes of one balanced string built by
    appending or wrapping pairs (every label T or P); the rest are uniform tokens."""
    task = dyck_task(2, generator="authors")
    assert task.name == "dyck2_authors" and task.input_vocab == make_task("dyck2").input_vocab
    rng = np.random.default_rng(0)
    draws = [task.generate(rng) for _ in range(400)]
    valid = [x for x, y in draws if "F" not in y]
    assert 150 < len(valid) < 300  # the balanced half, plus the rare valid random string
    for inputs, targets in draws:
        assert targets[1:] == dyck_labels(inputs[1:], {"(": ")", "{": "}"})
    # a nested and an appended pair both occur in the balanced half
    joined = [" ".join(x[1:]) for x in valid]
    assert any(s.startswith("( (") or s.startswith("{ {") or s.startswith("( {") for s in joined)
    assert any(" ) (" in s or " } {" in s or " ) {" in s or " } (" in s for s in joined)


def test_dyck_task_rejects_bad_settings():
    with pytest.raises(ValueError, match="generator must be 'walk' or 'authors'"):
        dyck_task(2, generator="paper")
    with pytest.raises(ValueError, match="1 to 4 bracket pairs"):
        dyck_task(5)


@pytest.mark.parametrize("name", ["hist", "dyck2", "dyck2_authors", "icl"])
def test_splits_are_deterministic_and_disjoint(name):
    task = make_task(name)
    first = make_data(task, seed=3, n_train=600, n_val=100, n_test=100)
    again = make_data(task, seed=3, n_train=600, n_val=100, n_test=100)
    other = make_data(task, seed=4, n_train=600, n_val=100, n_test=100)
    assert np.array_equal(first.train.inputs, again.train.inputs)
    assert np.array_equal(first.test.targets, again.test.targets)
    assert not np.array_equal(first.train.inputs, other.train.inputs)
    rows = [{tuple(r) for r in s.inputs} for s in (first.train, first.val, first.test)]
    assert [len(r) for r in rows] == [600, 100, 100]  # unique within splits
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])
    assert np.all(first.train.targets[:, 0] == IGNORE)


def test_small_spaces_fill_validation_and_test_first():
    task = make_task("reverse", vocab_size=5, max_len=4)  # 2 symbols, length <= 2: 6 inputs
    data = make_data(task, seed=0, n_train=10, n_val=2, n_test=2)
    assert (len(data.train), len(data.val), len(data.test)) == (2, 2, 2)
    with pytest.raises(ValueError, match="distinct examples"):
        make_data(task, seed=0, n_train=10, n_val=4, n_test=4)
    with pytest.raises(ValueError, match="data seed must be a non-negative integer, got -1"):
        make_data(task, seed=-1, n_train=10, n_val=2, n_test=2)


def test_vocabulary_and_length_are_configurable():
    task = make_task("sort", vocab_size=16, max_len=16)
    assert len(task.input_vocab) == 16 and task.max_len == 16
    inputs, _ = task.generate(np.random.default_rng(0))
    assert len(inputs) <= 16


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown task 'reverso'.*reverse, hist"):
        make_task("reverso")


def test_encoding_rejects_unknown_tokens_and_long_sequences():
    task = make_task("hist")
    with pytest.raises(ValueError, match=r"token 'x'.*not in the vocabulary"):
        encode_inputs(task, [[BOS, "x"]])
    with pytest.raises(ValueError, match="more than the task's max_len=8"):
        encode_inputs(task, [[BOS] + ["1"] * 8])


def test_custom_task():
    def generate(rng: np.random.Generator):
        xs = [str(int(v)) for v in rng.integers(0, 3, 4)]
        return [BOS, *xs], [None, *[str(int(x) % 2) for x in xs]]

    task = custom_task(
        "parity", generate, symbols=["0", "1", "2"], output_vocab=["0", "1"], max_len=5
    )
    data = make_data(task, seed=0, n_train=40, n_val=10, n_test=10)
    assert data.train.inputs.shape == (40, 5)
    with pytest.raises(ValueError, match="collide with the special tokens"):
        custom_task("bad", generate, symbols=[BOS], output_vocab=["0"], max_len=5)
