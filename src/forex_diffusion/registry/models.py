"""SQLAlchemy 2 declarative ORM of the model registry (SPEC §6).

Six tables (the sixth, model cards, since revision 0002, keyed per model and asset since
0003); the Alembic migrations in ``migrations/versions`` create exactly this schema (a test
runs autogenerate's ``compare_metadata`` against both SQLite and PostgreSQL). Timestamps are
stored in UTC and always come back tz-aware. The classes are named for rows (``ModelRow``, not the
network); they stay inside the registry package: its API hands out frozen pydantic records
(``records.py``) read from these rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

RUN_STATUSES = ("running", "completed", "failed", "interrupted")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    Binds: aware datetimes are converted to UTC; naive ones are rejected (ambiguous).
    SQLite stores the naive UTC value; results always come back aware in UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: registry timestamps must be tz-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: UTCDateTime}


class ModelRow(Base):
    """One trained (or to-be-trained) model of one asset; configs define its identity."""

    __tablename__ = "sssd_models"
    __table_args__ = (UniqueConstraint("asset", "model_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset: Mapped[str] = mapped_column(String(32), index=True)
    model_name: Mapped[str] = mapped_column(String(128))
    model_type: Mapped[str] = mapped_column(String(32))
    architecture_config: Mapped[dict[str, Any]]
    training_config: Mapped[dict[str, Any]]
    feature_config: Mapped[dict[str, Any]]
    horizon_config: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    checkpoints: Mapped[list[CheckpointRow]] = relationship(
        back_populates="model", cascade="all, delete-orphan", passive_deletes=True
    )
    runs: Mapped[list[RunRow]] = relationship(
        back_populates="model", cascade="all, delete-orphan", passive_deletes=True
    )


class CheckpointRow(Base):
    """A checkpoint file written by the trainer; at most one ``is_best`` per model."""

    __tablename__ = "sssd_checkpoints"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("sssd_models.id", ondelete="CASCADE"), index=True
    )
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    epoch: Mapped[int] = mapped_column(Integer)
    is_best: Mapped[bool] = mapped_column(Boolean, default=False)
    train_loss: Mapped[float | None] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)
    val_metrics: Mapped[dict[str, Any]]
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    model: Mapped[ModelRow] = relationship(back_populates="checkpoints")

    @property
    def asset(self) -> str:
        return self.model.asset

    @property
    def model_name(self) -> str:
        return self.model.model_name


# At most one best checkpoint per model, enforced by a partial unique index.
Index(
    "uq_sssd_checkpoints_one_best_per_model",
    CheckpointRow.model_id,
    unique=True,
    sqlite_where=text("is_best"),
    postgresql_where=text("is_best"),
)


class RunRow(Base):
    """One training run; ``status`` is constrained in the database to RUN_STATUSES."""

    __tablename__ = "sssd_training_runs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('running', 'completed', 'failed', 'interrupted')", name="status"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("sssd_models.id", ondelete="CASCADE"), index=True
    )
    run_name: Mapped[str] = mapped_column(String(255))
    data_range: Mapped[dict[str, Any]]
    hyperparameters: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), index=True)
    error_message: Mapped[str | None] = mapped_column(Text)
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    epochs: Mapped[int | None] = mapped_column(Integer)
    final_train_loss: Mapped[float | None] = mapped_column(Float)
    final_val_loss: Mapped[float | None] = mapped_column(Float)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    device: Mapped[str] = mapped_column(String(64))
    log_path: Mapped[str | None] = mapped_column(String(1024))
    pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]

    model: Mapped[ModelRow] = relationship(back_populates="runs")

    @property
    def asset(self) -> str:
        return self.model.asset

    @property
    def model_name(self) -> str:
        return self.model.model_name


class InferenceLogRow(Base):
    """One forecast served by the inference service."""

    __tablename__ = "sssd_inference_logs"
    __table_args__ = (Index(None, "asset", "decision_time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("sssd_models.id", ondelete="CASCADE"), index=True
    )
    asset: Mapped[str] = mapped_column(String(32))
    decision_time: Mapped[datetime]
    horizons: Mapped[list[int]] = mapped_column(JSON)
    prediction: Mapped[dict[str, Any]]
    inference_time_ms: Mapped[float] = mapped_column(Float)
    device: Mapped[str] = mapped_column(String(64))
    batch_size: Mapped[int] = mapped_column(Integer)
    num_samples: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MetricRow(Base):
    """Evaluation metrics of one method (SSSD model or a baseline) on one asset and horizon."""

    __tablename__ = "sssd_performance_metrics"
    __table_args__ = (Index(None, "asset", "horizon"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int | None] = mapped_column(
        ForeignKey("sssd_models.id", ondelete="CASCADE"), index=True
    )
    method: Mapped[str] = mapped_column(String(64))
    asset: Mapped[str] = mapped_column(String(32))
    horizon: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    metrics: Mapped[dict[str, Any]]
    n_forecasts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    model: Mapped[ModelRow | None] = relationship(viewonly=True)

    @property
    def model_name(self) -> str | None:
        """The model's name; None for a baseline."""
        return None if self.model is None else self.model.model_name


class ModelCardRow(Base):
    """The model card of one model on one asset: its verdict against the baselines on an
    evaluated range of that asset (``card`` is the ``ModelCard`` as JSON); one per (model,
    asset), replaced by each new evaluation. A per-asset model has cards of its own asset only;
    a global model one per asset it was evaluated on (since revision 0003)."""

    __tablename__ = "sssd_model_cards"
    __table_args__ = (UniqueConstraint("model_id", "asset"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("sssd_models.id", ondelete="CASCADE"))
    asset: Mapped[str] = mapped_column(String(32))
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    card: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
