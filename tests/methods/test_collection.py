from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from crystalbox._nnsight import save
from crystalbox.errors import CheckpointError
from crystalbox.methods import ActivationDataset, collect_activations, get_token_activations
from crystalbox.methods._common import encode

TEXTS = [f"Sample number {i} says {'hello ' * (i % 5)}world" for i in range(23)] + [""]


def _shards(directory: Path) -> dict[str, str]:
    manifest = json.loads((directory / "manifest.json").read_text())
    return {e["file"]: e["sha256"] for e in manifest["shards"]}


@pytest.mark.parametrize("side", ["left", "right"])
def test_rows_match_single_prompt_runs(tiny, tmp_path, side):
    summary = collect_activations(
        tiny,
        TEXTS[:5],
        tmp_path,
        layers=[0, 2],
        batch_size=3,
        shard_rows=10,
        padding_side=side,
        progress=False,
    )
    assert summary.complete and summary.shards_total >= 2
    data = ActivationDataset(tmp_path)
    for doc in (0, 3):
        inputs = encode(tiny, [TEXTS[doc]])
        with torch.no_grad(), tiny.trace(dict(inputs)):
            h0 = save(tiny.layers_output[0])
            h2 = save(tiny.layers_output[2])
        rows = [i for i in range(len(data)) if data.metadata(i)[0] == doc]
        assert len(rows) == inputs["input_ids"].shape[1]
        got = torch.stack([data[i] for i in rows])  # [tokens, layers, d_model]
        torch.testing.assert_close(got[:, 0], h0[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(got[:, 1], h2[0], rtol=0, atol=1e-5)
        assert [data.metadata(i)[2] for i in rows] == inputs["input_ids"][0].tolist()
    assert ActivationDataset(tmp_path, layer=2)[0].shape == (tiny.hidden_size,)


def test_last_position_rank_split_and_token_activations(tiny, tmp_path):
    for rank in range(2):
        collect_activations(
            tiny,
            TEXTS,
            tmp_path,
            layers=[1],
            positions="last",
            rank=rank,
            world_size=2,
            progress=False,
            dtype="float16",
        )
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest["ranks"]) == {"0", "1"} and all(
        r["complete"] for r in manifest["ranks"].values()
    )
    manifest_mode = (tmp_path / "manifest.json").stat().st_mode & 0o777
    assert {p.stat().st_mode & 0o777 for p in tmp_path.glob("*.safetensors")} == {manifest_mode}
    data = ActivationDataset(tmp_path)
    docs = sorted(data.metadata(i)[0] for i in range(len(data)))
    assert docs == list(range(23))  # every non-empty text exactly once
    direct = get_token_activations(tiny, TEXTS[:4], layers=[1], idx=-1)
    assert direct.shape == (1, 4, tiny.hidden_size)
    row = next(i for i in range(len(data)) if data.metadata(i)[0] == 2)
    torch.testing.assert_close(data[row][0].float(), direct[0, 2], rtol=0, atol=2e-2)


def test_other_model_and_corruption_are_detected(tiny, tokenizer, tmp_path):
    collect_activations(tiny, TEXTS[:6], tmp_path, layers=[0], shard_rows=8, progress=False)
    from tests.methods.conftest import _tiny_llama

    torch.manual_seed(1)
    other = _tiny_llama(tokenizer, 2)
    with pytest.raises(CheckpointError, match="another model"):
        collect_activations(other, TEXTS[:6], tmp_path, layers=[0], progress=False)
    with pytest.raises(CheckpointError, match="other settings"):
        collect_activations(tiny, TEXTS[:6], tmp_path, layers=[1], progress=False)
    first = sorted(_shards(tmp_path))[0]
    raw = bytearray((tmp_path / first).read_bytes())
    raw[-3] ^= 0xFF
    (tmp_path / first).write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupted"):
        ActivationDataset(tmp_path)
    with pytest.raises(CheckpointError, match="corrupted"):
        collect_activations(tiny, TEXTS[:6], tmp_path, layers=[0], shard_rows=8, progress=False)
    collect_activations(
        tiny, TEXTS[:6], tmp_path, layers=[0], shard_rows=8, progress=False, repair=True
    )
    assert len(ActivationDataset(tmp_path)) > 0


_CHILD = """
import sys, time, torch
sys.path.insert(0, {root!r})
from tests.methods.conftest import _tiny_llama
from transformers import AutoTokenizer
import crystalbox
from crystalbox.methods import collect_activations
texts = {texts!r}
def slow():
    for t in texts:
        time.sleep({delay})
        yield t
tok = AutoTokenizer.from_pretrained(crystalbox.default_model_path())
model = _tiny_llama(tok, 3)
collect_activations(model, slow(), sys.argv[1], layers=[0, 2], batch_size=2, shard_rows=6, progress=False)
"""


def test_killed_run_resumes_to_identical_shards(tiny, tmp_path):
    texts = TEXTS * 2
    reference = tmp_path / "reference"
    collect_activations(
        tiny, texts, reference, layers=[0, 2], batch_size=2, shard_rows=6, progress=False
    )
    script = tmp_path / "child.py"
    root = str(Path(__file__).resolve().parents[2])
    script.write_text(_CHILD.format(root=root, texts=texts, delay=0.15))
    resumed = tmp_path / "resumed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    child = subprocess.Popen([sys.executable, str(script), str(resumed)], env=env)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and child.poll() is None:
            if (resumed / "manifest.json").exists() and len(_shards(resumed)) >= 2:
                break
            time.sleep(0.05)
        assert child.poll() is None, "the child finished before it could be interrupted"
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
    partial = _shards(resumed)
    assert 2 <= len(partial) < len(_shards(reference))
    collect_activations(
        tiny, texts, resumed, layers=[0, 2], batch_size=2, shard_rows=6, progress=False
    )
    assert _shards(resumed) == _shards(reference)
    for name in _shards(reference):
        assert (resumed / name).read_bytes() == (reference / name).read_bytes()


def test_dataset_pickles_for_dataloader_workers(tiny, tmp_path):
    import pickle

    collect_activations(tiny, TEXTS[:3], tmp_path, layers=[1], progress=False)
    data = ActivationDataset(tmp_path, layer=1)
    first = data[0]
    clone = pickle.loads(pickle.dumps(data))
    torch.testing.assert_close(clone[0], first)
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    assert next(iter(loader)).shape == (4, tiny.hidden_size)
