"""The relaxed (training) attention as pure tensor functions, optionally compiled.

On CPU, attention of this model is millions of tiny (k x k) products: ``bmm`` over
``batch * heads`` small matrices is dominated by per-matrix overhead, and the broadcast
products are memory-bound. ``torch.compile`` fuses the broadcast-and-sum forms below into
loops (about 8x faster on one thread); without a working compiler the eager versions run.
Layouts: reads arrive as ``[b, n, k, h]`` (what one matmul over the stream produces).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["cat_heads_soft", "get_kernel", "num_heads_soft"]

_LOG_EPS = 1e-4


def _match(queries: torch.Tensor, keys: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """queries, keys ``[b, n, k, h]``, pred ``[h, k, k]`` -> soft match ``[b, h, q, j]``.

    Two matrix products: ``wanted = queries @ pred`` as one ``[h, b*n, k] @ [h, k, k]``
    product, then ``wanted @ keys^T`` batched over ``b * h``.
    """
    b, n, k, h = queries.shape
    q = queries.permute(3, 0, 1, 2).reshape(h, b * n, k)
    # wanted[b, h, q, c] = sum_a queries[b, q, a, h] * pred[h, a, c]
    wanted = torch.bmm(q, pred).view(h, b, n, k).transpose(0, 1)  # [b, h, q, c]
    return torch.matmul(wanted, keys.permute(0, 3, 2, 1))  # [b, h, q, j]


def cat_heads_soft(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    pred: torch.Tensor,
    allowed: torch.Tensor,
    bias: torch.Tensor,
    noise: torch.Tensor,
    tau: torch.Tensor,
) -> torch.Tensor:
    """Relaxed categorical heads -> outputs ``[b, n, k, h]``.

    ``allowed``: ``[b, 1, q, j]`` bool; ``bias``: ``[q, j]``; ``noise``: Gumbel noise
    ``[b, h, q, j]`` (zeros for plain softmax); ``tau``: scalar tensor.
    """
    match = _match(queries, keys, pred) * allowed
    no_match = torch.prod(1.0 - match[..., 1:], dim=-1)
    bos = match[..., 0] + (1.0 - match[..., 0]) * no_match
    match = torch.cat([bos.unsqueeze(-1), match[..., 1:]], dim=-1)
    logits = torch.log(match + _LOG_EPS) + bias
    logits = logits.masked_fill(~allowed, float("-inf"))
    attn = torch.softmax((logits + noise) / tau, dim=-1)  # [b, h, q, j]
    # out[b, q, c, h] = sum_j attn[b, h, q, j] * values[b, j, c, h]
    out = torch.matmul(attn, values.permute(0, 3, 1, 2))  # [b, h, q, c]
    return out.permute(0, 2, 3, 1)


def num_heads_soft(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    pred: torch.Tensor,
    allowed: torch.Tensor,
) -> torch.Tensor:
    """Relaxed numerical heads: values ``[b, n, h]`` -> sums over matches ``[b, n, h]``."""
    match = _match(queries, keys, pred) * allowed  # [b, h, q, j]
    out = torch.matmul(match, values.permute(0, 2, 1).unsqueeze(-1))  # [b, h, q, 1]
    return out.squeeze(-1).permute(0, 2, 1)


_KERNELS: dict[str, Callable[..., torch.Tensor]] = {
    "cat_heads_soft": cat_heads_soft,
    "num_heads_soft": num_heads_soft,
}
_COMPILED: dict[str, Any] = {}


def get_kernel(name: str, compiled: bool) -> Callable[..., torch.Tensor]:
    """The kernel ``name``, compiled with ``torch.compile`` on first use when asked."""
    if not compiled:
        return _KERNELS[name]
    if name not in _COMPILED:
        import torch._dynamo

        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        _COMPILED[name] = torch.compile(_KERNELS[name], dynamic=False)
    return _COMPILED[name]
