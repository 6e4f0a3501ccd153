"""Training a Transformer Program: Gumbel relaxation, geometric temperature, argmax validation.

``train_program`` is the table of contents: build data, build the model, run the epochs
(validating the discrete model after each), keep the best epoch on validation, and score
that discrete model on test. Seeded and reproducible for a fixed device and thread count.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from crystalbox.programs.averaging import ParameterAverage
from crystalbox.programs.config import KindCounts, ProgramConfig, split_kinds
from crystalbox.programs.data import IGNORE, Split, TaskData, make_data
from crystalbox.programs.denormals import flushed_denormals
from crystalbox.programs.model import ProgramTransformer
from crystalbox.programs.samplers import SAMPLERS, Sampler, TemperatureSchedule
from crystalbox.programs.tasks import PAD, PUBLISHED, Task, task_identity

__all__ = [
    "RunResult",
    "TrainConfig",
    "TrainedProgram",
    "accuracy",
    "default_program_config",
    "train_program",
]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings: the paper's (Adam 5e-2, batch 512, tau 3 -> 0.01, Gumbel-soft).

    ``stop_patience``: stop once the discrete model has scored ``stop_at`` (percent) on
    validation for this many consecutive epochs (None: always run every epoch).
    ``plateau_patience``: stop once this many epochs have passed without the validation
    accuracy reaching its best again (None, the paper's: run every epoch). Selection and
    stopping use validation only. ``flush_denormal``: treat denormal floats as zero during
    training (``denormals.flushed_denormals``; steps at tau 1 to 0.1 measured 1.2-4.8x faster
    on CPU); intra-op threads that torch starts during the run keep flushing after it.
    ``sampler="gumbel_hard"`` (straight-through) is available; measured at 40 epochs on
    double_hist it reached 37% where Gumbel-soft reached 71%. ``ema_decay``: also keep an
    exponential moving average of the parameters (this decay per step;
    ``averaging.ParameterAverage``) and validate its discrete model every epoch beside the
    trained one; the better of the two on validation is selected (the run itself is unchanged).
    """

    epochs: int = 250
    batch_size: int = 512
    lr: float = 5e-2
    tau_start: float = 3.0
    tau_end: float = 0.01
    sampler: Sampler = "gumbel_soft"  # the paper's; see docs/programs.md
    seed: int = 0
    data_seed: int = 0
    n_train: int = 16000
    n_val: int = 2000
    n_test: int = 2000
    device: str | None = None  # None: CUDA when available, else CPU
    threads: int | None = None  # torch CPU threads; None leaves torch's default
    # torch.compile the relaxed attention kernels: no gain at k = 8, 1.1-1.35x per step at k = 16
    compile: bool = False
    progress: bool = True
    stop_at: float = 100.0
    stop_patience: int | None = 5
    plateau_patience: int | None = None
    flush_denormal: bool = True
    # "domain" / "origin": see init_numerical_mlps_on_domain / _through_origin
    num_mlp_init: Literal["normal", "domain", "origin"] = "normal"
    # "reference": every parameter at the authors' scales (ProgramTransformer.init_like_reference)
    init: Literal["default", "reference"] = "default"
    # "token": mean over scored tokens; "sequence": mean over sequences of their token mean
    loss: Literal["token", "sequence"] = "token"
    # divides relaxed categorical attention logits before the noise; the authors' is sqrt(k)
    attention_temperature: float = 1.0
    # "cosine": the learning rate follows a half cosine from lr to 0 over the run's steps
    lr_schedule: Literal["constant", "cosine"] = "constant"
    ema_decay: float | None = None
    # once tau falls below this, relaxed categorical heads select by ordered matching
    # (kernels.cat_heads_ordered: the closest match wins, as in the program; no score
    # logits, so attention_temperature does not apply to them); 0: never
    ordered_below: float = 0.0
    # added to the diagonal of every predicate's initial logits: a prior towards equality
    # predicates (ProgramTransformer.bias_predicates_to_identity); 0: the paper's random rows;
    # a start model's weights replace it
    identity_prior: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        for name in ("epochs", "batch_size", "n_train", "n_val", "n_test"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            problems.append(f"threads must be positive or None, got {self.threads}")
        for name in ("stop_patience", "plateau_patience"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{name} must be positive or None, got {value}")
        if self.num_mlp_init not in ("normal", "domain", "origin"):
            problems.append(
                f"num_mlp_init must be 'normal', 'domain' or 'origin', got {self.num_mlp_init!r}"
            )
        if self.init not in ("default", "reference"):
            problems.append(f"init must be 'default' or 'reference', got {self.init!r}")
        if self.loss not in ("token", "sequence"):
            problems.append(f"loss must be 'token' or 'sequence', got {self.loss!r}")
        if self.lr <= 0:
            problems.append(f"lr must be positive, got {self.lr}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            problems.append(
                f"ema_decay must lie strictly between 0 and 1 (e.g. 0.98), or be None, got "
                f"{self.ema_decay}"
            )
        if self.lr_schedule not in ("constant", "cosine"):
            problems.append(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if not (self.tau_start > 0 and self.tau_end > 0):
            problems.append(
                f"temperatures must be positive, got tau_start={self.tau_start}, "
                f"tau_end={self.tau_end}"
            )
        elif self.tau_end > self.tau_start:
            problems.append(
                f"the temperature schedule anneals, so tau_end ({self.tau_end}) must not exceed "
                f"tau_start ({self.tau_start}); swap them (equal values keep it constant)"
            )
        if not self.identity_prior >= 0:
            problems.append(
                f"identity_prior must be non-negative (0 turns the prior off), got "
                f"{self.identity_prior}"
            )
        if not self.ordered_below >= 0:
            problems.append(f"ordered_below must be non-negative, got {self.ordered_below}")
        if not self.attention_temperature > 0:
            problems.append(
                f"attention_temperature must be positive, got {self.attention_temperature}"
            )
        if self.sampler not in SAMPLERS or self.sampler == "argmax":
            problems.append(
                f"sampler must be one of softmax, gumbel_soft, gumbel_hard, got {self.sampler!r}"
            )
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))


@dataclass(frozen=True)
class RunResult:
    """Accuracies (percent, token-level, of the discrete model) and timing of one run."""

    task: str
    seed: int
    best_epoch: int
    val_acc: float
    test_acc: float
    wall_s: float
    threads: int
    device: str
    val_history: tuple[float, ...] = field(default=())
    epochs_run: int = 0
    steps: int = 0
    ms_per_step: float = 0.0  # median wall time of one optimisation step
    # with TrainConfig.ema_decay: the averaged model's validation per epoch, and which model
    # the selected epoch took ("trained" or "average")
    average_val_history: tuple[float, ...] = field(default=())
    selected: Literal["trained", "average"] = "trained"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class TrainedProgram:
    model: ProgramTransformer
    task: Task
    model_config: ProgramConfig
    train_config: TrainConfig
    result: RunResult


def default_program_config(
    task: Task,
    n_layers: int | None = None,
    n_heads: KindCounts | None = None,
    n_mlps: KindCounts | None = None,
    d_var: int | None = None,
    count_only: bool = False,
    causal_heads: KindCounts = 0,
    tables: bool = False,
) -> ProgramConfig:
    """The paper's configuration of a built-in task (overridable).

    ``n_heads`` / ``n_mlps`` per layer: a total split evenly between categorical and
    numerical (the paper's grid), or a ``(categorical, numerical)`` pair.
    ``count_only``: numerical heads count their matches (``ProgramConfig.count_only``);
    ``causal_heads``: that many heads of each kind per layer (or a ``(cat, num)`` pair) are
    causal (a non-causal task's ``ProgramConfig.n_causal_cat_heads`` and
    ``n_causal_num_heads``); ``tables``: numerical MLPs are lookup tables
    (``ProgramConfig.num_mlp_tables``; implies ``count_only``).
    """
    for name, value in (("n_layers", n_layers), ("d_var", d_var)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be positive (or None for the default), got {value}")
    published = PUBLISHED.get(task.name)
    layers = n_layers or (published.n_layers if published else 2)
    k = d_var or max(published.d_var if published else 8, len(task.input_vocab), task.max_len)
    if n_heads is None and published and published.cat_heads_only:
        heads = (published.n_heads, 0)
    else:
        heads = split_kinds(
            n_heads if n_heads is not None else (published.n_heads if published else 4), "n_heads"
        )
    mlps = split_kinds(
        n_mlps if n_mlps is not None else (published.n_mlps if published else 2), "n_mlps"
    )
    if isinstance(causal_heads, int) and not isinstance(causal_heads, bool):
        causal = (causal_heads, causal_heads if heads[1] else 0)  # "of each kind there is"
    else:
        causal = split_kinds(causal_heads, "causal_heads")
    return ProgramConfig(
        vocab_size=len(task.input_vocab),
        n_classes=len(task.output_vocab),
        n_ctx=task.max_len,
        d_var=k,
        n_layers=layers,
        n_cat_heads=heads[0],
        n_num_heads=heads[1],
        n_cat_mlps=mlps[0],
        n_num_mlps=mlps[1],
        causal=task.causal,
        pad_id=task.input_vocab.index(PAD),
        count_only=count_only or tables,
        n_causal_cat_heads=causal[0],
        n_causal_num_heads=causal[1],
        num_mlp_tables=tables,
    )


@torch.no_grad()
def accuracy(
    model: ProgramTransformer, split: Split, batch_size: int = 4096, fast: bool = False
) -> float:
    """Token accuracy (percent) of the discrete model over scored positions.

    ``fast``: use ``model.predict_fast`` (the same predictions on integer variables; used for
    the per-epoch validation); reported figures use ``model.predict``.
    """
    correct = total = 0
    device = model.classifier_num.device
    predict = model.predict_fast if fast else model.predict
    for start in range(0, len(split), batch_size):
        inputs = torch.as_tensor(split.inputs[start : start + batch_size], device=device)
        targets = torch.as_tensor(split.targets[start : start + batch_size], device=device)
        predicted = predict(inputs)
        scored = targets != IGNORE
        correct += int((predicted == targets)[scored].sum())
        total += int(scored.sum())
    return 100.0 * correct / max(total, 1)


def _device(config: TrainConfig) -> torch.device:
    """The device of ``config``: ``ValueError`` for a malformed name or an absent CUDA."""
    if config.device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(config.device)
    except RuntimeError as exc:
        raise ValueError(f"device {config.device!r} is not a torch device: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {config.device!r} needs CUDA, which this torch cannot use (no GPU, or a "
            "CPU-only build); leave the device unset to train on the CPU"
        )
    return device


def train_program(
    task: Task,
    model_config: ProgramConfig | None = None,
    train_config: TrainConfig | None = None,
    data: TaskData | None = None,
    start: ProgramTransformer | None = None,
) -> TrainedProgram:
    """Train, select the epoch on validation (discrete model), and report test accuracy.

    ``start``: a model of the same configuration whose weights training starts from (copied;
    ``start`` itself is not changed) instead of a fresh initialisation.
    """
    train_config = train_config or TrainConfig()
    model_config = model_config or (start.config if start else default_program_config(task))
    if start is not None and start.config != model_config:
        raise ValueError(
            f"start has configuration {start.config.summary()}, not {model_config.summary()}; "
            "pass the start model's config (or none)"
        )
    _check_fits(task, model_config)
    if data is not None and task_identity(data.task) != task_identity(task):
        raise ValueError(
            f"data was made for task {data.task.name!r}, not {task.name!r}; pass "
            "make_data(task, ...) of the task being trained (or data=None)"
        )
    if train_config.threads is not None:
        torch.set_num_threads(train_config.threads)
    with flushed_denormals(train_config.flush_denormal):
        return _run(task, model_config, train_config, data, start)


def _run(
    task: Task,
    model_config: ProgramConfig,
    train_config: TrainConfig,
    data: TaskData | None,
    start: ProgramTransformer | None,
) -> TrainedProgram:
    """``train_program`` once its inputs are checked."""
    started = time.perf_counter()
    if data is None:
        data = make_data(
            task,
            train_config.data_seed,
            train_config.n_train,
            train_config.n_val,
            train_config.n_test,
        )
    device = _device(train_config)
    torch.manual_seed(train_config.seed)
    model = ProgramTransformer(model_config)
    if train_config.init == "reference":
        model.init_like_reference()
    if train_config.num_mlp_init == "domain":
        model.init_numerical_mlps_on_domain()
    elif train_config.num_mlp_init == "origin":
        model.init_numerical_mlps_through_origin()
    if train_config.identity_prior:
        model.bias_predicates_to_identity(train_config.identity_prior)
    if start is not None:
        model.load_state_dict(start.state_dict())
    model.set_attention_temperature(train_config.attention_temperature)
    model.set_ordered_below(train_config.ordered_below)
    model = model.to(device)
    model.use_compiled_kernels(_use_compiled_kernels(train_config, device))
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.lr)
    inputs = torch.as_tensor(data.train.inputs, device=device)
    targets = torch.as_tensor(data.train.targets, device=device)
    steps_per_epoch = math.ceil(len(data.train) / train_config.batch_size)
    schedule = TemperatureSchedule(
        train_config.tau_start, train_config.tau_end, train_config.epochs * steps_per_epoch
    )
    shuffler = torch.Generator().manual_seed(train_config.seed)
    decay = train_config.ema_decay
    average = ParameterAverage(model, decay) if decay is not None else None
    best_acc, best_epoch, best_state = -1.0, -1, copy.deepcopy(model.state_dict())
    selected: Literal["trained", "average"] = "trained"
    history: list[float] = []
    average_history: list[float] = []
    step_times: list[float] = []
    bar = tqdm(range(train_config.epochs), desc=task.name, disable=not train_config.progress)
    step = 0
    for epoch in bar:
        model.train()
        order = torch.randperm(len(data.train), generator=shuffler).to(device)
        for first in range(0, len(order), train_config.batch_size):
            tick = time.perf_counter()
            batch = order[first : first + train_config.batch_size]
            logits = model(inputs[batch], train_config.sampler, schedule(step))
            loss = _loss(logits, targets[batch], train_config.loss)
            _set_lr(optimizer, train_config, step, schedule.n_steps)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update(model)
            step += 1
            step_times.append(time.perf_counter() - tick)
        model.eval()
        val_acc = accuracy(model, data.val, fast=True)
        history.append(val_acc)
        if val_acc >= best_acc:
            best_acc, best_epoch, selected = val_acc, epoch, "trained"
            best_state = copy.deepcopy(model.state_dict())
        if average is not None:
            average_history.append(accuracy(average.model, data.val, fast=True))
            if average_history[-1] >= best_acc:
                best_acc, best_epoch, selected = average_history[-1], epoch, "average"
                best_state = copy.deepcopy(average.model.state_dict())
        averaged = {"avg": f"{average_history[-1]:.2f}"} if average_history else {}
        bar.set_postfix(
            loss=f"{loss.item():.3f}",
            tau=f"{schedule(step):.3f}",
            val=f"{val_acc:.2f}",
            **averaged,
            best=f"{best_acc:.2f}",
        )
        patience = train_config.stop_patience
        recent = history[-patience:] if patience is not None else []
        if len(recent) == patience and min(recent) >= train_config.stop_at:
            break
        plateau = train_config.plateau_patience
        if plateau is not None and epoch - best_epoch >= plateau:
            break
    model.load_state_dict(best_state)
    model.use_compiled_kernels(False)
    result = RunResult(
        task=task.name,
        seed=train_config.seed,
        best_epoch=best_epoch,
        val_acc=accuracy(model, data.val),
        test_acc=accuracy(model, data.test),
        wall_s=time.perf_counter() - started,
        threads=torch.get_num_threads(),
        device=str(device),
        val_history=tuple(history),
        epochs_run=len(history),
        steps=step,
        ms_per_step=1000.0 * float(np.median(step_times)) if step_times else 0.0,
        average_val_history=tuple(average_history),
        selected=selected,
    )
    return TrainedProgram(model.cpu(), task, model_config, train_config, result)


def _check_fits(task: Task, config: ProgramConfig) -> None:
    """``ValueError`` unless ``config`` reads ``task``'s tokens and writes its classes."""
    wanted = {
        "vocab_size": len(task.input_vocab),
        "n_classes": len(task.output_vocab),
        "pad_id": task.input_vocab.index(PAD),
    }
    problems = [
        f"{name}={getattr(config, name)} (the task needs {value})"
        for name, value in wanted.items()
        if getattr(config, name) != value
    ]
    if config.n_ctx < task.max_len:
        problems.append(f"n_ctx={config.n_ctx} (shorter than the task's max_len={task.max_len})")
    if problems:
        raise ValueError(
            f"the model configuration does not fit task {task.name!r}: {'; '.join(problems)}; "
            "build it with default_program_config(task, ...)"
        )


def _set_lr(optimizer: torch.optim.Optimizer, config: TrainConfig, step: int, total: int) -> None:
    """The learning rate of optimisation step ``step`` (of ``total``) under ``config``."""
    if config.lr_schedule == "constant":
        return
    lr = 0.5 * config.lr * (1.0 + math.cos(math.pi * step / max(total, 1)))
    for group in optimizer.param_groups:
        group["lr"] = lr


def _loss(logits: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
    """Cross-entropy of ``logits [b, n, classes]`` against ``targets [b, n]`` (IGNORE skipped)."""
    if kind == "token":
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
    if kind != "sequence":
        raise ValueError(f"loss must be 'token' or 'sequence', got {kind!r}")
    per_token = F.cross_entropy(
        logits.transpose(1, 2), targets, ignore_index=IGNORE, reduction="none"
    )  # [b, n], 0 where ignored
    counts = (targets != IGNORE).sum(-1)
    scored = counts > 0
    return (per_token.sum(-1)[scored] / counts[scored]).mean()


def _use_compiled_kernels(train_config: TrainConfig, device: torch.device) -> bool:
    """Whether this run compiles its attention kernels; warns when ``compile=True`` cannot."""
    if not train_config.compile:
        return False
    if device.type != "cpu":
        reason = f"compiled kernels are built for CPU training only, and this run is on {device}"
    elif not _compiler_works():
        reason = "torch.compile cannot build CPU kernels here (install a C++ compiler, e.g. g++)"
    else:
        return True
    warnings.warn(
        f"compile=True is ignored: {reason}; training runs the eager kernels",
        RuntimeWarning,
        stacklevel=4,  # the caller of train_program
    )
    return False


_COMPILER_OK: bool | None = None


def _compiler_works() -> bool:
    """Whether ``torch.compile`` can build CPU kernels here (needs a C++ compiler)."""
    global _COMPILER_OK
    if _COMPILER_OK is None:
        try:
            fn = torch.compile(lambda x: (x * 2).sum(), dynamic=False)
            fn(torch.from_numpy(np.ones(3, dtype=np.float32)))
            _COMPILER_OK = True
        except Exception:
            _COMPILER_OK = False
    return _COMPILER_OK
