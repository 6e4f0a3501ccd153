"""The hand-written most_freq rank program: a model with causal heads that is exact almost
everywhere, and decompiles into a verified program."""

from __future__ import annotations

import pytest
import torch

from crystalbox.programs.data import make_data
from crystalbox.programs.decompile import decompile
from crystalbox.programs.decompile.ir import Select, SelectSum
from crystalbox.programs.handwritten import most_freq_rank_model
from crystalbox.programs.tasks import make_task
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
