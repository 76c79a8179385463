"""Rate limits on keys and teams: requests and tokens per minute, requests in flight, and a key's
per-model requests and tokens per minute.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COUNTS = ("rpm_limit", "tpm_limit", "max_parallel_requests")


def upgrade() -> None:
    for table in ("ocilm_keys", "ocilm_teams"):
        for column in _COUNTS:
            op.add_column(table, sa.Column(column, sa.Integer, nullable=True))
    op.add_column("ocilm_keys", sa.Column("model_rpm_limit", sa.JSON, nullable=True))
    op.add_column("ocilm_keys", sa.Column("model_tpm_limit", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ocilm_keys") as batch:
        for column in (*_COUNTS, "model_rpm_limit", "model_tpm_limit"):
            batch.drop_column(column)
    with op.batch_alter_table("ocilm_teams") as batch:
        for column in _COUNTS:
            batch.drop_column(column)
