"""Verification catches wrong programs and lists the offending inputs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from crystalbox.programs.decompile import ProgramMismatchError, decompile, verify
from crystalbox.programs.decompile import pipeline as pipeline_module
from crystalbox.programs.decompile.ir import Lookup
from crystalbox.programs.decompile.render import render

from .handbuilt import OUTPUTS, VOCAB, all_inputs, hand_model

ORIGINAL_TIE_BREAK = "rank = (abs(q - j), j)"  # self not last: the original's select_closest


def _self_first(program) -> str:
    source = render(program)
    assert "rank = (j == q, abs(q - j), j)" in source
    return source.replace("rank = (j == q, abs(q - j), j)", ORIGINAL_TIE_BREAK)


def test_altered_tie_break_is_caught_with_its_inputs():
    model = hand_model("last_same")
    result = decompile(
        model, input_vocab=VOCAB, output_vocab=OUTPUTS["last_same"], inputs={"all": all_inputs()}
    )
    report = verify(result.program, model, {"all": all_inputs()}, _self_first(result.program))
    assert not report.ok
    python = [c for c in report.checks if c.program == "python"]
    executor = [c for c in report.checks if c.program == "executor"]
    assert executor[0].ok and not python[0].ok
    assert report.disagreements and all(d.program == "python" for d in report.disagreements)
    first = report.disagreements[0]
    assert first.tokens.count(first.tokens[first.position]) >= 2  # a repeated token
    assert first.predicted == str(first.position)  # it chose itself
    assert "model" in report.summary() and "program" in report.summary()


def test_decompile_fails_loudly_on_a_disagreement(monkeypatch):
    monkeypatch.setattr(pipeline_module, "render", _self_first)
    with pytest.raises(ProgramMismatchError, match="disagrees") as info:
        decompile(
            hand_model("last_same"),
            input_vocab=VOCAB,
            output_vocab=OUTPUTS["last_same"],
            inputs={"all": all_inputs()},
        )
    assert not info.value.report.ok
    result = decompile(
        hand_model("last_same"),
        input_vocab=VOCAB,
        output_vocab=OUTPUTS["last_same"],
        inputs={"all": all_inputs()},
        check=False,
    )
    assert result.report is None


def test_truncated_numerical_table_is_caught():
    model = hand_model("count_mlp")
    result = decompile(
        model, input_vocab=VOCAB, output_vocab=OUTPUTS["count_mlp"], inputs={"all": all_inputs()}
    )
    program = result.program
    lookup = program.steps[1]
    assert isinstance(lookup, Lookup)
    # like the original: the table stops below the largest reachable count (5)
    truncated = replace(lookup, table=tuple((k, v) for k, v in lookup.table if k[0] < 5))
    broken = program.with_steps((program.steps[0], truncated))
    report = verify(broken, model, {"all": all_inputs()}, render(broken))
    assert not report.ok
    bad_inputs = {d.tokens for d in report.disagreements}
    assert bad_inputs and all(t.count(t[1]) == 5 for t in bad_inputs)
    assert {d.program for d in report.disagreements} == {"executor", "python"}
    assert all(d.model == "5" for d in report.disagreements)


def _info(name: str, **settings):
    from crystalbox.programs.checkpoint import TaskInfo
    from crystalbox.programs.tasks import make_task

    task = make_task(name, **settings)
    return TaskInfo(
        task.name, task.settings, task.input_vocab, task.output_vocab, task.max_len, task.causal
    )


@pytest.mark.parametrize(
    "name, settings, expected",
    [
        ("reverse", {}, 19_530),  # 5 + 5^2 + ... + 5^6, each between <s> and </s>
        ("hist", {"max_len": 5}, 6 + 36 + 216 + 1296),
        ("dyck1", {"max_len": 8}, 2**7),
        ("dyck2", {}, None),  # 4^15 inputs: more than the limit
        ("icl", {}, 4**9),  # alternating letters and numbers after <s>, ending in a letter
    ],
)
def test_input_space_enumerates_every_valid_input(name, settings, expected):
    from crystalbox.programs.decompile import input_space

    info = _info(name, **settings)
    space = input_space(info)
    if expected is None:
        assert space is None
        return
    assert space is not None and len(space) == expected
    assert len({tuple(row) for row in space}) == expected
    assert (space[:, 0] == info.input_vocab.index("<s>")).all()
