"""Transformer Programs: transformers trained under constraints so they read as programs.

After Friedman, Wettig & Chen, "Learning Transformer Programs" (NeurIPS 2023). The
attention semantics are specified once in ``crystalbox.programs.semantics``; the argmax
model's structure is read out by ``read_discrete``. Importing this package never imports
nnsight or transformers.
"""

from crystalbox.programs.baseline import BaselineConfig, StandardTransformer, train_baseline
from crystalbox.programs.breakdown import AccuracyBreakdown, Cell, accuracy_breakdown
from crystalbox.programs.checkpoint import (
    LoadedProgram,
    TaskInfo,
    checkpoint_data,
    load_program,
    save_loaded,
    save_program,
)
from crystalbox.programs.config import ProgramConfig, VariableSpec, variable_layout
from crystalbox.programs.data import IGNORE, Split, TaskData, encode_inputs, make_data
from crystalbox.programs.discrete import DiscreteHead, DiscreteMLP, DiscreteModel, read_discrete
from crystalbox.programs.grid import GridResult, paper_grid, run_grid
from crystalbox.programs.handwritten import dyck_depth_model, most_freq_rank_model, sharpened
from crystalbox.programs.model import ProgramTransformer
from crystalbox.programs.polish import PolishConfig, PolishEdit, PolishResult, polish_program
from crystalbox.programs.refit import RefitResult, refit_classifier
from crystalbox.programs.samplers import SAMPLERS, Sampler, TemperatureSchedule, sample
from crystalbox.programs.semantics import (
    aggregate,
    aggregate_sum,
    closest_match,
    match_matrix,
    position_bias,
    select_closest,
)
from crystalbox.programs.task_source import load_task
from crystalbox.programs.tasks import (
    PUBLISHED,
    TASKS,
    PublishedConfig,
    Task,
    custom_task,
    dyck_task,
    make_task,
)
from crystalbox.programs.train import (
    RunResult,
    TrainConfig,
    TrainedProgram,
    accuracy,
    default_program_config,
    train_program,
)

__all__ = [
    "IGNORE",
    "PUBLISHED",
    "SAMPLERS",
    "TASKS",
    "AccuracyBreakdown",
    "BaselineConfig",
    "Cell",
    "DiscreteHead",
    "DiscreteMLP",
    "DiscreteModel",
    "GridResult",
    "LoadedProgram",
    "PolishConfig",
    "PolishEdit",
    "PolishResult",
    "ProgramConfig",
    "ProgramTransformer",
    "PublishedConfig",
    "RefitResult",
    "RunResult",
    "Sampler",
    "Split",
    "StandardTransformer",
    "Task",
    "TaskData",
    "TaskInfo",
    "TemperatureSchedule",
    "TrainConfig",
    "TrainedProgram",
    "VariableSpec",
    "accuracy",
    "accuracy_breakdown",
    "aggregate",
    "aggregate_sum",
    "checkpoint_data",
    "closest_match",
    "custom_task",
    "default_program_config",
    "dyck_depth_model",
    "dyck_task",
    "encode_inputs",
    "load_program",
    "load_task",
    "make_data",
    "make_task",
    "match_matrix",
    "most_freq_rank_model",
    "paper_grid",
    "polish_program",
    "position_bias",
    "read_discrete",
    "refit_classifier",
    "run_grid",
    "sample",
    "save_loaded",
    "save_program",
    "select_closest",
    "sharpened",
    "train_baseline",
    "train_program",
    "variable_layout",
]
