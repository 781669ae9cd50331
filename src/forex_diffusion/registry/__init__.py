"""Model registry: SQLAlchemy rows, Alembic migrations shipped in the package, entity modules
taking a Session, and the ``Registry`` facade over them.

Use ``open_registry(config)`` (or ``Registry(url)``); the schema is migrated on first use.
"""

from forex_diffusion.registry.model_cards import CardHorizon, ModelCard
from forex_diffusion.registry.model_configs import model_configs_from_sssd
from forex_diffusion.registry.records import (
    CheckpointRecord,
    InferenceLogRecord,
    MetricRecord,
    ModelRecord,
    RunRecord,
)
from forex_diffusion.registry.repository import Registry, open_registry

__all__ = [
    "CardHorizon",
    "CheckpointRecord",
    "InferenceLogRecord",
    "MetricRecord",
    "ModelCard",
    "ModelRecord",
    "Registry",
    "RunRecord",
    "model_configs_from_sssd",
    "open_registry",
]
