"""The integer-valued argmax model: per-layer steps, single-head reruns, partial scores."""

from __future__ import annotations

from typing import cast

import pytest
import torch

from crystalbox.programs.fast_predict import (
    Values,
    class_logits,
    embed_values,
    predict_values,
    rerun_head,
    run_layer,
)
from crystalbox.programs.model import ProgramLayer, ProgramTransformer

from .conftest import MASKS, random_model, random_tokens


def _streams(model: ProgramTransformer, tokens: torch.Tensor) -> list[Values]:
    streams = [embed_values(model, tokens)]
    for module in model.layers:
        streams.append(run_layer(model, cast("ProgramLayer", module), streams[-1]))
    return streams


def _same(a: Values, b: Values) -> bool:
    return (
        len(a.cat) == len(b.cat)
        and len(a.num) == len(b.num)
        and all(torch.equal(x, y) for x, y in zip(a.cat, b.cat, strict=True))
        and all(torch.equal(x, y) for x, y in zip(a.num, b.num, strict=True))
    )


@MASKS
@pytest.mark.parametrize("kind", ["cat", "num"])
@pytest.mark.parametrize("layer_index", [0, 2], ids=["layer0", "layer2"])
def test_rerunning_one_edited_head_equals_running_the_layer(causal, kind, layer_index):
    model = random_model(causal, seed=3)
    tokens = random_tokens(120, seed=4)
    streams = _streams(model, tokens)
    layer = cast("ProgramLayer", model.layers[layer_index])
    one_hot = torch.nn.functional.one_hot
    with torch.no_grad():  # head 1: every query matches the keys whose token is 2 ...
        getattr(layer, f"{kind}_key")[1] = one_hot(torch.tensor(0), layer.cat_key.shape[-1])
        getattr(layer, f"{kind}_pred")[1] = one_hot(torch.full((8,), 2), 8).float()
        value = getattr(layer, f"{kind}_value")  # ... and reads positions or ones
        value[1] = one_hot(torch.tensor(1 if kind == "cat" else 0), value.shape[-1])
    before, after = streams[layer_index], streams[layer_index + 1]
    rerun = rerun_head(model, layer, before, after, kind, 1)
    assert _same(rerun, run_layer(model, layer, before))
    assert not _same(rerun, after)  # the edit did change something


def test_rerun_head_refuses_an_unknown_kind():
    model = random_model(False)
    streams = _streams(model, random_tokens(8))
    layer = cast("ProgramLayer", model.layers[0])
    with pytest.raises(ValueError, match="kind must be 'cat' or 'num'"):
        rerun_head(model, layer, streams[0], streams[1], "mlp", 0)


def test_partial_class_scores_add_up_to_the_whole():
    model = random_model(True, seed=5)
    streams = _streams(model, random_tokens(50))
    whole = class_logits(model, streams[-1])
    first = class_logits(model, streams[1])  # variables present after layer 0
    rest = class_logits(model, streams[-1], len(streams[1].cat), len(streams[1].num))
    assert torch.equal(first + rest, whole)
    assert torch.equal(whole.argmax(-1), predict_values(model, random_tokens(50)))
