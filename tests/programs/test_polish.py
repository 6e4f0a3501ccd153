"""Polishing a program by local search over its predicates and reads."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from crystalbox.cli.main import main
from crystalbox.programs.checkpoint import load_program, save_loaded, save_program
from crystalbox.programs.data import Split, make_data
from crystalbox.programs.decompile import decompile
from crystalbox.programs.fast_predict import cat_mlp_table
from crystalbox.programs.mlp_fit import fit_cat_mlp, fit_num_mlp
from crystalbox.programs.polish import (
    PolishConfig,
    _occurring_count_pairs,
    _Round,
    _Scorer,
    polish_program,
)
from crystalbox.programs.tasks import make_task
from crystalbox.programs.train import TrainedProgram, accuracy

from .conftest import QUICK, random_model, self_labelled

FAST = PolishConfig(rounds=1, search_examples=512, progress=False)


def _data():
    return make_data(make_task("hist"), 0, QUICK.n_train, QUICK.n_val, QUICK.n_test)


def _counting_head(model) -> tuple[int, int]:
    """(head, query value) of the hist model's numerical head row that matters most."""
    layer = model.layers[0]
    data = _data()
    best, where = 101.0, (0, 0)
    for head in range(layer.num_pred.shape[0]):
        for query in range(layer.num_pred.shape[1]):
            row = layer.num_pred.data[head, query].clone()
            choice = (int(row.argmax()) + 1) % row.numel()
            layer.num_pred.data[head, query, choice] = row.max() + 1.0
            acc = accuracy(model, data.val)
            layer.num_pred.data[head, query] = row
            if acc < best:
                best, where = acc, (head, query)
    return where


@pytest.fixture(scope="module")
def damaged_hist(trained_hist: TrainedProgram) -> tuple[TrainedProgram, tuple[int, int, int]]:
    """The short hist run with the predicate row that matters most pointed elsewhere; also
    (head, query value, the original key value)."""
    model = copy.deepcopy(trained_hist.model)
    head, query = _counting_head(model)
    row = model.layers[0].num_pred.data[head, query]
    original = int(row.argmax())
    row[(original + 1) % row.numel()] = row.max() + 1.0
    return dataclasses.replace(trained_hist, model=model), (head, query, original)


def test_polish_repairs_a_damaged_predicate(damaged_hist):
    trained, (head, query, original) = damaged_hist
    model = copy.deepcopy(trained.model)
    data = _data()
    damaged_val = accuracy(model, data.val)
    result = polish_program(model, data.train, data.val, FAST)
    assert result.kept and result.best_round == 1
    assert result.val_before == pytest.approx(damaged_val)
    assert result.val_after > result.val_before + 5
    assert result.train_after > result.train_before
    # the reported figures are the program's own (model.predict)
    assert result.val_after == pytest.approx(accuracy(model, data.val), abs=1e-9)
    assert result.train_after == pytest.approx(accuracy(model, data.train), abs=1e-9)
    # the damaged row is among the edits and the edits are what the model now holds
    assert any(e.param == "num_pred" and e.index == (head, query) for e in result.edits)
    last = {(e.layer, e.param, e.index): e.new for e in result.edits}
    k = model.config.d_var
    for (layer, param, index), new in last.items():
        if param == "mlp_table":  # (MLP, input a, input b)
            held = int(cat_mlp_table(model.layers[layer], index[0])[index[1] * k + index[2]])
        else:
            held = int(getattr(model.layers[layer], param)[index].argmax())
        assert held == new
    assert int(model.layers[0].num_pred[head, query].argmax()) == original
    assert result.evaluations > 0 and result.seconds > 0


def test_polished_program_still_decompiles_and_verifies(damaged_hist):
    trained, _ = damaged_hist
    model = copy.deepcopy(trained.model)
    data = _data()
    polish_program(model, data.train, data.val, FAST)
    task = make_task("hist")
    decompiled = decompile(
        model,
        input_vocab=task.input_vocab,
        output_vocab=task.output_vocab,
        inputs={"test": data.test.inputs},
        prune=False,
    )
    assert decompiled.report is not None and decompiled.report.ok


def test_a_polish_that_does_not_raise_validation_is_undone():
    model = random_model(causal=False)
    split = self_labelled(model)  # the model is exact on its own outputs
    state = copy.deepcopy(model.state_dict())
    result = polish_program(model, split, split, FAST)
    assert not result.kept and result.best_round == 0 and result.edits == ()
    assert result.val_before == result.val_after == 100.0
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[name]), name


def test_polish_rejects_bad_settings():
    with pytest.raises(ValueError, match="rounds must be positive"):
        PolishConfig(rounds=0)
    with pytest.raises(ValueError, match="search_examples"):
        PolishConfig(search_examples=-1)
    model = random_model(causal=False)
    empty = Split(torch.zeros(0, 8, dtype=torch.long).numpy(), torch.zeros(0, 8).long().numpy())
    with pytest.raises(ValueError, match="non-empty"):
        polish_program(model, empty, empty, FAST)
    longer = Split(torch.full((4, 12), 2).numpy(), torch.zeros(4, 12).long().numpy())
    with pytest.raises(ValueError, match="sequence length 12 exceeds the model's context"):
        polish_program(model, longer, longer, FAST)  # was an IndexError deep in the search


