"""Storing a fitted ensemble: a joblib file under the checkpoint folder, a registry row of its own kind.

The registry's public ``register_model`` takes a ``model_type``; the ensemble is registered
with ``model_type="stacking_ensemble"`` (the UI's algorithm list reads it from the model
records). The artifact path and its SHA-256 go into the row's ``training_config``; loading
refuses a file whose digest differs, so only a file this code wrote is ever unpickled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib

from forex_diffusion.ensemble.stacking import StackingForecaster
from forex_diffusion.errors import CheckpointError, NotFoundError
from forex_diffusion.fileio import atomic_write
from forex_diffusion.models.pool import LinearPool
from forex_diffusion.registry.records import ModelRecord
from forex_diffusion.registry.repository import Registry

MODEL_TYPE = "stacking_ensemble"


@dataclass
class FittedEnsemble:
    """Everything ``ensemble predict`` needs.

    Attributes:
        asset, horizon: what it forecasts (h-minute log return, basis points).
        stack: the fitted point stack.
        pool: CRPS pool weights (components: "sssd" then the baselines), or None.
        baselines: the fitted baseline forecasters of the pool.
        standardizer: the flat features' standardizer (``Standardizer.to_dict()``).
        config_overrides: dotted overrides that rebuild the configuration.
        summary: fit range, out-of-fold metrics, SSSD weight statistics.
    """

    asset: str
    horizon: int
    stack: StackingForecaster
    pool: LinearPool | None
    baselines: list[Any]
    standardizer: dict[str, Any]
    config_overrides: list[str]
    summary: dict[str, Any] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_ensemble(
    ensemble: FittedEnsemble, registry: Registry, directory: Path, name: str
) -> ModelRecord:
    """Write ``directory/ASSET/name/ensemble-<digest>.joblib`` atomically and register it (a
    new version ``name_vN`` when ``name`` exists with another fit). The file is named by its
    content, so a refit never overwrites the artifact of an earlier version."""
    folder = Path(directory) / ensemble.asset / name
    folder.mkdir(parents=True, exist_ok=True)
    staged = atomic_write(folder / "ensemble.joblib.staged", lambda t: joblib.dump(ensemble, t))
    digest = _sha256(staged)
    path = staged.replace(folder / f"ensemble-{digest[:16]}.joblib")
    stack = ensemble.stack
    return registry.register_model(
        ensemble.asset,
        name,
        model_type=MODEL_TYPE,
        architecture_config={
            "members": list(stack.names_),
            "uncertainty_member": stack.uncertainty_member,
            "meta_learner": "ridge",
            "weight_bounds": list(stack.weight_bounds),
            "gamma": stack.gamma_,
            "pool_components": list(ensemble.pool.names) if ensemble.pool else [],
        },
        training_config={"artifact": str(path.resolve()), "sha256": digest, **ensemble.summary},
        feature_config={"flat_features": True, "overrides": ensemble.config_overrides},
        horizon_config={"horizons": [ensemble.horizon]},
        new_version=True,
    )


def load_ensemble(registry: Registry, asset: str, name: str) -> FittedEnsemble:
    """The registered ensemble ``asset``/``name``.

    Raises:
        NotFoundError: unknown model, or a model that is not an ensemble.
        CheckpointError: the artifact is missing or its digest differs from the registry's.
    """
    record = registry.get_model(asset, name)
    if record.model_type != MODEL_TYPE:
        raise NotFoundError(
            f"{record.asset}/{record.model_name} is a {record.model_type!r} model, not a "
            f"{MODEL_TYPE!r}; fit one with `forex-diffusion ensemble fit`"
        )
    path = Path(record.training_config["artifact"])
    if not path.is_file():
        raise CheckpointError(f"ensemble {asset}/{name}: artifact {path} is missing")
    digest = _sha256(path)
    if digest != record.training_config["sha256"]:
        raise CheckpointError(
            f"ensemble {asset}/{name}: {path} does not match the digest recorded in the "
            "registry (changed or replaced); refit it with `forex-diffusion ensemble fit`"
        )
    ensemble = joblib.load(path)
    if not isinstance(ensemble, FittedEnsemble):
        raise CheckpointError(f"ensemble {asset}/{name}: {path} holds no fitted ensemble")
    return ensemble
