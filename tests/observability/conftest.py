"""The governance stores (SQLite and a real PostgreSQL) for observability tests too."""

from tests.governance.conftest import postgres_url, store_url  # noqa: F401
