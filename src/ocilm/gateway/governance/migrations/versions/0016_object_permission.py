"""What a key or a team may reach beyond models: LiteLLM's ``object_permission``
(``mcp_servers``, ``mcp_tool_permissions``).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("ocilm_keys", "ocilm_teams"):
        op.add_column(table, sa.Column("object_permission", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    for table in ("ocilm_keys", "ocilm_teams"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("object_permission")