def test_cli_polish_writes_a_new_checkpoint(damaged_hist, tmp_path: Path, capsys):
    trained, _ = damaged_hist
    source = save_program(trained, tmp_path / "hist")
    assert main(["programs", "polish", str(source), "-o", str(source)]) == 2
    assert "is the checkpoint itself" in capsys.readouterr().err
    args = ["programs", "polish", str(source), "--rounds", "1", "--search-examples", "512"]
    assert main([*args, "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kept"] and report["out"] == str(tmp_path / "hist-polish")
    polished = load_program(tmp_path / "hist-polish")
    assert polished.result["val_acc"] == pytest.approx(report["val_after"], abs=1e-3)
    edits = polished.result["polish"]["edits"]  # every edit; the printed report counts them
    per_kind = dict(report["edits"])
    assert per_kind.pop("total") == len(edits) == sum(per_kind.values())
    assert accuracy(polished.model, _data().test) == pytest.approx(report["test_after"], abs=1e-3)
    [step] = polished.result["improvements"]  # with the test accuracies the report prints
    tests = {name: step.pop(name) for name in ("test_before", "test_after")}
    assert step == {"step": "polish", **polished.result["polish"]}
    assert tests == {name: pytest.approx(report[name], abs=1e-4) for name in tests}
    # the source checkpoint is untouched
    assert load_program(source).result["val_acc"] == trained.result.val_acc


def test_polishing_again_keeps_the_earlier_polish_on_record(damaged_hist, tmp_path: Path, capsys):
    trained, (head, query, original) = damaged_hist

    def polish(source: Path, out: Path) -> None:
        args = ["--rounds", "1", "--search-examples", "512", "--quiet"]
        assert main(["programs", "polish", str(source), "-o", str(out), *args]) == 0

    first, second = tmp_path / "first", tmp_path / "second"
    polish(save_program(trained, tmp_path / "hist"), first)
    again = load_program(first)
    row = again.model.layers[0].num_pred.data[head, query]  # damage the repaired row again
    row[(original + 1) % row.numel()] = row.max() + 1.0
    polish(save_loaded(again, tmp_path / "damaged"), second)
    capsys.readouterr()
    steps = load_program(second).result["improvements"]
    assert [s["step"] for s in steps] == ["polish", "polish"]
    assert steps[0] == load_program(first).result["improvements"][0]
    latest = {name: value for name, value in steps[1].items() if not name.startswith("test_")}
    assert latest == load_program(second).result["polish"] | {"step": "polish"}
    assert {"test_before", "test_after"} <= steps[1].keys()


def test_improvements_of_a_checkpoint_written_before_the_list_was_kept():
    from crystalbox.cli.programs_improve_commands import _improvements

    legacy = {"val_acc": 90.0, "refit": {"kept": True}, "polish": {"kept": True, "edits": []}}
    assert _improvements(legacy) == [
        {"step": "refit", "kept": True},
        {"step": "polish", "kept": True, "edits": []},
    ]
    assert _improvements({"val_acc": 90.0}) == []


def test_a_fitted_mlp_holds_an_edited_table(trained_hist):
    model = copy.deepcopy(trained_hist.model)
    layer = model.layers[0]
    table = cat_mlp_table(layer, 0).clone()
    k = model.config.d_var
    wanted = table.clone()
    wanted[3 * k + 2] = (int(table[3 * k + 2]) + 1) % k
    wanted[0] = (int(table[0]) + 3) % k
    assert fit_cat_mlp(layer, 0, wanted)
    assert torch.equal(cat_mlp_table(layer, 0), wanted)
    # the model's own argmax MLP agrees (its products run in another order)
    x = torch.zeros(1, k * k, 2 * k)
    x[0, torch.arange(k * k), torch.arange(k * k) // k] = 1.0
    x[0, torch.arange(k * k), k + torch.arange(k * k) % k] = 1.0
    hidden = torch.relu(torch.baddbmm(layer.mlp_b1[:1].unsqueeze(1), x, layer.mlp_w1[:1]))
    logits = torch.baddbmm(layer.mlp_b2[:1].unsqueeze(1), hidden, layer.mlp_w2[:1])
    assert torch.equal(logits[0].argmax(-1), wanted)


def test_an_impossible_fit_leaves_the_mlp_unchanged(trained_hist):
    model = copy.deepcopy(trained_hist.model)
    layer = model.layers[0]
    before = [p.detach().clone() for p in (layer.mlp_w1, layer.mlp_b1, layer.mlp_w2)]
    wanted = (cat_mlp_table(layer, 0) + 1) % model.config.d_var
    assert not fit_cat_mlp(layer, 0, wanted, steps=1)  # one step cannot reach the margin
    for p, b in zip((layer.mlp_w1, layer.mlp_b1, layer.mlp_w2), before, strict=True):
        assert torch.equal(p, b)


def test_a_numerical_mlp_fits_a_table_over_count_pairs_or_stays_unchanged():
    model = random_model(causal=False, seed=4)
    layer = model.layers[1]
    grid = torch.cartesian_prod(torch.arange(9), torch.arange(9))  # every count pair 0..8
    wanted = torch.clamp(grid.sum(-1), max=7)  # a sum table, as the rank program uses
    assert fit_num_mlp(layer, 0, grid, wanted)
    hidden = torch.relu(grid.float() @ layer.num_mlp_w1[0] + layer.num_mlp_b1[0])
    assert torch.equal((hidden @ layer.num_mlp_w2[0] + layer.num_mlp_b2[0]).argmax(-1), wanted)
    before = [p.detach().clone() for p in (layer.num_mlp_w1, layer.num_mlp_b1)]
    twice = torch.cat([grid[:1], grid[:1]])  # one input pair wanted as two outputs
    assert not fit_num_mlp(layer, 0, twice, torch.tensor([0, 1]), steps=200)
    for p, b in zip((layer.num_mlp_w1, layer.num_mlp_b1), before, strict=True):
        assert torch.equal(p, b)


def test_polish_repairs_a_damaged_numerical_table_entry(trained_hist_tables):
    model = copy.deepcopy(trained_hist_tables.model)
    data = _data()
    layer = model.layers[0]
    table = layer.num_mlp_table.data[0]  # [9 * 9 count pairs, k]
    originals = table.argmax(-1)

    def damaged(pair: int) -> float:  # validation with this entry pointed elsewhere
        saved = table[pair].clone()
        table[pair, (int(originals[pair]) + 1) % table.shape[1]] = table[pair].max() + 1.0
        score = accuracy(model, data.val)
        table[pair] = saved
        return score

    pair = min(range(table.shape[0]), key=damaged)  # the entry that matters most
    original = int(originals[pair])
    table[pair, (original + 1) % table.shape[1]] = table[pair].max() + 1.0
    damaged_val = accuracy(model, data.val)
    # the whole polish repairs it (here it may also route around the entry) ...
    polished = copy.deepcopy(model)
    result = polish_program(polished, data.train, data.val, FAST)
    assert result.kept and result.val_before == pytest.approx(damaged_val)
    assert result.val_after > damaged_val + 5
    assert result.val_after == pytest.approx(accuracy(polished, data.val), abs=1e-9)
    # ... and the entry's own search puts the entry back
    search, full = (_Scorer.of(model, data.train, rows) for rows in (np.arange(512), None))
    assert pair in _occurring_count_pairs(search, 0)
    state = _Round(model, search, full, 1)
    state.row(0, "num_mlp_table", pair)
    assert int(layer.num_mlp_table[0, pair].argmax()) == original
    assert [(e.param, e.index, e.new) for e in state.edits] == [
        ("num_mlp_table", (0, *divmod(pair, 9)), original)
    ]
    assert accuracy(model, data.val) > damaged_val + 5


def test_a_table_mlp_is_written_directly_or_stays_unchanged():
    layer = random_model("mixed", seed=4, tables=True).layers[1]
    grid = torch.cartesian_prod(torch.arange(9), torch.arange(9))  # every count pair 0..8
    wanted = torch.clamp(grid.sum(-1), max=7)
    assert fit_num_mlp(layer, 0, grid, wanted, margin=0.5)
    logits = layer.num_mlp_table[0, grid[:, 0] * 9 + grid[:, 1]]
    assert torch.equal(logits.argmax(-1), wanted)
    assert bool((logits.gather(1, wanted[:, None]) >= logits.topk(2).values[:, 1:] + 0.5).all())
    before = layer.num_mlp_table.detach().clone()
    twice = torch.cat([grid[:1], grid[:1]])  # one input pair wanted as two outputs
    assert not fit_num_mlp(layer, 0, twice, torch.tensor([0, 1]))
    assert not fit_num_mlp(layer, 0, torch.tensor([[9, 0]]), torch.tensor([1]))  # not a count
    assert torch.equal(layer.num_mlp_table, before)


def test_scoring_one_edited_head_equals_rescoring_its_layer():
    from crystalbox.programs.polish import _Scorer

    model = random_model(causal=True, seed=2)
    split = self_labelled(model, n=96)
    with torch.no_grad():  # damage, so that scores move
        model.layers[1].cat_pred[0, 3] = torch.randn(8)
        model.layers[1].num_query[1] = torch.randn(model.layers[1].num_query.shape[-1])
    scorer = _Scorer.of(model, split, None)
    layer = model.layers[1]
    for kind, param in (("cat", layer.cat_pred), ("num", layer.num_query)):
        for choice in range(param.shape[-1]):
            with torch.no_grad():
                param[1].view(-1, param.shape[-1])[0, choice] += 100.0
            assert scorer.correct(1, (kind, 1)) == scorer.correct(1) == scorer.correct(0)
            with torch.no_grad():
                param[1].view(-1, param.shape[-1])[0, choice] -= 100.0
