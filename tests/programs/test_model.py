"""The constrained model: one-hot argmax structure, determinism, equivalence with the readout."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from crystalbox.programs import ProgramConfig, ProgramTransformer, read_discrete, sample
from crystalbox.programs.samplers import TemperatureSchedule

from .conftest import CLASSES, VOCAB, random_model, random_tokens


@pytest.mark.parametrize("sampler", ["argmax", "gumbel_hard"])
def test_argmax_and_hard_samples_are_one_hot(sampler):
    logits = torch.randn(5, 7, 8)
    probs = sample(logits, sampler, tau=0.5)
    assert set(probs.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.all(probs.sum(-1) == 1)


def test_soft_samplers_are_distributions():
    logits = torch.randn(5, 8)
    for sampler in ("softmax", "gumbel_soft"):
        probs = sample(logits, sampler, tau=2.0)
        assert torch.allclose(probs.sum(-1), torch.ones(5))
    with pytest.raises(ValueError, match="unknown sampler"):
        sample(logits, "nope", 1.0)  # type: ignore[arg-type]


def test_temperature_schedule_is_geometric():
    schedule = TemperatureSchedule(3.0, 0.01, 101)
    assert schedule(0) == pytest.approx(3.0)
    assert schedule(100) == pytest.approx(0.01)
    assert schedule(50) == pytest.approx((3.0 * 0.01) ** 0.5)


def test_argmax_stream_is_one_hot(model, tokens):
    cat, num = model.stream(tokens, "argmax")
    assert set(cat.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(cat.sum(dim=2) == 1)  # one value per categorical variable
    assert torch.equal(num, num.round())  # numerical variables are counts


def test_discrete_outputs_are_deterministic(model, tokens):
    assert torch.equal(model.predict(tokens), model.predict(tokens))


def test_readout_runs_exactly_like_the_model(model, tokens):
    program = read_discrete(model, VOCAB, CLASSES, eos=None)
    scored = tokens != 0
    expected = model.predict(tokens).numpy()
    assert np.array_equal(program.run(tokens.numpy())[scored], expected[scored])


def test_relaxed_model_at_low_temperature_is_the_program(model, tokens):
    soft = model(tokens, "softmax", 1e-4).argmax(-1)
    scored = tokens != 0
    assert torch.equal(soft[scored], model.predict(tokens)[scored])


def test_padding_does_not_change_predictions():
    model = random_model(causal=False)
    tokens = random_tokens(50)
    short = tokens[:, :5].clone()
    short[:, 4] = torch.where(short[:, 4] == 0, 0, short[:, 4])
    padded = torch.zeros(50, 8, dtype=torch.long)
    padded[:, :5] = short
    assert torch.equal(model.predict(short)[short != 0], model.predict(padded)[:, :5][short != 0])


def test_readout_describes_every_module():
    model = random_model(causal=True)
    program = read_discrete(model, VOCAB, CLASSES, eos=None)
    config = model.config
    assert len(program.heads) == config.n_layers * (config.n_cat_heads + config.n_num_heads)
    assert len(program.mlps) == config.n_layers * (config.n_cat_mlps + config.n_num_mlps)
    names = [v.name for v in program.variables]
    assert names[:2] == ["tokens", "positions"] and "ones" in names
    for head in program.heads:
        assert head.predicate.shape == (config.d_var,) and head.causal
        assert names.index(head.key) < names.index(head.name)
    for mlp in program.mlps:
        out = mlp.evaluate(np.array([0, 1]), np.array([2, 3]))
        assert out.shape == (2,) and np.all((out >= 0) & (out < config.d_var))
    assert program.classifier["tokens"].shape == (config.d_var, config.n_classes)
    assert program.classifier["ones"].shape == (1, config.n_classes)


BAD_INPUTS = [
    ("too long", torch.ones(2, 9, dtype=torch.long), ValueError, "exceeds the model's context"),
    ("outside vocabulary", torch.full((2, 4), 6), ValueError, r"must lie in \[0, 6\)"),
    ("negative id", torch.full((2, 4), -1), ValueError, "must lie in"),
    ("float tokens", torch.ones(2, 4), TypeError, "integer"),
    ("one dimension", torch.ones(4, dtype=torch.long), ValueError, r"\[batch, pos\]"),
]


@pytest.mark.parametrize(
    ("tokens", "error", "message"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_tokens_raise_clear_errors(tokens, error, message):
    with pytest.raises(error, match=message):
        random_model(causal=False).predict(tokens)


def test_config_collects_problems():
    with pytest.raises(ValueError, match=r"vocab_size 9 exceeds d_var 8.*n_ctx 10 exceeds d_var 8"):
        ProgramConfig(vocab_size=9, n_classes=2, n_ctx=10, d_var=8)
    with pytest.raises(ValueError, match="n_layers must be a positive integer"):
        ProgramConfig(vocab_size=4, n_classes=2, n_ctx=4, n_layers=0)


def test_config_summary_names_the_shape():
    config = ProgramConfig(vocab_size=8, n_classes=7, n_ctx=8, n_layers=3, n_cat_heads=4)
    assert config.summary() == "k=8 L=3 H=4+2 M=1+1"


def test_table_mlps_need_count_only_and_keep_the_other_parameters():
    with pytest.raises(ValueError, match="num_mlp_tables needs count_only=True"):
        ProgramConfig(vocab_size=6, n_classes=5, n_ctx=8, num_mlp_tables=True)
    config = random_model("mixed", count_only=True).config
    with_tables = dataclasses.replace(config, num_mlp_tables=True)
    assert " count-only tables" in with_tables.summary()
    assert ProgramConfig.from_dict(with_tables.to_dict()) == with_tables
    torch.manual_seed(0)
    plain = dict(ProgramTransformer(config).named_parameters())
    torch.manual_seed(0)
    tabled = dict(ProgramTransformer(with_tables).named_parameters())
    relu = {name for name in plain if "num_mlp_" in name and not name.endswith("_read")}
    tables = {name for name in tabled if name.endswith(".num_mlp_table")}
    assert len(tables) == config.n_layers and set(tabled) == (set(plain) - relu) | tables
    assert all(torch.equal(plain[name], tabled[name]) for name in set(plain) - relu)
    assert tabled["layers.0.num_mlp_table"].shape == (1, 9 * 9, 8)  # counts 0..n_ctx squared


def test_a_table_mlp_reads_its_row_at_counts_and_interpolates_between():
    model = random_model("mixed", tables=True)
    layer = model.layers[0]
    rows = layer.num_mlp_table[0]  # [9 * 9, k]
    pairs = torch.tensor([[[2.0, 3.0], [2.5, 3.0], [-1.0, 20.0]]])  # [m, r, 2]
    logits = layer._table_logits(pairs)[0]
    assert torch.equal(logits[0], rows[2 * 9 + 3])
    assert torch.allclose(logits[1], (rows[2 * 9 + 3] + rows[3 * 9 + 3]) / 2)
    assert torch.equal(logits[2], rows[0 * 9 + 8])  # clamped into [0, n_ctx]
    for init in (model.init_numerical_mlps_on_domain, model.init_numerical_mlps_through_origin):
        with pytest.raises(ValueError, match="are tables"):
            init()
    model.init_like_reference()  # rescales the tables instead
    discrete = next(m for m in read_discrete(model, VOCAB, CLASSES).mlps if m.kind == "numerical")
    assert discrete.table is not None and discrete.w1 is None
    expected = discrete.table[2, 3].argmax()
    assert discrete.evaluate(np.array([2.0, 30.0]), np.array([3.0, -4.0])).tolist() == [
        expected,
        discrete.table[8, 0].argmax(),
    ]
    with pytest.raises(ValueError, match="either w1, b1, w2, b2 or a table"):
        dataclasses.replace(discrete, w1=np.zeros((2, 4)))


def test_count_only_heads_sum_ones(tokens):
    free, counting = random_model(False), random_model(False, count_only=True)
    assert counting.config.summary().endswith(" count-only")
    assert ProgramConfig.from_dict(counting.config.to_dict()) == counting.config
    names = {name for name, _ in free.named_parameters()}
    fixed = {name for name in names if name.endswith(".num_value")}
    assert fixed and {name for name, _ in counting.named_parameters()} == names - fixed
    assert set(counting.state_dict()) == set(free.state_dict())  # checkpoints keep their keys
    program = read_discrete(counting, VOCAB, CLASSES, eos=None)
    assert {head.value for head in program.heads if head.kind == "numerical"} == {"ones"}
    _, num = counting.stream(tokens, "argmax")
    assert num.max() <= tokens.shape[1]  # counts of matches, never sums of counts
    reads = counting.layers[2].num_value  # [heads, numerical variables before layer 2]
    ones = torch.zeros_like(reads)
    ones[:, 0] = 1.0
    for sampler in ("softmax", "gumbel_soft"):  # the relaxed heads read exactly `ones` too
        assert torch.equal(sample(reads, sampler, 3.0), ones)
    scored = tokens != 0
    expected = counting.predict(tokens).numpy()
    assert np.array_equal(program.run(tokens.numpy())[scored], expected[scored])
    assert torch.equal(counting.predict_fast(tokens), counting.predict(tokens))


def test_model_without_numerical_modules_works():
    config = ProgramConfig(
        vocab_size=6,
        n_classes=5,
        n_ctx=8,
        n_layers=2,
        n_cat_heads=1,
        n_num_heads=0,
        n_cat_mlps=0,
        n_num_mlps=0,
        causal=True,
    )
    model = ProgramTransformer(config)
    tokens = random_tokens(20)
    logits = model(tokens, "gumbel_hard", 1.0)
    logits.sum().backward()
    program = read_discrete(model, VOCAB, CLASSES, eos=None)
    scored = tokens != 0
    assert np.array_equal(
        program.run(tokens.numpy())[scored], model.predict(tokens).numpy()[scored]
    )


def test_fast_prediction_equals_the_program(model, tokens):
    assert torch.equal(model.predict_fast(tokens), model.predict(tokens))


def test_numerical_mlp_initialisations():
    config = ProgramConfig(vocab_size=len(VOCAB), n_classes=len(CLASSES), n_ctx=8, n_layers=2)
    model = ProgramTransformer(config).requires_grad_(False)
    model.init_numerical_mlps_through_origin()
    for layer in model.layers:
        assert torch.all(layer.num_mlp_b1 == 0)  # every ReLU kink passes through the origin
        assert 0.05 < float(layer.num_mlp_w1.std()) < 0.3  # ~ 1 / sqrt(d_mlp = 64)
    model.init_numerical_mlps_on_domain()
    for layer in model.layers:
        w1, b1 = layer.num_mlp_w1[0], layer.num_mlp_b1[0]  # [2, d], [d]
        # the kink of unit d crosses x = (t, t) for some t in [0, n_ctx] when both inputs agree
        crossing = -b1 / w1.sum(0)
        inside = (crossing >= -1e-4) & (crossing <= config.n_ctx + 1e-4)
        assert inside.float().mean() > 0.2


def test_reference_initialisation_scales():
    config = ProgramConfig(vocab_size=len(VOCAB), n_classes=len(CLASSES), n_ctx=8, n_layers=3)
    torch.manual_seed(0)
    model = ProgramTransformer(config).requires_grad_(False)
    model.init_like_reference()
    last = model.layers[-1]
    n_vars = last.cat_key.shape[-1]  # the last layer reads more variables than the first
    assert n_vars > model.layers[0].cat_key.shape[-1]
    reads = torch.cat(
        [layer.cat_key.flatten() * layer.cat_key.shape[-1] ** 0.5 for layer in model.layers]
    )
    assert 0.6 < float(reads.std()) < 1.6  # N(0, 1 / n_vars) at every layer
    assert 0.2 < float(last.cat_pred.std()) < 0.5  # ~ 1 / sqrt(k = 8)
    for layer in model.layers:
        assert torch.all(layer.mlp_b1 == 0) and torch.all(layer.num_mlp_b1 == 0)
        assert 0.08 < float(layer.mlp_w1.std()) < 0.2  # ~ 1 / sqrt(d_mlp = 64)
        assert 0.25 < float(layer.mlp_w2.std()) < 0.5  # ~ 1 / sqrt(k)
    assert 0.2 < float(model.classifier_cat.std()) < 0.6  # ~ 1 / sqrt(n_classes)


def test_mixed_masks_apply_to_their_heads_only():
    mixed = random_model("mixed", seed=1)
    open_config = dataclasses.replace(mixed.config, n_causal_cat_heads=0, n_causal_num_heads=0)
    bidirectional = ProgramTransformer(open_config).eval()
    bidirectional.load_state_dict(mixed.state_dict())
    tokens = random_tokens(300, seed=2)
    assert not torch.equal(mixed.predict(tokens), bidirectional.predict(tokens))
    heads = read_discrete(mixed, VOCAB, CLASSES, eos=None).heads
    assert [h.causal for h in heads if h.layer == 0] == [True, False, True, False]
    assert mixed.config.summary().endswith("causal=1+1")


def test_causal_head_counts_are_checked():
    with pytest.raises(ValueError, match=r"n_causal_cat_heads must be an integer in \[0, n_cat"):
        ProgramConfig(vocab_size=6, n_classes=5, n_ctx=8, n_cat_heads=1, n_causal_cat_heads=2)
    with pytest.raises(ValueError, match="n_causal_num_heads is for non-causal models"):
        ProgramConfig(vocab_size=6, n_classes=5, n_ctx=8, causal=True, n_causal_num_heads=1)


def test_attention_temperature_reaches_the_relaxed_heads_and_not_the_program():
    model, tokens = random_model(False), random_tokens(20)
    relaxed, program = model(tokens, "softmax", 1.0), model.predict(tokens)
    model.set_attention_temperature(4.0)
    assert not torch.allclose(model(tokens, "softmax", 1.0), relaxed)
    assert torch.equal(model.predict(tokens), program)
    model.set_attention_temperature(1.0)  # back to the undivided logits, bit for bit
    assert torch.equal(model(tokens, "softmax", 1.0), relaxed)
