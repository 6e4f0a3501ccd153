"""The constrained transformer whose argmax version is a program.

The residual stream is two stacks of named variables (see ``config.variable_layout``):
categorical ``[batch, pos, n_cat, k]`` (one-hot in the argmax model) and numerical
``[batch, pos, n_num]``. Modules append variables; nothing is added into existing ones.
Every choice (which variable a slot reads, each predicate row, the attended key, each MLP
output value) is a sample from logits; with ``sampler="argmax"`` all of them are exact
one-hots and the attention follows ``semantics`` exactly (the argmax path calls it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crystalbox.programs.config import ProgramConfig, n_cat_before, n_num_before
from crystalbox.programs.samplers import Sampler, sample
from crystalbox.programs.semantics import allowed_keys, closest_match, position_bias

__all__ = ["ProgramLayer", "ProgramTransformer"]

_LOG_EPS = 1e-4


def _logits(*shape: int, std: float = 0.1) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * std)


def _read(stream: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Categorical reads: stream ``[b, n, v, k]``, probs ``[h, v]`` -> ``[b, h, n, k]``."""
    return torch.einsum("bnvk,hv->bhnk", stream, probs)


class ProgramLayer(nn.Module):
    """One layer: categorical and numerical heads, then categorical and numerical MLPs."""

    def __init__(self, config: ProgramConfig, layer: int) -> None:
        super().__init__()
        self.config = config
        k, d = config.d_var, config.d_mlp
        n_cat, n_num = n_cat_before(config, layer), n_num_before(config, layer)
        hc, hn, mc, mn = config.n_cat_heads, config.n_num_heads, config.n_cat_mlps, config.n_num_mlps
        # categorical heads: reads over categorical variables, predicate rows over key values
        self.cat_key, self.cat_query, self.cat_value = (_logits(hc, n_cat) for _ in range(3))
        self.cat_pred = _logits(hc, k, k, std=1.0)
        # numerical heads: categorical key/query, numerical value
        self.num_key, self.num_query = _logits(hn, n_cat), _logits(hn, n_cat)
        self.num_value = _logits(hn, n_num)
        self.num_pred = _logits(hn, k, k, std=1.0)
        # categorical MLPs read 2 categorical variables (this layer's head outputs included)
        self.mlp_read = _logits(mc, 2, n_cat + hc)
        self.mlp_w1 = _logits(mc, 2 * k, d, std=(1 / 2) ** 0.5)
        self.mlp_b1 = nn.Parameter(torch.zeros(mc, d))
        self.mlp_w2 = _logits(mc, d, k, std=d**-0.5)
        self.mlp_b2 = nn.Parameter(torch.zeros(mc, k))
        # numerical MLPs read 2 numerical variables and write a categorical one
        self.num_mlp_read = _logits(mn, 2, n_num + hn)
        self.num_mlp_w1 = _logits(mn, 2, d, std=1.0)
        self.num_mlp_b1 = nn.Parameter(torch.randn(mn, d))
        self.num_mlp_w2 = _logits(mn, d, k, std=d**-0.5)
        self.num_mlp_b2 = nn.Parameter(torch.zeros(mn, k))
        self.register_buffer("bias", position_bias(config.n_ctx), persistent=False)

    def _match(
        self,
        cat: torch.Tensor,
        key: nn.Parameter,
        query: nn.Parameter,
        pred: nn.Parameter,
        sampler: Sampler,
        tau: float,
    ) -> torch.Tensor:
        """Soft match ``[b, h, q, j]`` (exact 0/1 under argmax), before masking."""
        keys = _read(cat, sample(key, sampler, tau))
        queries = _read(cat, sample(query, sampler, tau))
        wanted = torch.einsum("bhqa,hac->bhqc", queries, sample(pred, sampler, tau))
        return torch.einsum("bhqc,bhjc->bhqj", wanted, keys)

    def _cat_heads(
        self, cat: torch.Tensor, allowed: torch.Tensor, sampler: Sampler, tau: float
    ) -> torch.Tensor:
        n = cat.shape[1]
        match = self._match(cat, self.cat_key, self.cat_query, self.cat_pred, sampler, tau)
        values = _read(cat, sample(self.cat_value, sampler, tau))  # [b, h, j, k]
        if sampler == "argmax":
            selected = closest_match((match > 0.5) & allowed)  # the specification
            attn = F.one_hot(selected, n).to(values.dtype)
        else:
            match = match * allowed
            no_match = torch.prod(1.0 - match[..., 1:], dim=-1)
            bos = match[..., 0] + (1.0 - match[..., 0]) * no_match
            match = torch.cat([bos.unsqueeze(-1), match[..., 1:]], dim=-1)
            logits = torch.log(match + _LOG_EPS) + self.bias[:n, :n]
            attn = sample(logits.masked_fill(~allowed, float("-inf")), sampler, tau)
        return torch.einsum("bhqj,bhjk->bqhk", attn, values)  # [b, q, h, k]

    def _num_heads(
        self,
        cat: torch.Tensor,
        num: torch.Tensor,
        allowed: torch.Tensor,
        sampler: Sampler,
        tau: float,
    ) -> torch.Tensor:
        match = self._match(cat, self.num_key, self.num_query, self.num_pred, sampler, tau)
        if sampler == "argmax":
            match = (match > 0.5).to(num.dtype)
        match = match * allowed
        values = torch.einsum("bnv,hv->bhn", num, sample(self.num_value, sampler, tau))
        return torch.einsum("bhqj,bhj->bqh", match, values)  # [b, q, h]

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
        """``x``: ``[b, n, m, d_in]`` -> sampled one-hot outputs ``[b, n, m, k]``."""
        hidden = torch.relu(torch.einsum("bnmi,mid->bnmd", x, w1) + b1)
        logits = torch.einsum("bnmd,mdk->bnmk", hidden, w2) + b2
        return sample(logits, sampler, tau)

    def forward(
        self,
        cat: torch.Tensor,
        num: torch.Tensor,
        key_mask: torch.Tensor,
        sampler: Sampler,
        tau: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``cat [b, n, v, k]``, ``num [b, n, u]``, ``key_mask [b, n]`` -> extended streams."""
        b, n = cat.shape[:2]
        allowed = allowed_keys(n, self.config.causal, key_mask).unsqueeze(1)  # [b, 1, q, j]
        head_cat = self._cat_heads(cat, allowed, sampler, tau)
        head_num = self._num_heads(cat, num, allowed, sampler, tau)
        cat = torch.cat([cat, head_cat], dim=2)
        num = torch.cat([num, head_num], dim=2)
        new = []
        if self.mlp_read.shape[0]:
            read = sample(self.mlp_read, sampler, tau)
            x = torch.einsum("bnvk,msv->bnmsk", cat, read).reshape(b, n, read.shape[0], -1)
            new.append(self._mlp(x, self.mlp_w1, self.mlp_b1, self.mlp_w2, self.mlp_b2, sampler, tau))
        if self.num_mlp_read.shape[0]:
            read = sample(self.num_mlp_read, sampler, tau)
            x = torch.einsum("bnv,msv->bnms", num, read)
            new.append(
                self._mlp(
                    x,
                    self.num_mlp_w1,
                    self.num_mlp_b1,
                    self.num_mlp_w2,
                    self.num_mlp_b2,
                    sampler,
                    tau,
                )
            )
        return torch.cat([cat, *new], dim=2), num


class ProgramTransformer(nn.Module):
    """A Transformer Program: one-hot embeddings, program layers, a linear classifier."""

    def __init__(self, config: ProgramConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(ProgramLayer(config, layer) for layer in range(config.n_layers))
        n_cat, n_num = n_cat_before(config, config.n_layers), n_num_before(config, config.n_layers)
        self.classifier_cat = _logits(n_cat, config.d_var, config.n_classes)
        self.classifier_num = _logits(n_num, config.n_classes)

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

    def stream(
        self, tokens: torch.Tensor, sampler: Sampler = "argmax", tau: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Final residual stream: categorical ``[b, n, n_cat, k]``, numerical ``[b, n, n_num]``."""
        self.check_tokens(tokens)
        tokens = tokens.long()
        b, n = tokens.shape
        k = self.config.d_var
        device = self.classifier_num.device
        tokens = tokens.to(device)
        positions = torch.arange(n, device=device).expand(b, n)
        cat = torch.stack([F.one_hot(tokens, k), F.one_hot(positions, k)], dim=2).float()
        num = torch.ones(b, n, 1, device=device)
        key_mask = tokens != self.config.pad_id
        key_mask[:, 0] = True  # BOS is always a key
        for layer in self.layers:
            cat, num = layer(cat, num, key_mask, sampler, tau)
        return cat, num

    def forward(
        self, tokens: torch.Tensor, sampler: Sampler = "argmax", tau: float = 1.0
    ) -> torch.Tensor:
        """Class logits ``[batch, pos, n_classes]``; ``sampler="argmax"`` is the program."""
        cat, num = self.stream(tokens, sampler, tau)
        return torch.einsum("bnvk,vkc->bnc", cat, self.classifier_cat) + torch.einsum(
            "bnu,uc->bnc", num, self.classifier_num
        )

    @torch.no_grad()
    def predict(self, tokens: torch.Tensor) -> torch.Tensor:
        """Class ids ``[batch, pos]`` of the discrete (argmax) model."""
        return self(tokens, "argmax").argmax(dim=-1)
