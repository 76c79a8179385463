"""Alembic migrations for the governance tables, run from code (no alembic.ini needed):
``ocilm db upgrade``, or at start-up for SQLite."""

from __future__ import annotations

import functools
import re
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


_REVISION_LINE = re.compile(r'^(revision|down_revision)\s*=\s*(?:"([^"]*)"|None)', re.M)


@functools.cache
def known_revisions() -> tuple[frozenset[str], str]:
    """Every revision this ocilm ships, and the newest, read from the migration files' own
    ``revision`` lines (checking a schema needs no Alembic: it is imported only to migrate)."""
    parents: dict[str, str | None] = {}
    for path in sorted((Path(__file__).resolve().parent / "versions").glob("[0-9]*.py")):
        found = {m.group(1): m.group(2) for m in _REVISION_LINE.finditer(path.read_text(encoding="utf-8"))}
        parents[found["revision"]] = found.get("down_revision")
    (head,) = set(parents) - {parent for parent in parents.values() if parent}
    return frozenset(parents), head


def is_current(sync_connection: Any) -> bool:
    from sqlalchemy import inspect, text

    from .._outcomes import SchemaAhead

    known, head = known_revisions()
    current = None
    if inspect(sync_connection).has_table(VERSION_TABLE):
        current = sync_connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    if current is not None and current not in known:
        raise SchemaAhead(f"the database's schema is at revision {current}, newer than this ocilm knows (it knows up to {head}): "
                          "run the ocilm version that migrated it, or a newer one")  # fmt: skip
    return bool(current == head)
