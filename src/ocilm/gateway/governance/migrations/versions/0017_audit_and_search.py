"""The audit trail (every admin change, hash-chained) and the spend log's search indexes: by key,
team, model or status over a time range, newest first, so a search among millions of rows reads
only what it returns.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

SEARCHES = {"ix_ocilm_spend_token_time": "token", "ix_ocilm_spend_team_time": "team_id", "ix_ocilm_spend_model_time": "model",
            "ix_ocilm_spend_status_time": "status"}  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "ocilm_audit",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
        sa.Column("at", sa.Float, nullable=False, index=True),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False, index=True),
        sa.Column("target", sa.String(256), index=True),
        sa.Column("before", sa.JSON(none_as_null=True)),
        sa.Column("after", sa.JSON(none_as_null=True)),
        sa.Column("previous", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
    )
    for name, column in SEARCHES.items():
        op.create_index(name, "ocilm_spend_logs", [column, "started_at"])
    for column in ("token", "team_id"):  # the new (column, started_at) indexes answer what these did: one index less to write per settlement
        op.drop_index(f"ix_ocilm_spend_logs_{column}", table_name="ocilm_spend_logs")


def downgrade() -> None:
    for column in ("token", "team_id"):
        op.create_index(f"ix_ocilm_spend_logs_{column}", "ocilm_spend_logs", [column])
    for name in SEARCHES:
        op.drop_index(name, table_name="ocilm_spend_logs")
    op.drop_table("ocilm_audit")
