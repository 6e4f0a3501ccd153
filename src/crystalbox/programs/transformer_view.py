"""A Transformer Program seen as a HuggingFace model, so the standardized interface reads it.

The disentangled residual stream is laid out densely, ``[batch, pos, d_model]``: categorical
variable ``i`` (in ``variable_layout`` order) holds its one-hot in ``[i * k, (i + 1) * k)``,
numerical variable ``j`` its value at ``n_cat * k + j``. Each variable's slots stay zero until
its component writes them, so every layer's output is exactly its input plus its attention
output plus its MLP output (a pre-norm residual stream without norms).

Every module calls the program model's own code on the variables it reads from the dense
stream: ``ProgramTransformer.embed``, ``ProgramLayer.selections`` (the ``semantics``
selection), ``ProgramLayer.mlps`` and the classifier ``ProgramTransformer._classify``. The
program's parameters are shared, not copied. Categorical heads copy their value through one-hot
attention probabilities made by a softmax (selected key 0, every other key -inf, so exactly the
program's selection), which the standardized interface reads and writes as
``attention_probabilities``; numerical heads count their matches, so they have no probabilities
and appear only in the attention output.

The language-model head scores the program's output classes; its vocabulary is the input
vocabulary followed by the output classes that are not input tokens, and tokens that are no
output class score the lowest float. A causal program is a causal LM here, any other a masked
LM (its heads see the whole sequence). This module imports transformers; ``crystalbox.programs``
does not import it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedConfig, PreTrainedModel, PreTrainedTokenizerFast
from transformers.modeling_outputs import MaskedLMOutput

from crystalbox.arch.families.programs import PROGRAM_MODEL_TYPE
from crystalbox.programs.checkpoint import load_program
from crystalbox.programs.config import ProgramConfig, n_cat_before, n_num_before, variable_layout
from crystalbox.programs.model import ProgramLayer, ProgramTransformer
from crystalbox.programs.semantics import aggregate_sum
from crystalbox.programs.tasks import BOS, EOS, PAD

__all__ = [
    "MODEL_TYPE",
    "ProgramHFConfig",
    "TransformerView",
    "as_transformer",
    "program_tokenizer",
    "program_vocab",
]

MODEL_TYPE = PROGRAM_MODEL_TYPE


class _Vocabularies(Protocol):  # a Task, a checkpoint's TaskInfo, or alike
    @property
    def name(self) -> str: ...
    @property
    def input_vocab(self) -> tuple[str, ...]: ...
    @property
    def output_vocab(self) -> tuple[str, ...]: ...


class ProgramHFConfig(PreTrainedConfig):
    """HF config of a program view: the program's configuration and its vocabularies."""

    model_type = MODEL_TYPE
    program: dict[str, Any] | None = None
    input_vocab: list[str] | None = None
    output_vocab: list[str] | None = None
    task_name: str = "program"
    probe_text: str | None = None  # a valid input, for the standardized interface's checks
    hidden_size: int = 0
    num_hidden_layers: int = 0
    num_attention_heads: int = 0
    vocab_size: int = 0
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    tie_word_embeddings: bool = False


@dataclass(frozen=True)
class TransformerView:
    """A program as a HF model (``model``) with a word-level ``tokenizer`` for its tokens."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast


def as_transformer(source: Any, task: _Vocabularies | None = None) -> TransformerView:
    """``source`` (a checkpoint folder, a ``LoadedProgram``/``TrainedProgram``, or a
    ``ProgramTransformer`` with its ``task``) as a HF model sharing the program's parameters.

    ``StandardizedTransformer(view.model, tokenizer=view.tokenizer)`` then reads it; a
    checkpoint folder can also be given to ``StandardizedTransformer`` directly.
    """
    info: _Vocabularies
    if isinstance(source, (str, os.PathLike)):
        loaded = load_program(Path(source))
        program, info = loaded.model, loaded.task
    elif isinstance(source, ProgramTransformer):
        if task is None:
            raise TypeError(
                "a ProgramTransformer does not know its vocabularies; pass task=... (the Task "
                "it was trained on) or give the checkpoint folder / TrainedProgram instead"
            )
        program, info = source, task
    elif isinstance(getattr(source, "model", None), ProgramTransformer) and hasattr(source, "task"):
        program, info = source.model, task or source.task
    else:
        raise TypeError(
            "as_transformer takes a programs checkpoint folder, a LoadedProgram, a TrainedProgram "
            f"or a ProgramTransformer with task=..., not {type(source).__name__}"
        )
    _check_vocabularies(program.config, info)
    vocab = program_vocab(info.input_vocab, info.output_vocab)
    config = ProgramHFConfig(
        program=program.config.to_dict(),
        input_vocab=list(info.input_vocab),
        output_vocab=list(info.output_vocab),
        task_name=info.name,
        hidden_size=StreamLayout.of(program.config).d_model,
        num_hidden_layers=program.config.n_layers,
        num_attention_heads=program.config.n_cat_heads,
        vocab_size=len(vocab),
        probe_text=_probe_text(info, program.config.n_ctx),
        pad_token_id=vocab.index(PAD),
        bos_token_id=vocab.index(BOS),
    )
    _register_auto_classes()
    model_class = ProgramForCausalLM if program.config.causal else ProgramForMaskedLM
    model = model_class(config, program)
    model.eval()
    return TransformerView(model, program_tokenizer(info))


def _register_auto_classes() -> None:
    """Make transformers' auto classes (and so its pipelines) know the view's classes."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM

    try:
        AutoConfig.register(MODEL_TYPE, ProgramHFConfig)
    except ValueError:  # registered before, by an earlier call
        return
    AutoModelForCausalLM.register(ProgramHFConfig, ProgramForCausalLM)
    AutoModelForMaskedLM.register(ProgramHFConfig, ProgramForMaskedLM)


