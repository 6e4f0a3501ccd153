"""The library's exception hierarchy: every error crystalbox raises on purpose derives from these."""

from __future__ import annotations


class CrystalboxError(Exception):
    """Base class of every error crystalbox raises deliberately."""


class ModelNotFoundError(CrystalboxError, ValueError):
    """A model name is neither a known short name, a local folder, nor in the offline cache."""


class ArchitectureError(CrystalboxError, ValueError):
    """An architecture's roles (layers, attention, MLP, ...) cannot be resolved."""


class RoleUnavailableError(CrystalboxError, AttributeError):
    """A role is declared absent for this architecture or this layer (e.g. attention of an SSM layer)."""


class ValidationError(CrystalboxError):
    """The standardized view disagrees with the raw HuggingFace model."""


class CheckpointError(CrystalboxError, ValueError):
    """A saved artefact is missing, corrupted, or from an incompatible version."""
