"""Guardrails a key or a team turns on (names from the config's guardrails: section).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("ocilm_keys", "ocilm_teams"):
        op.add_column(table, sa.Column("guardrails", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    for table in ("ocilm_keys", "ocilm_teams"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("guardrails")
