"""Governance stores for tests: a SQLite file per test, and a fresh PostgreSQL database per test
on the local server (skipped with a reason when it is not reachable; ``.ci/run`` turns that skip
into a failure)."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid

import pytest

from ..servers import OwnRedis

PG_ADMIN = os.environ.get("OCILM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin_run(sql: str) -> None:
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(PG_ADMIN.replace("postgresql://", "postgres://", 1), timeout=3)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


@pytest.fixture
def postgres_url():
    """A new, empty PostgreSQL database, dropped afterwards."""
    name = f"ocilm_test_{uuid.uuid4().hex[:12]}"
    try:
        _admin_run(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # any failure to reach the server means: not available here
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN.rsplit('@', 1)[-1]} ({type(exc).__name__}); set OCILM_TEST_POSTGRES")
    base = PG_ADMIN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    _admin_run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'governance.db'}"
    return request.getfixturevalue("postgres_url")


def migrate(url: str) -> None:
    """What ``ocilm db upgrade`` does, for a PostgreSQL database a test is about to serve from."""
    from ocilm.gateway.governance._store import Store

    async def go() -> None:
        store = await Store.open(url)
        try:
            await store.upgrade()
        finally:
            await store.close()

    asyncio.run(go())


@pytest.fixture
def own_redis(tmp_path, redis_url):
    """A redis-server of the test's own, to stop and start (the shared one stays up)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian's redis-server package)")
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()
