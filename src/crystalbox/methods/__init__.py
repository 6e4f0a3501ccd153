"""Interpretability methods written once against the standard names."""

from crystalbox.methods.lens import LensResult, logit_lens

__all__ = ["LensResult", "logit_lens"]
