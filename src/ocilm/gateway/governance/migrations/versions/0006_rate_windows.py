"""Rate-limit counters in the store, for ``ocilm serve --workers N`` on its SQLite file without
Redis: each admitted request in a limit's sliding window, and each slot in flight.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ocilm_rate_window",
        sa.Column("ident", sa.String(300), primary_key=True),
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_ocilm_rate_window_ident_at", "ocilm_rate_window", ["ident", "at"])
    op.create_table(
        "ocilm_rate_slots",
        sa.Column("ident", sa.String(300), primary_key=True),
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("until", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ocilm_rate_slots")
    op.drop_index("ix_ocilm_rate_window_ident_at", "ocilm_rate_window")
    op.drop_table("ocilm_rate_window")
