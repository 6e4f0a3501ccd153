"""A short real training run, checkpoints round-tripping, and the CLI on top of them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from crystalbox.cli.main import build_parser, main
from crystalbox.errors import CheckpointError
from crystalbox.programs.checkpoint import load_program, save_program
from crystalbox.programs.data import make_data
from crystalbox.programs.discrete import read_discrete
from crystalbox.programs.model import ProgramTransformer
from crystalbox.programs.tasks import make_task
from crystalbox.programs.train import (
    TrainConfig,
    accuracy,
    default_program_config,
    train_program,
)

from .conftest import QUICK


def test_short_run_learns_hist(trained_hist):
    result = trained_hist.result
    assert result.val_acc >= 90.0 and result.test_acc >= 90.0, result
    assert len(result.val_history) == result.epochs_run <= QUICK.epochs
    assert result.steps > 0 and result.ms_per_step > 0
    assert result.val_acc == max(result.val_history)  # selected on validation


def test_trained_program_reads_out_and_matches(trained_hist):
    task = trained_hist.task
    program = read_discrete(trained_hist.model, task.input_vocab, task.output_vocab)
    from crystalbox.programs.data import make_data

    data = make_data(task, 0, 2048, 256, 256)
    tokens = torch.as_tensor(data.test.inputs)
    scored = data.test.targets != -100
    expected = trained_hist.model.predict(tokens).numpy()
    assert np.array_equal(program.run(data.test.inputs)[scored], expected[scored])


def test_checkpoint_round_trip(trained_hist, tmp_path: Path):
    save_program(trained_hist, tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "ckpt").iterdir()}
    assert modes["model.safetensors"] == modes["config.json"]  # the umask's, not 0600
    loaded = load_program(tmp_path / "ckpt")
    assert loaded.task.input_vocab == trained_hist.task.input_vocab
    assert loaded.result["test_acc"] == trained_hist.result.test_acc
    tokens = torch.randint(1, 8, (64, 8))
    tokens[:, 0] = 1
    assert torch.equal(loaded.model.predict(tokens), trained_hist.model.predict(tokens))


def test_checkpoint_data_regenerates_the_runs_splits(trained_hist, tmp_path: Path):
    import dataclasses

    from crystalbox.programs.checkpoint import checkpoint_data

    loaded = load_program(save_program(trained_hist, tmp_path / "ckpt"))
    data = checkpoint_data(loaded.task, loaded.train_config)
    assert (len(data.train), len(data.val), len(data.test)) == (2048, 256, 256)
    assert accuracy(loaded.model, data.test) == pytest.approx(trained_hist.result.test_acc)
    other = checkpoint_data(loaded.task, loaded.train_config, data_seed=1)
    assert not np.array_equal(other.test.inputs, data.test.inputs)
    changed = dataclasses.replace(loaded.task, output_vocab=(*loaded.task.output_vocab, "x"))
    with pytest.raises(ValueError, match="is not the checkpoint's task"):
        checkpoint_data(changed, loaded.train_config)


def test_saving_over_a_checkpoint_is_crash_safe(trained_hist, tmp_path: Path, monkeypatch):
    import crystalbox.programs.checkpoint as checkpoint

    path = save_program(trained_hist, tmp_path / "ckpt")
    save_program(trained_hist, path)  # replacing a checkpoint works and leaves no staging
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    before = {p.name: p.read_bytes() for p in path.iterdir()}

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_program(trained_hist, path)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before  # the earlier one survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        save_program(trained_hist, tmp_path / "file")
    # a folder of the user's own files is never replaced by a checkpoint
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="holds files other than a programs checkpoint"):
        save_program(trained_hist, mine)
    assert (mine / "notes.txt").read_text() == "keep me" and len(list(mine.iterdir())) == 1
    monkeypatch.undo()
    (tmp_path / "empty").mkdir()
    assert (save_program(trained_hist, tmp_path / "empty") / "config.json").is_file()


def test_incompatible_checkpoints_raise(trained_hist, tmp_path: Path):
    path = save_program(trained_hist, tmp_path / "ckpt")
    config = json.loads((path / "config.json").read_text())
    config["format_version"] = 99
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_program(path)
    with pytest.raises(CheckpointError, match="not a programs checkpoint"):
        load_program(tmp_path / "missing")
    config["format_version"] = 1
    config["model_config"]["n_layers"] = 2
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="do not match its config"):
        load_program(path)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a cut-off copy
    with pytest.raises(CheckpointError, match="damaged or incomplete; restore it"):
        load_program(path)


def test_cli_eval(trained_hist, tmp_path: Path, capsys):
    path = save_program(trained_hist, tmp_path / "ckpt")
    assert main(["programs", "eval", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "hist" and report["examples"] == 256
    assert report["accuracy"] == pytest.approx(trained_hist.result.test_acc, abs=1e-3)
    assert "by_position" not in report
    assert main(["programs", "eval", str(path), "--breakdown"]) == 0
    detail = json.loads(capsys.readouterr().out)
    assert detail["accuracy"] == report["accuracy"]
    positions = detail["by_position"]
    assert sum(n for n, _ in positions.values()) == sum(n for n, _ in detail["by_class"].values())
    weighted = sum(n * acc for n, acc in positions.values()) / sum(n for n, _ in positions.values())
    assert weighted == pytest.approx(report["accuracy"], abs=0.01)
    assert 0.0 <= detail["sequence_accuracy"] <= report["accuracy"]


def test_cli_train_count_only(tmp_path: Path):
    out = tmp_path / "counting"
    args = ["programs", "train", "hist", "--epochs", "1", "--layers", "2", "--threads", "1"]
    assert main([*args, "--count-only", "--out", str(out)]) == 0
    loaded = load_program(out)
    assert loaded.model.config.count_only and loaded.model.config.n_layers == 2
    assert all(not layer.num_value.requires_grad for layer in loaded.model.layers)


def test_cli_train_with_table_mlps(tmp_path: Path):
    out = tmp_path / "tables"
    args = ["programs", "train", "hist", "--epochs", "1", "--threads", "1", "--quiet"]
    assert main([*args, "--tables", "--out", str(out)]) == 0
    loaded = load_program(out)
    assert loaded.model.config.num_mlp_tables and loaded.model.config.count_only
    program = read_discrete(loaded.model, loaded.task.input_vocab, loaded.task.output_vocab)
    assert all(mlp.table is not None for mlp in program.mlps if mlp.kind == "numerical")


def test_short_run_with_table_mlps_learns_hist(trained_hist_tables):
    result = trained_hist_tables.result
    # measured at these settings, seeds 0-3: 100.00, 99.63, 100.00, 98.61 (ReLU MLPs, count-only:
    # 99.05, 97.15, 96.64, 98.83; the ReLU run trained_hist is held to 90)
    assert result.test_acc >= 98.0, result


def test_cli_train_with_causal_heads(tmp_path: Path, capsys):
    out = tmp_path / "mixed"
    args = ["programs", "train", "hist", "--epochs", "1", "--threads", "1", "--quiet"]
    assert main([*args, "--causal-heads", "1", "--out", str(out)]) == 0
    config = load_program(out).model.config
    assert (config.causal, config.n_causal_cat_heads, config.n_causal_num_heads) == (False, 1, 1)
    assert main([*args, "--causal-heads", "5", "--out", str(tmp_path / "bad")]) == 2
    assert "n_causal_cat_heads must be an integer in [0, n_cat_heads" in capsys.readouterr().err


def test_cli_train_refuses_a_folder_of_other_files_before_training(tmp_path: Path, capsys):
    (tmp_path / "notes.txt").write_text("keep me")
    assert main(["programs", "train", "hist", "--epochs", "1", "--out", str(tmp_path)]) == 2
    assert "holds files other than a programs checkpoint" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_cli_train_keeps_an_earlier_checkpoint_unless_told_to_overwrite(tmp_path: Path, capsys):
    out = tmp_path / "hist"
    args = ["programs", "train", "hist", "--epochs", "1", "--n-train", "512", "--quiet"]
    args += ["--threads", "1", "--out", str(out)]
    assert main(args) == 0
    first = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main([*args, "--seed", "1"]) == 2
    assert "already holds a checkpoint; pass --overwrite" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == first
    assert main([*args, "--seed", "1", "--overwrite"]) == 0
    assert load_program(out).train_config["seed"] == 1
    refit = ["programs", "refit", str(out), "--threads", "1"]
    (tmp_path / "hist-refit").mkdir()
    (tmp_path / "hist-refit" / "config.json").write_text((out / "config.json").read_text())
    assert main(refit) == 2
    assert "hist-refit already holds a checkpoint" in capsys.readouterr().err


def test_training_can_start_from_a_model(trained_hist):
    start = trained_hist.model
    before = {name: t.clone() for name, t in start.state_dict().items()}
    gentle = dataclasses.replace(QUICK, epochs=1, lr=1e-4, tau_start=0.01, stop_patience=None)
    kept = train_program(trained_hist.task, None, gentle, start=start)
    assert kept.result.val_acc >= trained_hist.result.val_acc - 1.0  # it starts at the program
    assert all(torch.equal(t, before[name]) for name, t in start.state_dict().items())
    other = dataclasses.replace(start.config, n_layers=2)
    with pytest.raises(ValueError, match="start has configuration"):
        train_program(trained_hist.task, other, gentle, start=start)


def test_cli_train_then_polish(tmp_path: Path, capsys):
    out = tmp_path / "hist"
    args = ["programs", "train", "hist", "--epochs", "2", "--threads", "1", "--quiet"]
    assert main([*args, "--out", str(out), "--polish", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("hist: val") and lines[-1].startswith("train and polish: ")
    report = json.loads(lines[1])
    assert report["checkpoint"] == str(out) and report["kept"]
    polished = load_program(tmp_path / "hist-polish")
    assert polished.result["polish"]["edits"]
    assert polished.result["val_acc"] == pytest.approx(report["val_after"], abs=1e-3)
    assert load_program(out).result["val_acc"] == pytest.approx(report["val_before"], abs=1e-3)


def test_cli_train_checks_the_polish_settings_before_training(tmp_path: Path, capsys):
    args = ["programs", "train", "hist", "--epochs", "1", "--out", str(tmp_path / "h")]
    assert main([*args, "--polish", "-1"]) == 2
    assert "--polish takes a number of rounds" in capsys.readouterr().err
    (tmp_path / "h-polish").mkdir()
    (tmp_path / "h-polish" / "notes.txt").write_text("keep me")
    assert main([*args, "--polish", "1"]) == 2
    assert "holds files other than a programs checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "h").exists()


def test_cli_train_takes_the_schedule_options_into_the_checkpoint(tmp_path: Path):
    out = tmp_path / "hist"
    schedule = ["--sampler", "gumbel_hard", "--tau-start", "1", "--tau-end", "0.1"]
    schedule += ["--batch-size", "256", "--lr-schedule", "cosine"]
    args = ["programs", "train", "hist", "--epochs", "1", "--n-train", "512", "--quiet"]
    assert main([*args, *schedule, "--threads", "1", "--out", str(out)]) == 0
    recorded = load_program(out).train_config
    assert recorded["sampler"] == "gumbel_hard" and recorded["lr_schedule"] == "cosine"
    assert (recorded["tau_start"], recorded["tau_end"], recorded["batch_size"]) == (1, 0.1, 256)
    assert main([*args, "--threads", "1", "--out", str(tmp_path / "plain")]) == 0
    plain = load_program(tmp_path / "plain").train_config
    defaults = TrainConfig()
    assert (plain["sampler"], plain["tau_start"], plain["batch_size"]) == (
        defaults.sampler,
        defaults.tau_start,
        defaults.batch_size,
    )


def test_cli_help_states_the_train_config_defaults(capsys):
    # the parser states them as literals (it does not import torch); keep them in step
    with pytest.raises(SystemExit):
        main(["programs", "train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = TrainConfig()
    assert f"(default {defaults.n_train})" in text and f"default {defaults.batch_size}" in text
    assert f"first temperature (default {defaults.tau_start})" in text
    assert f"last temperature (default {defaults.tau_end})" in text
    assert f"{defaults.sampler} (the paper's, default)" in text
    assert f"{defaults.lr_schedule} (the paper's, default)" in text
    args = build_parser().parse_args(["programs", "train", "hist"])
    assert (args.lr, args.n_val, args.n_test) == (defaults.lr, defaults.n_val, defaults.n_test)


def test_cli_train_unknown_task_is_a_clear_error(capsys):
    assert main(["programs", "train", "nope", "--epochs", "1"]) == 2
    assert "unknown task 'nope'; known tasks: reverse, hist" in capsys.readouterr().err


def test_train_config_validation():
    with pytest.raises(ValueError, match=r"epochs must be positive.*lr must be positive"):
        TrainConfig(epochs=0, lr=0)
    with pytest.raises(ValueError, match="sampler"):
        TrainConfig(sampler="argmax")
    with pytest.raises(ValueError, match=r"init must be .*loss must be"):
        TrainConfig(init="paper", loss="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="attention_temperature must be positive"):
        TrainConfig(attention_temperature=0.0)
    with pytest.raises(ValueError, match="ordered_below must be non-negative"):
        TrainConfig(ordered_below=-0.5)
    with pytest.raises(ValueError, match="identity_prior must be non-negative"):
        TrainConfig(identity_prior=-1.0)
    with pytest.raises(ValueError, match="lr_schedule must be 'constant' or 'cosine'"):
        TrainConfig(lr_schedule="linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="temperatures must be positive"):
        TrainConfig(tau_end=0.0)
    with pytest.raises(ValueError, match=r"tau_end \(3.0\) must not exceed tau_start \(0.1\)"):
        TrainConfig(tau_start=0.1, tau_end=3.0)
    assert TrainConfig(tau_start=0.5, tau_end=0.5).tau_end == 0.5  # a constant temperature
    with pytest.raises(ValueError, match="threads must be positive or None, got 0"):
        TrainConfig(threads=0)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--epochs", "0"], "epochs must be positive, got 0"),  # not the paper's 250
        (["--layers", "0"], "n_layers must be positive"),
        (["--d-var", "0"], "d_var must be positive"),
        (["--threads", "0"], "threads must be positive"),
        (["--device", "gpu"], "device 'gpu' is not a torch device"),
        (["--tau-start", "0"], "temperatures must be positive"),
        (["--batch-size", "0"], "batch_size must be positive, got 0"),
    ],
    ids=["epochs-0", "layers-0", "d-var-0", "threads-0", "device-name", "tau-0", "batch-0"],
)
def test_cli_train_refuses_bad_settings_before_training(tmp_path: Path, capsys, option, message):
    assert main(["programs", "train", "hist", *option, "--out", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_cuda_device_without_cuda_is_a_clear_error(monkeypatch):
    from crystalbox.programs.train import _device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="needs CUDA, which this torch cannot use"):
        _device(TrainConfig(device="cuda:0"))
    assert _device(TrainConfig()).type == "cpu"


def test_compile_that_cannot_run_warns_and_trains_eagerly(monkeypatch):
    from crystalbox.programs import train as train_module

    cpu, cuda = torch.device("cpu"), torch.device("cuda:0")
    assert not train_module._use_compiled_kernels(TrainConfig(compile=False), cpu)
    with pytest.warns(RuntimeWarning, match="built for CPU training only, and this run is on cuda"):
        assert not train_module._use_compiled_kernels(TrainConfig(compile=True), cuda)
    monkeypatch.setattr(train_module, "_COMPILER_OK", False)  # as on a machine without g++
    with pytest.warns(RuntimeWarning, match="install a C\\+\\+ compiler"):
        assert not train_module._use_compiled_kernels(TrainConfig(compile=True), cpu)
    monkeypatch.setattr(train_module, "_COMPILER_OK", True)
    assert train_module._use_compiled_kernels(TrainConfig(compile=True), cpu)


def test_cosine_schedule_runs_the_learning_rate_from_lr_down_to_zero():
    from crystalbox.programs.train import _set_lr

    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.05)
    cosine, constant = TrainConfig(lr_schedule="cosine"), TrainConfig()
    seen = []
    for step in (0, 50, 100):
        _set_lr(optimizer, cosine, step, 100)
        seen.append(optimizer.param_groups[0]["lr"])
    assert seen == pytest.approx([0.05, 0.025, 0.0])
    _set_lr(optimizer, constant, 50, 100)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0)  # constant leaves lr alone


def test_attention_temperature_divides_only_the_score_logits():
    from crystalbox.programs.kernels import cat_heads_soft
    from crystalbox.programs.semantics import position_bias

    torch.manual_seed(0)
    h, b, n, k = 2, 3, 5, 8
    reads = [torch.softmax(torch.randn(h, b, n, k), -1) for _ in range(3)]
    pred = torch.softmax(torch.randn(h, k, k), -1)
    allowed = torch.ones(1, b, n, n, dtype=torch.bool)
    bias, noise = position_bias(n), torch.randn(h, b, n, n)

    def heads(noise: torch.Tensor, tau: float, scale: float) -> torch.Tensor:
        return cat_heads_soft(
            *reads, pred, allowed, bias, noise, torch.tensor(tau), torch.tensor(scale)
        )

    # scale s divides the logits but not the noise: (l / s + g) / tau == (l + s g) / (s tau)
    torch.testing.assert_close(heads(noise, 0.5, 2.0), heads(2.0 * noise, 1.0, 1.0))
    assert not torch.allclose(heads(noise, 0.5, 2.0), heads(noise, 0.5, 1.0))


def test_sequence_loss_weights_every_sequence_equally():
    from crystalbox.programs.train import _loss

    logits = torch.zeros(2, 3, 4)
    logits[0, :, 1] = 5.0  # sequence 0: one scored token, predicted confidently and right
    targets = torch.tensor([[1, -100, -100], [2, 2, 2]])  # sequence 1: three tokens, all wrong
    right, wrong = (
        float(_loss(logits[:1], targets[:1], "token")),
        float(_loss(logits[1:], targets[1:], "token")),
    )
    assert float(_loss(logits, targets, "sequence")) == pytest.approx((right + wrong) / 2)
    assert float(_loss(logits, targets, "token")) == pytest.approx((right + 3 * wrong) / 4)


def test_accuracy_counts_only_scored_positions(trained_hist):
    from crystalbox.programs.data import Split

    inputs = np.array([[1, 2, 2, 0]] * 2)
    targets = np.array([[-100, 1, 1, -100]] * 2)  # "2" occurs twice: class id of "2" is 1
    score = accuracy(trained_hist.model, Split(inputs, targets))
    assert score in (0.0, 50.0, 100.0)


def test_training_is_reproducible_per_seed():
    task = make_task("sort")
    tiny = TrainConfig(
        epochs=2, batch_size=64, n_train=128, n_val=32, n_test=32, compile=False, progress=False
    )
    first, again = train_program(task, None, tiny), train_program(task, None, tiny)
    for (name, a), (_, b) in zip(
        first.model.state_dict().items(), again.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert first.result.val_history == again.result.val_history


def test_training_stops_once_validation_is_perfect(monkeypatch):
    import crystalbox.programs.train as train_module

    monkeypatch.setattr(train_module, "accuracy", lambda *args, **kwargs: 100.0)
    config = TrainConfig(
        epochs=10,
        batch_size=64,
        n_train=128,
        n_val=32,
        n_test=32,
        stop_patience=3,
        compile=False,
        progress=False,
    )
    result = train_program(make_task("hist"), None, config).result
    assert result.epochs_run == 3 and len(result.val_history) == 3


def test_a_configuration_or_data_of_another_task_is_refused():
    hist, sort = make_task("hist"), make_task("sort")
    tiny = TrainConfig(epochs=1, n_train=64, n_val=16, n_test=16, progress=False)
    with pytest.raises(
        ValueError, match=r"does not fit task 'hist': n_classes=5 \(the task needs 7\)"
    ):
        train_program(hist, default_program_config(sort), tiny)
    short = dataclasses.replace(default_program_config(hist), n_ctx=4)
    with pytest.raises(ValueError, match="n_ctx=4 \\(shorter than the task's max_len=8\\)"):
        train_program(hist, short, tiny)
    with pytest.raises(ValueError, match="data was made for task 'sort', not 'hist'"):
        train_program(hist, None, tiny, make_data(sort, 0, 64, 16, 16))


def test_cli_train_records_ordered_matching_and_refuses_a_negative_temperature(
    tmp_path: Path, capsys
):
    args = ["programs", "train", "hist", "--epochs", "1", "--n-train", "256", "--quiet"]
    args += ["--threads", "1"]
    assert main([*args, "--ordered-below", "5", "--out", str(tmp_path / "h")]) == 0
    assert load_program(tmp_path / "h").train_config["ordered_below"] == 5.0
    assert main([*args, "--ordered-below", "-1", "--out", str(tmp_path / "bad")]) == 2
    assert "ordered_below must be non-negative" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_the_identity_prior_raises_only_the_predicates_diagonals(tmp_path: Path):
    config = default_program_config(make_task("hist"))
    torch.manual_seed(0)
    plain = ProgramTransformer(config)
    torch.manual_seed(0)
    biased = ProgramTransformer(config)
    biased.bias_predicates_to_identity(2.0)
    eye = torch.eye(config.d_var)
    for name, before in plain.state_dict().items():
        after = biased.state_dict()[name]
        expected = before + 2.0 * eye if name.endswith(("cat_pred", "num_pred")) else before
        assert torch.equal(after, expected), name
    with pytest.raises(ValueError, match="beta must be non-negative"):
        biased.bias_predicates_to_identity(-1.0)
    # training starts from it (a vanishing learning rate keeps the initial weights)
    still = TrainConfig(
        epochs=1, n_train=64, n_val=16, n_test=16, lr=1e-12, progress=False, identity_prior=2.0
    )
    trained = train_program(make_task("hist"), config, still).model
    for name, value in biased.state_dict().items():
        assert torch.allclose(trained.state_dict()[name], value, atol=1e-8), name
    # the CLI passes it on to training and records it with the checkpoint
    args = ["programs", "train", "hist", "--epochs", "1", "--n-train", "256", "--quiet"]
    args += ["--threads", "1", "--identity-prior", "1.5", "--out", str(tmp_path / "h")]
    assert main(args) == 0
    assert load_program(tmp_path / "h").train_config["identity_prior"] == 1.5
