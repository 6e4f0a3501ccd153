"""Beyond one machine: accelerate device maps, and nnsight's local simulation of remote runs."""

from __future__ import annotations

import torch

from crystalbox import StandardizedTransformer, _nnsight


def test_remote_path_serializes_and_matches_local(make_tiny):
    """``remote="local"`` serializes the trace as for NDIF, deserializes it and runs it here."""
    model = make_tiny("llama")
    with torch.no_grad(), model.trace("hello", remote="local"):
        remote_hidden = _nnsight.save(model.layers_output[1])
        remote_logits = _nnsight.save(model.logits)
    with torch.no_grad(), model.trace("hello"):
        hidden = _nnsight.save(model.layers_output[1])
        logits = _nnsight.save(model.logits)
    assert torch.equal(remote_hidden, hidden) and torch.equal(remote_logits, logits)


def test_device_map_load_is_validated(tmp_path, make_tiny):
    source = make_tiny("qwen2")
    source.hf_model.save_pretrained(tmp_path)
    source.tokenizer.save_pretrained(tmp_path)
    model = StandardizedTransformer(tmp_path, device_map="auto")
    # with one CPU, accelerate places every weight there
    assert {p.device.type for p in model.hf_model.parameters()} == {"cpu"}
    report = model.validate()
    assert report.ok, report.table()
    enc = source.tokenizer(["a b c"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model.hf_model(**enc).logits, source.hf_model(**enc).logits)
