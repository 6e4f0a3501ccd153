"""Denormal floats flushed while training, and the thread's setting restored after."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from crystalbox.programs.denormals import flushed_denormals, flushing_denormals
from crystalbox.programs.tasks import make_task
from crystalbox.programs.train import TrainConfig, train_program

from .conftest import QUICK

DENORMAL = 1e-39

# torch.set_flush_denormal returns whether the CPU can flush (x86 with SSE3); False elsewhere
pytestmark = pytest.mark.skipif(
    not torch.set_flush_denormal(False), reason="this CPU cannot flush denormals"
)


def test_flushing_is_on_within_the_block_and_restored_after():
    assert not flushing_denormals()  # torch's default
    with flushed_denormals():
        assert flushing_denormals()
        assert (torch.tensor([DENORMAL]) * 1.0).item() == 0.0
    assert not flushing_denormals()
    assert (torch.tensor([DENORMAL]) * 1.0).item() > 0.0


def test_disabled_or_already_flushing_leaves_the_setting_alone():
    with flushed_denormals(enabled=False):
        assert not flushing_denormals()
    torch.set_flush_denormal(True)
    try:
        with flushed_denormals():
            assert flushing_denormals()
        assert flushing_denormals()  # the caller's own setting survives the block
    finally:
        torch.set_flush_denormal(False)


def test_training_flushes_only_while_it_runs(monkeypatch):
    import crystalbox.programs.train as train_module

    seen: list[bool] = []
    real = train_module.accuracy

    def spy(*args, **kwargs):
        seen.append(flushing_denormals())
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "accuracy", spy)
    tiny = dataclasses.replace(QUICK, epochs=1, n_train=128, n_val=32, n_test=32)
    train_program(make_task("hist"), None, tiny)
    assert seen and all(seen)
    assert not flushing_denormals()
    seen.clear()
    train_program(make_task("hist"), None, dataclasses.replace(tiny, flush_denormal=False))
    assert seen and not any(seen)
    assert TrainConfig().flush_denormal
