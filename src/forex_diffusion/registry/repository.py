"""The registry API used by training, inference and evaluation: a thin facade that runs each
call in its own transaction and hands the session to the entity modules (``models_repo``,
``checkpoints``, ``runs``, ``inference_logs``, ``metrics``).

>>> reg = open_registry(config)            # URL from config/env; schema upgraded on first use
>>> model = reg.register_model("EURUSD", "sssd_v1", architecture_config=..., training_config=...,
...                            feature_config=..., horizon_config=...)
>>> run = reg.start_run(model.id, "run-1", data_range={...}, hyperparameters={...}, device="cpu")
>>> reg.record_checkpoint(model.id, "ckpt/best.pt", epoch=3, is_best=True, train_loss=0.4,
...                       val_loss=0.5, val_metrics={"crps": 1.2})
>>> reg.complete_run(run.id, best_epoch=3, epochs=10, final_train_loss=0.3, final_val_loss=0.5)
>>> reg.best_checkpoint("EURUSD").path

Every method returns frozen records (``records.py``). Assets are normalised by
``forex_diffusion.assets.normalize_asset`` (upper case). Database failures raise RegistryError
naming the URL (password masked); unknown assets/models/runs raise NotFoundError listing what
exists.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from forex_diffusion.assets import normalize_asset
from forex_diffusion.errors import RegistryError
from forex_diffusion.registry import checkpoints, inference_logs, model_cards, models_repo, runs
from forex_diffusion.registry import metrics as metrics_repo
from forex_diffusion.registry.db import (
    create_registry_engine,
    current_revision,
    db_error,
    ensure_schema,
    head_revision,
    mask_url,
    resolve_db_url,
    sqlite_path,
)
from forex_diffusion.registry.model_cards import ModelCard
from forex_diffusion.registry.model_configs import model_configs_from_sssd
from forex_diffusion.registry.records import (
    CheckpointRecord,
    InferenceLogRecord,
    MetricRecord,
    ModelRecord,
    RunRecord,
)
from forex_diffusion.registry.values import DateLike, loss
from forex_diffusion.settings import DEFAULT_ARTIFACTS_DIR

if TYPE_CHECKING:  # the config module pulls in pandas; the registry needs only its paths
    from forex_diffusion.config.sssd_config import SSSDConfig

__all__ = ["Registry", "model_configs_from_sssd", "normalize_asset", "open_registry"]


class Registry:
    """The model registry on one database.

    Args:
        url: SQLAlchemy URL; None resolves it (env FOREX_DIFFUSION_DB_URL, config
            ``paths.db_url``, else ``<paths.artifacts_dir>/registry.db``).
        config: the configuration used to resolve the URL.
        auto_upgrade: migrate the schema to head on first use (default). When False, a
            database that is not at head raises RegistryError asking for ``db upgrade``.
        artifacts_dir: the root checkpoint paths are stored relative to; None = the folder of
            a SQLite registry file (by default ``<paths.artifacts_dir>/registry.db``), else
            ``config.paths.artifacts_dir`` (``artifacts`` without a config).

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
        artifacts_dir: str | Path | None = None,
    ) -> None:
        self.url = resolve_db_url(url, config)
        self.artifacts_root = artifacts_root_for(self.url, config, artifacts_dir)
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
        self._sessions = sessionmaker(
            self.engine,
            expire_on_commit=False,
            info={
                models_repo.DATABASE_KEY: self.masked_url,
                checkpoints.ARTIFACTS_KEY: str(self.artifacts_root),
            },
        )

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
        wanted = models_repo.identity(
            model_type,
            {
                "architecture_config": architecture_config,
                "training_config": training_config,
                "feature_config": feature_config,
                "horizon_config": horizon_config,
            },
        )
        with self._tx(f"registering model {asset}/{model_name}") as session:
            return models_repo.register(session, asset, model_name, wanted, new_version)

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
            row = models_repo.by_name(session, normalize_asset(asset), model_name)
            return ModelRecord.model_validate(row)

    def get_model_by_id(self, model_id: int) -> ModelRecord:
        with self._tx("reading a model") as session:
            return ModelRecord.model_validate(models_repo.by_id(session, model_id))

    def find_models(self, asset: str, model_name: str | None = None) -> list[ModelRecord]:
        """``model_name`` of ``asset``, or all the asset's models by name.

        Raises:
            NotFoundError: unknown asset or model, listing what exists.
        """
        asset = normalize_asset(asset)
        with self._tx(f"reading {asset}") as session:
            rows = models_repo.of_asset(session, asset, model_name)
            return [ModelRecord.model_validate(row) for row in rows]

    def list_models(self, asset: str | None = None) -> list[ModelRecord]:
        """All models (of ``asset``), ordered by asset and name; empty when none match."""
        wanted = None if asset is None else normalize_asset(asset)
        with self._tx("listing models") as session:
            return models_repo.list_models(session, wanted)

    def known_assets(self) -> list[str]:
        """Assets with at least one model, sorted."""
        with self._tx("listing assets") as session:
            return models_repo.assets(session)

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
        """Record a checkpoint file (upsert by path; stored relative to the artifacts root).

        Re-recording a path (e.g. ``best.pt`` overwritten) updates its row. ``is_best`` clears
        the flag on the model's other checkpoints in the same transaction. ``size_bytes``
        defaults to the file's size on disk.
        """
        with self._tx(f"recording checkpoint {checkpoints.absolute(path)}") as session:
            return checkpoints.record(
                session,
                model_id,
                path,
                epoch,
                is_best,
                train_loss,
                val_loss,
                val_metrics,
                size_bytes,
            )

    def list_checkpoints(
        self,
        asset: str | None = None,
        model_name: str | None = None,
        model_id: int | None = None,
        best_only: bool = False,
    ) -> list[CheckpointRecord]:
        """Checkpoints, ordered by asset, model and epoch (NotFoundError for an unknown asset)."""
        wanted = None if asset is None else normalize_asset(asset)
        with self._tx("listing checkpoints") as session:
            return checkpoints.list_checkpoints(session, wanted, model_name, model_id, best_only)

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
            return checkpoints.best(session, asset, model_name)

    def delete_checkpoint(self, path: str | Path) -> bool:
        """Forget the checkpoint at ``path`` (the file is left alone); False if not recorded."""
        with self._tx(f"deleting checkpoint {checkpoints.absolute(path)}") as session:
            return checkpoints.delete(session, path)

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
        self.mark_stale_runs_interrupted(model_id=model_id)
        with self._tx(f"starting run {run_name!r}") as session:
            return runs.start(
                session,
                model_id,
                run_name,
                data_range,
                hyperparameters,
                device,
                log_path,
                pid,
                host,
            )

    def complete_run(
        self,
        run_id: int,
        best_epoch: int | None,
        epochs: int,
        final_train_loss: float | None,
        final_val_loss: float | None,
    ) -> RunRecord:
        with self._tx(f"completing run {run_id}") as session:
            return runs.finish(
                session,
                run_id,
                "completed",
                best_epoch=best_epoch,
                epochs=epochs,
                final_train_loss=loss(final_train_loss),
                final_val_loss=loss(final_val_loss),
            )

    def fail_run(self, run_id: int, error_message: str) -> RunRecord:
        message = str(error_message)[: runs.MAX_ERROR_MESSAGE_CHARS]
        with self._tx(f"failing run {run_id}") as session:
            return runs.finish(session, run_id, "failed", error_message=message)

    def interrupt_run(self, run_id: int, reason: str | None = None) -> RunRecord:
        with self._tx(f"interrupting run {run_id}") as session:
            return runs.finish(
                session, run_id, "interrupted", error_message=reason or "interrupted"
            )

    def mark_stale_runs_interrupted(
        self, model_id: int | None = None, older_than: timedelta | None = None
    ) -> list[RunRecord]:
        """Mark ``running`` runs whose process is gone as ``interrupted``; return them.

        A run started on this host is stale when its pid no longer exists. Runs of other hosts
        (whose processes cannot be checked from here) are marked only when ``older_than`` is
        given and they started longer ago than that.
        """
        with self._tx("marking stale runs") as session:
            return runs.mark_stale_interrupted(session, model_id, older_than)

    def get_run(self, run_id: int) -> RunRecord:
        with self._tx(f"reading run {run_id}") as session:
            return runs.get(session, run_id)

    def list_runs(
        self,
        asset: str | None = None,
        model_name: str | None = None,
        status: str | None = None,
        model_id: int | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first (NotFoundError for an unknown asset or model)."""
        wanted = None if asset is None else normalize_asset(asset)
        with self._tx("listing runs") as session:
            return runs.list_runs(session, wanted, model_name, status, model_id)

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
        """Log one served forecast (non-finite numbers in ``prediction`` are stored as null);
        ``asset`` is the served asset (for a global model, any asset it serves)."""
        asset = normalize_asset(asset)
        with self._tx(f"logging an inference of {asset}") as session:
            return inference_logs.log(
                session,
                model_id,
                asset,
                decision_time,
                horizons,
                prediction,
                inference_time_ms,
                device,
                batch_size,
                num_samples,
            )

    def list_inference_logs(
        self, asset: str | None = None, model_id: int | None = None, limit: int = 100
    ) -> list[InferenceLogRecord]:
        """Latest inference logs first."""
        wanted = None if asset is None else normalize_asset(asset)
        with self._tx("listing inference logs") as session:
            return inference_logs.latest(session, wanted, model_id, limit)

    def count_inference_logs(self, model_id: int) -> int:
        with self._tx("counting inference logs") as session:
            return inference_logs.count(session, model_id)

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
        """Store one evaluation result; ``model_id`` None for a baseline (e.g. method "garch").

        Raises:
            RegistryError: ``model_id`` is a per-asset model of another asset (a global model
                records metrics of any asset it serves).
        """
        asset = normalize_asset(asset)
        with self._tx(f"recording metrics of {method} on {asset}") as session:
            return metrics_repo.record(
                session,
                model_id,
                method,
                asset,
                horizon,
                window_start,
                window_end,
                metrics,
                n_forecasts,
            )

    def latest_metrics(self, asset: str, model_name: str | None = None) -> list[MetricRecord]:
        """The newest row per (model, method, horizon) of ``asset``.

        With ``model_name``: that model's rows plus the baselines' (model-less) rows.

        Raises:
            NotFoundError: an asset with neither models nor metrics, or an unknown model.
        """
        asset = normalize_asset(asset)
        with self._tx(f"reading metrics of {asset}") as session:
            return metrics_repo.latest(session, asset, model_name)

    def latest_model_metrics(self, model_id: int) -> list[MetricRecord]:
        """The newest row per (asset, method, horizon) of one model, on every asset it was
        evaluated on (a global model's rows are stored under the assets it served)."""
        with self._tx(f"reading metrics of model {model_id}") as session:
            return metrics_repo.latest_of_model(session, model_id)

    def latest_baseline_metrics(self, asset: str | None = None) -> list[MetricRecord]:
        """The newest baseline (model-less) row per (asset, method, horizon), of ``asset`` or of
        every asset; sorted by asset, method and horizon."""
        wanted = None if asset is None else normalize_asset(asset)
        with self._tx("reading baseline metrics") as session:
            return metrics_repo.latest_baselines(session, wanted)

    def has_metrics(self, asset: str) -> bool:
        """Whether any evaluation (of a model or a baseline) was recorded for ``asset``."""
        asset = normalize_asset(asset)
        with self._tx(f"reading metrics of {asset}") as session:
            return metrics_repo.has_any(session, asset)

    # ------------------------------------------------------------------ model cards

    def save_model_card(self, card: ModelCard) -> ModelCard:
        """Store ``card`` as the card of its model on ``card.asset``, replacing the previous one.

        A global model takes a card per asset it serves; a per-asset model only of its own asset.

        Raises:
            RegistryError: a per-asset model of another asset than ``card.asset``.
        """
        card = card.model_copy(update={"asset": normalize_asset(card.asset)})
        with self._tx(f"saving the model card of {card.model_name} on {card.asset}") as session:
            return model_cards.save(session, card)

    def model_card(self, model_id: int, asset: str) -> ModelCard | None:
        """The card of model ``model_id`` on ``asset`` (the asset it serves), or None when it
        was never evaluated there."""
        asset = normalize_asset(asset)
        with self._tx(f"reading the model card of model {model_id} on {asset}") as session:
            return model_cards.of_model(session, model_id, asset)

    def model_cards(self, model_id: int) -> dict[str, ModelCard]:
        """Every card of model ``model_id`` by asset (one for a per-asset model at most)."""
        with self._tx(f"reading the model cards of model {model_id}") as session:
            return model_cards.all_of_model(session, model_id)


def artifacts_root_for(
    url: str, config: SSSDConfig | None = None, artifacts_dir: str | Path | None = None
) -> Path:
    """The artifacts root of a registry (see ``Registry``), absolute."""
    if artifacts_dir is not None:
        return Path(artifacts_dir).expanduser().absolute()
    sqlite_file = sqlite_path(url)
    if sqlite_file is not None:
        return sqlite_file.parent
    root = config.paths.artifacts_dir if config is not None else DEFAULT_ARTIFACTS_DIR
    return Path(root).expanduser().absolute()


def open_registry(config: SSSDConfig | None = None, url: str | None = None) -> Registry:
    """The registry for ``config`` (URL: ``url`` > env > ``paths.db_url`` > SQLite default)."""
    return Registry(url=url, config=config)
