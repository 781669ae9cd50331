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


class AuthError(ForexDiffusionError, PermissionError):
    """A request to the HTTP service lacks the configured bearer token (or has a wrong one)."""


class LimitError(ForexDiffusionError, ValueError):
    """A request exceeds one of the service's bounds (body size, candles, samples, steps)."""


class BusyError(ForexDiffusionError, RuntimeError):
    """The service is at capacity (full request queue, or the job limit reached)."""


class JobError(ForexDiffusionError, RuntimeError):
    """A background job cannot be started, found in that state, or cancelled."""
