"""Checkpoints: record (upsert by absolute path, one best per model), list, pick the best, forget.

Every function takes an open ``Session`` inside the caller's transaction.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session, contains_eager

from forex_diffusion.errors import NotFoundError, RegistryError
from forex_diffusion.registry import models_repo
from forex_diffusion.registry.models import CheckpointRow, ModelRow, utcnow
from forex_diffusion.registry.records import CheckpointRecord
from forex_diffusion.registry.values import loss, to_json


def absolute(path: str | Path) -> str:
    return os.path.abspath(os.fspath(path))


def record(
    session: Session,
    model_id: int,
    path: str | Path,
    epoch: int,
    is_best: bool,
    train_loss: float | None,
    val_loss: float | None,
    val_metrics: Mapping[str, Any] | None,
    size_bytes: int | None,
) -> CheckpointRecord:
    """See ``Registry.record_checkpoint``."""
    abs_path = absolute(path)
    if size_bytes is None:
        try:
            size_bytes = os.path.getsize(abs_path)
        except OSError as exc:
            raise RegistryError(
                f"checkpoint {abs_path}: cannot read its size ({exc.strerror}); write the "
                f"file before recording it or pass size_bytes"
            ) from None
    if size_bytes < 0 or epoch < 0:
        raise RegistryError(
            f"checkpoint {abs_path}: epoch ({epoch}) and size_bytes ({size_bytes}) must be >= 0"
        )
    metrics = to_json(dict(val_metrics or {}), "val_metrics", finite_only=False)
    models_repo.by_id(session, model_id)
    if is_best:
        session.execute(
            update(CheckpointRow)
            .where(
                CheckpointRow.model_id == model_id,
                CheckpointRow.is_best.is_(True),
                CheckpointRow.path != abs_path,
            )
            .values(is_best=False)
        )
    row = session.scalars(select(CheckpointRow).where(CheckpointRow.path == abs_path)).one_or_none()
    if row is None:
        row = CheckpointRow(path=abs_path)
        session.add(row)
    row.model_id = model_id
    row.epoch = int(epoch)
    row.is_best = bool(is_best)
    row.train_loss = loss(train_loss)
    row.val_loss = loss(val_loss)
    row.val_metrics = metrics
    row.size_bytes = int(size_bytes)
    row.created_at = utcnow()
    session.flush()
    session.expire(row, ["model"])
    return CheckpointRecord.model_validate(row)


def _query(
    session: Session, asset: str | None, model_name: str | None, model_id: int | None
) -> Select[CheckpointRow]:
    query = select(CheckpointRow).join(ModelRow).options(contains_eager(CheckpointRow.model))
    if model_id is not None:
        query = query.where(CheckpointRow.model_id == model_id)
    if asset is not None:
        ids = [m.id for m in models_repo.of_asset(session, asset, model_name)]
        query = query.where(CheckpointRow.model_id.in_(ids))
    elif model_name is not None:
        raise RegistryError("pass asset together with model_name")
    return query


def list_checkpoints(
    session: Session,
    asset: str | None,
    model_name: str | None,
    model_id: int | None,
    best_only: bool,
) -> list[CheckpointRecord]:
    """Checkpoints, ordered by asset, model and epoch (NotFoundError for an unknown asset)."""
    query = _query(session, asset, model_name, model_id)
    if best_only:
        query = query.where(CheckpointRow.is_best.is_(True))
    query = query.order_by(
        ModelRow.asset, ModelRow.model_name, CheckpointRow.epoch, CheckpointRow.id
    )
    return [CheckpointRecord.model_validate(row) for row in session.scalars(query)]


def best(session: Session, asset: str, model_name: str | None) -> CheckpointRecord:
    """See ``Registry.best_checkpoint``."""
    base = _query(session, asset, model_name, None)
    order = (
        CheckpointRow.val_loss.is_(None),
        CheckpointRow.val_loss,
        CheckpointRow.epoch.desc(),
        CheckpointRow.id.desc(),
    )
    found = session.scalars(
        base.where(CheckpointRow.is_best.is_(True)).order_by(*order).limit(1)
    ).first()
    if found is None:
        found = session.scalars(base.order_by(*order).limit(1)).first()
    if found is None:
        which = f"{asset}/{model_name}" if model_name else f"any model of {asset}"
        raise NotFoundError(
            f"no checkpoint registered for {which} in {models_repo.database(session)}; train it "
            f"first (forex-diffusion train) or check the registry (forex-diffusion registry "
            f"show {asset})"
        )
    return CheckpointRecord.model_validate(found)


def delete(session: Session, path: str | Path) -> bool:
    """Forget the checkpoint at ``path`` (the file is left alone); False if not recorded."""
    row = session.scalars(
        select(CheckpointRow).where(CheckpointRow.path == absolute(path))
    ).one_or_none()
    if row is None:
        return False
    session.delete(row)
    return True
