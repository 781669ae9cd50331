"""Frozen records handed out by the registry (never live ORM rows), read from the rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class _Record(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (timestamps as ISO 8601 strings)."""
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in self
        }


class ModelRecord(_Record):
    id: int
    asset: str
    model_name: str
    model_type: str
    architecture_config: dict[str, Any]
    training_config: dict[str, Any]
    feature_config: dict[str, Any]
    horizon_config: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class CheckpointRecord(_Record):
    id: int
    model_id: int
    asset: str
    model_name: str
    path: str
    epoch: int
    is_best: bool
    train_loss: float | None
    val_loss: float | None
    val_metrics: dict[str, Any]
    size_bytes: int
    created_at: datetime


class RunRecord(_Record):
    id: int
    model_id: int
    asset: str
    model_name: str
    run_name: str
    status: str
    data_range: dict[str, Any]
    hyperparameters: dict[str, Any]
    error_message: str | None
    best_epoch: int | None
    epochs: int | None
    final_train_loss: float | None
    final_val_loss: float | None
    duration_seconds: float | None
    device: str
    log_path: str | None
    pid: int | None
    host: str | None
    started_at: datetime
    completed_at: datetime | None


class InferenceLogRecord(_Record):
    id: int
    model_id: int
    asset: str
    decision_time: datetime
    horizons: list[int]
    prediction: dict[str, Any]
    inference_time_ms: float
    device: str
    batch_size: int
    num_samples: int
    created_at: datetime


class MetricRecord(_Record):
    id: int
    model_id: int | None
    model_name: str | None  # None for baselines
    method: str
    asset: str
    horizon: int
    window_start: datetime
    window_end: datetime
    metrics: dict[str, Any]
    n_forecasts: int
    created_at: datetime
