"""``StandardizedTransformer``: one set of names over any HuggingFace language model, on nnsight."""

from __future__ import annotations

import os
from typing import Any, Literal, cast

import torch
from torch import nn

from crystalbox import _nnsight
from crystalbox.arch.resolve import ResolvedArch, resolve_arch
from crystalbox.errors import ArchitectureError, CrystalboxError, RoleUnavailableError
from crystalbox.loading import PIPELINE_TASK, LoadedModel, load_model
from crystalbox.standard import stack
from crystalbox.standard.accessors import (
    LayerAccessor,
    ModuleAccessor,
    ProbabilityAccessor,
    check_layer,
    stream_swap,
)
from crystalbox.standard.attention_probe import AttentionProbe
from crystalbox.standard.execution import ExecutionTrace, record_execution
from crystalbox.standard.heads import HeadAccessor, resolve_heads
from crystalbox.standard.logits import finish_logits
from crystalbox.standard.positions import InputRecorder, last_positions
from crystalbox.standard.probes import count_calls_hook, disarm_hook, install_every_probe

__all__ = ["StandardizedTransformer"]


class StandardizedTransformer(_nnsight.BaseModel):
    """Wrap a HF model (hub name, local folder, ``nn.Module``, or None for the embedded default).

    Standard names: ``embed_tokens``, ``layers[i]``, ``layers[i].self_attn``, ``layers[i].mlp``,
    ``ln_final``, ``lm_head``; accessors ``layers_input/output``, ``attentions_input/output``,
    ``mlps_input/output``, ``attention_probabilities``, ``token_embeddings``, ``logits``,
    ``next_token_probs``. Every read and write runs on the original HF modules.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | nn.Module | None = None,
        tokenizer: Any | None = None,
        *,
        roles: dict[str, Any] | None = None,
        device_map: str | dict[str, Any] | None = None,
        dtype: Any = None,
        attn_implementation: str | None = None,
        check: bool = True,
        allow_missing_weights: bool = False,
    ) -> None:
        loaded = load_model(
            model,
            tokenizer,
            device_map=device_map,
            dtype=dtype,
            attn_implementation=attn_implementation,
            allow_missing_weights=allow_missing_weights,
        )
        reference, execution = _reference_run(loaded)
        arch = resolve_arch(loaded.model, roles, execution)
        layers = list(loaded.model.get_submodule(arch.layers))
        self._layer_arity = execution.output_arity.get(arch.stream_path(0, "output"), 0)
        self._execution = execution
        attention_modules = stack.attention_modules(loaded.model, arch)
        encoder_attention = (
            stack.attention_modules(loaded.model, arch.encoder) if arch.encoder else []
        )
        every_attention = attention_modules + encoder_attention
        every_probe = install_every_probe(loaded, arch.spec, every_attention, reference)
        if any(every_probe):
            # a trace that fails before reaching an armed layer must not leave it armed
            loaded.model.register_forward_hook(disarm_hook(every_probe), always_call=True)
            loaded.model.register_forward_pre_hook(count_calls_hook(every_probe))
        probes = every_probe[: len(attention_modules)]
        if arch.spec.layers_shared:
            # one module serves several layers: only interface probes can be armed for one call
            probes = [p if isinstance(p, AttentionProbe) else None for p in probes]
        recorder = InputRecorder(loaded.model)
        with _nnsight.quiet_construction():
            super().__init__(
                loaded.model,
                **_nnsight.base_init_kwargs(
                    PIPELINE_TASK[loaded.task], loaded.tokenizer, _rename_map(arch, loaded.model)
                ),
            )
        self._arch = arch
        self._layer_modules = layers
        self.encoder_stack = (
            stack.EncoderStack(self, arch.encoder, encoder_attention, every_probe[len(probes) :])
            if arch.encoder
            else None
        )
        self._loaded = loaded
        self._recorder = recorder
        self._probes = probes
        self._attention_modules = attention_modules
        n = arch.num_layers
        swap = stream_swap(arch.spec.stream_layout)
        pos_first = swap == (0, 1)  # per-head tensors are transposed for this layout only

        def hidden(envoy_of: Any, point: Literal["input", "output"], role: str) -> LayerAccessor:
            return LayerAccessor(envoy_of, point, n, role, swap=swap, occurrence=arch.occurrence)

        self.layers_input = LayerAccessor(
            self._stream_envoy("input"),
            "input",
            n,
            "layer",
            swap=swap,
            occurrence=arch.occurrence,
            read_only=(
                "no module of this architecture's layers takes the whole stream in (declared "
                "layer_input / layer_output): write the previous layer's output "
                "(layers_output[i - 1]) or token_embeddings instead"
            )
            if any(arch.layer_input) or any(arch.layer_output)
            else None,
        )
        self.layers_output = hidden(self._stream_envoy("output"), "output", "layer")
        self.attentions_input = hidden(self._attention_envoy, "input", "attention")
        self.attentions_output = hidden(self._attention_output_envoy, "output", "attention")
        self.attentions = ModuleAccessor(self._attention_envoy, n, "attention")
        self.cross_attentions_input = hidden(
            self._cross_attention_envoy, "input", "cross-attention"
        )
        self.cross_attentions_output = hidden(
            self._cross_attention_output_envoy, "output", "cross-attention"
        )
        self.cross_attentions = ModuleAccessor(self._cross_attention_envoy, n, "cross-attention")
        self.mlps_input = hidden(self._mlp_envoy, "input", "mlp")
        self.mlps_output = hidden(self._mlp_output_envoy, "output", "mlp")
        self.mlps = ModuleAccessor(self._mlp_envoy, n, "mlp")
        self.mixers_input = hidden(self._mixer_envoy, "input", "mixer")
        self.mixers_output = hidden(self._mixer_output_envoy, "output", "mixer")
        self.mixers = ModuleAccessor(self._mixer_envoy, n, "mixer")
        self.routers_output = LayerAccessor(self._router_envoy, "output", n, "router")
        config = getattr(loaded.model, "config", None)
        self._head_layouts = [
            resolve_heads(module, config, arch.spec.qkv_layout) for module in attention_modules
        ]
        shared = arch.occurrence if arch.spec.layers_shared else None
        self.attention_queries = HeadAccessor(
            self._head_layouts, self._attention_envoy, "q", pos_first, shared
        )
        self.attention_keys = HeadAccessor(
            self._head_layouts, self._attention_envoy, "k", pos_first, shared
        )
        self.attention_values = HeadAccessor(
            self._head_layouts, self._attention_envoy, "v", pos_first, shared
        )
        self.attention_heads_output = HeadAccessor(
            self._head_layouts, self._attention_envoy, "z", pos_first, shared
        )
        self.attention_probabilities = ProbabilityAccessor(
            probes,
            [self._probe_envoy(i) if probes[i] is not None else None for i in range(n)],
            n,
            arch.occurrence if arch.spec.layers_shared else None,
        )
        if check:
            from crystalbox.validation import check_logits_match

            check_logits_match(self, reference)

    # ---- structure ------------------------------------------------------------------------
    @property
    def arch(self) -> ResolvedArch:
        """The resolved module paths of every role."""
        return self._arch

    @property
    def hf_model(self) -> nn.Module:
        """The original HuggingFace model (outside traces)."""
        return self._loaded.model

    @property
    def kind(self) -> str:
        """'causal', 'masked' or 'seq2seq'."""
        return self._loaded.task

    @property
    def missing_weights(self) -> tuple[str, ...]:
        """Parameters the checkpoint had no weights for, initialised at random (loaded with
        ``allow_missing_weights=True``); empty for a complete checkpoint."""
        return self._loaded.missing_weights

    @property
    def active_layers(self) -> tuple[int, ...]:
        """Layers that ran on the validation input; a layer missing here runs only with other
        inputs (mLlama's cross-attention layers need an image)."""
        arch = self._arch
        return tuple(
            i for i in range(self.num_layers) if self._execution.ran(arch.stream_path(i, "input"))
        )

    @property
    def num_layers(self) -> int:
        return self._arch.num_layers

    @property
    def num_heads(self) -> int | None:
        return self._arch.num_heads

    @property
    def hidden_size(self) -> int:
        return self._arch.hidden_size

    @property
    def vocab_size(self) -> int:
        return self._arch.vocab_size

    def _root_envoy(self, path: str) -> Any:
        return _nnsight.child_envoy(self, path)

    def _layer_envoy(self, i: int) -> Any:
        return self._root_envoy(self._arch.layers)[i]

    def _stream_envoy(self, point: Literal["input", "output"]) -> Any:
        return lambda i: self._root_envoy(self._arch.stream_path(i, point))

    def _per_layer(self, i: int, path: str | None) -> Any:
        if path is None:
            return None
        return self._root_envoy(self._arch.path_in(i, path))

    def _attention_envoy(self, i: int) -> Any:
        return self._per_layer(i, self._arch.attention[i])

    def _attention_output_envoy(self, i: int) -> Any:
        return self._per_layer(i, self._arch.attention_output[i])

    def _cross_attention_envoy(self, i: int) -> Any:
        return self._per_layer(i, self._arch.cross_attention[i])

    def _cross_attention_output_envoy(self, i: int) -> Any:
        return self._per_layer(i, self._arch.cross_attention_output[i])

    def _mlp_envoy(self, i: int) -> Any:
        return self._per_layer(i, self._arch.mlp[i])

    def _mlp_output_envoy(self, i: int) -> Any:
        return self._per_layer(i, self._arch.mlp_output[i])

    def _mixer_envoy(self, i: int) -> Any:
        return self._per_layer(i, self._arch.mixer[i])

    def _mixer_output_envoy(self, i: int) -> Any:
        return self._per_layer(i, self._arch.mixer_output[i])

    def _router_envoy(self, i: int) -> Any:
        return self._per_layer(i, self._arch.router[i])

    def _probe_envoy(self, i: int) -> Any:
        path = self._arch.attention[i]
        full = self._arch.path_in(i, path) if path else None
        return stack.probe_envoy(self, self._attention_modules[i], full)

    def layer_kinds(self) -> list[str]:
        """What each layer holds: 'attention', 'mixer', or both joined by '+'; MLP/MoE appended."""
        kinds = []
        for i in range(self.num_layers):
            parts = [
                name
                for name, present in (
                    ("attention", self._arch.attention[i]),
                    ("mixer", self._arch.mixer[i]),
                    ("cross_attention", self._arch.cross_attention[i]),
                    ("mlp", self._arch.mlp[i]),
                    ("router", self._arch.router[i]),
                )
                if present
            ]
            kinds.append("+".join(parts) or "none")
        return kinds

    # ---- whole-model accessors (inside a trace) ------------------------------------------
    @property
    def token_embeddings(self) -> Any:
        """Output of the token embedding ``[batch, pos, d_model]`` (assignable)."""
        return self._root_envoy(self._arch.embed_tokens).output

    @token_embeddings.setter
    def token_embeddings(self, value: Any) -> None:
        self._root_envoy(self._arch.embed_tokens).output = value

    @property
    def input_ids(self) -> Any:
        """Token ids ``[batch, pos]`` of this trace (read before any layer)."""
        return self.inputs[1]["input_ids"]

    @property
    def attention_mask(self) -> Any:
        """Attention mask ``[batch, pos]`` of this trace (read before any layer)."""
        kwargs = self.inputs[1]
        mask = kwargs.get("attention_mask")
        return mask if mask is not None else torch.ones_like(kwargs["input_ids"])

    @property
    def input_size(self) -> Any:
        return self.input_ids.shape

    @property
    def logits(self) -> Any:
        """Output logits ``[batch, pos, vocab]``."""
        return self.output.logits

    @property
    def next_token_probs(self) -> Any:
        """Softmax over the vocabulary at each row's last real (non-padding) position ``[batch, vocab]``."""
        logits = self.output.logits
        mask = self._recorder.mask_for(logits.shape[0])
        rows = torch.arange(logits.shape[0], device=logits.device)
        return logits[rows, last_positions(mask).to(logits.device)].softmax(-1)

    # ---- functions usable inside and outside traces ---------------------------------------
    def project_on_vocab(self, hidden: torch.Tensor) -> torch.Tensor:
        """``lm_head(ln_final(hidden))`` (with the family's logit scaling or soft-capping): logits
        ``[..., vocab]`` of any hidden state ``[..., d_model]``."""
        if self._arch.ln_final is not None:
            hidden = self._root_envoy(self._arch.ln_final)(hidden)
        for path in self._arch.spec.pre_head:
            hidden = self._root_envoy(path)(hidden)
        for path in self._arch.spec.pre_head_weights:  # applied functionally by the model
            hidden = hidden @ cast(torch.Tensor, self.hf_model.get_submodule(path).weight)
        logits = self._root_envoy(self._arch.lm_head)(hidden)
        return finish_logits(self._arch.model_type, getattr(self.hf_model, "config", None), logits)

    def get_topk_closest_tokens(
        self, hidden: torch.Tensor, k: int = 10
    ) -> list[list[tuple[str, float]]]:
        """Top-k tokens (and probabilities) of the vocabulary projection of ``hidden`` ``[n, d_model]``."""
        probs = self.project_on_vocab(hidden).softmax(-1)
        values, indices = probs.topk(k, dim=-1)
        return [
            [(self.tokenizer.decode([int(t)]), float(v)) for t, v in zip(row_i, row_v, strict=True)]
            for row_i, row_v in zip(
                indices.reshape(-1, k).tolist(), values.reshape(-1, k).tolist(), strict=True
            )
        ]

    def skip_layer(self, layer: int, skip_with: torch.Tensor | None = None) -> None:
        """Inside a trace: skip ``layer``, passing ``skip_with`` (default: its input) as its output."""
        self.skip_layers(layer, layer, skip_with)

    def skip_layers(self, start: int, end: int, skip_with: torch.Tensor | None = None) -> None:
        """Inside a trace: skip layers ``start..end`` (inclusive); their output is ``skip_with`` or ``start``'s input."""
        start = check_layer(start, self.num_layers)
        end = check_layer(end, self.num_layers)
        if end < start:
            raise ValueError(f"skip_layers: end ({end}) must be >= start ({start})")
        replacement = self.layers_input[start] if skip_with is None else skip_with
        swap = self.layers_output._swap
        raw = replacement.transpose(*swap) if swap else replacement
        for i in range(start, end + 1):
            if (
                self._layer_arity > 1
                or self._arch.layer_output[i] is not None
                or self._arch.spec.layers_shared  # .skip() would skip the module's first call
            ):
                # (a declared layer_output module is not the whole layer: the layer still runs)
                # the layer also returns caches or weights: run it, then replace its hidden states
                self.layers_output[i] = replacement
            else:  # a bare tensor or a 1-tuple: the layer need not run at all
                self._layer_envoy(i).skip((raw,) if self._layer_arity == 1 else raw)

    def resid_mid(self, layer: int) -> Any:
        """Inside a trace: the residual stream between the attention (or mixer) and the MLP of
        ``layer`` ``[batch, pos, d_model]``, as layer input + attention and cross-attention
        contributions (read-only: write ``attentions_output`` or ``mlps_input`` to edit)."""
        i = check_layer(layer, self.num_layers)
        form = self._arch.spec.residual
        if form != "pre_norm":
            raise RoleUnavailableError(
                f"this architecture's residual is {form!r}: there is no additive stream between "
                "its attention and MLP (see model.info())"
            )
        total = self.layers_input[i]
        parts = (
            (self._arch.attention_output, self.attentions_output),
            (self._arch.mixer_output, self.mixers_output),
            (self._arch.cross_attention_output, self.cross_attentions_output),
        )
        for paths, accessor in parts:
            if paths[i] is not None:
                total = total + accessor[i]
        return total

    def steer(
        self,
        layers: int | list[int],
        steering_vector: torch.Tensor,
        factor: float = 1.0,
        token_positions: int | list[int] | slice | None = None,
    ) -> None:
        """Inside a trace: add ``factor * steering_vector`` ``[d_model]`` to the output of ``layers``."""
        vector = torch.as_tensor(steering_vector)
        if vector.shape[-1] != self.hidden_size or vector.dim() != 1:
            raise ValueError(
                f"steering vector must have shape [{self.hidden_size}] (the model's hidden size), "
                f"got {list(vector.shape)}"
            )
        positions = slice(None) if token_positions is None else token_positions
        for layer in [layers] if isinstance(layers, int) else list(layers):
            hidden = self.layers_output[layer]
            hidden[:, positions] += factor * vector.to(hidden.device, hidden.dtype)

    # ---- validation -----------------------------------------------------------------------
    def validation_inputs(self) -> dict[str, torch.Tensor]:
        """The fixed small input the validation runs (a dict to pass to ``trace``)."""
        from crystalbox.validation import probe_inputs

        return probe_inputs(self._loaded)

    def validate(self, **kwargs: Any) -> Any:
        """Run the full validation (see ``crystalbox.validate``) and return the report."""
        from crystalbox.validation import validate

        return validate(self, **kwargs)

    def info(self) -> str:
        """A readable description of the standardized structure."""
        from crystalbox.standard.describe import describe

        return describe(self)


def _rename_map(arch: ResolvedArch, model: nn.Module) -> dict[str, str]:
    rename = {arch.layers: "layers", arch.embed_tokens: "embed_tokens", arch.lm_head: "lm_head"}
    if arch.ln_final is not None:
        rename[arch.ln_final] = "ln_final"
    # a standard name the model already uses for another module stays the model's own
    # (e.g. RoBERTa's ``lm_head`` is the whole head, its ``lm_head.decoder`` the projection)
    taken = {name for name, _ in model.named_children()}
    rename = {path: alias for path, alias in rename.items() if path == alias or alias not in taken}
    for role, alias in (("attention", "self_attn"), ("mlp", "mlp")):
        for path in {p for p in getattr(arch, role) if p}:
            if path != alias and "." not in path:
                rename[path] = alias
    return {_nnsight.envoy_path(key): value for key, value in rename.items() if key != value}


def _reference_run(
    loaded: LoadedModel,
) -> tuple[tuple[dict[str, torch.Tensor], torch.Tensor], ExecutionTrace]:
    """Raw HF logits on a fixed probe input (before anything is installed), and which modules ran."""
    from crystalbox.validation import probe_inputs

    inputs = probe_inputs(loaded)
    _, execution = record_execution(loaded.model, inputs)
    with torch.no_grad():  # hooks can switch off fused paths: the reference is a clean run
        output = loaded.model(**inputs)
    logits = getattr(output, "logits", None)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3:
        name = type(loaded.model).__name__
        got = (
            f"logits {list(logits.shape)}, not [batch, pos, vocab]"
            if isinstance(logits, torch.Tensor)
            else f"no logits ({type(output).__name__})"
        )
        raise ArchitectureError(
            f"{name} returns {got}: it is a model without a "
            "language-model head (a base model or a classifier), and crystalbox reads language "
            "models. Load the checkpoint with its LM head instead (AutoModelForCausalLM or "
            "AutoModelForMaskedLM.from_pretrained), or pass its folder: crystalbox then loads "
            "that head and says whether the checkpoint has its weights"
        )
    if not torch.isfinite(logits).all():
        raise CrystalboxError("the raw model produces non-finite logits on the probe input")
    return (inputs, logits), execution
