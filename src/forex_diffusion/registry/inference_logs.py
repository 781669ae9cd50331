"""Inference logs: one row per served forecast; list the latest, count per model.

Every function takes an open ``Session`` inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from forex_diffusion.registry import models_repo
from forex_diffusion.registry.models import InferenceLogRow, utcnow
from forex_diffusion.registry.records import InferenceLogRecord
from forex_diffusion.registry.values import DateLike, to_json, utc


def log(
    session: Session,
    model_id: int,
    asset: str,
    decision_time: DateLike,
    horizons: Sequence[int],
    prediction: Mapping[str, Any],
    inference_time_ms: float,
    device: str,
    batch_size: int,
    num_samples: int,
) -> InferenceLogRecord:
    """Log one served forecast (non-finite numbers in ``prediction`` are stored as null)."""
    when = utc(decision_time, "decision_time")
    horizon_list = [int(h) for h in horizons]
    payload = to_json(dict(prediction), "prediction", finite_only=False)
    models_repo.by_id_serving(session, model_id, asset, "inference log")
    row = InferenceLogRow(
        model_id=model_id,
        asset=asset,
        decision_time=when,
        horizons=horizon_list,
        prediction=payload,
        inference_time_ms=float(inference_time_ms),
        device=str(device),
        batch_size=int(batch_size),
        num_samples=int(num_samples),
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return InferenceLogRecord.model_validate(row)


def latest(
    session: Session, asset: str | None, model_id: int | None, limit: int
) -> list[InferenceLogRecord]:
    """Latest inference logs first."""
    query = select(InferenceLogRow)
    if asset is not None:
        query = query.where(InferenceLogRow.asset == asset)
    if model_id is not None:
        query = query.where(InferenceLogRow.model_id == model_id)
    query = query.order_by(InferenceLogRow.created_at.desc(), InferenceLogRow.id.desc())
    return [InferenceLogRecord.model_validate(r) for r in session.scalars(query.limit(limit))]


def count(session: Session, model_id: int) -> int:
    query = select(func.count()).where(InferenceLogRow.model_id == model_id)
    return int(session.scalar(query) or 0)
