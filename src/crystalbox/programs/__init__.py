"""Transformer Programs: transformers trained under constraints so they read as programs.

After Friedman, Wettig & Chen, "Learning Transformer Programs" (NeurIPS 2023). The
attention semantics are specified once in ``crystalbox.programs.semantics``; the argmax
model's structure is read out by ``read_discrete``. Importing this package never imports
nnsight or transformers.
"""

from crystalbox.programs.config import ProgramConfig, VariableSpec, variable_layout
from crystalbox.programs.discrete import DiscreteHead, DiscreteMLP, DiscreteModel, read_discrete
from crystalbox.programs.model import ProgramTransformer
from crystalbox.programs.samplers import SAMPLERS, Sampler, TemperatureSchedule, sample
from crystalbox.programs.semantics import (
    aggregate,
    aggregate_sum,
    closest_match,
    match_matrix,
    position_bias,
    select_closest,
)

__all__ = [
    "SAMPLERS",
    "DiscreteHead",
    "DiscreteMLP",
    "DiscreteModel",
    "ProgramConfig",
    "ProgramTransformer",
    "Sampler",
    "TemperatureSchedule",
    "VariableSpec",
    "aggregate",
    "aggregate_sum",
    "closest_match",
    "match_matrix",
    "position_bias",
    "read_discrete",
    "sample",
    "select_closest",
    "variable_layout",
]
