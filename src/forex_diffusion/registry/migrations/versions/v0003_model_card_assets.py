"""Model cards per (model, asset): a global model serves several assets, one card each.

A card stored by revision 0002 is of its model's own asset (0002 refused any other), so the new
``asset`` column of existing rows is the model's asset. Downgrading keeps, per model, only the
card of its own asset (0002 holds one card per model).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "sssd_model_cards"
_MODEL_ASSET = "(SELECT m.asset FROM sssd_models m WHERE m.id = sssd_model_cards.model_id)"


def upgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        batch.add_column(sa.Column("asset", sa.String(length=32), nullable=True))
    op.execute(f"UPDATE {TABLE} SET asset = {_MODEL_ASSET}")
    with op.batch_alter_table(TABLE) as batch:
        batch.alter_column("asset", existing_type=sa.String(length=32), nullable=False)
        batch.drop_constraint("uq_sssd_model_cards_model_id", type_="unique")
        batch.create_unique_constraint("uq_sssd_model_cards_model_id_asset", ["model_id", "asset"])


def downgrade() -> None:
    op.execute(f"DELETE FROM {TABLE} WHERE asset <> {_MODEL_ASSET}")
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_constraint("uq_sssd_model_cards_model_id_asset", type_="unique")
        batch.create_unique_constraint("uq_sssd_model_cards_model_id", ["model_id"])
        batch.drop_column("asset")
