"""One validation check's outcome."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckResult:
    """A named check, whether it passed, and what was measured."""

    name: str
    passed: bool
    detail: str = ""
