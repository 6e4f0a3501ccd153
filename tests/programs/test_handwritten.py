"""Hand-written programs: the most_freq rank program (causal heads, exact almost everywhere)
and the Dyck depth program (exact), each a model that decompiles into a verified program."""

from __future__ import annotations

import pytest
import torch

from crystalbox.programs.data import IGNORE, make_data
from crystalbox.programs.decompile import decompile
from crystalbox.programs.decompile.ir import Select, SelectSum
from crystalbox.programs.handwritten import dyck_depth_model, most_freq_rank_model, sharpened
from crystalbox.programs.tasks import dyck_labels, dyck_task, make_task
from crystalbox.programs.train import accuracy


def test_the_rank_program_computes_most_freq_and_decompiles_exactly():
    task = make_task("most_freq")
    rng = torch.get_rng_state()
    model = most_freq_rank_model(task)
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's random state is untouched
    data = make_data(task, 3, n_train=500, n_val=500, n_test=500)
    # misses only where a token's count exceeds another's by 4 or more (rare at length 7)
    assert accuracy(model, data.test) > 99.0 and accuracy(model, data.val) > 99.0
    result = decompile(
        model,
        input_vocab=task.input_vocab,
        output_vocab=task.output_vocab,
        inputs={"test": data.test.inputs},
    )
    assert result.report is not None and result.report.ok
    masks = [step.causal for step in result.program.steps if isinstance(step, Select | SelectSum)]
    assert any(masks) and not all(masks)  # causal heads beside non-causal ones
    assert ", causal=True)" in result.source
    # its numerical heads carry all-zero classifier weights, so only the output head is a feature
    assert [f.variable for f in result.program.classifier.features] == ["attn_3_0_token"]


def test_the_rank_program_refuses_other_tasks():
    with pytest.raises(ValueError, match="written for most_freq"):
        most_freq_rank_model(make_task("hist"))
    with pytest.raises(ValueError, match="written for most_freq"):
        most_freq_rank_model(make_task("most_freq", vocab_size=12, max_len=12))


def test_the_rank_program_with_tables_is_the_same_program():
    task = make_task("most_freq")
    relu, tables = most_freq_rank_model(task), most_freq_rank_model(task, tables=True)
    assert tables.config.num_mlp_tables and not relu.config.num_mlp_tables
    inputs = torch.as_tensor(make_data(task, 3, n_train=500, n_val=50, n_test=50).train.inputs)
    assert torch.equal(tables.predict(inputs), relu.predict(inputs))


def test_the_example_parity_task_has_an_exact_one_layer_program():
    # examples/user_tasks.py's parity does not train (about 58-60%), but the model class holds
    # it: one causal head counting the 1s at or before each position, and a table count -> parity
    from pathlib import Path

    from crystalbox.programs.config import ProgramConfig, variable_layout
    from crystalbox.programs.handwritten import _choose, _predicate
    from crystalbox.programs.mlp_fit import fit_num_mlp
    from crystalbox.programs.model import ProgramTransformer
    from crystalbox.programs.task_source import load_task

    task = load_task(str(Path(__file__).parents[2] / "examples" / "user_tasks.py:make_parity"))
    config = ProgramConfig(
        vocab_size=len(task.input_vocab), n_classes=2, n_ctx=task.max_len, d_var=16,
        n_layers=1, n_cat_heads=0, n_num_heads=1, n_cat_mlps=0, n_num_mlps=1, causal=True,
        pad_id=0, count_only=True, num_mlp_tables=True,
    )  # fmt: skip
    model = ProgramTransformer(config).requires_grad_(False)
    cat, num = ([v.name for v in kind] for kind in variable_layout(config))
    layer = model.layers[0]
    _choose(layer.num_key, [cat.index("tokens")])
    _choose(layer.num_query, [cat.index("tokens")])
    _predicate(layer.num_pred[0], [task.input_vocab.index("1")] * 16)  # every query: key "1"
    _choose(layer.num_mlp_read[0], [num.index("num_attn_0_0"), num.index("ones")])
    counts = torch.cartesian_prod(torch.arange(17), torch.arange(17))
    assert fit_num_mlp(layer, 0, counts, counts[:, 0] % 2)
    model.classifier_cat.zero_()
    model.classifier_num.zero_()
    for c in (0, 1):  # output vocabulary ("0", "1"): the table's value is the class
        model.classifier_cat[cat.index("num_mlp_0_0"), c, c] = 1.0
    assert accuracy(model, make_data(task, 0, n_train=50, n_val=50, n_test=500).test) == 100.0


