"""Round trips on hand-built models whose programs are known, and on random models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crystalbox.programs.decompile import (
    build_program,
    decompile,
    execute,
    load_source,
    simplify,
)
from crystalbox.programs.decompile.ir import Constant, Lookup, Select, SelectSum
from crystalbox.programs.discrete import read_discrete

from ..conftest import CLASSES, MASKS, random_model, random_tokens
from ..conftest import VOCAB as RANDOM_VOCAB
from .handbuilt import OUTPUTS, VOCAB, all_inputs, hand_model

EXAMPLE = ["<s>", "a", "a", "b", "a"]

# (model, expected run(EXAMPLE), expected step kinds of the simplified, pruned program)
CASES = {
    "prev_token": (["<s>", "<s>", "a", "a", "b"], [Select]),
    "last_same": (["0", "2", "1", "3", "2"], [Select]),
    "count": (["1", "3", "3", "1", "3"], [SelectSum]),
    "same_as_prev": (["same", "diff", "same", "diff", "diff"], [Select, Lookup]),
    "count_mlp": (["1", "3", "3", "1", "3"], [SelectSum, Lookup]),
}


def _decompile(name: str):
    return decompile(
        hand_model(name),
        input_vocab=VOCAB,
        output_vocab=OUTPUTS[name],
        inputs={"all": all_inputs()},
    )


@pytest.mark.parametrize("name", list(CASES))
def test_hand_built_program_round_trips(name):
    expected, kinds = CASES[name]
    result = _decompile(name)
    assert result.report is not None and result.report.ok and result.report.exhaustive
    assert [type(s) for s in result.program.steps] == kinds
    assert load_source(result.source).run(EXAMPLE) == expected
    assert result.lines_after < result.lines_before


def test_previous_token_head_reads_as_an_offset():
    step = _decompile("prev_token").program.steps[0]
    assert isinstance(step, Select)
    assert (step.keys, step.queries, step.values) == ("positions", "positions", "tokens")
    assert step.predicate.form == "offset" and step.predicate.offset == -1
    assert step.output == "attn_0_0_prev_token"


def test_counting_head_has_its_true_range_and_folds_constant_rows_into_the_bias():
    result = _decompile("count")
    step = result.program.steps[0]
    assert isinstance(step, SelectSum) and step.predicate.form == "equal"
    domain = result.program.variable(step.output).domain
    assert (domain.lo, domain.hi) == (0, 5)  # five equal symbols after BOS
    assert [f.variable for f in result.program.classifier.features] == [step.output]
    assert result.program.classifier.bias[2] == pytest.approx(-2.0)  # the tokens rows: -c^2/2


def test_numerical_mlp_table_covers_the_largest_reachable_count():
    lookup = _decompile("count_mlp").program.steps[1]
    assert isinstance(lookup, Lookup) and lookup.inputs == ("num_attn_0_0_count_same_token",)
    table = dict(lookup.table)
    assert all(table.get((c,), lookup.default) == c for c in range(6))


def test_mlp_table_is_the_equality_it_was_built_as():
    lookup = _decompile("same_as_prev").program.steps[1]
    assert isinstance(lookup, Lookup) and lookup.default == 0
    assert all(a == b for (a, b), out in lookup.table if out == 1)


def test_unused_modules_are_eliminated_and_constants_folded():
    full = build_program(read_discrete(hand_model("count"), VOCAB, OUTPUTS["count"]), "count")
    simple = simplify(full)
    assert len(full.steps) == 4 and len(simple.steps) == 1
    assert not any(isinstance(s, Constant) for s in simple.steps)


@MASKS
@pytest.mark.parametrize("seed", [0, 1])
def test_random_models_of_every_module_kind_decompile_exactly(causal, seed):
    _decompiles_exactly(random_model(causal, seed), seed)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_models_with_table_mlps_decompile_exactly(seed):
    _decompiles_exactly(random_model("mixed", seed, tables=True), seed)


def _decompiles_exactly(model, seed):
    torch.set_num_threads(1)
    tokens = random_tokens(300, seed).numpy()
    result = decompile(
        model, input_vocab=RANDOM_VOCAB, output_vocab=CLASSES, inputs={"random": tokens}
    )
    assert result.report is not None and result.report.ok
    scored = tokens != 0
    reference = model.predict(torch.as_tensor(tokens)).numpy()
    unsimplified = execute(result.full, tokens)
    assert np.array_equal(unsimplified[scored], reference[scored])


def test_bare_model_needs_vocabularies():
    with pytest.raises(ValueError, match="input_vocab"):
        decompile(hand_model("count"))
    with pytest.raises(TypeError, match="checkpoint folder"):
        decompile(42)  # type: ignore[arg-type]
