"""Initial registry schema: models, checkpoints, training runs, inference logs, metrics.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _model_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["model_id"],
        ["sssd_models.id"],
        name=f"fk_{table}_model_id_sssd_models",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "sssd_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("model_type", sa.String(length=32), nullable=False),
        sa.Column("architecture_config", sa.JSON(), nullable=False),
        sa.Column("training_config", sa.JSON(), nullable=False),
        sa.Column("feature_config", sa.JSON(), nullable=False),
        sa.Column("horizon_config", sa.JSON(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_sssd_models"),
        sa.UniqueConstraint("asset", "model_name", name="uq_sssd_models_asset_model_name"),
    )
    op.create_index("ix_sssd_models_asset", "sssd_models", ["asset"])

    op.create_table(
        "sssd_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("is_best", sa.Boolean(), nullable=False),
        sa.Column("train_loss", sa.Float(), nullable=True),
        sa.Column("val_loss", sa.Float(), nullable=True),
        sa.Column("val_metrics", sa.JSON(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        _timestamp("created_at"),
        _model_fk("sssd_checkpoints"),
        sa.PrimaryKeyConstraint("id", name="pk_sssd_checkpoints"),
        sa.UniqueConstraint("path", name="uq_sssd_checkpoints_path"),
    )
    op.create_index("ix_sssd_checkpoints_model_id", "sssd_checkpoints", ["model_id"])
    op.create_index(
        "uq_sssd_checkpoints_one_best_per_model",
        "sssd_checkpoints",
        ["model_id"],
        unique=True,
        sqlite_where=sa.text("is_best"),
        postgresql_where=sa.text("is_best"),
    )

    op.create_table(
        "sssd_training_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("run_name", sa.String(length=255), nullable=False),
        sa.Column("data_range", sa.JSON(), nullable=False),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("best_epoch", sa.Integer(), nullable=True),
        sa.Column("epochs", sa.Integer(), nullable=True),
        sa.Column("final_train_loss", sa.Float(), nullable=True),
        sa.Column("final_val_loss", sa.Float(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("log_path", sa.String(length=1024), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        _timestamp("started_at"),
        _timestamp("completed_at", nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed', 'interrupted')",
            name="ck_sssd_training_runs_status",
        ),
        _model_fk("sssd_training_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_sssd_training_runs"),
    )
    op.create_index("ix_sssd_training_runs_model_id", "sssd_training_runs", ["model_id"])
    op.create_index("ix_sssd_training_runs_status", "sssd_training_runs", ["status"])

    op.create_table(
        "sssd_inference_logs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        _timestamp("decision_time"),
        sa.Column("horizons", sa.JSON(), nullable=False),
        sa.Column("prediction", sa.JSON(), nullable=False),
        sa.Column("inference_time_ms", sa.Float(), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("num_samples", sa.Integer(), nullable=False),
        _timestamp("created_at"),
        _model_fk("sssd_inference_logs"),
        sa.PrimaryKeyConstraint("id", name="pk_sssd_inference_logs"),
    )
    op.create_index(
        "ix_sssd_inference_logs_asset_decision_time",
        "sssd_inference_logs",
        ["asset", "decision_time"],
    )
    op.create_index("ix_sssd_inference_logs_model_id", "sssd_inference_logs", ["model_id"])

    op.create_table(
        "sssd_performance_metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("horizon", sa.Integer(), nullable=False),
        _timestamp("window_start"),
        _timestamp("window_end"),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("n_forecasts", sa.Integer(), nullable=False),
        _timestamp("created_at"),
        _model_fk("sssd_performance_metrics"),
        sa.PrimaryKeyConstraint("id", name="pk_sssd_performance_metrics"),
    )
    op.create_index(
        "ix_sssd_performance_metrics_asset_horizon",
        "sssd_performance_metrics",
        ["asset", "horizon"],
    )
    op.create_index(
        "ix_sssd_performance_metrics_model_id", "sssd_performance_metrics", ["model_id"]
    )


def downgrade() -> None:
    # Dropping a table drops its indexes; children go before the parent they reference.
    for table in (
        "sssd_performance_metrics",
        "sssd_inference_logs",
        "sssd_training_runs",
        "sssd_checkpoints",
        "sssd_models",
    ):
        op.drop_table(table)
