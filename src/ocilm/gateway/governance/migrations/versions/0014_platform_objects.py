"""The objects a tenant makes on OCI's agent platform through the gateway (files first): which
team (or teamless key) owns each, through which deployment it lives, and its size, so that every
other tenant meets a 404 for it and a tenant's bytes held can be bounded.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ocilm_objects",
        sa.Column("object_id", sa.String(256), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("deployment", sa.String(300), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_ocilm_objects_owner_kind", "ocilm_objects", ["owner", "kind"])


def downgrade() -> None:
    op.drop_index("ix_ocilm_objects_owner_kind", "ocilm_objects")
    op.drop_table("ocilm_objects")
