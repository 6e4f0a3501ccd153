"""One layer of a Transformer Program: categorical and numerical heads, then MLPs.

A layer reads the residual stream as variable-major lists of chunks ``[v_i, batch, pos, k]``
(categorical) and ``[u_i, batch, pos]`` (numerical) and returns its new variables, which the
model appends. With ``sampler="argmax"`` every read, predicate and output is an exact one-hot
and the attention follows ``semantics`` (the argmax path calls it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crystalbox.programs.config import ProgramConfig, n_cat_before, n_num_before
from crystalbox.programs.kernels import get_kernel, preference_order
from crystalbox.programs.samplers import Sampler, _gumbel_like, sample
from crystalbox.programs.semantics import (
    aggregate,
    aggregate_sum,
    allowed_keys,
    match_matrix,
    position_bias,
    select_closest,
)

__all__ = ["ProgramLayer"]


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
        # relaxed categorical heads select by ordered matching (kernels.cat_heads_ordered)
        # while the temperature is below this (training only; 0: never, the paper's)
        self.ordered_below = 0.0
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
        if hc and float(tau) < self.ordered_below:
            order = preference_order(n).to(cat.device)
            kernel = get_kernel("cat_heads_ordered", self.compiled)
            head_cat = kernel(q, kk, v, sample(self.cat_pred, sampler, tau), cat_allowed, order)
        elif hc:
            if sampler in ("gumbel_soft", "gumbel_hard"):
                noise = _gumbel_like(torch.empty(hc, b, n, n, device=cat.device))
            else:
                noise = torch.zeros(hc, b, n, n, device=cat.device)
            scale = self.attention_temperature  # 1 passes None: no division by one
            scale_t = (
                None if scale == 1.0 else torch.tensor(scale, dtype=cat.dtype, device=cat.device)
            )
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
                scale_t,
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
        hidden = torch.relu_(torch.baddbmm(b1.unsqueeze(1), x, w1))  # in place: one pass less
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
