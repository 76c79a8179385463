"""Alembic migrations for the governance tables, run from code (no alembic.ini needed):
``ocilm db upgrade``, or at start-up for SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def upgrade(sync_connection: Any) -> None:
    """Bring the schema on ``sync_connection`` to the newest revision."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).resolve().parent))
    config.attributes["connection"] = sync_connection
    command.upgrade(config, "head")
