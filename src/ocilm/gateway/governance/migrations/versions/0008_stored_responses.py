"""Who made each response stored on OCI's /openai/v1, and through which deployment: so that a
stored response (retrieve, delete, input items, previous_response_id) reaches the deployment that
holds it and only the key that made it, on every replica and after a restart.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ocilm_responses",
        sa.Column("response_id", sa.String(128), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("deployment", sa.String(300), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ocilm_responses")
