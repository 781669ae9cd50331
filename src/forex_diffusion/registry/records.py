"""Plain, frozen rows handed out by the repository (never live ORM objects), and JSON helpers."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel

from forex_diffusion.errors import RegistryError


def _jsonable_field(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class _Record:
    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (timestamps as ISO 8601 strings)."""
        assert dataclasses.is_dataclass(self)
        return {f.name: _jsonable_field(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True, slots=True)
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


@dataclasses.dataclass(frozen=True, slots=True)
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


@dataclasses.dataclass(frozen=True, slots=True)
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


@dataclasses.dataclass(frozen=True, slots=True)
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


@dataclasses.dataclass(frozen=True, slots=True)
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


def to_json(value: Any, where: str, finite_only: bool) -> Any:
    """``value`` as plain JSON types, so that what is stored equals what is read back.

    Mappings become dicts with string keys, sequences and arrays (numpy, torch) lists, their
    scalars Python numbers, dates/datetimes ISO strings, paths strings, pydantic models their JSON dump.
    Non-finite floats (JSON has none) raise when ``finite_only`` and become None otherwise.

    Raises:
        RegistryError: a value that has no JSON form, named by its dotted path in ``where``.
    """
    if isinstance(value, BaseModel):
        return to_json(value.model_dump(mode="json"), where, finite_only)
    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # numpy/torch arrays and scalars
        return to_json(value.tolist(), where, finite_only)
    if isinstance(value, enum.Enum):
        return to_json(value.value, where, finite_only)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        if finite_only:
            raise RegistryError(f"{where}: {value} cannot be stored (JSON has no NaN/inf)")
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_json(v, f"{where}.{k}", finite_only) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [to_json(v, f"{where}[{i}]", finite_only) for i, v in enumerate(items)]
    raise RegistryError(
        f"{where}: a {type(value).__name__} cannot be stored as JSON; pass plain numbers, "
        f"strings, lists and dicts"
    )


def json_diff(old: Any, new: Any, path: str = "") -> list[str]:
    """Human-readable differences between two JSON values: ``"a.b: 1 -> 2"``."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines: list[str] = []
        for key in sorted(set(old) | set(new)):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old:
                lines.append(f"{sub}: (absent) -> {new[key]!r}")
            elif key not in new:
                lines.append(f"{sub}: {old[key]!r} -> (absent)")
            else:
                lines.extend(json_diff(old[key], new[key], sub))
        return lines
    if old != new:
        return [f"{path or '<value>'}: {old!r} -> {new!r}"]
    return []
