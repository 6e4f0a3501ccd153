"""Transformer Programs seen as transformers (``crystalbox.programs.transformer_view``)."""

from crystalbox.arch.spec import ArchSpec

PROGRAM_MODEL_TYPE = "crystalbox_program"

PROGRAM = ArchSpec(
    model_types=(PROGRAM_MODEL_TYPE,),
    layers="model.layers",
    embed_tokens="model.embed_tokens",
    ln_final="model.norm",
    lm_head="lm_head",
    attention=("self_attn",),
    mlp=("mlp",),
    qkv_layout="none",
    notes=(
        "the disentangled residual stream laid out densely: categorical variable i one-hot in "
        "[i*k, (i+1)*k), numerical variable j at n_cat*k + j; slots stay zero until written",
        "ln_final is the identity (a program has no norms); lm_head is the program's classifier "
        "over the stream, scoring its output classes (other tokens score the lowest float)",
        "attention probabilities are the categorical heads' selections (one-hot rows); "
        "numerical heads count matches and appear only in the attention output",
        "per-head outputs: o_proj is a fixed 0/1 placement of the categorical heads' copied "
        "one-hots; no q/k/v projections (heads read variables by argmax)",
    ),
)

SPECS = (PROGRAM,)
