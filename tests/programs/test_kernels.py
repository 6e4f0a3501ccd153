"""The relaxed attention kernels against the formula they compute, bit for bit."""

from __future__ import annotations

import pytest
import torch

from crystalbox.programs.kernels import _LOG_EPS, _match, cat_heads_soft
from crystalbox.programs.semantics import position_bias


def _formula(queries, keys, values, pred, allowed, bias, noise, tau, scale):
    """The categorical heads written out on the whole ``[h, b, q, j]`` score tensor (the
    kernel before it was made to touch only the BOS column and fold the mask into the bias)."""
    match = _match(queries, keys, pred) * allowed
    no_match = torch.prod(1.0 - match[..., 1:], dim=-1, keepdim=True)
    bos = torch.zeros(match.shape[-1], dtype=torch.bool)
    bos[0] = True
    match = torch.where(bos, match + (1.0 - match) * no_match, match)
    logits = (torch.log(match + _LOG_EPS) + bias).masked_fill(~allowed, float("-inf"))
    attn = torch.softmax((logits / scale + noise) / tau, dim=-1)
    return torch.matmul(attn, values)


@pytest.mark.parametrize("mask", ["full", "causal", "per-head"])
@pytest.mark.parametrize("tau", [3.0, 0.1, 0.01])
@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_cat_heads_soft_equals_the_formula_in_values_and_gradients(mask, tau, scale):
    torch.manual_seed(0)
    h, b, n, k = 3, 5, 7, 8
    inputs = [torch.softmax(3 * torch.randn(h, b, n, k), -1) for _ in range(3)]
    inputs.append(torch.softmax(3 * torch.randn(h, k, k), -1))
    # head 0, sequence 0: exact one-hots, so query 0 matches every key fully (1 - s_j == 0)
    inputs[0][0, 0, 0] = inputs[1][0, 0] = torch.eye(k)[1]
    inputs[3][0] = torch.eye(k)
    allowed = torch.rand(1, b, n, n) > 0.2
    allowed[..., 0] = True  # BOS is always a key
    if mask == "causal":
        allowed = allowed & torch.ones(n, n, dtype=torch.bool).tril()
    elif mask == "per-head":
        allowed = allowed & (torch.rand(h, 1, n, n) > 0.5) | torch.eye(n, dtype=torch.bool)
        allowed[..., 0] = True
    bias, noise = position_bias(n), -torch.log(-torch.log(torch.rand(h, b, n, n)))
    grad = torch.randn(h, b, n, k)
    results = []
    for kernel, scale_arg in (
        (_formula, torch.tensor(scale)),
        (cat_heads_soft, None if scale == 1.0 else torch.tensor(scale)),
    ):
        leaves = [x.clone().requires_grad_() for x in inputs]
        out = kernel(*leaves, allowed, bias, noise, torch.tensor(tau), scale_arg)
        out.backward(grad)
        results.append([out.detach(), *(leaf.grad for leaf in leaves)])
    for expected, got in zip(*results, strict=True):
        assert torch.equal(got, expected)  # the same numbers, not merely close
