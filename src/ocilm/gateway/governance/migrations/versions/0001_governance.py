"""Keys, teams, budget holds and spend logs.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ocilm_teams",
        sa.Column("team_id", sa.String(64), primary_key=True),
        sa.Column("team_alias", sa.String(256)),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("max_budget", sa.BigInteger),
        sa.Column("budget_duration", sa.String(16)),
        sa.Column("budget_reset_at", sa.Float),
        sa.Column("spend", sa.BigInteger, nullable=False),
        sa.Column("blocked", sa.Boolean, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "ocilm_keys",
        sa.Column("token", sa.String(32), primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("key_name", sa.String(64), nullable=False),
        sa.Column("key_alias", sa.String(256)),
        sa.Column("team_id", sa.String(64), index=True),
        sa.Column("user_id", sa.String(256)),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("max_budget", sa.BigInteger),
        sa.Column("budget_duration", sa.String(16)),
        sa.Column("budget_reset_at", sa.Float),
        sa.Column("spend", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("blocked", sa.Boolean, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("previous_hash", sa.String(64)),
        sa.Column("previous_valid_until", sa.Float),
    )
    op.create_table(
        "ocilm_holds",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("token", sa.String(32), nullable=False, index=True),
        sa.Column("team_id", sa.String(64), index=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False, index=True),
    )
    op.create_table(
        "ocilm_spend_logs",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("token", sa.String(32), index=True),
        sa.Column("team_id", sa.String(64), index=True),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("deployment", sa.String(256), nullable=False),
        sa.Column("route", sa.String(64), nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cost", sa.BigInteger),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False, index=True),
    )


def downgrade() -> None:
    for table in ("ocilm_spend_logs", "ocilm_holds", "ocilm_keys", "ocilm_teams"):
        op.drop_table(table)
