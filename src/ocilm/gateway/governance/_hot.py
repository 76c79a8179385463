"""The two statements every governed request runs, hold and settle, on the database drivers
themselves: through SQLAlchemy each cost about half a millisecond of the gateway's CPU, several
times the work they do (``bench/governance.py``). Everything else about the store stays on
SQLAlchemy.

PostgreSQL: a hold is one call of ``ocilm_reserve`` (migration 0002) and a settlement one
statement of data-modifying CTEs, each one round trip on a pooled asyncpg connection.
SQLite: both run whole, under ``BEGIN IMMEDIATE``, in one hop to the store's single writer thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ._policy import duration_seconds

LOG_COLUMNS = ("request_id", "token", "team_id", "model", "deployment", "route", "input_tokens", "output_tokens", "cost", "status",
               "latency_ms", "started_at")  # fmt: skip


class Refused(Exception):
    """A hold that does not fit: (scope, max_budget, spend, held)."""


class Lost(Exception):
    """The database could not be reached (the store turns this into StoreUnavailable)."""


# ---------------------------------------------------------------- PostgreSQL

_PG_RESERVE = "SELECT scope, max_budget, spend, held, set_config('synchronous_commit', 'off', true) FROM ocilm_reserve($1, $2, $3, $4, $5, $6)"
_PG_SETTLE = f"""
WITH logged AS (
    INSERT INTO ocilm_spend_logs ({", ".join(LOG_COLUMNS)}) VALUES ({", ".join(f"${i + 1}" for i in range(len(LOG_COLUMNS)))})
    ON CONFLICT (request_id) DO NOTHING RETURNING request_id
), key_spend AS (
    UPDATE ocilm_keys SET spend = spend + $13 WHERE token = $2 AND $13 > 0 AND EXISTS (SELECT 1 FROM logged)
), team_spend AS (
    UPDATE ocilm_teams SET spend = spend + $13 WHERE team_id = $3 AND $13 > 0 AND EXISTS (SELECT 1 FROM logged)
), released AS (
    DELETE FROM ocilm_holds WHERE request_id = $1
)
SELECT count(*) FROM logged"""


async def _keep_session(connection: Any) -> None:
    """Nothing to reset between uses (the statements set nothing beyond their transaction);
    asyncpg's default reset is a round trip per release."""


class PostgresBudgets:
    def __init__(self, pool: Any, synchronous_commit: bool) -> None:
        self.pool = pool
        self.synchronous_commit = synchronous_commit

    @classmethod
    async def open(cls, url: str, synchronous_commit: bool = False) -> PostgresBudgets:
        import asyncpg

        try:
            pool = await asyncpg.create_pool(url.replace("postgresql://", "postgres://", 1), min_size=1, max_size=20,
                                             reset=_keep_session, timeout=10)  # fmt: skip
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise Lost(type(exc).__name__) from None
        return cls(pool, synchronous_commit)

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        import asyncpg

        try:
            async with self.pool.acquire(timeout=10) as conn:
                return await conn.fetchrow(sql, *args)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.CannotConnectNowError) as exc:  # fmt: skip
            raise Lost(type(exc).__name__) from None

    async def reserve(self, request_id: str, token: str, team_id: str | None, estimate: int, now: float, ttl: float) -> None:
        # A hold is a lease: committed without waiting for the disk, it is visible to every
        # replica at once; only a crash of PostgreSQL itself could lose the newest ones.
        row = await self._fetchrow(_PG_RESERVE, request_id, token, team_id, estimate, now, ttl)
        if row is not None and row["scope"] is not None:
            raise Refused(row["scope"], row["max_budget"], row["spend"], int(row["held"]))

    async def settle(self, log: dict[str, Any]) -> bool:
        args = [log[c] for c in LOG_COLUMNS] + [log.get("cost") or 0]
        sql = _PG_SETTLE if self.synchronous_commit else _PG_SETTLE + ", set_config('synchronous_commit', 'off', true)"
        row = await self._fetchrow(sql, *args)
        return bool(row[0])

    async def close(self) -> None:
        await self.pool.close()


