"""Dependency graph, traces, sizes; the CLI on a real (tiny) checkpoint; a short training run."""

from __future__ import annotations

import pytest
import torch

from crystalbox.cli.main import main
from crystalbox.programs import TrainConfig, default_program_config, make_task, train_program
from crystalbox.programs.checkpoint import save_program
from crystalbox.programs.decompile import decompile, dependency_graph, draw_graph, trace_table

from .handbuilt import OUTPUTS, VOCAB, all_inputs, hand_model


def _result(name: str):
    return decompile(
        hand_model(name),
        input_vocab=VOCAB,
        output_vocab=OUTPUTS[name],
        inputs={"all": all_inputs()},
    )


def test_dependency_graph_names_the_modules_behind_the_output(tmp_path):
    graph = dependency_graph(_result("same_as_prev").program)
    assert graph.modules_behind_output() == ("attn_0_0_prev_token", "mlp_0_0_out")
    assert ("attn_0_0_prev_token", "mlp_0_0_out") in graph.edges
    assert graph.upstream("mlp_0_0_out") == {"tokens", "positions", "attn_0_0_prev_token"}
    path = draw_graph(graph, tmp_path / "graph.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trace_shows_every_variable_at_every_position():
    table = trace_table(_result("same_as_prev").program, ["<s>", "a", "a", "b"])
    lines = table.splitlines()
    assert lines[0].split() == ["position", "0", "1", "2", "3"]
    rows = {line.split()[0]: line.split()[1:] for line in lines}
    assert rows["attn_0_0_prev_token"] == ["<s>", "<s>", "a", "a"]
    assert rows["output"] == ["same", "diff", "same", "diff"]
    with pytest.raises(ValueError, match="not in the input vocabulary"):
        trace_table(_result("count").program, ["<s>", "z"])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A short real run: hist (length 6), one layer, a few epochs."""
    torch.set_num_threads(1)
    task = make_task("hist", max_len=6)
    config = default_program_config(task, n_layers=1)
    train = TrainConfig(
        epochs=4, n_train=2000, n_val=500, n_test=500, threads=1, compile=False, progress=False
    )
    folder = tmp_path_factory.mktemp("ckpt") / "hist"
    save_program(train_program(task, config, train), folder)
    return folder


def test_trained_checkpoint_decompiles_and_verifies_exactly(checkpoint):
    result = decompile(checkpoint)
    report = result.report
    assert report is not None and report.ok and report.exhaustive
    names = {c.inputs for c in report.checks}
    assert names == {"train", "val", "test", "all"}
    assert all(c.n_agree == c.n_positions for c in report.checks)
    assert result.lines_after <= result.lines_before


def test_cli_commands(checkpoint, tmp_path, capsys):
    out = tmp_path / "new folder" / "hist.py"  # missing folders are made
    assert main(["programs", "decompile", str(checkpoint), "-o", str(out)]) == 0
    assert "def run(tokens):" in out.read_text()
    assert main(["programs", "verify", str(checkpoint)]) == 0
    assert "100.000%" in capsys.readouterr().out
    assert main(["programs", "explain", str(checkpoint), "3 1 2 2"]) == 0
    trace = capsys.readouterr().out
    assert trace.splitlines()[0].split() == ["position", "0", "1", "2", "3", "4"]
    graph = tmp_path / "graphs" / "g.png"
    assert main(["programs", "graph", str(checkpoint), "-o", str(graph)]) == 0
    assert graph.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in graph.parent.iterdir()) == ["g.png"]  # no temporary left


@pytest.mark.parametrize(
    "argv, message",
    [
        (["explain", "{missing}", "1 2"], "does not exist"),
        (["explain", "{ckpt}", "1 9"], "not in the input vocabulary"),
        (["explain", "{ckpt}", "1 2 3 4 5 1 2"], "exceed"),
        (["verify", "{missing}"], "does not exist"),
    ],
)
def test_cli_reports_bad_input(checkpoint, tmp_path, capsys, argv, message):
    argv = [a.format(missing=tmp_path / "nope", ckpt=checkpoint) for a in argv]
    assert main(["programs", *argv]) == 2
    assert message in capsys.readouterr().err
