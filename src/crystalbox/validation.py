"""Proof that the standardized view is the raw model: load-time checks and the full ``validate``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from crystalbox import _nnsight
from crystalbox.checks import CheckResult
from crystalbox.errors import ValidationError
from crystalbox.method_checks import method_checks
from crystalbox.standard.accessors import stream_swap

if TYPE_CHECKING:
    from crystalbox.loading import LoadedModel
    from crystalbox.standard.model import StandardizedTransformer

PROBE_TEXT = "The quick brown fox jumps over the lazy dog"


@dataclass(frozen=True)
class ValidationReport:
    """Every check run on one model; ``ok`` when all passed."""

    model_type: str
    checks: tuple[CheckResult, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def table(self) -> str:
        width = max((len(c.name) for c in self.checks), default=10)
        lines = [f"validation of {self.model_type}: {'PASS' if self.ok else 'FAIL'}"]
        lines += [
            f"  {'ok  ' if c.passed else 'FAIL'}  {c.name:<{width}}  {c.detail}"
            for c in self.checks
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def probe_inputs(loaded: LoadedModel) -> dict[str, torch.Tensor]:
    """A small deterministic input for ``loaded.model`` (text when a tokenizer exists)."""
    model, tokenizer = loaded.model, loaded.tokenizer
    device = next(model.parameters()).device
    if tokenizer is not None:
        # models whose tokenizer reads no English (programs) name their own probe text
        text = getattr(model.config, "probe_text", None) or PROBE_TEXT
        ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :12]
    else:
        vocab = int(getattr(model.config, "vocab_size", 64))
        ids = (torch.arange(8).unsqueeze(0) * 7 + 3) % max(vocab - 4, 1) + 2
    inputs = {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device)}
    if loaded.task == "seq2seq":
        start = getattr(model.config, "decoder_start_token_id", None) or 0
        inputs["decoder_input_ids"] = torch.full((ids.shape[0], 4), int(start), device=device)
    return inputs


def check_logits_match(
    model: StandardizedTransformer, reference: tuple[dict[str, torch.Tensor], torch.Tensor]
) -> None:
    """Load-time checks: layer shapes, layer chaining, and logits equal to the raw model's
    (computed before crystalbox touched it). Raises ValidationError listing what failed."""
    inputs, raw = reference
    failures = [c for c in _layer_checks(model, inputs, raw) if not c.passed]
    if failures:
        raise ValidationError(
            f"the standardized view of {model.arch.model_type!r} disagrees with the raw model: "
            + "; ".join(f"{c.name}: {c.detail}" for c in failures)
            + ". Pass check=False to load it anyway, and report the architecture."
        )


def validate(model: StandardizedTransformer, *, attention: bool = True) -> ValidationReport:
    """Run every check on ``model`` and return the report (never raises for a failed check)."""
    inputs = probe_inputs(model._loaded)
    checks: list[CheckResult] = [_roles(model)]
    checks += _layer_checks(model, inputs)
    checks.append(_residual_check(model, inputs))
    checks += method_checks(model, inputs)
    if attention:
        checks += _attention_checks(model, inputs)
        checks.append(_head_check(model, inputs))
    if model.encoder_stack is not None:
        checks += _encoder_checks(model, inputs)
    return ValidationReport(model.arch.model_type, tuple(checks))


def tolerance(model: StandardizedTransformer) -> float:
    """Relative tolerance of the numerical checks: 1e-4, or four rounding steps (4 eps) of the
    lowest-precision float dtype among the model's parameters where that is larger (bfloat16:
    0.031, float16: 0.0039). The identities the checks test hold exactly in real arithmetic;
    a wrong mapping misses by whole contributions, far above either."""
    dtypes = {p.dtype for p in model.hf_model.parameters() if p.dtype.is_floating_point}
    eps = max((torch.finfo(d).eps for d in dtypes), default=0.0)
    return max(1e-4, 4 * eps)


def _within(err: float, tol: float) -> str:
    """``max rel err E`` and, where the dtype widens it, the tolerance ``tol``."""
    return f"max rel err {err:.2g}" + (f", tolerance {tol:.2g} for the dtype" if tol > 1e-4 else "")


def _roles(model: StandardizedTransformer) -> CheckResult:
    arch = model.arch
    absent = [r for r in ("ln_final",) if getattr(arch, r) is None]
    detail = f"{arch.source} spec; layers={arch.layers} x{arch.num_layers}"
    if absent:
        detail += f"; declared absent: {', '.join(absent)}"
    return CheckResult("roles resolve", True, detail)


def _layer_checks(
    model: StandardizedTransformer, inputs: dict[str, torch.Tensor], raw: torch.Tensor | None = None
) -> list[CheckResult]:
    active = model.active_layers
    n = len(active)
    ins: list[torch.Tensor] = []
    outs: list[torch.Tensor] = []
    with torch.no_grad():
        if raw is None:
            raw = model.hf_model(**inputs).logits
        with model.trace(dict(inputs)):
            for i in active:
                ins.append(_nnsight.save(model.layers_input[i]))
                outs.append(_nnsight.save(model.layers_output[i]))
            logits = _nnsight.save(model.logits)
    batch, pos = inputs["input_ids"].shape
    if model.kind == "seq2seq":
        pos = inputs["decoder_input_ids"].shape[1]
    expected = _expected_stream_shape(model, batch, pos)
    bad_shapes = [
        active[j]
        for j in range(n)
        if not _shape_matches(outs[j].shape, expected) or not _shape_matches(ins[j].shape, expected)
    ]
    # each running layer's output is the next running layer's input
    chain = [active[j] for j in range(n - 1) if not torch.equal(outs[j], ins[j + 1])]
    diff = (logits.float() - raw.float()).abs().max().item()
    idle = sorted(set(range(model.num_layers)) - set(active))
    return [
        CheckResult(
            "layer shapes",
            not bad_shapes,
            f"all {n} layers {_show(expected)}"
            + (f" (layers {idle} idle on text input)" if idle else "")
            if not bad_shapes
            else f"layers {bad_shapes} differ from {_show(expected)}: "
            f"{list(outs[active.index(bad_shapes[0])].shape)}",
        ),
        CheckResult(
            "layer i output feeds layer i+1",
            not chain,
            "exact for every layer" if not chain else f"differs after layers {chain}",
        ),
        CheckResult("logits == raw HF logits", diff == 0.0, f"max abs diff {diff:.3g}"),
    ]


def _encoder_checks(
    model: StandardizedTransformer, inputs: dict[str, torch.Tensor]
) -> list[CheckResult]:
    """The encoder stack: shapes, chaining, residual identity, attention rows (non-causal)."""
    encoder = model.encoder_stack
    assert encoder is not None
    n = encoder.num_layers
    probe_layers = [i for i in range(n) if encoder.attention_probabilities.available(i)]
    ins: list[torch.Tensor] = []
    outs: list[torch.Tensor] = []
    probs: list[torch.Tensor] = []
    with torch.no_grad(), model.trace(dict(inputs)):
        for i in range(n):
            ins.append(_nnsight.save(encoder.layers_input[i]))
            if i in probe_layers:
                probs.append(_nnsight.save(encoder.attention_probabilities[i]))
            outs.append(_nnsight.save(encoder.layers_output[i]))
    batch, source = inputs["input_ids"].shape
    # some encoders pad the source to a window multiple (LED, Pegasus-X): pos may be longer
    pos = outs[0].shape[1] if outs and outs[0].dim() == 3 and outs[0].shape[1] >= source else source
    expected = (batch, pos, model.hidden_size)
    bad = [
        i for i in range(n) if tuple(outs[i].shape) != expected or tuple(ins[i].shape) != expected
    ]
    chain = [i for i in range(n - 1) if not torch.equal(outs[i], ins[i + 1])]
    checks = [
        CheckResult(
            "encoder layer shapes",
            not bad,
            f"all {n} layers {list(expected)}"
            + (f" (source of {source} padded to {pos})" if pos != source else "")
            if not bad
            else f"layers {bad} differ from {list(expected)}",
        ),
        CheckResult(
            "encoder layer i output feeds layer i+1",
            not chain,
            "exact for every layer" if not chain else f"differs after layers {chain}",
        ),
        _residual_check(model, inputs, encoder),
    ]
    if probs:
        worst = max((p.float().sum(-1) - 1).abs().max().item() for p in probs)
        checks.append(
            CheckResult(
                "encoder attention rows sum to 1",
                worst < tolerance(model),
                f"{len(probs)} layers {list(probs[0].shape)}, max |sum-1| {worst:.2g}",
            )
        )
    return checks


def _head_check(model: StandardizedTransformer, inputs: dict[str, torch.Tensor]) -> CheckResult:
    """Per-head outputs (the output projection's input) == attention probabilities @ values."""
    name = "per-head outputs == probs @ values"
    if model.arch.spec.positions != "tokens":
        return CheckResult(name, True, "not checked: keys are not the input tokens (declared)")
    candidates = [
        i
        for i, layout in enumerate(model._head_layouts)
        if i in model.active_layers
        and layout is not None
        and layout.v is not None
        and model.attention_probabilities.available(i)
    ]
    reasons = {model._head_layouts[i].transformed for i in candidates} - {None}  # type: ignore[union-attr]
    layers = [i for i in candidates if model._head_layouts[i].transformed is None]  # type: ignore[union-attr]
    if candidates and not layers:
        return CheckResult(
            name,
            True,
            f"not applicable: outputs transformed after attention ({', '.join(sorted(reasons))})",  # type: ignore[arg-type]
        )
    if not layers:
        readable = sum(layout is not None for layout in model._head_layouts)
        return CheckResult(
            name,
            True,
            f"not checked: {readable} layers with per-head outputs, none with both "
            "probabilities and a value projection",
        )
    values, probs, outputs = [], [], []
    with torch.no_grad(), model.trace(dict(inputs)):
        for i in layers:
            values.append(_nnsight.save(model.attention_values[i].clone()))
            probs.append(_nnsight.save(model.attention_probabilities[i]))
            outputs.append(_nnsight.save(model.attention_heads_output[i].clone()))
    worst, bad, tol = 0.0, [], tolerance(model)
    for i, v, p, z in zip(layers, values, probs, outputs, strict=True):
        layout = model._head_layouts[i]
        assert layout is not None
        if p.shape[1] != layout.heads or p.shape[-1] != v.shape[1] or z.shape[1] != p.shape[2]:
            bad.append(i)
            continue
        v_full = v.float().repeat_interleave(layout.heads // layout.kv_heads, dim=2)
        expected = torch.einsum("bhqk,bkhd->bqhd", p.float(), v_full)
        err = (expected - z.float()).abs().max().item() / max(z.float().abs().max().item(), 1e-6)
        worst = max(worst, err)
        if err > tol:
            bad.append(i)
    if bad:
        return CheckResult(name, False, f"fails at layers {bad} ({_within(worst, tol)})")
    return CheckResult(name, True, f"{len(layers)} layers ({_within(worst, tol)})")


def _expected_stream_shape(
    model: StandardizedTransformer, batch: int, pos: int
) -> tuple[int | None, ...]:
    """The residual stream's shape as the accessors give it; None where any size is allowed."""
    spec = model.arch.spec
    sizes: dict[str, int | None] = {
        "batch": batch,
        "pos": pos if spec.positions == "tokens" else None,
        "d_model": model.hidden_size,
        "streams": None,
        "streams*d_model": None,
    }
    axes = spec.stream_layout.split()
    swap = stream_swap(spec.stream_layout)
    if swap:  # the accessors transpose these to [batch, pos, ...]
        axes[swap[0]], axes[swap[1]] = axes[swap[1]], axes[swap[0]]
    return tuple(sizes[a] for a in axes)


def _shape_matches(shape: torch.Size, expected: tuple[int | None, ...]) -> bool:
    return len(shape) == len(expected) and all(
        e is None or s == e for s, e in zip(shape, expected, strict=True)
    )


def _show(expected: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("*" if e is None else str(e) for e in expected) + "]"


def _residual_check(
    model: StandardizedTransformer, inputs: dict[str, torch.Tensor], stack: Any = None
) -> CheckResult:
    """Layer output == layer input + the sum of its sub-layers' contributions (of the decoder,
    or of ``stack``: the encoder)."""
    view = model if stack is None else stack
    name = "residual identity" if stack is None else "encoder residual identity"
    arch = view.arch
    form = arch.spec.residual
    if form in _RESIDUAL_WHY:
        return CheckResult(name, True, f"not applicable: {_RESIDUAL_WHY[form]} (declared)")
    accessors = (
        (arch.attention_output, view.attentions_output),
        (arch.mixer_output, view.mixers_output),
        (arch.cross_attention_output, view.cross_attentions_output),
        (arch.mlp_output, view.mlps_output),
    )
    ran = model._execution.order
    idle: list[str] = []
    ins, outs, contributions = [], [], []
    layer_ids = [i for i in range(view.num_layers) if arch.stream_path(i, "input") in ran]
    with torch.no_grad(), model.trace(dict(inputs)):
        for i in layer_ids:
            start = arch.residual_start[i]
            if start is not None and arch.path_in(i, start) in ran:
                envoy = _nnsight.child_envoy(model, arch.path_in(i, start))
                ins.append(_nnsight.save(_nnsight.first_element(envoy.output).clone()))
            else:
                ins.append(_nnsight.save(view.layers_input[i].clone()))
            present = []
            for paths, accessor in accessors:
                path = paths[i]
                if path is None:
                    continue
                full = arch.path_in(i, path)
                if full not in ran:  # e.g. cross-attention without encoder states
                    idle.append(full)
                    continue
                present.append((ran[full], accessor))
            # nnsight reads must follow the model's call order
            contributions.append(
                # clones: some models add into a sub-layer's output in place (Falcon)
                [_nnsight.save(acc[i].clone()) for _, acc in sorted(present, key=lambda p: p[0])]
            )
            outs.append(_nnsight.save(view.layers_output[i]))
    worst, bad, tol = 0.0, [], tolerance(model)
    for j, i in enumerate(layer_ids):
        # OPT and some MoE blocks run their MLP on [batch * pos, d_model]
        parts = [
            t.reshape(outs[j].shape) if t.numel() == outs[j].numel() else t
            for t in contributions[j]
        ]
        if any(t.shape != outs[j].shape for t in parts):
            bad.append(i)  # a contribution of another shape cannot be part of an additive sum
            worst = float("inf")
            continue
        total = ins[j].float() + sum(t.float() for t in parts)
        scale = max(outs[j].float().abs().max().item(), 1.0)
        err = (total - outs[j].float()).abs().max().item() / scale
        worst = max(worst, err)
        if err > tol:
            bad.append(i)
    skipped = f"; {len(idle)} sub-layers idle on text input" if idle else ""
    if bad:
        return CheckResult(
            name, False, f"{form}: fails at layers {bad} ({_within(worst, tol)}){skipped}"
        )
    return CheckResult(
        name, True, f"{form}: in + contributions == out ({_within(worst, tol)}){skipped}"
    )


_RESIDUAL_WHY = {
    "post_norm": "norms after each residual sum",
    "scaled": "branches scaled by config factors",
    "custom": "the layer combines its sub-layers its own way, see the spec notes",
}


def _attention_checks(
    model: StandardizedTransformer, inputs: dict[str, torch.Tensor]
) -> list[CheckResult]:
    layers = [i for i in model.active_layers if model.attention_probabilities.available(i)]
    if not layers:
        return [
            CheckResult(
                "attention probabilities", True, "no probe-able softmax attention (declared)"
            )
        ]
    probs: list[torch.Tensor] = []
    with torch.no_grad():
        with model.trace(dict(inputs)):
            for i in layers:
                probs.append(_nnsight.save(model.attention_probabilities[i]))
            base = _nnsight.save(model.logits)
        layer = layers[len(layers) // 2]
        with model.trace(dict(inputs)):
            p = model.attention_probabilities[layer]
            uniform = torch.tril(torch.ones_like(p))
            model.attention_probabilities[layer] = uniform / uniform.sum(-1, keepdim=True)
            edited = _nnsight.save(model.logits)
    tokens = model.kind != "seq2seq" and model.arch.spec.positions == "tokens"
    q = inputs["input_ids"].shape[1] if tokens else None
    shapes_ok = all(p.dim() == 4 and p.shape[0] == inputs["input_ids"].shape[0] for p in probs)
    if q is not None:
        shapes_ok = shapes_ok and all(p.shape[-2] == q and p.shape[-1] == q for p in probs)
    sums = [p.float().sum(-1) for p in probs]
    sinks = model.arch.spec.attention_sinks
    # with sinks a row may put weight on the sink logit instead of a key: sum in (0, 1]
    worst = max(((s - 1).clamp(min=0) if sinks else (s - 1).abs()).max().item() for s in sums)
    causal = (
        tokens
        and model.kind == "causal"
        and all(getattr(model._probes[i], "causal", True) for i in layers)
    )
    future = max(p.float().triu(1).abs().max().item() for p in probs) if causal else 0.0
    changed = (edited - base).abs().max().item()
    return [
        CheckResult(
            "attention probs shape", shapes_ok, f"{len(layers)} layers, {list(probs[0].shape)}"
        ),
        CheckResult(
            "attention rows sum to <= 1 (sinks)" if sinks else "attention rows sum to 1",
            worst < tolerance(model) and min(s.min().item() for s in sums) > 0,
            f"max excess over 1 {worst:.2g} (declared sink logits)"
            if sinks
            else f"max |sum-1| {worst:.2g}",
        ),
        CheckResult(
            "attention causal" if causal else "attention (non-causal)",
            future == 0.0,
            f"max weight on future keys {future:.2g}"
            if causal
            else (
                "the attention modules declare is_causal=False: all keys visible"
                if tokens or model.kind == "seq2seq"
                else "keys are not the input tokens (declared): causality not checked"
            ),
        ),
        CheckResult(
            "attention write changes logits",
            changed > 0,
            f"layer {layer}: max logit change {changed:.3g}",
        ),
    ]
