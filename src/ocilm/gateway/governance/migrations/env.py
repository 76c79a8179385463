"""Alembic's entry point: migrations run on the connection ``upgrade`` hands over."""

from __future__ import annotations

from alembic import context

from ocilm.gateway.governance._models import Base
from ocilm.gateway.governance.migrations import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  version_table=VERSION_TABLE)  # fmt: skip
with context.begin_transaction():
    context.run_migrations()
