"""The constrained transformer whose argmax version is a program.

The residual stream is two stacks of named variables (see ``config.variable_layout``):
categorical (one-hot in the argmax model) and numerical. ``stream()`` returns them as
``[batch, pos, k, n_cat]`` and ``[batch, pos, n_num]``; inside the layers they are
variable-major lists of chunks ``[v_i, batch, pos, k]`` / ``[u_i, batch, pos]``, so appending
copies nothing and a read is one contiguous concatenation and one matrix product. Modules
append variables; nothing is added into existing ones.
Every choice (which variable a slot reads, each predicate row, the attended key, each MLP
output value) is a sample from logits; with ``sampler="argmax"`` all of them are exact
one-hots and the attention follows ``semantics`` exactly (the argmax path calls it).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from crystalbox.programs.config import ProgramConfig, n_cat_before, n_num_before
from crystalbox.programs.fast_predict import predict_values
from crystalbox.programs.layer import ProgramLayer, _logits, _read
from crystalbox.programs.samplers import Sampler

__all__ = ["ProgramLayer", "ProgramTransformer"]


class ProgramTransformer(nn.Module):
    """A Transformer Program: one-hot embeddings, program layers, a linear classifier."""

    def __init__(self, config: ProgramConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(ProgramLayer(config, layer) for layer in range(config.n_layers))
        n_cat, n_num = n_cat_before(config, config.n_layers), n_num_before(config, config.n_layers)
        self.classifier_cat = _logits(n_cat, config.d_var, config.n_classes)
        self.classifier_num = _logits(n_num, config.n_classes)
        if config.num_mlp_tables:
            for layer in self.layers:
                nn.init.normal_(cast("ProgramLayer", layer).num_mlp_table)

    def _check_relu_numerical_mlps(self, what: str) -> None:
        if self.config.num_mlp_tables:
            raise ValueError(
                f"{what} re-initialises ReLU numerical MLPs, and this model's numerical MLPs "
                "are tables (num_mlp_tables=True); use the default initialisation"
            )

    @torch.no_grad()
    def init_numerical_mlps_on_domain(self) -> None:
        """Re-initialise numerical MLPs so each hidden unit's ReLU kink crosses the input domain.

        Numerical MLP inputs are counts in ``[0, n_ctx]``; with weights and biases drawn
        independently most kinks fall outside that square, leaving the units linear on it.
        Here unit ``d`` gets a random direction ``w1[:, d]`` and a bias placing its kink
        through a uniform random point of ``[0, n_ctx]^2`` (uses the global torch RNG).
        """
        self._check_relu_numerical_mlps("init_numerical_mlps_on_domain")
        for module in self.layers:
            layer = cast(ProgramLayer, module)
            m, d_in, d = layer.num_mlp_w1.shape
            if not m:
                continue
            layer.num_mlp_w1.normal_()
            anchor = torch.rand(m, d_in, d) * self.config.n_ctx
            layer.num_mlp_b1.copy_(-(layer.num_mlp_w1 * anchor).sum(1))

    @torch.no_grad()
    def init_numerical_mlps_through_origin(self) -> None:
        """Re-initialise numerical MLPs with zero hidden biases and weights ~ N(0, 1 / d_mlp).

        Each hidden unit's ReLU kink is then a line through the origin of its two inputs: a
        threshold on their ratio (the initialisation of the authors' implementation).
        """
        self._check_relu_numerical_mlps("init_numerical_mlps_through_origin")
        for module in self.layers:
            layer = cast(ProgramLayer, module)
            if not layer.num_mlp_w1.shape[0]:
                continue
            layer.num_mlp_w1.normal_().mul_(layer.num_mlp_w1.shape[-1] ** -0.5)
            layer.num_mlp_b1.zero_()

    @torch.no_grad()
    def init_like_reference(self) -> None:
        """Re-initialise every parameter with the scales of the authors' implementation.

        Read logits ~ N(0, 1 / n_vars read from), predicate rows ~ N(0, 1 / k), MLP input
        weights ~ N(0, 1 / d_mlp) with zero biases (numerical MLPs included), MLP output
        weights ~ N(0, 1 / k), classifier ~ N(0, 1 / n_classes); uses the global torch RNG.
        """
        k = self.config.d_var
        for module in self.layers:
            layer = cast(ProgramLayer, module)
            for read in (
                layer.cat_key,
                layer.cat_query,
                layer.cat_value,
                layer.num_key,
                layer.num_query,
                layer.num_value,
                layer.mlp_read,
                layer.num_mlp_read,
            ):
                if isinstance(read, nn.Parameter):  # not the fixed reads of count_only
                    read.normal_().mul_(max(read.shape[-1], 1) ** -0.5)
            for pred in (layer.cat_pred, layer.num_pred):
                pred.normal_().mul_(k**-0.5)
            mlps = [(layer.mlp_w1, layer.mlp_b1, layer.mlp_w2, layer.mlp_b2)]
            if self.config.num_mlp_tables:
                layer.num_mlp_table.normal_().mul_(k**-0.5)
            else:
                mlps.append(
                    (layer.num_mlp_w1, layer.num_mlp_b1, layer.num_mlp_w2, layer.num_mlp_b2)
                )
            for w1, b1, w2, b2 in mlps:
                w1.normal_().mul_(w1.shape[-1] ** -0.5)
                w2.normal_().mul_(k**-0.5)
                b1.zero_()
                b2.zero_()
        classes = self.config.n_classes
        self.classifier_cat.normal_().mul_(classes**-0.5)
        self.classifier_num.normal_().mul_(classes**-0.5)

    @torch.no_grad()
    def bias_predicates_to_identity(self, beta: float) -> None:
        """Add ``beta`` to the diagonal of every predicate's logits ``[heads, k, k]``: a prior
        towards equality (query value v matches key value v), the predicate of counting or
        copying the same token; ``beta`` 0 leaves the model unchanged."""
        if not beta >= 0:
            raise ValueError(f"beta must be non-negative, got {beta}")
        for module in self.layers:
            layer = cast(ProgramLayer, module)
            for pred in (layer.cat_pred, layer.num_pred):
                pred.add_(beta * torch.eye(pred.shape[-1], dtype=pred.dtype, device=pred.device))

    def set_attention_temperature(self, value: float) -> None:
        """Divide relaxed categorical attention logits by ``value`` before the Gumbel noise.

        The authors' implementation divides by sqrt(k); the argmax model (the program) is the
        same for every value.
        """
        if not value > 0:
            raise ValueError(f"attention temperature must be positive, got {value}")
        for layer in self.layers:
            cast(ProgramLayer, layer).attention_temperature = float(value)

    def set_ordered_below(self, tau: float) -> None:
        """Relax categorical heads as ordered matching while the temperature is below ``tau``
        (``kernels.cat_heads_ordered``; 0: never). Training only: the program is unchanged."""
        if not tau >= 0:
            raise ValueError(f"ordered_below must be non-negative, got {tau}")
        for layer in self.layers:
            cast(ProgramLayer, layer).ordered_below = float(tau)

    def use_compiled_kernels(self, enabled: bool = True) -> None:
        """Run the relaxed attention through ``torch.compile`` (faster training on CPU)."""
        for layer in self.layers:
            cast(ProgramLayer, layer).compiled = enabled

    def check_tokens(self, tokens: torch.Tensor) -> None:
        """Raise ``ValueError``/``TypeError`` for inputs the model cannot read."""
        if not isinstance(tokens, torch.Tensor) or tokens.dtype not in (torch.long, torch.int32):
            raise TypeError("tokens must be an integer torch.Tensor [batch, pos] of token ids")
        if tokens.dim() != 2:
            raise ValueError(f"tokens must have shape [batch, pos], got {tuple(tokens.shape)}")
        if tokens.shape[1] > self.config.n_ctx:
            raise ValueError(
                f"sequence length {tokens.shape[1]} exceeds the model's context n_ctx="
                f"{self.config.n_ctx}; shorten the inputs or train a model with a larger n_ctx"
            )
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.config.vocab_size):
            raise ValueError(
                f"token ids must lie in [0, {self.config.vocab_size}), got values in "
                f"[{int(tokens.min())}, {int(tokens.max())}]; encode with the model's vocabulary"
            )

    def embed(
        self, tokens: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """The stream before the first layer for ``tokens [b, n]``: chunks ``[[2, b, n, k]]``
        (token and position one-hots), ``[[1, b, n]]`` (ones), and the key mask ``[b, n]``
        (not padding; BOS always a key)."""
        self.check_tokens(tokens)
        tokens = tokens.long()
        b, n = tokens.shape
        k = self.config.d_var
        device = self.classifier_num.device
        tokens = tokens.to(device)
        positions = torch.arange(n, device=device).expand(b, n)
        cats = [torch.stack([F.one_hot(tokens, k), F.one_hot(positions, k)]).float()]
        nums = [torch.ones(1, b, n, device=device)]
        return cats, nums, self.key_mask(tokens)

    def key_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """Which positions of ``tokens [b, n]`` heads may select: not padding; BOS always."""
        key_mask = tokens != self.config.pad_id
        key_mask[:, 0] = True
        return key_mask

    def _streams(
        self, tokens: torch.Tensor, sampler: Sampler, tau: float
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Final streams as the layers' chunk lists: ``[v_i, b, n, k]``, ``[u_i, b, n]``."""
        cats, nums, key_mask = self.embed(tokens)
        for layer in self.layers:
            cats, nums = layer(cats, nums, key_mask, sampler, tau)
        return cats, nums

    def stream(
        self, tokens: torch.Tensor, sampler: Sampler = "argmax", tau: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Final residual stream: categorical ``[b, n, k, n_cat]``, numerical ``[b, n, n_num]``."""
        cats, nums = self._streams(tokens, sampler, tau)
        return torch.cat(cats).permute(1, 2, 3, 0), torch.cat(nums).permute(1, 2, 0)

    def forward(
        self, tokens: torch.Tensor, sampler: Sampler = "argmax", tau: float = 1.0
    ) -> torch.Tensor:
        """Class logits ``[batch, pos, n_classes]``; ``sampler="argmax"`` is the program."""
        cats, nums = self._streams(tokens, sampler, tau)
        return self._classify(cats, nums)

    def _classify(
        self, cats: list[torch.Tensor], nums: list[torch.Tensor], dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Class logits ``[b, n, classes]`` of stream chunks, computed in ``dtype``."""
        b, n = cats[0].shape[1:3]
        cat_weights: torch.Tensor = self.classifier_cat
        num_weights: torch.Tensor = self.classifier_num
        if dtype is not None:
            cats, nums = [c.to(dtype) for c in cats], [u.to(dtype) for u in nums]
            cat_weights, num_weights = cat_weights.to(dtype), num_weights.to(dtype)
        logits = _read(num_weights.T, nums).T  # [b*n, classes]
        stream = torch.cat(cats) if len(cats) > 1 else cats[0]  # [v, b, n, k]
        per_variable = torch.bmm(stream.view(stream.shape[0], b * n, -1), cat_weights)
        return (logits + per_variable.sum(0)).view(b, n, -1)  # [v, b*n, classes] summed

    @torch.no_grad()
    def predict(self, tokens: torch.Tensor) -> torch.Tensor:
        """Class ids ``[batch, pos]`` of the discrete (argmax) model.

        The class logits are summed in float64, where sums of the float32 weights are exact,
        so the class never depends on summation order (float32 sums of near-tied classes do);
        ties go to the lowest class id. The decompiled program computes the same sums.
        """
        cats, nums = self._streams(tokens, "argmax", 1.0)
        return self._classify(cats, nums, torch.float64).argmax(dim=-1)

    @torch.no_grad()
    def predict_fast(self, tokens: torch.Tensor) -> torch.Tensor:
        """``predict`` computed on integer variables (used for per-epoch validation).

        The same argmax model and the same ``semantics`` calls on integer values instead of
        one-hots (``fast_predict.predict_values``); the two can differ only where an MLP's
        float32 output logits tie to the last bit.
        """
        self.check_tokens(tokens)
        return predict_values(self, tokens)