# ---------------------------------------------------------------- SQLite

_SQLITE_SETTLE = f"INSERT INTO ocilm_spend_logs ({', '.join(LOG_COLUMNS)}) VALUES ({', '.join('?' * len(LOG_COLUMNS))}) ON CONFLICT (request_id) DO NOTHING"


class SQLiteBudgets:
    def __init__(self, path: str) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ocilm-sqlite-writer")
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:  # made on the writer thread, used only there
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self._conn

    async def _run(self, work: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._in_transaction, work, args)

    def _in_transaction(self, work: Any, args: tuple[Any, ...]) -> Any:
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")  # the one write lock: every check and its hold together
        except sqlite3.OperationalError as exc:
            raise Lost(str(exc)) from None
        try:
            result = work(conn, *args)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def reserve(self, request_id: str, token: str, team_id: str | None, estimate: int, now: float, ttl: float) -> None:
        await self._run(_sqlite_reserve, request_id, token, team_id, estimate, now, ttl)

    async def settle(self, log: dict[str, Any]) -> bool:
        return bool(await self._run(_sqlite_settle, log))

    async def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()

        await asyncio.get_running_loop().run_in_executor(self._thread, shut)
        self._thread.shutdown(wait=True)


def _sqlite_reserve(conn: sqlite3.Connection, request_id: str, token: str, team_id: str | None, estimate: int, now: float, ttl: float) -> None:
    held_key, held_team = conn.execute(
        "SELECT COALESCE(SUM(amount) FILTER (WHERE token = ?), 0), COALESCE(SUM(amount) FILTER (WHERE team_id = ?), 0) "
        "FROM ocilm_holds WHERE (token = ? OR team_id = ?) AND expires_at > ?", (token, team_id, token, team_id, now),
    ).fetchone()  # fmt: skip
    scopes = [("key", "ocilm_keys", "token", token, held_key)]
    if team_id:
        scopes.append(("team", "ocilm_teams", "team_id", team_id, held_team))
    for scope, table, column, ident, held in scopes:
        row = conn.execute(f"SELECT max_budget, spend, budget_duration, budget_reset_at FROM {table} WHERE {column} = ?", (ident,)).fetchone()
        if row is None or row[0] is None:
            continue
        max_budget, spend, duration, reset_at = row
        if duration and (reset_at is None or now >= reset_at):  # a new budget window starts
            spend = 0 if reset_at is not None else spend
            conn.execute(f"UPDATE {table} SET spend = ?, budget_reset_at = ? WHERE {column} = ?",
                         (spend, now + duration_seconds(duration, "budget_duration"), ident))  # fmt: skip
        if spend + held + estimate > max_budget:
            raise Refused(scope, max_budget, spend, int(held))
    conn.execute("INSERT INTO ocilm_holds (request_id, token, team_id, amount, expires_at) VALUES (?, ?, ?, ?, ?)",
                 (request_id, token, team_id, estimate, now + ttl))  # fmt: skip


def _sqlite_settle(conn: sqlite3.Connection, log: dict[str, Any]) -> bool:
    if conn.execute(_SQLITE_SETTLE, [log[c] for c in LOG_COLUMNS]).rowcount == 0:
        return False  # settled before
    charge = log.get("cost") or 0
    if charge and log.get("token"):
        conn.execute("UPDATE ocilm_keys SET spend = spend + ? WHERE token = ?", (charge, log["token"]))
    if charge and log.get("team_id"):
        conn.execute("UPDATE ocilm_teams SET spend = spend + ? WHERE team_id = ?", (charge, log["team_id"]))
    conn.execute("DELETE FROM ocilm_holds WHERE request_id = ?", (log["request_id"],))
    return True

