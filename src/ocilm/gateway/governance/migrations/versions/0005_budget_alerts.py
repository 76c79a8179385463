"""Budget alerts: the highest threshold (percent of the budget) already announced for a key and
a team, and in which budget window, so each crossing is announced once across replicas.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("ocilm_keys", "ocilm_teams"):
        op.add_column(table, sa.Column("alert_level", sa.Integer, nullable=True))
        op.add_column(table, sa.Column("alert_window", sa.Float, nullable=True))


def downgrade() -> None:
    for table in ("ocilm_keys", "ocilm_teams"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("alert_window")
            batch.drop_column("alert_level")
