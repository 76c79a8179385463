"""Alembic migrations for the governance tables, run from code (no alembic.ini needed):
``ocilm db upgrade``, or at start-up for SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

VERSION_TABLE = "ocilm_alembic_version"


def _config(sync_connection: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).resolve().parent))
    config.attributes["connection"] = sync_connection
    return config


def upgrade(sync_connection: Any) -> None:
    """Bring the schema on ``sync_connection`` to the newest revision."""
    from alembic import command

    command.upgrade(_config(sync_connection), "head")


def is_current(sync_connection: Any) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from .._outcomes import SchemaAhead

    script = ScriptDirectory.from_config(_config(sync_connection))
    head = script.get_current_head()
    current = MigrationContext.configure(sync_connection, opts={"version_table": VERSION_TABLE}).get_current_revision()
    if current is not None and current not in {rev.revision for rev in script.walk_revisions()}:
        raise SchemaAhead(f"the database's schema is at revision {current}, newer than this ocilm knows (it knows up to {head}): "
                          "run the ocilm version that migrated it, or a newer one")  # fmt: skip
    return current == head
