"""The relaxed attention kernels against the formula they compute, bit for bit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from crystalbox.programs.kernels import (
    _LOG_EPS,
    _match,
    cat_heads_ordered,
    cat_heads_soft,
    preference_order,
)
from crystalbox.programs.semantics import allowed_keys, position_bias, select_closest


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


def _ordered_formula(match: torch.Tensor) -> torch.Tensor:
    """Ordered matching written out key by key in float64: ``match [h, b, q, j]`` ->
    attention ``[h, b, q, j]`` (keys visited in the program's preference order)."""
    h, b, n, _ = match.shape
    attn = torch.zeros(h, b, n, n, dtype=torch.float64)
    for q in range(n):
        none_yet = torch.ones(h, b, dtype=torch.float64)
        for j in sorted(range(n), key=lambda j: (j == q, abs(q - j), j)):  # semantics' order
            s = match[:, :, q, j].double()
            attn[:, :, q, j] += none_yet * s
            none_yet = none_yet * (1 - s)
        attn[:, :, q, 0] += none_yet  # nothing matched: BOS
    return attn


@pytest.mark.parametrize("mask", ["full", "causal", "per-head"])
def test_cat_heads_ordered_is_the_program_on_one_hots_and_the_formula_on_soft_reads(mask):
    torch.manual_seed(1)
    h, b, n, k = 3, 40, 9, 4
    allowed = torch.rand(1, b, n, n) > 0.2
    allowed[..., 0] = True
    causal: bool | torch.Tensor = False
    if mask == "causal":
        causal = True
    elif mask == "per-head":
        causal = torch.tensor([True, False, True])
    key_mask = allowed[0, :, 0, :].unsqueeze(1)  # [b, 1, j]: padding, per sequence
    # the program's layout is [b, h, ...]; the kernel's [h, b, ...]
    allowed = allowed_keys(n, causal, key_mask).expand(b, h, n, n).transpose(0, 1)
    order = preference_order(n)
    # one-hot reads and predicates: exactly the program's selection
    qv, kv, vv = (torch.randint(0, k, (h, b, n)) for _ in range(3))
    pred = torch.randint(0, k, (h, k))
    one_hot = [F.one_hot(x, k).float() for x in (qv, kv, vv)]
    out = cat_heads_ordered(*one_hot, F.one_hot(pred, k).float(), allowed.float(), order)
    selected = select_closest(kv.transpose(0, 1), qv.transpose(0, 1), pred, causal, key_mask)
    copied = torch.gather(vv, -1, selected.transpose(0, 1))
    assert torch.equal(out, F.one_hot(copied, k).float())
    # soft reads: the formula, and the attention sums to one
    soft = [torch.softmax(2 * torch.randn(h, b, n, k), -1) for _ in range(3)]
    soft_pred = torch.softmax(2 * torch.randn(h, k, k), -1)
    values = torch.eye(n)[None, None].expand(h, b, n, n)  # value j is the one-hot of j
    attn = cat_heads_ordered(soft[0], soft[1], values, soft_pred, allowed.float(), order)
    expected = _ordered_formula(_match(soft[0], soft[1], soft_pred) * allowed)
    torch.testing.assert_close(attn.double(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(attn.sum(-1), torch.ones(h, b, n))


def test_preference_order_is_the_semantics_order():
    n = 6
    order = preference_order(n)
    for q in range(n):
        ranked = sorted(range(n), key=lambda j: (j == q, abs(q - j), j))
        assert order[q].tolist() == ranked
