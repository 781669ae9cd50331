"""Performance metrics of models and of baselines (rows without a model); the latest per method.

Every function takes an open ``Session`` inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, joinedload

from forex_diffusion.errors import RegistryError
from forex_diffusion.registry import models_repo
from forex_diffusion.registry.models import MetricRow, utcnow
from forex_diffusion.registry.records import MetricRecord
from forex_diffusion.registry.values import DateLike, to_json, utc


def record(
    session: Session,
    model_id: int | None,
    method: str,
    asset: str,
    horizon: int,
    window_start: DateLike,
    window_end: DateLike,
    metrics: Mapping[str, Any],
    n_forecasts: int,
) -> MetricRecord:
    """Store one evaluation result; ``model_id`` None for a baseline (e.g. method "garch")."""
    start, end = utc(window_start, "window_start"), utc(window_end, "window_end")
    if end < start:
        raise RegistryError(f"metrics for {asset}: window_end {end} is before {start}")
    if int(horizon) <= 0 or int(n_forecasts) < 0:
        raise RegistryError(
            f"metrics for {asset}: horizon ({horizon}) must be > 0 and n_forecasts "
            f"({n_forecasts}) >= 0"
        )
    values = to_json(dict(metrics), "metrics", finite_only=False)
    if model_id is not None:
        models_repo.by_id_serving(session, model_id, asset, "metrics")
    row = MetricRow(
        model_id=model_id,
        method=str(method),
        asset=asset,
        horizon=int(horizon),
        window_start=start,
        window_end=end,
        metrics=values,
        n_forecasts=int(n_forecasts),
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return MetricRecord.model_validate(row)


def _newest_per_method(session: Session, *where: ColumnElement[bool]) -> list[MetricRecord]:
    """The newest row per (asset, model, method, horizon) among rows matching ``where``,
    sorted by asset, model name (baselines first), method and horizon."""
    query = (
        select(MetricRow)
        .options(joinedload(MetricRow.model))
        .where(*where)
        .order_by(MetricRow.created_at.desc(), MetricRow.id.desc())
    )
    newest: dict[tuple[str, int | None, str, int], MetricRecord] = {}
    for row in session.scalars(query):
        key = (row.asset, row.model_id, row.method, row.horizon)
        if key not in newest:
            newest[key] = MetricRecord.model_validate(row)
    return sorted(newest.values(), key=lambda r: (r.asset, r.model_name or "", r.method, r.horizon))


def latest(session: Session, asset: str, model_name: str | None) -> list[MetricRecord]:
    """See ``Registry.latest_metrics``."""
    where: list[ColumnElement[bool]] = [MetricRow.asset == asset]
    if model_name is not None:
        model = models_repo.by_name(session, asset, model_name)
        where.append((MetricRow.model_id == model.id) | MetricRow.model_id.is_(None))
    rows = _newest_per_method(session, *where)
    if not rows and model_name is None and asset not in models_repo.assets(session):
        raise models_repo.unknown_asset(session, asset)
    return rows


def latest_of_model(session: Session, model_id: int) -> list[MetricRecord]:
    """See ``Registry.latest_model_metrics``."""
    return _newest_per_method(session, MetricRow.model_id == model_id)


def latest_baselines(session: Session, asset: str | None) -> list[MetricRecord]:
    """The newest baseline row (no model) per (asset, method, horizon), of ``asset`` or all."""
    where: list[ColumnElement[bool]] = [MetricRow.model_id.is_(None)]
    if asset is not None:
        where.append(MetricRow.asset == asset)
    return _newest_per_method(session, *where)


def has_any(session: Session, asset: str) -> bool:
    """Whether any metric row (of a model or a baseline) exists for ``asset``."""
    found = session.scalars(select(MetricRow.id).where(MetricRow.asset == asset).limit(1))
    return found.first() is not None
