"""Conversations bounded per tenant: an index to sum and evict one owner's conversations, oldest
first, without reading anyone else's.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_ocilm_conversations_owner_created", "ocilm_conversations", ["owner", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_ocilm_conversations_owner_created", "ocilm_conversations")
