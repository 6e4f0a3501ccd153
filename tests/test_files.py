"""write_atomically: folders made, earlier files kept whole when the writer fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from crystalbox._files import write_atomically


def test_write_atomically_makes_folders_and_replaces(tmp_path: Path):
    out = tmp_path / "a" / "b" / "file.txt"
    assert write_atomically(out, lambda tmp: tmp.write_text("one")) == out
    write_atomically(out, lambda tmp: tmp.write_text("two"))
    assert out.read_text() == "two" and [p.name for p in out.parent.iterdir()] == ["file.txt"]


def test_a_failing_writer_leaves_the_earlier_file_and_no_temporary(tmp_path: Path):
    out = tmp_path / "file.txt"
    out.write_text("kept")

    def crash(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("crashed mid-write")

    with pytest.raises(RuntimeError, match="crashed mid-write"):
        write_atomically(out, crash)
    assert out.read_text() == "kept" and [p.name for p in tmp_path.iterdir()] == ["file.txt"]
