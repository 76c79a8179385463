"""The response cache's say per key and per team (on or off, ttl, deterministic only, the
cache controls a caller may send).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("ocilm_keys", "ocilm_teams"):
        op.add_column(table, sa.Column("cache", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    for table in ("ocilm_keys", "ocilm_teams"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("cache")
