"""Model registry: SQLAlchemy models, Alembic migrations shipped in the package, repository API.

Use ``open_registry(config)`` (or ``Registry(url)``); the schema is migrated on first use.
"""

from forex_diffusion.registry.records import (
    CheckpointRecord,
    InferenceLogRecord,
    MetricRecord,
    ModelRecord,
    RunRecord,
)
from forex_diffusion.registry.repository import (
    Registry,
    model_configs_from_sssd,
    open_registry,
)

__all__ = [
    "CheckpointRecord",
    "InferenceLogRecord",
    "MetricRecord",
    "ModelRecord",
    "Registry",
    "RunRecord",
    "model_configs_from_sssd",
    "open_registry",
]
