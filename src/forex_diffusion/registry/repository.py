"""The registry API used by training, inference and evaluation.

>>> reg = open_registry(config)            # URL from config/env; schema upgraded on first use
>>> model = reg.register_model("EURUSD", "sssd_v1", architecture_config=..., training_config=...,
...                            feature_config=..., horizon_config=...)
>>> run = reg.start_run(model.id, "run-1", data_range={...}, hyperparameters={...}, device="cpu")
>>> reg.record_checkpoint(model.id, "ckpt/best.pt", epoch=3, is_best=True, train_loss=0.4,
...                       val_loss=0.5, val_metrics={"crps": 1.2})
>>> reg.complete_run(run.id, best_epoch=3, epochs=10, final_train_loss=0.3, final_val_loss=0.5)
>>> reg.best_checkpoint("EURUSD").path

Every method runs in its own transaction and returns frozen records (``records.py``).
Assets are stored upper-case. Database failures raise RegistryError naming the URL (password
masked); unknown assets/models/runs raise NotFoundError listing what exists.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias

from sqlalchemy import Engine, Select, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from forex_diffusion.errors import NotFoundError, RegistryError
from forex_diffusion.registry.db import (
    create_registry_engine,
    current_revision,
    db_error,
    ensure_schema,
    head_revision,
    mask_url,
    resolve_db_url,
)
from forex_diffusion.registry.models import (
    RUN_STATUSES,
    SSSDCheckpoint,
    SSSDInferenceLog,
    SSSDModel,
    SSSDPerformanceMetric,
    SSSDTrainingRun,
    utcnow,
)
from forex_diffusion.registry.records import (
    CheckpointRecord,
    InferenceLogRecord,
    MetricRecord,
    ModelRecord,
    RunRecord,
    json_diff,
    to_json,
)

if TYPE_CHECKING:  # the config module pulls in pandas; the registry needs only its paths
    from forex_diffusion.config.sssd_config import SSSDConfig

MAX_ERROR_MESSAGE_CHARS = 20_000
MAX_VERSIONS = 10_000
_VERSION_SUFFIX = re.compile(r"^(?P<stem>.+)_v(?P<number>\d+)$")
CONFIG_FIELDS = ("architecture_config", "training_config", "feature_config", "horizon_config")

DateLike: TypeAlias = datetime | date | str  # pandas Timestamps are datetimes


def normalize_asset(asset: str) -> str:
    value = str(asset).strip().upper()
    if not value:
        raise RegistryError("asset must be a non-empty symbol such as EURUSD")
    return value


def _utc(value: DateLike, what: str) -> datetime:
    """A tz-aware UTC datetime (naive input is taken as UTC, as everywhere in the package).

    Accepts datetimes (pandas Timestamps included), dates and ISO 8601 strings.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RegistryError(
                f"{what}: {value!r} is not an ISO 8601 timestamp (e.g. 2024-01-31T12:05:00Z)"
            ) from None
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    else:
        raise RegistryError(f"{what}: expected a timestamp, got {type(value).__name__}")
    # A plain datetime (drops a pandas subclass and its nanoseconds).
    return datetime(
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
        tzinfo=UTC,
    )


def _loss(value: float | None) -> float | None:
    """Losses are stored as given; NaN/inf (a diverged run) are stored as NULL on every backend."""
    if value is None:
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def _version_candidates(name: str) -> Iterator[str]:
    """``sssd_v1`` -> sssd_v2, sssd_v3, ...; ``mymodel`` -> mymodel_v2, mymodel_v3, ..."""
    match = _VERSION_SUFFIX.match(name)
    stem, number = (match["stem"], int(match["number"])) if match else (name, 1)
    for n in range(number + 1, number + 1 + MAX_VERSIONS):
        yield f"{stem}_v{n}"


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


