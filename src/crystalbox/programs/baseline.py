"""A standard transformer of comparable size, trained on the same tasks, for comparison."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from crystalbox.programs.data import IGNORE, Split, TaskData, make_data
from crystalbox.programs.tasks import PAD, Task
from crystalbox.programs.train import RunResult, TrainConfig

__all__ = ["BaselineConfig", "StandardTransformer", "train_baseline"]


@dataclass(frozen=True)
class BaselineConfig:
    """Pre-norm transformer: learned token and position embeddings, softmax attention."""

    vocab_size: int
    n_classes: int
    n_ctx: int
    d_model: int = 64
    n_layers: int = 3
    n_heads: int = 4
    d_mlp: int = 128
    causal: bool = False
    pad_id: int = 0

    @classmethod
    def for_task(cls, task: Task, **sizes: int) -> BaselineConfig:
        """The configuration that reads ``task``'s tokens and writes its classes, with its
        context, masking and padding; ``sizes``: d_model, n_layers, n_heads, d_mlp."""
        return cls(
            len(task.input_vocab),
            len(task.output_vocab),
            task.max_len,
            causal=task.causal,
            pad_id=task.input_vocab.index(PAD),
            **sizes,
        )

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}")


class _Block(nn.Module):
    def __init__(self, config: BaselineConfig) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(config.d_model), nn.LayerNorm(config.d_model)
        self.attn = nn.MultiheadAttention(config.d_model, config.n_heads, batch_first=True)
        self.mlp = nn.Sequential(
            nn.Linear(config.d_model, config.d_mlp),
            nn.GELU(),
            nn.Linear(config.d_mlp, config.d_model),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class StandardTransformer(nn.Module):
    def __init__(self, config: BaselineConfig) -> None:
        super().__init__()
        self.config = config
        self.tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.positions = nn.Embedding(config.n_ctx, config.d_model)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.n_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Class logits ``[batch, pos, n_classes]``."""
        b, n = tokens.shape
        x = self.tokens(tokens) + self.positions(torch.arange(n, device=tokens.device))
        blocked = (tokens == self.config.pad_id).unsqueeze(1).expand(b, n, n).clone()
        blocked[:, :, 0] = False  # BOS is always visible
        if self.config.causal:
            blocked |= torch.triu(torch.ones(n, n, dtype=torch.bool, device=tokens.device), 1)
        mask = torch.zeros(b, n, n, device=tokens.device).masked_fill(blocked, float("-inf"))
        mask = mask.repeat_interleave(self.config.n_heads, dim=0)
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.norm(x))

    @torch.no_grad()
    def predict(self, tokens: torch.Tensor) -> torch.Tensor:
        return self(tokens).argmax(-1)


@torch.no_grad()
def _accuracy(model: StandardTransformer, split: Split) -> float:
    predicted = model.predict(torch.as_tensor(split.inputs))
    targets = torch.as_tensor(split.targets)
    scored = targets != IGNORE
    return 100.0 * float((predicted == targets)[scored].float().mean())


def train_baseline(
    task: Task,
    config: BaselineConfig | None = None,
    train_config: TrainConfig | None = None,
    lr: float = 1e-3,
    data: TaskData | None = None,
) -> tuple[StandardTransformer, RunResult]:
    """Train with Adam and cross-entropy; select the epoch on validation; report test."""
    train_config = train_config or TrainConfig()
    config = config or BaselineConfig.for_task(task)
    if train_config.threads is not None:
        torch.set_num_threads(train_config.threads)
    started = time.perf_counter()
    if data is None:
        data = make_data(
            task,
            train_config.data_seed,
            train_config.n_train,
            train_config.n_val,
            train_config.n_test,
        )
    torch.manual_seed(train_config.seed)
    model = StandardTransformer(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    inputs, targets = torch.as_tensor(data.train.inputs), torch.as_tensor(data.train.targets)
    shuffler = torch.Generator().manual_seed(train_config.seed)
    best = (-1.0, -1, {k: v.clone() for k, v in model.state_dict().items()})
    history: list[float] = []
    step_times: list[float] = []
    steps = math.ceil(len(inputs) / train_config.batch_size)
    bar = tqdm(
        range(train_config.epochs),
        desc=f"{task.name} (standard transformer)",
        disable=not train_config.progress,
    )
    for epoch in bar:
        model.train()
        order = torch.randperm(len(inputs), generator=shuffler)
        for i in range(steps):
            tick = time.perf_counter()
            batch = order[i * train_config.batch_size : (i + 1) * train_config.batch_size]
            logits = model(inputs[batch])
            loss = F.cross_entropy(
                logits.flatten(0, 1), targets[batch].flatten(), ignore_index=IGNORE
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step_times.append(time.perf_counter() - tick)
        model.eval()
        val = _accuracy(model, data.val)
        history.append(val)
        if val >= best[0]:
            best = (val, epoch, {k: v.clone() for k, v in model.state_dict().items()})
        bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{val:.2f}", best=f"{best[0]:.2f}")
        patience = train_config.stop_patience
        recent = history[-patience:] if patience is not None else []
        if len(recent) == patience and min(recent) >= train_config.stop_at:
            break
    model.load_state_dict(best[2])
    result = RunResult(
        task=task.name,
        seed=train_config.seed,
        best_epoch=best[1],
        val_acc=best[0],
        test_acc=_accuracy(model, data.test),
        wall_s=time.perf_counter() - started,
        threads=torch.get_num_threads(),
        device="cpu",
        val_history=tuple(history),
        epochs_run=len(history),
        steps=len(step_times),
        ms_per_step=1000.0 * statistics.median(step_times) if step_times else 0.0,
    )
    return model, result