@pytest.fixture(scope="module")
def dyck2_data():
    return make_data(make_task("dyck2"), 5, n_train=500, n_val=500, n_test=1000)


def test_the_depth_program_is_exact_on_every_dyck1_input():
    task = make_task("dyck1")
    model = dyck_depth_model(task, tables=True)
    vocab, outputs = task.input_vocab, task.output_vocab
    bits = torch.cartesian_prod(*[torch.tensor([0, 1])] * 15)  # [32768, 15]: every input
    brackets = torch.tensor([vocab.index("("), vocab.index(")")])
    tokens = torch.cat([torch.full((len(bits), 1), vocab.index("<s>")), brackets[bits]], dim=1)
    predicted = model.predict(tokens)[:, 1:]
    expected = torch.tensor(
        [
            [outputs.index(c) for c in dyck_labels(["()"[b] for b in row], {"(": ")"})]
            for row in bits.tolist()
        ]
    )
    assert torch.equal(predicted, expected)


@pytest.mark.parametrize("tables", [False, True], ids=["relu", "tables"])
def test_the_depth_program_is_exact_on_dyck2(tables, dyck2_data):
    model = dyck_depth_model(make_task("dyck2"), tables=tables)
    assert model.config.n_layers == 4 and model.config.causal
    for split in (dyck2_data.train, dyck2_data.val, dyck2_data.test):
        assert accuracy(model, split) == 100.0
    # the authors' distribution too (every prefix of half the examples is valid)
    authors = make_data(make_task("dyck2_authors"), 5, n_train=500, n_val=50, n_test=50)
    assert accuracy(model, authors.train) == 100.0


def test_the_depth_program_decompiles_and_verifies(dyck2_data):
    task = make_task("dyck2")
    result = decompile(
        dyck_depth_model(task),
        input_vocab=task.input_vocab,
        output_vocab=task.output_vocab,
        inputs={"test": dyck2_data.test.inputs},
    )
    assert result.report is not None and result.report.ok
    assert "select_closest(mlp_1_1_out, mlp_1_0_out" in result.source  # the matching head


def test_the_depth_program_refuses_other_tasks():
    with pytest.raises(ValueError, match="written for dyck1 and dyck2"):
        dyck_depth_model(make_task("sort"))
    with pytest.raises(ValueError, match="written for dyck1 and dyck2"):
        dyck_depth_model(dyck_task(3))  # a third bracket pair
    with pytest.raises(ValueError, match="written for length 16"):
        dyck_depth_model(make_task("dyck2", max_len=12))


def test_a_sharpened_model_is_the_same_program_with_larger_logits(dyck2_data):
    model = dyck_depth_model(make_task("dyck2"), tables=True)
    sharp = sharpened(model, logits=100.0, classifier=20.0)
    inputs = torch.as_tensor(dyck2_data.val.inputs)
    assert torch.equal(sharp.predict(inputs), model.predict(inputs))
    assert torch.equal(sharp.layers[2].cat_pred, 100.0 * model.layers[2].cat_pred)
    assert torch.equal(sharp.classifier_num, 20.0 * model.classifier_num)
    assert sharp is not model and torch.equal(
        model.layers[2].cat_pred.abs().max(), torch.tensor(10.0)
    )


def test_ordered_matching_relaxes_the_depth_program_into_itself(dyck2_data):
    """The matching head needs the closest match to win; relaxed with the position bias it
    mixes matches, relaxed as ordered matching (``set_ordered_below``) it is the program."""
    model = sharpened(dyck_depth_model(make_task("dyck2")))
    inputs = torch.as_tensor(dyck2_data.test.inputs)
    scored = torch.as_tensor(dyck2_data.test.targets) != IGNORE
    program = model.predict(inputs)[scored]
    relaxed = {}
    for below in (0.0, 1.0):
        model.set_ordered_below(below)
        with torch.no_grad():  # plain softmax: no noise, so the comparison is deterministic
            relaxed[below] = model(inputs, "softmax", 0.1).argmax(-1)[scored]
    assert torch.equal(relaxed[1.0], program)
    assert not torch.equal(relaxed[0.0], program)
    model.set_ordered_below(0.0)
    with pytest.raises(ValueError, match="ordered_below must be non-negative"):
        model.set_ordered_below(-1.0)