def model_configs_from_sssd(config: SSSDConfig) -> dict[str, dict[str, Any]]:
    """The four identity configs of a model, cut from a full SSSDConfig.

    architecture: the ``model`` section; training: the ``training`` section; features: the
    ``features`` section plus base timeframe, timeframes and lookbacks; horizons: the horizons.
    """
    full = config.to_dict()
    return {
        "architecture_config": full["model"],
        "training_config": full["training"],
        "feature_config": {
            **full["features"],
            "base_timeframe": full["asset"]["base_timeframe"],
            "timeframes": full["data"]["timeframes"],
            "lookbacks": full["data"]["lookbacks"],
        },
        "horizon_config": {"horizons": full["data"]["horizons"]},
    }


# --------------------------------------------------------------------------- row -> record


def _model_record(row: SSSDModel) -> ModelRecord:
    return ModelRecord(
        id=row.id,
        asset=row.asset,
        model_name=row.model_name,
        model_type=row.model_type,
        architecture_config=row.architecture_config,
        training_config=row.training_config,
        feature_config=row.feature_config,
        horizon_config=row.horizon_config,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _checkpoint_record(row: SSSDCheckpoint, model: SSSDModel) -> CheckpointRecord:
    return CheckpointRecord(
        id=row.id,
        model_id=row.model_id,
        asset=model.asset,
        model_name=model.model_name,
        path=row.path,
        epoch=row.epoch,
        is_best=row.is_best,
        train_loss=row.train_loss,
        val_loss=row.val_loss,
        val_metrics=row.val_metrics,
        size_bytes=row.size_bytes,
        created_at=row.created_at,
    )


def _run_record(row: SSSDTrainingRun, model: SSSDModel) -> RunRecord:
    return RunRecord(
        id=row.id,
        model_id=row.model_id,
        asset=model.asset,
        model_name=model.model_name,
        run_name=row.run_name,
        status=row.status,
        data_range=row.data_range,
        hyperparameters=row.hyperparameters,
        error_message=row.error_message,
        best_epoch=row.best_epoch,
        epochs=row.epochs,
        final_train_loss=row.final_train_loss,
        final_val_loss=row.final_val_loss,
        duration_seconds=row.duration_seconds,
        device=row.device,
        log_path=row.log_path,
        pid=row.pid,
        host=row.host,
        started_at=row.started_at,
        completed_at=row.completed_at,
    )


def _inference_record(row: SSSDInferenceLog) -> InferenceLogRecord:
    return InferenceLogRecord(
        id=row.id,
        model_id=row.model_id,
        asset=row.asset,
        decision_time=row.decision_time,
        horizons=row.horizons,
        prediction=row.prediction,
        inference_time_ms=row.inference_time_ms,
        device=row.device,
        batch_size=row.batch_size,
        num_samples=row.num_samples,
        created_at=row.created_at,
    )


def _metric_record(row: SSSDPerformanceMetric, model_name: str | None) -> MetricRecord:
    return MetricRecord(
        id=row.id,
        model_id=row.model_id,
        model_name=model_name,
        method=row.method,
        asset=row.asset,
        horizon=row.horizon,
        window_start=row.window_start,
        window_end=row.window_end,
        metrics=row.metrics,
        n_forecasts=row.n_forecasts,
        created_at=row.created_at,
    )


# --------------------------------------------------------------------------- the registry


class Registry:
    """The model registry on one database.

    Args:
        url: SQLAlchemy URL; None resolves it (env FOREX_DIFFUSION_DB_URL, config
            ``paths.db_url``, else ``<paths.artifacts_dir>/registry.db``).
        config: the configuration used to resolve the URL.
        auto_upgrade: migrate the schema to head on first use (default). When False, a
            database that is not at head raises RegistryError asking for ``db upgrade``.

    Raises:
        RegistryError: malformed or unreachable URL (named, password masked), or a schema this
            version cannot use.
    """

    def __init__(
        self,
        url: str | None = None,
        config: SSSDConfig | None = None,
        *,
        auto_upgrade: bool = True,
    ) -> None:
        self.url = resolve_db_url(url, config)
        self.engine: Engine = create_registry_engine(self.url)
        try:
            if auto_upgrade:
                ensure_schema(self.engine)
            else:
                current, head = current_revision(self.engine), head_revision()
                if current != head:
                    raise RegistryError(
                        f"registry database {self.masked_url} is at schema revision "
                        f"{current or '(empty)'}, not {head}; run `forex-diffusion db upgrade`"
                    )
        except BaseException:
            self.engine.dispose()
            raise
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    # ------------------------------------------------------------------ plumbing

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Registry({self.masked_url!r})"

    @contextmanager
    def _tx(self, action: str) -> Iterator[Session]:
        """One transaction; database errors become RegistryError naming the action and URL."""
        try:
            with self._sessions.begin() as session:
                yield session
        except SQLAlchemyError as exc:
            raise db_error(exc, self.url, action) from None

    def _assets(self, session: Session) -> list[str]:
        return list(session.scalars(select(SSSDModel.asset).distinct().order_by(SSSDModel.asset)))

    def _unknown_asset(self, session: Session, asset: str) -> NotFoundError:
        assets = self._assets(session)
        known = (
            f"registered assets: {', '.join(assets)}"
            if assets
            else "the registry is empty (train a model first: forex-diffusion train ...)"
        )
        return NotFoundError(
            f"no model registered for asset {asset!r} in {self.masked_url}; {known}"
        )

    def _model_row(self, session: Session, asset: str, model_name: str) -> SSSDModel:
        row = session.scalars(
            select(SSSDModel).where(SSSDModel.asset == asset, SSSDModel.model_name == model_name)
        ).one_or_none()
        if row is not None:
            return row
        names = list(
            session.scalars(
                select(SSSDModel.model_name)
                .where(SSSDModel.asset == asset)
                .order_by(SSSDModel.model_name)
            )
        )
        if not names:
            raise self._unknown_asset(session, asset)
        raise NotFoundError(
            f"no model {model_name!r} for asset {asset} in {self.masked_url}; "
            f"models of {asset}: {', '.join(names)}"
        )

    def _models_of(self, session: Session, asset: str, model_name: str | None) -> list[SSSDModel]:
        if model_name is not None:
            return [self._model_row(session, asset, model_name)]
        rows = list(
            session.scalars(
                select(SSSDModel).where(SSSDModel.asset == asset).order_by(SSSDModel.model_name)
            )
        )
        if not rows:
            raise self._unknown_asset(session, asset)
        return rows

    def _model_by_id(self, session: Session, model_id: int) -> SSSDModel:
        row = session.get(SSSDModel, model_id)
        if row is None:
            ids = [
                f"{m.id} ({m.asset}/{m.model_name})"
                for m in session.scalars(select(SSSDModel).order_by(SSSDModel.id).limit(20))
            ]
            known = f"registered models: {', '.join(ids)}" if ids else "the registry is empty"
            raise NotFoundError(f"no model with id {model_id} in {self.masked_url}; {known}")
        return row

    def _model_of_asset(self, session: Session, model_id: int, asset: str, what: str) -> SSSDModel:
        """Model ``model_id``, which must belong to ``asset`` (RegistryError naming both)."""
        model = self._model_by_id(session, model_id)
        if model.asset != asset:
            raise RegistryError(
                f"{what}: model {model_id} ({model.asset}/{model.model_name}) belongs to "
                f"{model.asset}, not {asset}; pass that model's asset or another model id"
            )
        return model

    # ------------------------------------------------------------------ models

    def register_model(
        self,
        asset: str,
        model_name: str,
        model_type: str = "sssd",
        *,
        architecture_config: Mapping[str, Any],
        training_config: Mapping[str, Any],
        feature_config: Mapping[str, Any],
        horizon_config: Mapping[str, Any],
        new_version: bool = False,
    ) -> ModelRecord:
        """Register (asset, model_name), idempotently.

        Same name and same configs: the existing row. Same name, different configs:
        RegistryError listing what differs, unless ``new_version`` (then the first free or
        identical ``<stem>_vN`` is used: sssd_v1 -> sssd_v2, mymodel -> mymodel_v2).
        Safe under concurrency: two processes registering the same model get the same row.
        """
        asset = normalize_asset(asset)
        model_name = str(model_name).strip()
        if not model_name:
            raise RegistryError("model_name must be a non-empty string")
        wanted: dict[str, Any] = {"model_type": str(model_type)}
        for name, value in zip(
            CONFIG_FIELDS,
            (architecture_config, training_config, feature_config, horizon_config),
            strict=True,
        ):
            if not isinstance(value, Mapping):
                raise RegistryError(f"{name} must be a mapping, got {type(value).__name__}")
            wanted[name] = to_json(value, name, finite_only=True)

        names = [model_name]
        if new_version:
            names += list(_version_candidates(model_name))
        with self._tx(f"registering model {asset}/{model_name}") as session:
            first_diff: list[str] = []
            for name in names:
                row = self._get_or_create_model(session, asset, name, wanted)
                diff = self._config_diff(row, wanted)
                if not diff:
                    return _model_record(row)
                if not first_diff:
                    first_diff = diff
                if not new_version:
                    break
            shown = "; ".join(first_diff[:12]) + (" ..." if len(first_diff) > 12 else "")
            suggestion = next(_version_candidates(model_name))
            raise RegistryError(
                f"model {asset}/{model_name} already exists in {self.masked_url} with a "
                f"different configuration ({shown}). Register it as a new version "
                f"(new_version=True, e.g. {suggestion}) or choose another model.name."
            )

    def _get_or_create_model(
        self, session: Session, asset: str, name: str, wanted: dict[str, Any]
    ) -> SSSDModel:
        query = select(SSSDModel).where(SSSDModel.asset == asset, SSSDModel.model_name == name)
        row = session.scalars(query).one_or_none()
        if row is not None:
            return row
        candidate = SSSDModel(asset=asset, model_name=name, **wanted)
        try:
            with session.begin_nested():
                session.add(candidate)
        except IntegrityError:
            # Another process inserted the same (asset, model_name) first: use its row.
            return session.scalars(query).one()
        return candidate

    @staticmethod
    def _config_diff(row: SSSDModel, wanted: dict[str, Any]) -> list[str]:
        current = {"model_type": row.model_type, **{f: getattr(row, f) for f in CONFIG_FIELDS}}
        return json_diff(current, wanted)

    def register_from_config(self, config: SSSDConfig, new_version: bool = False) -> ModelRecord:
        """``register_model`` for ``config.asset.symbol`` / ``config.model.name``."""
        configs = model_configs_from_sssd(config)
        return self.register_model(
            config.asset.symbol,
            config.model.name,
            architecture_config=configs["architecture_config"],
            training_config=configs["training_config"],
            feature_config=configs["feature_config"],
            horizon_config=configs["horizon_config"],
            new_version=new_version,
        )

    def get_model(self, asset: str, model_name: str) -> ModelRecord:
        with self._tx("reading a model") as session:
            return _model_record(self._model_row(session, normalize_asset(asset), model_name))

    def get_model_by_id(self, model_id: int) -> ModelRecord:
        with self._tx("reading a model") as session:
            return _model_record(self._model_by_id(session, model_id))

    def list_models(self, asset: str | None = None) -> list[ModelRecord]:
        """All models (of ``asset``), ordered by asset and name; empty when none match."""
        query = select(SSSDModel).order_by(SSSDModel.asset, SSSDModel.model_name)
        if asset is not None:
            query = query.where(SSSDModel.asset == normalize_asset(asset))
        with self._tx("listing models") as session:
            return [_model_record(row) for row in session.scalars(query)]

    def known_assets(self) -> list[str]:
        with self._tx("listing assets") as session:
            return self._assets(session)

    # ------------------------------------------------------------------ checkpoints

    def record_checkpoint(
        self,
        model_id: int,
        path: str | Path,
        epoch: int,
        is_best: bool,
        train_loss: float | None,
        val_loss: float | None,
        val_metrics: Mapping[str, Any] | None = None,
        size_bytes: int | None = None,
    ) -> CheckpointRecord:
        """Record a checkpoint file (upsert by absolute path).

        Re-recording a path (e.g. ``best.pt`` overwritten) updates its row. ``is_best`` clears
        the flag on the model's other checkpoints in the same transaction. ``size_bytes``
        defaults to the file's size on disk.
        """
        abs_path = os.path.abspath(os.fspath(path))
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
        with self._tx(f"recording checkpoint {abs_path}") as session:
            model = self._model_by_id(session, model_id)
            if is_best:
                session.execute(
                    update(SSSDCheckpoint)
                    .where(
                        SSSDCheckpoint.model_id == model_id,
                        SSSDCheckpoint.is_best.is_(True),
                        SSSDCheckpoint.path != abs_path,
                    )
                    .values(is_best=False)
                )
            row = session.scalars(
                select(SSSDCheckpoint).where(SSSDCheckpoint.path == abs_path)
            ).one_or_none()
            if row is None:
                row = SSSDCheckpoint(path=abs_path)
                session.add(row)
            row.model_id = model_id
            row.epoch = int(epoch)
            row.is_best = bool(is_best)
            row.train_loss = _loss(train_loss)
            row.val_loss = _loss(val_loss)
            row.val_metrics = metrics
            row.size_bytes = int(size_bytes)
            row.created_at = utcnow()
            session.flush()
            return _checkpoint_record(row, model)

    def _checkpoint_query(
        self, session: Session, asset: str | None, model_name: str | None, model_id: int | None
    ) -> Select[SSSDCheckpoint, SSSDModel]:
        query = select(SSSDCheckpoint, SSSDModel).join(SSSDModel)
        if model_id is not None:
            query = query.where(SSSDCheckpoint.model_id == model_id)
        if asset is not None:
            ids = [m.id for m in self._models_of(session, normalize_asset(asset), model_name)]
            query = query.where(SSSDCheckpoint.model_id.in_(ids))
        elif model_name is not None:
            raise RegistryError("pass asset together with model_name")
        return query

    def list_checkpoints(
        self,
        asset: str | None = None,
        model_name: str | None = None,
        model_id: int | None = None,
        best_only: bool = False,
    ) -> list[CheckpointRecord]:
        """Checkpoints, ordered by asset, model and epoch (NotFoundError for an unknown asset)."""
        with self._tx("listing checkpoints") as session:
            query = self._checkpoint_query(session, asset, model_name, model_id)
            if best_only:
                query = query.where(SSSDCheckpoint.is_best.is_(True))
            query = query.order_by(
                SSSDModel.asset, SSSDModel.model_name, SSSDCheckpoint.epoch, SSSDCheckpoint.id
            )
            return [_checkpoint_record(c, m) for c, m in session.execute(query)]

    def best_checkpoint(self, asset: str, model_name: str | None = None) -> CheckpointRecord:
        """The checkpoint to serve for ``asset`` (and ``model_name``).

        Candidates are the models' ``is_best`` checkpoints (all checkpoints when none is
        flagged); the lowest validation loss wins (ties: the latest epoch). With
        ``model_name=None`` this picks across all of the asset's models.

        Raises:
            NotFoundError: unknown asset or model (listing what exists) or no checkpoint yet.
        """
        asset = normalize_asset(asset)
        with self._tx(f"finding the best checkpoint of {asset}") as session:
            base = self._checkpoint_query(session, asset, model_name, None)
            order = (
                SSSDCheckpoint.val_loss.is_(None),
                SSSDCheckpoint.val_loss,
                SSSDCheckpoint.epoch.desc(),
                SSSDCheckpoint.id.desc(),
            )
            found = session.execute(
                base.where(SSSDCheckpoint.is_best.is_(True)).order_by(*order).limit(1)
            ).first()
            if found is None:
                found = session.execute(base.order_by(*order).limit(1)).first()
            if found is None:
                which = f"{asset}/{model_name}" if model_name else f"any model of {asset}"
                raise NotFoundError(
                    f"no checkpoint registered for {which} in {self.masked_url}; train it first "
                    f"(forex-diffusion train) or check the registry (forex-diffusion registry "
                    f"show {asset})"
                )
            checkpoint, model = found
            return _checkpoint_record(checkpoint, model)

    def delete_checkpoint(self, path: str | Path) -> bool:
        """Forget the checkpoint at ``path`` (the file is left alone); False if not recorded."""
        abs_path = os.path.abspath(os.fspath(path))
        with self._tx(f"deleting checkpoint {abs_path}") as session:
            row = session.scalars(
                select(SSSDCheckpoint).where(SSSDCheckpoint.path == abs_path)
            ).one_or_none()
            if row is None:
                return False
            session.delete(row)
            return True

    # ------------------------------------------------------------------ training runs

    def start_run(
        self,
        model_id: int,
        run_name: str,
        data_range: Mapping[str, Any],
        hyperparameters: Mapping[str, Any],
        device: str,
        log_path: str | Path | None = None,
        *,
        pid: int | None = None,
        host: str | None = None,
    ) -> RunRecord:
        """Open a run in status ``running``, stamped with this process's pid and host.

        The model's earlier runs left ``running`` by a process of this host that no longer
        exists are marked ``interrupted`` first (see ``mark_stale_runs_interrupted``).
        """
        data = to_json(dict(data_range), "data_range", finite_only=True)
        hyper = to_json(dict(hyperparameters), "hyperparameters", finite_only=True)
        self.mark_stale_runs_interrupted(model_id=model_id)
        with self._tx(f"starting run {run_name!r}") as session:
            model = self._model_by_id(session, model_id)
            row = SSSDTrainingRun(
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
            return _run_record(row, model)

    def _finish_run(self, run_id: int, status: str, action: str, **values: Any) -> RunRecord:
        assert status in RUN_STATUSES
        with self._tx(f"{action} run {run_id}") as session:
            row = session.scalars(
                select(SSSDTrainingRun).where(SSSDTrainingRun.id == run_id).with_for_update()
            ).one_or_none()
            if row is None:
                raise NotFoundError(f"no training run with id {run_id} in {self.masked_url}")
            if row.status != "running":
                since = (
                    f" since {row.completed_at:%Y-%m-%d %H:%M:%S} UTC" if row.completed_at else ""
                )
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
            return _run_record(row, row.model)

    def complete_run(
        self,
        run_id: int,
        best_epoch: int | None,
        epochs: int,
        final_train_loss: float | None,
        final_val_loss: float | None,
    ) -> RunRecord:
        return self._finish_run(
            run_id,
            "completed",
            "completing",
            best_epoch=best_epoch,
            epochs=epochs,
            final_train_loss=_loss(final_train_loss),
            final_val_loss=_loss(final_val_loss),
        )

    def fail_run(self, run_id: int, error_message: str) -> RunRecord:
        return self._finish_run(
            run_id,
            "failed",
            "failing",
            error_message=str(error_message)[:MAX_ERROR_MESSAGE_CHARS],
        )

    def interrupt_run(self, run_id: int, reason: str | None = None) -> RunRecord:
        return self._finish_run(
            run_id,
            "interrupted",
            "interrupting",
            error_message=reason or "interrupted",
        )

    def mark_stale_runs_interrupted(
        self, model_id: int | None = None, older_than: timedelta | None = None
    ) -> list[RunRecord]:
        """Mark ``running`` runs whose process is gone as ``interrupted``; return them.

        A run started on this host is stale when its pid no longer exists. Runs of other hosts
        (whose processes cannot be checked from here) are marked only when ``older_than`` is
        given and they started longer ago than that.
        """
        here = socket.gethostname()
        now = utcnow()
        query = select(SSSDTrainingRun).where(SSSDTrainingRun.status == "running")
        if model_id is not None:
            query = query.where(SSSDTrainingRun.model_id == model_id)
        marked: list[RunRecord] = []
        with self._tx("marking stale runs") as session:
            for row in session.scalars(query.order_by(SSSDTrainingRun.id)).all():
                if row.host == here and row.pid is not None:
                    if process_alive(row.pid):
                        continue
                    reason = (
                        f"process {row.pid} on {row.host} ended without closing the run "
                        f"(killed or crashed)"
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
                    update(SSSDTrainingRun)
                    .where(SSSDTrainingRun.id == row.id, SSSDTrainingRun.status == "running")
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
                    marked.append(_run_record(row, row.model))
        return marked

    def get_run(self, run_id: int) -> RunRecord:
        with self._tx(f"reading run {run_id}") as session:
            row = session.get(SSSDTrainingRun, run_id)
            if row is None:
                raise NotFoundError(f"no training run with id {run_id} in {self.masked_url}")
            return _run_record(row, row.model)

    def list_runs(
        self,
        asset: str | None = None,
        model_name: str | None = None,
        status: str | None = None,
        model_id: int | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first (NotFoundError for an unknown asset or model)."""
        if status is not None and status not in RUN_STATUSES:
            raise RegistryError(f"unknown run status {status!r}; use one of {RUN_STATUSES}")
        with self._tx("listing runs") as session:
            query = select(SSSDTrainingRun, SSSDModel).join(SSSDModel)
            if asset is not None:
                ids = [m.id for m in self._models_of(session, normalize_asset(asset), model_name)]
                query = query.where(SSSDTrainingRun.model_id.in_(ids))
            if model_id is not None:
                query = query.where(SSSDTrainingRun.model_id == model_id)
            if status is not None:
                query = query.where(SSSDTrainingRun.status == status)
            query = query.order_by(SSSDTrainingRun.started_at.desc(), SSSDTrainingRun.id.desc())
            return [_run_record(r, m) for r, m in session.execute(query)]

    # ------------------------------------------------------------------ inference logs

    def log_inference(
        self,
        model_id: int,
        asset: str,
        decision_time: DateLike,
        horizons: Sequence[int],
        prediction: Mapping[str, Any],
        inference_time_ms: float,
        device: str,
        batch_size: int = 1,
        num_samples: int = 0,
    ) -> InferenceLogRecord:
        """Log one served forecast (non-finite numbers in ``prediction`` are stored as null)."""
        asset = normalize_asset(asset)
        when = _utc(decision_time, "decision_time")
        horizon_list = [int(h) for h in horizons]
        payload = to_json(dict(prediction), "prediction", finite_only=False)
        with self._tx(f"logging an inference of {asset}") as session:
            self._model_of_asset(session, model_id, asset, "inference log")
            row = SSSDInferenceLog(
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
            return _inference_record(row)

    def list_inference_logs(
        self, asset: str | None = None, model_id: int | None = None, limit: int = 100
    ) -> list[InferenceLogRecord]:
        """Latest inference logs first."""
        query = select(SSSDInferenceLog)
        if asset is not None:
            query = query.where(SSSDInferenceLog.asset == normalize_asset(asset))
        if model_id is not None:
            query = query.where(SSSDInferenceLog.model_id == model_id)
        query = query.order_by(SSSDInferenceLog.created_at.desc(), SSSDInferenceLog.id.desc())
        with self._tx("listing inference logs") as session:
            return [_inference_record(r) for r in session.scalars(query.limit(limit))]

    def count_inference_logs(self, model_id: int) -> int:
        query = select(func.count()).where(SSSDInferenceLog.model_id == model_id)
        with self._tx("counting inference logs") as session:
            return int(session.scalar(query) or 0)

    # ------------------------------------------------------------------ performance metrics

    def record_metrics(
        self,
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
        asset = normalize_asset(asset)
        start, end = _utc(window_start, "window_start"), _utc(window_end, "window_end")
        if end < start:
            raise RegistryError(f"metrics for {asset}: window_end {end} is before {start}")
        if int(horizon) <= 0 or int(n_forecasts) < 0:
            raise RegistryError(
                f"metrics for {asset}: horizon ({horizon}) must be > 0 and n_forecasts "
                f"({n_forecasts}) >= 0"
            )
        values = to_json(dict(metrics), "metrics", finite_only=False)
        with self._tx(f"recording metrics of {method} on {asset}") as session:
            model_name = None
            if model_id is not None:
                model_name = self._model_of_asset(session, model_id, asset, "metrics").model_name
            row = SSSDPerformanceMetric(
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
            return _metric_record(row, model_name)

    def latest_metrics(self, asset: str, model_name: str | None = None) -> list[MetricRecord]:
        """The newest row per (model, method, horizon) of ``asset``.

        With ``model_name``: that model's rows plus the baselines' (model-less) rows.

        Raises:
            NotFoundError: an asset with neither models nor metrics, or an unknown model.
        """
        asset = normalize_asset(asset)
        with self._tx(f"reading metrics of {asset}") as session:
            query = (
                select(SSSDPerformanceMetric, SSSDModel.model_name)
                .outerjoin(SSSDModel)
                .where(SSSDPerformanceMetric.asset == asset)
            )
            if model_name is not None:
                model = self._model_row(session, asset, model_name)
                query = query.where(
                    (SSSDPerformanceMetric.model_id == model.id)
                    | SSSDPerformanceMetric.model_id.is_(None)
                )
            rows = session.execute(
                query.order_by(
                    SSSDPerformanceMetric.created_at.desc(), SSSDPerformanceMetric.id.desc()
                )
            ).all()
            if not rows and model_name is None and asset not in self._assets(session):
                raise self._unknown_asset(session, asset)
            latest: dict[tuple[int | None, str, int], MetricRecord] = {}
            for metric, name in rows:
                key = (metric.model_id, metric.method, metric.horizon)
                if key not in latest:
                    latest[key] = _metric_record(metric, name)
            return sorted(latest.values(), key=lambda r: (r.model_name or "", r.method, r.horizon))

    # ------------------------------------------------------------------ overview

    def show(self, asset: str, model_name: str | None = None, max_runs: int = 20) -> dict[str, Any]:
        """Everything about an asset (or one model): models with their runs, checkpoints,
        latest metrics and inference activity, plus the latest baseline metrics (JSON-ready).

        Raises:
            NotFoundError: unknown asset or model, listing what exists.
        """
        asset = normalize_asset(asset)
        with self._tx(f"reading {asset}") as session:
            models = self._models_of(session, asset, model_name)
        entries = []
        for model in models:
            runs = self.list_runs(model_id=model.id)
            inference = self.list_inference_logs(model_id=model.id, limit=1)
            checkpoints = self.list_checkpoints(model_id=model.id)
            best = [c for c in checkpoints if c.is_best]
            entries.append(
                {
                    "model": _model_record(model).to_dict(),
                    "best_checkpoint": best[0].to_dict() if best else None,
                    "checkpoints": [c.to_dict() for c in checkpoints],
                    "runs": [r.to_dict() for r in runs[:max_runs]],
                    "n_runs": len(runs),
                    "latest_metrics": [
                        m.to_dict()
                        for m in self.latest_metrics(asset, model.model_name)
                        if m.model_id == model.id
                    ],
                    "inference": {
                        "count": self.count_inference_logs(model.id),
                        "latest": inference[0].to_dict() if inference else None,
                    },
                }
            )
        baselines = [m.to_dict() for m in self.latest_metrics(asset) if m.model_id is None]
        return {
            "asset": asset,
            "database": self.masked_url,
            "models": entries,
            "baseline_metrics": baselines,
        }


def open_registry(config: SSSDConfig | None = None, url: str | None = None) -> Registry:
    """The registry for ``config`` (URL: ``url`` > env > ``paths.db_url`` > SQLite default)."""
    return Registry(url=url, config=config)
