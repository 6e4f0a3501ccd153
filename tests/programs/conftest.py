"""Shared fixtures for the Transformer Programs tests: tiny configs and random models."""

from __future__ import annotations

import pytest
import torch

from crystalbox.programs import ProgramConfig, ProgramTransformer, Split
from crystalbox.programs.tasks import make_task
from crystalbox.programs.train import (
    TrainConfig,
    TrainedProgram,
    default_program_config,
    train_program,
)

QUICK = TrainConfig(
    epochs=40,
    batch_size=256,
    n_train=2048,
    n_val=256,
    n_test=256,
    threads=1,
    compile=False,
    progress=False,
)


@pytest.fixture(scope="session")
def trained_hist() -> TrainedProgram:
    """A short real hist run (1 layer), trained once per test session; do not modify it."""
    task = make_task("hist")
    return train_program(task, default_program_config(task), QUICK)


@pytest.fixture(scope="session")
def trained_hist_tables() -> TrainedProgram:
    """The short hist run with numerical table MLPs (``num_mlp_tables``); do not modify it."""
    task = make_task("hist")
    config = default_program_config(task, tables=True)  # implies count_only
    return train_program(task, config, QUICK)


def random_model(
    causal: bool | str, seed: int = 0, count_only: bool = False, tables: bool = False
) -> ProgramTransformer:
    """A 3-layer model with every kind of module and random (decisive) weights;
    ``causal="mixed"``: a non-causal model whose first head of each kind is causal;
    ``tables``: numerical MLPs are tables (implies ``count_only``)."""
    mixed = causal == "mixed"
    torch.manual_seed(seed)
    config = ProgramConfig(
        vocab_size=6,
        n_classes=5,
        n_ctx=8,
        d_var=8,
        n_layers=3,
        n_cat_heads=2,
        n_num_heads=2,
        n_cat_mlps=1,
        n_num_mlps=1,
        d_mlp=16,
        causal=bool(causal) and not mixed,
        count_only=count_only or tables,
        num_mlp_tables=tables,
        n_causal_cat_heads=int(mixed),
        n_causal_num_heads=int(mixed),
    )
    model = ProgramTransformer(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_()
    return model.eval()


def random_tokens(n: int = 200, seed: int = 0) -> torch.Tensor:
    """Token ids ``[n, 8]`` over a 6-token vocabulary (0 = pad, 1 = BOS), ragged lengths."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(2, 6, (n, 8), generator=generator)
    tokens[:, 0] = 1
    lengths = torch.randint(2, 9, (n,), generator=generator)
    tokens[torch.arange(8).unsqueeze(0) >= lengths.unsqueeze(1)] = 0
    return tokens


def self_labelled(model: ProgramTransformer, n: int = 64, seed: int = 1) -> Split:
    """Random full-length inputs labelled by ``model`` itself (exact on them; BOS unscored)."""
    tokens = torch.randint(2, 6, (n, 8), generator=torch.Generator().manual_seed(seed))
    tokens[:, 0] = 1
    with torch.no_grad():
        targets = model.predict(tokens)
    targets[:, 0] = -100
    return Split(tokens.numpy(), targets.numpy())


VOCAB = ("<pad>", "<s>", "a", "b", "c", "d")
CLASSES = ("0", "1", "2", "3", "4")


MASKS = pytest.mark.parametrize(
    "causal", [False, True, "mixed"], ids=["bidirectional", "causal", "mixed"]
)


# the shared random models: every mask, and numerical MLPs as tables
MODEL_KINDS: dict[str, dict[str, bool | str]] = {
    "bidirectional": {"causal": False},
    "causal": {"causal": True},
    "mixed": {"causal": "mixed"},
    "tables": {"causal": "mixed", "tables": True},
}


@pytest.fixture(params=list(MODEL_KINDS))
def model(request: pytest.FixtureRequest) -> ProgramTransformer:
    return random_model(**MODEL_KINDS[request.param])  # type: ignore[arg-type]


@pytest.fixture
def tokens() -> torch.Tensor:
    return random_tokens()