def _probe_text(info: _Vocabularies, n_ctx: int) -> str:
    """The input symbols in turn, as many as fit the context beside BOS (and EOS)."""
    symbols = [t for t in info.input_vocab if t not in (PAD, BOS, EOS)]
    room = n_ctx - 1 - (EOS in info.input_vocab)
    return " ".join(symbols[i % len(symbols)] for i in range(room))


def program_vocab(input_vocab: Sequence[str], output_vocab: Sequence[str]) -> list[str]:
    """The view's vocabulary: input tokens (same ids as the program's), then output-only ones."""
    return [*input_vocab, *(t for t in output_vocab if t not in input_vocab)]


def program_tokenizer(info: _Vocabularies) -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer of the program's tokens that adds BOS (and EOS when
    the task has one) and pads on the right, as the program's data are encoded."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = program_vocab(info.input_vocab, info.output_vocab)
    ids = {token: i for i, token in enumerate(vocab)}
    backend = Tokenizer(models.WordLevel(ids, unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    eos = EOS in info.input_vocab
    template = f"{BOS} $A" + (f" {EOS}" if eos else "")
    specials = [(BOS, ids[BOS])] + ([(EOS, ids[EOS])] if eos else [])
    backend.post_processor = processors.TemplateProcessing(single=template, special_tokens=specials)
    return ProgramTokenizer(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS if eos else None,
        pad_token=PAD,
        padding_side="right",
        model_max_length=None,
        clean_up_tokenization_spaces=False,
    )


class ProgramTokenizer(PreTrainedTokenizerFast):
    """The fast word-level tokenizer, with a clear error for a word outside the vocabulary."""

    def _encode_plus(self, text: Any, *args: Any, **kwargs: Any) -> Any:
        texts = [text] if isinstance(text, str) else text
        known = self.get_vocab()
        for item in texts if isinstance(texts, (list, tuple)) else ():
            words = item.split() if isinstance(item, str) else list(item)
            unknown = [w for w in words if isinstance(w, str) and w not in known]
            if unknown:
                raise ValueError(
                    f"token {unknown[0]!r} is not in the program's vocabulary "
                    f"{sorted(known, key=known.__getitem__)}; write inputs as space-separated "
                    "tokens of that vocabulary"
                )
        return super()._encode_plus(text, *args, **kwargs)


def _check_vocabularies(config: ProgramConfig, info: _Vocabularies) -> None:
    if (len(info.input_vocab), len(info.output_vocab)) != (config.vocab_size, config.n_classes):
        raise ValueError(
            f"task {info.name!r} has {len(info.input_vocab)} input tokens and "
            f"{len(info.output_vocab)} output classes, but the program reads {config.vocab_size} "
            f"and writes {config.n_classes}; pass the task the program was trained on"
        )
    if info.input_vocab[config.pad_id] != PAD or BOS not in info.input_vocab:
        raise ValueError(
            f"task {info.name!r}'s input vocabulary {list(info.input_vocab)} lacks {PAD!r} at "
            f"the program's pad id {config.pad_id} or {BOS!r}; pass the task it was trained on"
        )


@dataclass(frozen=True)
class StreamLayout:
    """Where each variable lives in the dense stream ``[batch, pos, d_model]``."""

    k: int
    n_cat: int  # categorical variables of the final stream
    n_num: int

    @classmethod
    def of(cls, config: ProgramConfig) -> StreamLayout:
        cat, num = variable_layout(config)
        return cls(config.d_var, len(cat), len(num))

    @property
    def d_model(self) -> int:
        return self.n_cat * self.k + self.n_num

    def read(
        self, hidden: torch.Tensor, n_cat: int, n_num: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n_cat`` categorical ``[v, b, n, k]`` and ``n_num`` numerical
        ``[u, b, n]`` variables of ``hidden [b, n, d_model]``, as contiguous copies: the
        program computes on contiguous chunks, and on some CPUs (AVX-512 with AMX) a strided
        operand takes another matrix-product kernel, which rounds differently."""
        b, n, _ = hidden.shape
        cat = hidden[..., : n_cat * self.k].reshape(b, n, n_cat, self.k).permute(2, 0, 1, 3)
        start = self.n_cat * self.k
        num = hidden[..., start : start + n_num].permute(2, 0, 1)
        return cat.contiguous(), num.contiguous()

    def write(
        self,
        like: torch.Tensor,
        cat: torch.Tensor | None = None,
        cat_from: int = 0,
        num: torch.Tensor | None = None,
        num_from: int = 0,
    ) -> torch.Tensor:
        """A stream of zeros shaped ``like`` with categorical variables ``cat [v, b, n, k]``
        from index ``cat_from`` and numerical ``num [u, b, n]`` from ``num_from`` filled in."""
        out = torch.zeros_like(like)
        if cat is not None and len(cat):
            span = slice(cat_from * self.k, (cat_from + len(cat)) * self.k)
            out[..., span] = cat.permute(1, 2, 0, 3).flatten(2).to(out.dtype)
        if num is not None and len(num):
            start = self.n_cat * self.k + num_from
            out[..., start : start + len(num)] = num.permute(1, 2, 0).to(out.dtype)
        return out


class ProgramEmbedding(nn.Module):
    """Token ids ``[b, n]`` -> the stream before layer 0: tokens, positions and ones."""

    def __init__(self, program: ProgramTransformer, layout: StreamLayout) -> None:
        super().__init__()
        self._program = [program]  # a reference, not a submodule: the root owns the program
        self.layout = layout

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        cats, nums, _ = self._program[0].embed(input_ids)
        like = torch.empty(*input_ids.shape, self.layout.d_model, device=cats[0].device)
        return self.layout.write(like, cats[0], 0, nums[0], 0)


class ProgramAttention(nn.Module):
    """One layer's heads: categorical heads copy through one-hot attention probabilities
    ``[b, heads, q, k]`` into per-head outputs ``[b, q, heads * k]``, which ``o_proj`` (a fixed
    0/1 matrix) places into their variables' slots; numerical heads count and write theirs."""

    def __init__(self, layer: ProgramLayer, index: int, layout: StreamLayout) -> None:
        super().__init__()
        self._layer = [layer]
        self.layout = layout
        config = layer.config
        self.num_heads = config.n_cat_heads
        self.is_causal = config.causal
        self.cat_from, self.num_from = n_cat_before(config, index), n_num_before(config, index)
        k, heads = layout.k, config.n_cat_heads
        self.o_proj = nn.Linear(heads * k, layout.d_model, bias=False)
        placement = torch.zeros(layout.d_model, heads * k)
        placement[self.cat_from * k : (self.cat_from + heads) * k].copy_(torch.eye(heads * k))
        self.o_proj.weight.data.copy_(placement)
        self.o_proj.weight.requires_grad_(False)  # structure, not a parameter of the program

    def forward(self, hidden: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        layer = self._layer[0]
        cat, num = self.layout.read(hidden, self.cat_from, self.num_from)
        selected, cat_values, match, num_values = layer.selections(cat, num, key_mask)
        b, hc, n = cat_values.shape
        head_num = aggregate_sum(match, num_values).transpose(0, 1)  # [heads, b, q]
        out = self.layout.write(hidden, None, 0, head_num, self.num_from)
        if not hc:
            return out
        scores = hidden.new_full((b, hc, n, n), float("-inf"))
        scores.scatter_(-1, selected.unsqueeze(-1), 0.0)
        probs = torch.softmax(scores, dim=-1)  # [b, heads, q, k]: the selection, one-hot
        copied = probs @ F.one_hot(cat_values, self.layout.k).to(probs.dtype)  # [b, h, q, k]
        return out + self.o_proj(copied.transpose(1, 2).flatten(2))  # exact: 0/1 products


class ProgramMLP(nn.Module):
    """One layer's categorical and numerical MLPs (read two variables, write one each)."""

    def __init__(self, layer: ProgramLayer, index: int, layout: StreamLayout) -> None:
        super().__init__()
        self._layer = [layer]
        self.layout = layout
        config = layer.config
        self.cat_in = n_cat_before(config, index) + config.n_cat_heads
        self.num_in = n_num_before(config, index) + config.n_num_heads

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        cat, num = self.layout.read(hidden, self.cat_in, self.num_in)
        out = self._layer[0].mlps([cat], [num], "argmax", 1.0)
        return self.layout.write(hidden, out, self.cat_in)


class ProgramBlock(nn.Module):
    """``out = in + self_attn(in) + mlp(in + self_attn(in))``."""

    def __init__(self, layer: ProgramLayer, index: int, layout: StreamLayout) -> None:
        super().__init__()
        self.self_attn = ProgramAttention(layer, index, layout)
        self.mlp = ProgramMLP(layer, index, layout)

    def forward(self, hidden: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        hidden = hidden + self.self_attn(hidden, key_mask)
        return hidden + self.mlp(hidden)


class ProgramClassifier(nn.Module):
    """The program's linear classifier over the whole stream, scattered onto the vocabulary."""

    def __init__(
        self,
        program: ProgramTransformer,
        layout: StreamLayout,
        vocab_size: int,
        class_ids: list[int],
    ) -> None:
        super().__init__()
        self._program = [program]
        self.layout = layout
        self.vocab_size = vocab_size
        self.class_ids: torch.Tensor
        self.register_buffer("class_ids", torch.tensor(class_ids), persistent=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden [..., d_model]`` (any leading axes, as a lens passes them) -> ``[..., vocab]``."""
        lead = hidden.shape[:-1]
        flat = hidden.reshape(-1, 1, hidden.shape[-1])  # [b, 1, d_model]
        cat, num = self.layout.read(flat, self.layout.n_cat, self.layout.n_num)
        scores = self._program[0]._classify([cat], [num])  # [b, 1, classes]
        logits = scores.new_full(
            (*scores.shape[:2], self.vocab_size), torch.finfo(scores.dtype).min
        )
        return logits.index_copy(-1, self.class_ids, scores).view(*lead, self.vocab_size)


class ProgramBody(nn.Module):
    """``embed_tokens``, ``layers``, ``norm`` (the identity: a program has no norms)."""

    def __init__(self, program: ProgramTransformer, layout: StreamLayout) -> None:
        super().__init__()
        self.embed_tokens = ProgramEmbedding(program, layout)
        self.layers = nn.ModuleList(
            ProgramBlock(cast("ProgramLayer", layer), i, layout)
            for i, layer in enumerate(program.layers)
        )
        self.norm = nn.Identity()


class _ProgramModel(PreTrainedModel):
    config_class = ProgramHFConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"

    def __init__(self, config: ProgramHFConfig, program: ProgramTransformer) -> None:
        super().__init__(config)
        layout = StreamLayout.of(program.config)
        vocab = program_vocab(config.input_vocab or [], config.output_vocab or [])
        self.vocab = vocab
        self.program = program  # the one owner of the parameters (never called itself)
        self.model = ProgramBody(program, layout)
        self.lm_head = ProgramClassifier(
            program, layout, len(vocab), [vocab.index(t) for t in config.output_vocab or []]
        )

    def _init_weights(self, module: nn.Module) -> None:
        """Nothing to initialise: every parameter is the trained program's."""

    def save_pretrained(self, *_: Any, **__: Any) -> None:
        """Refused: a view is not saved as a HF model (it could not be loaded back)."""
        raise NotImplementedError(
            "a program's transformer view is not saved as a HuggingFace model; save the program "
            "with crystalbox.programs.save_program (a LoadedProgram with save_loaded): its "
            "checkpoint folder loads back as this view with StandardizedTransformer(FOLDER)"
        )

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: Any
    ) -> MaskedLMOutput:
        """Logits ``[b, n, vocab]``; padding is read from the pad token (as the program does),
        not from ``attention_mask``."""
        self._check_inputs(input_ids)
        key_mask = self.program.key_mask(input_ids)
        hidden = self.model.embed_tokens(input_ids)
        for block in self.model.layers:
            hidden = block(hidden, key_mask)
        return MaskedLMOutput(logits=self.lm_head(self.model.norm(hidden)))

    def _check_inputs(self, input_ids: torch.Tensor) -> None:
        """``ValueError`` for an output-only class given as input (other ids: the program's
        own checks)."""
        n_inputs = self.program.config.vocab_size
        outputs_only = input_ids[(input_ids >= n_inputs) & (input_ids < len(self.vocab))]
        if outputs_only.numel():
            raise ValueError(
                f"token {self.vocab[int(outputs_only[0])]!r} is an output class of the program, "
                f"not an input token; it reads only {self.vocab[:n_inputs]} (generation ends "
                "where the program predicts a class that is not an input token)"
            )


class ProgramForMaskedLM(_ProgramModel):
    """A non-causal program (its heads see the whole sequence) as a masked LM."""


class ProgramForCausalLM(_ProgramModel, GenerationMixin):
    """A causal program as a causal LM (generation appends the top output class while it is
    an input token and the context has room)."""
