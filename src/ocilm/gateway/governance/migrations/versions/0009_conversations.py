"""The translated Responses door's conversations (``previous_response_id`` on the native API), kept
in the governance store so that they reach every replica and outlive a restart.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ocilm_conversations",
        sa.Column("response_id", sa.String(128), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("history", sa.Text, nullable=False),
        sa.Column("chars", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_ocilm_conversations_created_at", "ocilm_conversations", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_ocilm_conversations_created_at", "ocilm_conversations")
    op.drop_table("ocilm_conversations")
