"""The rendered file: self-contained, silent on import, runs anywhere, matches the executor."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from crystalbox.programs.decompile import decompile, execute, load_source
from crystalbox.programs.decompile.render import Emitter

from .handbuilt import OUTPUTS, VOCAB, all_inputs, hand_model


@pytest.fixture(scope="module")
def result():
    return decompile(
        hand_model("same_as_prev"),
        input_vocab=VOCAB,
        output_vocab=OUTPUTS["same_as_prev"],
        inputs={"all": all_inputs()},
    )


def test_source_is_self_contained(result):
    source = result.source
    code = [line for line in source.splitlines() if line.strip().startswith(("import", "from "))]
    assert code == []
    assert "pandas" not in source and "open(" not in source and "print(" not in source
    compile(source, "program.py", "exec")


def test_import_prints_nothing(result, capsys):
    load_source(result.source)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_file_runs_from_another_working_directory(result, tmp_path):
    path = tmp_path / "program" / "same_as_prev.py"
    path.parent.mkdir()
    path.write_text(result.source)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('p', {str(path)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "print(json.dumps(m.run(['<s>', 'a', 'a', 'b'])))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == ["same", "diff", "same", "diff"]


def test_rendered_python_matches_the_executor_everywhere(result):
    run = load_source(result.source).run
    inputs = all_inputs()
    executed = execute(result.program, inputs)
    classes = OUTPUTS["same_as_prev"]
    for ids, row in zip(inputs, executed, strict=True):
        tokens = [VOCAB[i] for i in ids if i != 0]
        assert run(tokens) == [classes[c] for c in row[: len(tokens)]]


@pytest.mark.parametrize(
    "tokens, message",
    [
        (["a", "b"], "starting with"),
        (["<s>", "z"], "not an input token"),
        (["<s>", "a", "<s>"], "not an input token"),
        (["<s>"] + ["a"] * 6, "exceed the context"),
    ],
)
def test_rendered_program_rejects_bad_input(result, tokens, message):
    with pytest.raises(ValueError, match=message):
        load_source(result.source).run(tokens)


def test_emitter_indents_blocks():
    out = Emitter()
    with out.block("def f(x):"):
        with out.block("if x:"):
            out.line("return 1")
        out.line("return 0")
    assert out.source() == "def f(x):\n    if x:\n        return 1\n    return 0\n"
    namespace: dict[str, object] = {}
    exec(out.source(), namespace)
    assert np.array_equal([namespace["f"](1), namespace["f"](0)], [1, 0])  # type: ignore[operator]


def test_large_numerical_regions_render_as_ranges_and_stay_exact():
    from crystalbox.programs.decompile.ir import NumericalDomain
    from crystalbox.programs.decompile.render import _pair_test

    domain = NumericalDomain(0, 40)
    keys = [(a, b) for a in range(41) for b in range(41) if 2 * b <= a]  # a half-plane
    test = _pair_test(["a", "b"], [domain, domain], keys)
    assert "range(" in test and len(test) < 600
    inside = set(keys)
    for a in range(41):
        for b in range(41):
            assert eval(test, {"a": a, "b": b}) == ((a, b) in inside)
