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
from crystalbox.programs.kernels import get_kernel
from crystalbox.programs.samplers import Sampler, _gumbel_like, sample
from crystalbox.programs.semantics import (
    aggregate,
    aggregate_sum,
    allowed_keys,
    match_matrix,
    position_bias,
    select_closest,
)

__all__ = ["ProgramLayer", "ProgramTransformer"]


def _logits(*shape: int, std: float = 0.1) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * std)


def _fixed_read(slots: int, n_vars: int, index: int) -> torch.Tensor:
    """Read logits ``[slots, n_vars]`` that every sampler turns into the one-hot of ``index``."""
    logits = torch.full((slots, n_vars), -1e4)
    logits[:, index] = 0.0
    return logits


class ProgramLayer(nn.Module):
    """One layer: categorical and numerical heads, then categorical and numerical MLPs.

    Read logits are ``[slots, n_vars]``; predicate logits ``[heads, query_value, key_value]``.
    """

    def __init__(self, config: ProgramConfig, layer: int) -> None:
        super().__init__()
        self.config = config
        self.compiled = False
        # divides relaxed categorical attention logits before the Gumbel noise (training only)
        self.attention_temperature = 1.0
        k, d = config.d_var, config.d_mlp
        n_cat, n_num = n_cat_before(config, layer), n_num_before(config, layer)
        hc, hn, mc, mn = (
            config.n_cat_heads,
            config.n_num_heads,
            config.n_cat_mlps,
            config.n_num_mlps,
        )
        # categorical heads: reads over categorical variables, predicate rows over key values
        self.cat_key, self.cat_query, self.cat_value = (_logits(hc, n_cat) for _ in range(3))
        self.cat_pred = _logits(hc, k, k, std=1.0)
        # numerical heads: categorical key/query, numerical value
        self.num_key, self.num_query = _logits(hn, n_cat), _logits(hn, n_cat)
        self.num_value = _logits(hn, n_num)
        # count_only: the value read is fixed to `ones`, so each head counts its matches; the
        # logits above are still drawn so every other parameter initialises as without it
        if config.count_only:
            del self.num_value
            self.register_buffer("num_value", _fixed_read(hn, n_num, index=0))
        self.num_pred = _logits(hn, k, k, std=1.0)
        # categorical MLPs read 2 categorical variables (this layer's head outputs included)
        self.mlp_read = _logits(mc, 2, n_cat + hc)
        self.mlp_w1 = _logits(mc, 2 * k, d, std=0.5**0.5)
        self.mlp_b1 = nn.Parameter(torch.zeros(mc, d))
        self.mlp_w2 = _logits(mc, d, k, std=d**-0.5)
        self.mlp_b2 = nn.Parameter(torch.zeros(mc, k))
        # numerical MLPs read 2 numerical variables and write a categorical one
        self.num_mlp_read = _logits(mn, 2, n_num + hn)
        self.num_mlp_w1 = _logits(mn, 2, d, std=1.0)
        self.num_mlp_b1 = nn.Parameter(torch.randn(mn, d))
        self.num_mlp_w2 = _logits(mn, d, k, std=d**-0.5)
        self.num_mlp_b2 = nn.Parameter(torch.zeros(mn, k))
        # tables: output logits per count pair [m, a * n_counts + b, k]; filled by the
        # transformer after every other parameter, so those initialise as without tables
        if config.num_mlp_tables:
            for name in ("num_mlp_w1", "num_mlp_b1", "num_mlp_w2", "num_mlp_b2"):
                delattr(self, name)
            self.num_mlp_table = nn.Parameter(torch.zeros(mn, config.n_counts**2, k))
        self.bias: torch.Tensor
        self.register_buffer("bias", position_bias(config.n_ctx), persistent=False)
        # which heads of each kind are causal (all or none unless n_causal_*_heads is set)
        self.cat_causal: torch.Tensor
        self.num_causal: torch.Tensor
        cat_causal = torch.tensor(config.head_causal("cat"), dtype=torch.bool)
        num_causal = torch.tensor(config.head_causal("num"), dtype=torch.bool)
        self.register_buffer("cat_causal", cat_causal, persistent=False)
        self.register_buffer("num_causal", num_causal, persistent=False)

    def causal_mask(self, kind: str) -> bool | torch.Tensor:
        """The ``semantics`` causal argument of the heads of ``kind`` ("cat" or "num"): one
        bool when they all agree, else the per-head flags ``[h]``."""
        flags = self.cat_causal if kind == "cat" else self.num_causal
        mixed = self.config.n_causal_cat_heads or self.config.n_causal_num_heads
        return flags if mixed else self.config.causal

    def selections(
        self, cat: torch.Tensor, num: torch.Tensor, key_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the argmax heads select: integer reads and ``semantics`` selection, exactly.

        ``cat [v, b, n, k]`` one-hot, ``num [u, b, n]``, ``key_mask [b, n]`` -> categorical
        heads' selected key ``[b, hc, q]`` and value read ``[b, hc, n]``, numerical heads'
        match matrix ``[b, hn, q, n]`` and value read ``[b, hn, n]``.
        """
        values_of = cat.argmax(dim=-1)  # [v, b, n]: value of every categorical variable

        def pick(read: torch.Tensor) -> torch.Tensor:  # [h, v] logits -> [b, h, n] values
            return values_of[read.argmax(dim=-1)].transpose(0, 1)

        mask = key_mask.unsqueeze(1)
        selected = select_closest(
            pick(self.cat_key),
            pick(self.cat_query),
            self.cat_pred.argmax(-1),
            self.causal_mask("cat"),
            mask,
        )  # [b, h, q]
        match = match_matrix(
            pick(self.num_key),
            pick(self.num_query),
            self.num_pred.argmax(-1),
            self.causal_mask("num"),
            mask,
        )
        values = num[self.num_value.argmax(dim=-1)].transpose(0, 1)  # [b, h, n]
        return selected, pick(self.cat_value), match, values

    def _heads_argmax(
        self, cat: torch.Tensor, num: torch.Tensor, key_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The program's heads: ``cat [v, b, n, k]`` one-hot, ``num [u, b, n]`` ->
        ``[hc, b, n, k]``, ``[hn, b, n]``."""
        selected, cat_values, match, num_values = self.selections(cat, num, key_mask)
        copied = aggregate(selected, cat_values)  # [b, h, q]
        head_cat = F.one_hot(copied.transpose(0, 1), self.config.d_var).to(cat.dtype)
        head_num = aggregate_sum(match, num_values).transpose(0, 1)  # [h, b, n]
        return head_cat, head_num

    def _heads_soft(
        self,
        cats: list[torch.Tensor],
        nums: list[torch.Tensor],
        key_mask: torch.Tensor,
        sampler: Sampler,
        tau: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Relaxed heads: stream chunks ``[v_i, b, n, k]``, ``[u_i, b, n]`` -> ``[hc, b, n, k]``,
        ``[hn, b, n]``."""
        cat = cats[0]
        _, b, n, k = cat.shape
        hc, hn = self.config.n_cat_heads, self.config.n_num_heads
        allowed = allowed_keys(n, self.config.causal, key_mask).unsqueeze(0)  # [1, b, q, j]
        cat_allowed, num_allowed = (
            self._allowed_per_head(allowed, kind) for kind in ("cat", "num")
        )
        reads = torch.cat(
            [
                sample(p, sampler, tau)
                for p in (
                    self.cat_query,
                    self.cat_key,
                    self.cat_value,
                    self.num_query,
                    self.num_key,
                )
            ]
        )  # [5 slots of heads, v]
        streamed = _read(reads, cats).view(-1, b, n, k)  # [slots, b, n, k]
        q, kk, v, nq, nk = streamed.split([hc, hc, hc, hn, hn], dim=0)
        tau_t = torch.as_tensor(tau, dtype=cat.dtype, device=cat.device)
        if hc:
            noise = torch.zeros(hc, b, n, n, device=cat.device)
            if sampler in ("gumbel_soft", "gumbel_hard"):
                noise = _gumbel_like(noise)
            kernel = get_kernel("cat_heads_soft", self.compiled)
            head_cat = kernel(
                q,
                kk,
                v,
                sample(self.cat_pred, sampler, tau),
                cat_allowed,
                self.bias[:n, :n],
                noise,
                tau_t,
                torch.as_tensor(self.attention_temperature, dtype=cat.dtype, device=cat.device),
            )
        else:
            head_cat = cat.new_zeros(0, b, n, k)
        if hn:
            values = _read(sample(self.num_value, sampler, tau), nums).view(-1, b, n)
            kernel = get_kernel("num_heads_soft", self.compiled)
            head_num = kernel(nq, nk, values, sample(self.num_pred, sampler, tau), num_allowed)
        else:
            head_num = cat.new_zeros(0, b, n)
        return head_cat, head_num

    def _allowed_per_head(self, allowed: torch.Tensor, kind: str) -> torch.Tensor:
        """``allowed [1, b, q, j]`` with the causal mask of ``kind``'s causal heads:
        ``[h, b, q, j]`` when some heads of the model are causal and others not."""
        mask = self.causal_mask(kind)
        if not isinstance(mask, torch.Tensor):
            return allowed
        n = allowed.shape[-1]
        lower = torch.ones(n, n, dtype=torch.bool, device=allowed.device).tril()
        return allowed & (lower | ~mask[:, None, None, None])

    def _mlp(
        self,
        x: torch.Tensor,
        w1: nn.Parameter,
        b1: nn.Parameter,
        w2: nn.Parameter,
        b2: nn.Parameter,
        sampler: Sampler,
        tau: float,
    ) -> torch.Tensor:
        """``x``: ``[m, b*n, d_in]`` -> sampled one-hot outputs ``[m, b*n, k]``."""
        hidden = torch.relu(torch.baddbmm(b1.unsqueeze(1), x, w1))
        logits = torch.baddbmm(b2.unsqueeze(1), hidden, w2)
        return sample(logits, sampler, tau)

    def _table_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Numerical table MLPs' output logits ``[m, r, k]`` for input pairs ``x [m, r, 2]``.

        Each input is clamped to ``[0, n_ctx]`` and spread over its two neighbouring counts
        (weights ``max(0, 1 - |x - c|)``), so an integer pair reads exactly its table row.
        """
        n_counts = self.config.n_counts
        counts = torch.arange(n_counts, dtype=x.dtype, device=x.device)
        near = torch.relu(1 - (x.clamp(0, n_counts - 1).unsqueeze(-1) - counts).abs())
        pairs = near[..., 0, :, None] * near[..., 1, None, :]  # [m, r, n_counts, n_counts]
        return torch.bmm(pairs.flatten(2), self.num_mlp_table)

    def heads(
        self,
        cats: list[torch.Tensor],
        nums: list[torch.Tensor],
        key_mask: torch.Tensor,
        sampler: Sampler,
        tau: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This layer's head outputs ``[hc, b, n, k]``, ``[hn, b, n]`` from the stream chunks
        ``cats`` (``[v_i, b, n, k]``) and ``nums`` (``[u_i, b, n]``)."""
        if sampler == "argmax":
            return self._heads_argmax(torch.cat(cats), torch.cat(nums), key_mask)
        return self._heads_soft(cats, nums, key_mask, sampler, tau)

    def mlps(
        self, cats: list[torch.Tensor], nums: list[torch.Tensor], sampler: Sampler, tau: float
    ) -> torch.Tensor | None:
        """This layer's MLP outputs ``[mc + mn, b, n, k]`` (categorical MLPs first; None when
        the layer has none) from stream chunks that include this layer's head outputs."""
        b, n, k = cats[0].shape[1:]
        new = []
        mc, mn = self.mlp_read.shape[0], self.num_mlp_read.shape[0]
        if mc:
            read = sample(self.mlp_read, sampler, tau).reshape(2 * mc, -1)  # [m*2, v]
            x = _read(read, cats).view(mc, 2, b * n, k).transpose(1, 2).reshape(mc, b * n, 2 * k)
            out = self._mlp(x, self.mlp_w1, self.mlp_b1, self.mlp_w2, self.mlp_b2, sampler, tau)
            new.append(out.view(mc, b, n, k))
        if mn:
            read = sample(self.num_mlp_read, sampler, tau).reshape(2 * mn, -1)
            x = _read(read, nums).view(mn, 2, b * n).transpose(1, 2)
            if self.config.num_mlp_tables:
                out = sample(self._table_logits(x), sampler, tau)
            else:
                out = self._mlp(
                    x,
                    self.num_mlp_w1,
                    self.num_mlp_b1,
                    self.num_mlp_w2,
                    self.num_mlp_b2,
                    sampler,
                    tau,
                )
            new.append(out.view(mn, b, n, k))
        if not new:
            return None
        return torch.cat(new) if len(new) > 1 else new[0]

    def forward(
        self,
        cats: list[torch.Tensor],
        nums: list[torch.Tensor],
        key_mask: torch.Tensor,
        sampler: Sampler,
        tau: float,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Stream chunks ``cats`` (``[v_i, b, n, k]``), ``nums`` (``[u_i, b, n]``), ``key_mask
        [b, n]`` -> the chunk lists with this layer's variables appended.

        The stream is variable-major and kept as a list of chunks in variable order, so
        appending never copies it; a read concatenates the chunks once for one matrix product.
        """
        head_cat, head_num = self.heads(cats, nums, key_mask, sampler, tau)
        cats = [*cats, head_cat]
        nums = [*nums, head_num]
        out = self.mlps(cats, nums, sampler, tau)
        if out is not None:
            cats.append(out)
        return cats, nums


def _read(weights: torch.Tensor, chunks: list[torch.Tensor]) -> torch.Tensor:
    """``weights [s, v]`` over the variables of ``chunks`` (``[v_i, ...]`` in order) -> ``[s, ...]``
    flattened: one matrix product with the chunks concatenated along the variable axis.

    The concatenation is one contiguous copy; measured on one CPU thread it makes a most_freq
    step ~10% faster than a product per chunk summed (chunks hold only 2-4 variables each).
    """
    flat = [chunk.reshape(chunk.shape[0], -1) for chunk in chunks if chunk.shape[0]]
    if not flat or sum(part.shape[0] for part in flat) != weights.shape[1]:
        raise RuntimeError(f"read weights {tuple(weights.shape)} do not fit the stream chunks")
    return weights @ (flat[0] if len(flat) == 1 else torch.cat(flat))


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

    def set_attention_temperature(self, value: float) -> None:
        """Divide relaxed categorical attention logits by ``value`` before the Gumbel noise.

        The authors' implementation divides by sqrt(k); the argmax model (the program) is the
        same for every value.
        """
        if not value > 0:
            raise ValueError(f"attention temperature must be positive, got {value}")
        for layer in self.layers:
            cast(ProgramLayer, layer).attention_temperature = float(value)

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
