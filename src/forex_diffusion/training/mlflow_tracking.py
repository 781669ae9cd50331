"""Optional MLflow tracking of a training run (Lightning's ``MLFlowLogger``).

Switched on by ``training.mlflow_uri`` or, when that is unset, the ``MLFLOW_TRACKING_URI``
environment variable. The run gets the per-epoch metrics Lightning logs, the configuration (as
parameters and as ``config.yaml``) and, once the fit has ended, the best checkpoint
(``checkpoints/best.ckpt``). The registry stays the source of truth; MLflow is a mirror for
shops that already use it. ``mlflow`` comes with the ``scale`` extra.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.errors import ConfigError

ENV_MLFLOW_URI = "MLFLOW_TRACKING_URI"
EXPERIMENT = "forex_diffusion"


@dataclass(frozen=True)
class MlflowTracking:
    """The logger to add to the trainer and the callback that logs the files."""

    logger: MLFlowLogger
    callback: Callback


def tracking_uri(config: SSSDConfig) -> str | None:
    """``training.mlflow_uri``, else ``MLFLOW_TRACKING_URI``, else None (no MLflow)."""
    return config.training.mlflow_uri or os.environ.get(ENV_MLFLOW_URI) or None


def mlflow_logging(config: SSSDConfig, run_name: str, best_path: Path) -> MlflowTracking | None:
    """The MLflow logger and artifact callback of a run, or None when tracking is off.

    Raises:
        ConfigError: a tracking URI is set but mlflow is not installed.
    """
    uri = tracking_uri(config)
    if uri is None:
        return None
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"MLflow tracking is on ({uri}) but mlflow is not installed: "
            "pip install -e '.[scale]', or unset training.mlflow_uri / MLFLOW_TRACKING_URI"
        ) from None
    symbol, model = config.asset.symbol, config.model.name
    logger = MLFlowLogger(
        experiment_name=EXPERIMENT,
        run_name=f"{symbol}/{model}/{run_name}",
        tracking_uri=uri,
        tags={"asset": symbol, "model_name": model},
        log_model=False,
    )
    return MlflowTracking(logger, MlflowArtifacts(logger, config, best_path))


class MlflowArtifacts(Callback):
    """Logs the config when the fit starts and the best checkpoint when it ends (rank 0)."""

    def __init__(self, logger: MLFlowLogger, config: SSSDConfig, best_path: Path) -> None:
        self.logger = logger
        self.config = config
        self.best_path = best_path

    @rank_zero_only
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.logger.log_hyperparams(self.config.to_dict())
        self._client().log_text(self.logger.run_id, self.config.to_yaml(), "config.yaml")

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.best_path.is_file():
            self._client().log_artifact(
                self.logger.run_id, str(self.best_path), artifact_path="checkpoints"
            )

    def _client(self) -> Any:
        return self.logger.experiment
