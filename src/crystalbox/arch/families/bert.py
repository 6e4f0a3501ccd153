"""BERT-style post-norm encoders with a masked-LM head."""

from crystalbox.arch.spec import ArchSpec

BERT = ArchSpec(
    model_types=("bert",),
    layers="bert.encoder.layer",
    embed_tokens="bert.embeddings.word_embeddings",
    ln_final=None,
    lm_head="cls.predictions",
    attention=("attention",),
    mlp=("intermediate",),
    mlp_output=("output.dense",),
    residual="post_norm",
    attention_output=("attention.output.dense",),
    notes=(
        "post-norm: LayerNorm after each residual sum, so the residual identity does not hold",
        "no final norm beside the layers; lm_head is the whole MLM head (transform + decoder)",
        "mlps_input is the input of `intermediate`, mlps_output the output of `output.dense` (before dropout, residual and LayerNorm)",
    ),
)

SPECS = (BERT,)
