"""Checkpoints: record (upsert by path, one best per model), list, pick the best, forget.

Every function takes an open ``Session`` inside the caller's transaction. Paths under the
session's artifacts root (``session.info[ARTIFACTS_KEY]``, set by the ``Registry``) are stored
relative to it, so that a copied artifacts folder finds its checkpoints through its own
registry; records hand out absolute paths. Rows written with absolute paths by older versions
are read too: when such a file is not under the root, the same tail under the root is used
where it exists (the folder was copied or moved).
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

ARTIFACTS_KEY = "artifacts_root"
_MIN_TAIL_PARTS = 2  # a re-rooted old absolute path keeps at least MODEL/FILE


def absolute(path: str | Path) -> str:
    return os.path.abspath(os.fspath(path))


def _root(session: Session) -> Path | None:
    root = session.info.get(ARTIFACTS_KEY)
    return None if root is None else Path(root)


def stored_path(path: str | Path, root: Path | None) -> str:
    """The form a checkpoint path is stored in: relative to ``root`` when under it (POSIX
    separators), else absolute."""
    abs_path = Path(absolute(path))
    if root is not None and abs_path.is_relative_to(root):
        return abs_path.relative_to(root).as_posix()
    return str(abs_path)


def resolve_stored(stored: str, root: Path | None) -> str:
    """The absolute path of a stored checkpoint path (see the module docstring)."""
    path = Path(stored)
    if not path.is_absolute():
        return str((root or Path.cwd()) / path)
    if root is None or path.is_relative_to(root):
        return stored
    parts = path.parts
    for start in range(1, len(parts) - _MIN_TAIL_PARTS + 1):
        candidate = root.joinpath(*parts[start:])
        if candidate.is_file():
            return str(candidate)
    return stored


def _record_of(session: Session, row: CheckpointRow) -> CheckpointRecord:
    rec = CheckpointRecord.model_validate(row)
    return rec.model_copy(update={"path": resolve_stored(row.path, _root(session))})


def _row_at(session: Session, path: str | Path) -> CheckpointRow | None:
    """The row of ``path``: stored relative, absolute, or (an older row of a copied or moved
    folder) absolute elsewhere but resolving to ``path`` under the root."""
    root = _root(session)
    abs_path = absolute(path)
    forms = {stored_path(abs_path, root), abs_path}
    found = session.scalars(
        select(CheckpointRow).where(CheckpointRow.path.in_(forms)).order_by(CheckpointRow.id)
    ).first()
    if found is not None or root is None:
        return found
    same_name = select(CheckpointRow).where(
        CheckpointRow.path.like(f"%{os.sep}{Path(abs_path).name}")
    )
    for row in session.scalars(same_name.order_by(CheckpointRow.id)):
        if Path(row.path).is_absolute() and resolve_stored(row.path, root) == abs_path:
            return row
    return None


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
    kept = stored_path(abs_path, _root(session))
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
                CheckpointRow.path.not_in({kept, abs_path}),
            )
            .values(is_best=False)
        )
    row = _row_at(session, abs_path)
    if row is None:
        row = CheckpointRow(path=kept)
        session.add(row)
    row.path = kept
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
    return _record_of(session, row)


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
    return [_record_of(session, row) for row in session.scalars(query)]


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
    return _record_of(session, found)


def delete(session: Session, path: str | Path) -> bool:
    """Forget the checkpoint at ``path`` (the file is left alone); False if not recorded."""
    row = _row_at(session, path)
    if row is None:
        return False
    session.delete(row)
    return True
