"""Training runs: open, close (completed / failed / interrupted), mark stale, read, list.

Every function takes an open ``Session`` inside the caller's transaction.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, contains_eager

from forex_diffusion.errors import NotFoundError, RegistryError
from forex_diffusion.registry import models_repo
from forex_diffusion.registry.models import RUN_STATUSES, ModelRow, RunRow, utcnow
from forex_diffusion.registry.records import RunRecord
from forex_diffusion.registry.values import to_json

MAX_ERROR_MESSAGE_CHARS = 20_000


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start(
    session: Session,
    model_id: int,
    run_name: str,
    data_range: Mapping[str, Any],
    hyperparameters: Mapping[str, Any],
    device: str,
    log_path: str | Path | None,
    pid: int | None,
    host: str | None,
) -> RunRecord:
    """Open a run in status ``running`` (see ``Registry.start_run``)."""
    data = to_json(dict(data_range), "data_range", finite_only=True)
    hyper = to_json(dict(hyperparameters), "hyperparameters", finite_only=True)
    models_repo.by_id(session, model_id)
    row = RunRow(
        model_id=model_id,
        run_name=str(run_name),
        data_range=data,
        hyperparameters=hyper,
        status="running",
        device=str(device),
        log_path=None if log_path is None else os.fspath(log_path),
        pid=os.getpid() if pid is None else pid,
        host=socket.gethostname() if host is None else host,
        started_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return RunRecord.model_validate(row)


def finish(session: Session, run_id: int, status: str, **values: Any) -> RunRecord:
    """Close running run ``run_id`` with ``status`` and the given column values."""
    assert status in RUN_STATUSES
    row = session.scalars(select(RunRow).where(RunRow.id == run_id).with_for_update()).one_or_none()
    if row is None:
        raise NotFoundError(f"no training run with id {run_id} in {models_repo.database(session)}")
    if row.status != "running":
        since = f" since {row.completed_at:%Y-%m-%d %H:%M:%S} UTC" if row.completed_at else ""
        raise RegistryError(
            f"run {run_id} ({row.run_name!r}) is already {row.status}{since}; only a "
            f"running run can be marked {status} (start a new run instead)"
        )
    now = utcnow()
    row.status = status
    row.completed_at = now
    row.duration_seconds = (now - row.started_at).total_seconds()
    for key, value in values.items():
        setattr(row, key, value)
    session.flush()
    return RunRecord.model_validate(row)


def mark_stale_interrupted(
    session: Session, model_id: int | None, older_than: timedelta | None
) -> list[RunRecord]:
    """Mark ``running`` runs whose process is gone as ``interrupted``; return them.

    A run started on this host is stale when its pid no longer exists. Runs of other hosts
    (whose processes cannot be checked from here) are marked only when ``older_than`` is
    given and they started longer ago than that.
    """
    here = socket.gethostname()
    now = utcnow()
    query = select(RunRow).where(RunRow.status == "running")
    if model_id is not None:
        query = query.where(RunRow.model_id == model_id)
    marked: list[RunRecord] = []
    for row in session.scalars(query.order_by(RunRow.id)).all():
        if row.host == here and row.pid is not None:
            if process_alive(row.pid):
                continue
            reason = (
                f"process {row.pid} on {row.host} ended without closing the run (killed or crashed)"
            )
        elif older_than is not None and row.started_at < now - older_than:
            reason = (
                f"still running after {now - row.started_at} on host {row.host} "
                f"(pid {row.pid}); marked stale (older than {older_than})"
            )
        else:
            continue
        # Only if still running (a concurrent close wins).
        result = session.execute(
            update(RunRow)
            .where(RunRow.id == row.id, RunRow.status == "running")
            .values(
                status="interrupted",
                error_message=reason,
                completed_at=now,
                duration_seconds=(now - row.started_at).total_seconds(),
            )
            .execution_options(synchronize_session="fetch")
        )
        if getattr(result, "rowcount", 0):
            session.refresh(row)
            marked.append(RunRecord.model_validate(row))
    return marked


def get(session: Session, run_id: int) -> RunRecord:
    row = session.get(RunRow, run_id)
    if row is None:
        raise NotFoundError(f"no training run with id {run_id} in {models_repo.database(session)}")
    return RunRecord.model_validate(row)


def list_runs(
    session: Session,
    asset: str | None,
    model_name: str | None,
    status: str | None,
    model_id: int | None,
) -> list[RunRecord]:
    """Runs, newest first (NotFoundError for an unknown asset or model)."""
    if status is not None and status not in RUN_STATUSES:
        raise RegistryError(f"unknown run status {status!r}; use one of {RUN_STATUSES}")
    query = select(RunRow).join(ModelRow).options(contains_eager(RunRow.model))
    if asset is not None:
        ids = [m.id for m in models_repo.of_asset(session, asset, model_name)]
        query = query.where(RunRow.model_id.in_(ids))
    if model_id is not None:
        query = query.where(RunRow.model_id == model_id)
    if status is not None:
        query = query.where(RunRow.status == status)
    query = query.order_by(RunRow.started_at.desc(), RunRow.id.desc())
    return [RunRecord.model_validate(row) for row in session.scalars(query)]
