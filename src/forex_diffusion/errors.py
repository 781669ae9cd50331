"""Exceptions shared by every layer. Each message names the problem, the place and what to do."""

from __future__ import annotations


class ForexDiffusionError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(ForexDiffusionError, ValueError):
    """A configuration file or override is invalid."""


class DataError(ForexDiffusionError, ValueError):
    """Candles or a data file are malformed, empty or insufficient."""


class NotFoundError(ForexDiffusionError, LookupError):
    """An asset, model or checkpoint does not exist."""


class CheckpointError(ForexDiffusionError, ValueError):
    """A checkpoint is corrupted, foreign or incompatible."""


class RegistryError(ForexDiffusionError, RuntimeError):
    """The model registry database cannot be used."""
