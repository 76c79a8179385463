"""The two statements every governed request runs, hold and settle, on the database drivers
themselves: through SQLAlchemy each cost about half a millisecond of the gateway's CPU, several
times the work they do (``bench/governance.py``). Everything else about the store stays on
SQLAlchemy.

Holds (and settlements) that arrive while one is being written go together in the next write:
at one request at a time each is written alone, at load one round trip serves many requests, each
still decided on its own (one refused hold does not refuse its batch-mates).

PostgreSQL: a batch is one call of ``ocilm_reserve_many`` or ``ocilm_settle_many`` (migrations
0002-0003), one round trip on a pooled asyncpg connection, sorted so that row locks are always
taken in one order (no deadlocks between replicas).
SQLite: a batch runs whole, under ``BEGIN IMMEDIATE``, in one hop to the store's single writer thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ._limits import Limit, RateLimited, Stat, Ticket, check_limit, rate_headers
from ._outcomes import Lost
from ._policy import stored_duration_seconds

log = logging.getLogger("ocilm.gateway")

LOG_COLUMNS = ("request_id", "token", "team_id", "model", "deployment", "route", "input_tokens", "output_tokens", "cost", "status",
               "latency_ms", "started_at", "tool_calls")  # fmt: skip
MAX_BATCH = 128
STATEMENT_SECONDS = 5.0  # a database that has not answered by then is down (503), however it failed


class Refused(Exception):
    """A hold that does not fit: (scope, max_budget, spend, held)."""


class Batched:
    """Calls that arrive while a write is in flight wait and go together in the next one.

    ``write_many(items)`` returns one outcome per item: a value, or an exception that only that
    item's caller gets. An outage (``Lost``) reaches every caller in the write; any other failure
    of the whole write is one item's doing, so its items are written again one at a time and only
    the bad item's caller hears it. A write runs in
    a task of its own, so a caller that gives up (a client gone) does not cancel its batch-mates'
    writes, nor its own once it is sent: a settlement started is finished. With
    ``skip_abandoned``, an item whose caller gave up before its write began is not written (a
    hold nobody will use)."""

    def __init__(self, write_many: Callable[[list[Any]], Awaitable[list[Any]]], skip_abandoned: bool = False) -> None:
        self.write_many = write_many
        self.skip_abandoned = skip_abandoned
        self._waiting: list[tuple[Any, asyncio.Future[Any]]] = []
        self._writing = False
        self._task: asyncio.Future[None] | None = None

    async def drain(self) -> None:
        """Wait for the writes in flight and those waiting (shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.wait([self._task])

    async def __call__(self, item: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if not self._writing:
            self._writing = True
            self._task = asyncio.ensure_future(self._write())  # held: a task nobody holds may be collected
        return await future

    async def _write(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                if self.skip_abandoned:
                    batch = [(item, future) for item, future in batch if not future.cancelled()]
                    if not batch:
                        continue
                try:
                    outcomes = await self.write_many([item for item, _ in batch])
                except Exception as exc:
                    if isinstance(exc, Lost) or len(batch) == 1:  # an outage: every caller in it hears
                        _fail(batch, exc)
                    else:  # one bad item failed its batch: each is written alone, so it fails alone
                        await self._one_by_one(batch)
                    continue
                except BaseException as exc:
                    _fail(batch, Lost(type(exc).__name__))
                    raise
                _deliver(batch, outcomes)
        finally:
            self._writing = False

    async def _one_by_one(self, batch: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        for index, (item, future) in enumerate(batch):
            try:
                outcomes = await self.write_many([item])
            except Lost as exc:  # the database went away meanwhile: the rest hear it too
                _fail(batch[index:], exc)
                return
            except Exception as exc:
                _fail([(item, future)], exc)
                continue
            _deliver([(item, future)], outcomes)


def _fail(batch: list[tuple[Any, asyncio.Future[Any]]], exc: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)


def _deliver(batch: list[tuple[Any, asyncio.Future[Any]]], outcomes: list[Any]) -> None:
    for (_, future), outcome in zip(batch, outcomes, strict=True):
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)



def lock_order(item: tuple[int, dict[str, Any]]) -> tuple[str, str, str]:
    """Teamless keys first, then by team, then by key: the one order every write takes row locks in."""
    row = item[1]
    team = row.get("team_id")
    return ("1" + team if team else "0", row.get("token") or "", row["request_id"])


# ---------------------------------------------------------------- PostgreSQL

_PG_RESERVE_MANY = ("SELECT i, scope, max_budget, spend, held, set_config('synchronous_commit', 'off', true) "
                    "FROM ocilm_reserve_many($1, $2, $3, $4, $5, $6)")  # fmt: skip
_PG_LEASE_MANY = ("SELECT i, scope, max_budget, spend, held, granted, set_config('synchronous_commit', 'off', true) "
                  "FROM ocilm_lease_many($1, $2, $3, $4, $5, $6, $7)")  # fmt: skip
_PG_SETTLE_MANY = "SELECT request_id FROM ocilm_settle_many($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) AS request_id"
_PG_SETTLE_MANY_ASYNC = _PG_SETTLE_MANY.replace("SELECT request_id", "SELECT request_id, set_config('synchronous_commit', 'off', true)")
_DEADLOCK_RETRIES = 3


class PostgresBudgets:
    """Holds and settlements, each on a connection of its own: a ``Batched`` has at most one
    write in flight, so a pool (and its acquire and release on every request) buys nothing."""

    def __init__(self, url: str, connections: dict[str, Any], synchronous_commit: bool) -> None:
        self.url = url
        self._connections = connections
        self.synchronous_commit = synchronous_commit
        self._reserve = Batched(self._reserve_many, skip_abandoned=True)
        self._lease = Batched(self._lease_many)
        self._settle = Batched(self._settle_many)

    @classmethod
    async def open(cls, url: str, synchronous_commit: bool = False) -> PostgresBudgets:
        budgets = cls(url.replace("postgresql://", "postgres://", 1), {}, synchronous_commit)
        for purpose in ("lease", "reserve", "settle"):  # reachable now, or a clear error at start-up; none opened on a request's path
            await budgets._connection(purpose)
        return budgets

    async def _connection(self, purpose: str) -> Any:
        import asyncpg

        conn = self._connections.get(purpose)
        if conn is None or conn.is_closed():
            try:
                conn = self._connections[purpose] = await asyncpg.connect(self.url, timeout=STATEMENT_SECONDS)
            except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise Lost(type(exc).__name__) from None
        return conn

    async def _fetch(self, purpose: str, sql: str, *args: Any) -> Any:
        import asyncpg

        for attempt in range(_DEADLOCK_RETRIES + 1):
            conn = await self._connection(purpose)
            try:
                return await conn.fetch(sql, *args, timeout=STATEMENT_SECONDS)
            except asyncpg.DeadlockDetectedError:  # an admin write crossed the batch's locks: it rolled back whole
                if attempt == _DEADLOCK_RETRIES:
                    raise Lost("DeadlockDetectedError") from None
            except (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                    asyncpg.CannotConnectNowError) as exc:  # fmt: skip
                self._connections.pop(purpose, None)
                conn.terminate()  # the next write reconnects
                raise Lost(type(exc).__name__) from None
        raise AssertionError("unreachable")

    async def reserve(self, request_id: str, token: str, team_id: str | None, estimate: int, now: float, ttl: float) -> None:
        await self._reserve({"request_id": request_id, "token": token, "team_id": team_id, "estimate": estimate, "now": now, "ttl": ttl})

    async def _reserve_many(self, holds: list[dict[str, Any]]) -> list[Any]:
        # A hold is a lease: committed without waiting for the disk, it is visible to every
        # replica at once; only a crash of PostgreSQL itself could lose the newest ones.
        ordered = sorted(enumerate(holds), key=lock_order)
        rows = await self._fetch("reserve", _PG_RESERVE_MANY, [h["request_id"] for _, h in ordered], [h["token"] for _, h in ordered],
                                 [h["team_id"] for _, h in ordered], [h["estimate"] for _, h in ordered],
                                 max(h["now"] for h in holds), holds[0]["ttl"])  # fmt: skip
        outcomes: list[Any] = [None] * len(holds)
        for row in rows:
            if row["scope"] is not None:
                outcomes[ordered[row["i"] - 1][0]] = Refused(row["scope"], row["max_budget"], row["spend"], int(row["held"]))
        return outcomes

    async def lease(self, lease_id: str, token: str, team_id: str | None, need: int, slack: int, now: float, ttl: float) -> int:
        return await self._lease({"request_id": lease_id, "token": token, "team_id": team_id, "need": need, "slack": slack,  # type: ignore[no-any-return]
                                  "now": now, "ttl": ttl})  # fmt: skip

    async def _lease_many(self, leases: list[dict[str, Any]]) -> list[Any]:
        ordered = sorted(enumerate(leases), key=lock_order)
        rows = await self._fetch("lease", _PG_LEASE_MANY, [h["request_id"] for _, h in ordered], [h["token"] for _, h in ordered],
                                 [h["team_id"] for _, h in ordered], [h["need"] for _, h in ordered], [h["slack"] for _, h in ordered],
                                 max(h["now"] for h in leases), leases[0]["ttl"])  # fmt: skip
        outcomes: list[Any] = [None] * len(leases)
        for row in rows:
            place = ordered[row["i"] - 1][0]
            if row["scope"] is not None:
                outcomes[place] = Refused(row["scope"], row["max_budget"], row["spend"], int(row["held"]))
            else:
                outcomes[place] = int(row["granted"])
        return outcomes

    async def settle(self, log: dict[str, Any]) -> bool:
        return bool(await self._settle(log))

    async def _settle_many(self, logs: list[dict[str, Any]]) -> list[bool]:
        ordered = [log for _, log in sorted(enumerate(logs), key=lock_order)]
        columns = [[log.get(c) for log in ordered] for c in LOG_COLUMNS]  # a row without tool calls has none
        rows = await self._fetch("settle", _PG_SETTLE_MANY if self.synchronous_commit else _PG_SETTLE_MANY_ASYNC, *columns)
        logged = {row["request_id"] for row in rows}
        return [log["request_id"] in logged for log in logs]

    async def close(self) -> None:
        await self._settle.drain()
        for conn in self._connections.values():
            await conn.close(timeout=5)


# ---------------------------------------------------------------- SQLite

_SQLITE_SETTLE = f"INSERT INTO ocilm_spend_logs ({', '.join(LOG_COLUMNS)}) VALUES ({', '.join('?' * len(LOG_COLUMNS))}) ON CONFLICT (request_id) DO NOTHING"


INLINE_CHECKPOINT_EVERY = 50  # commits on the loop between two checkpoints (about 500 pages of log with the search indexes: SQLite's own is 1,000)


BUSY_PAUSES = (0, 0, 0, 0.0005, 0.001, 0.001, 0.002, 0.002, 0.005, 0.005, 0.01)  # about 27 ms on the loop in all


class _Busy(Exception):
    """Another connection holds the write lock: the loop does not wait for it."""


class SQLiteBudgets:
    """Holds, settlements and rate-limit rows in one SQLite file.

    A write runs on the event loop itself when the write lock is free at once: a WAL commit with
    ``synchronous=NORMAL`` is a write to the page cache, about 30 µs, where a hop to a thread and
    back costs about 110 µs more (and the hand-backs of the GIL). When the lock is taken (another
    worker, the admin API, the CLI) the write goes to the writer thread, which waits for it. The
    loop's connection never checkpoints (that would wait for the disk): the writer thread does,
    every ``INLINE_CHECKPOINT_EVERY`` commits on the loop, and restarts the log. Writes meanwhile
    go to the writer thread, behind it (a checkpoint racing the loop's writes would never
    complete, and the log would only grow); the loop does not wait."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ocilm-sqlite-writer")
        self._conn: sqlite3.Connection | None = None
        self._inline: sqlite3.Connection | None = None
        self._inline_commits = 0
        self._checkpointing: asyncio.Future[None] | None = None
        self._batched = Batched(self._write_many)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:  # made on the writer thread, used only there
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self._conn

    def _loop_connection(self) -> sqlite3.Connection:
        if self._inline is None:  # used only on the event loop's thread
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._inline = conn
        return self._inline

    async def _run(self, work: Any, *args: Any) -> Any:
        return await self._batched((work, args))

    async def _write_many(self, calls: list[tuple[Any, tuple[Any, ...]]]) -> list[Any]:
        loop = asyncio.get_running_loop()
        if self._checkpointing is not None and not self._checkpointing.done():  # behind it, in the writer thread
            return await loop.run_in_executor(self._thread, self._in_transaction, calls)
        try:
            conn = self._loop_connection()
        except sqlite3.Error as exc:  # the file could not be opened on the loop: the writer thread says why
            log.debug("sqlite on the loop: %s", exc)
            return await loop.run_in_executor(self._thread, self._in_transaction, calls)
        for pause in BUSY_PAUSES:
            try:
                outcomes = self._in_transaction(calls, conn)
                break
            except _Busy:
                # Another worker's write holds the lock for tens of µs: trying again on the loop
                # after it has served others beats SQLite's busy handler, whose first sleep is 1 ms
                # and grows to 100 (two workers on one file served half of what one did).
                await asyncio.sleep(pause)
        else:  # held for long (a checkpoint, the CLI): the writer thread waits for it
            return await loop.run_in_executor(self._thread, self._in_transaction, calls)
        self._inline_commits += 1
        if self._inline_commits % INLINE_CHECKPOINT_EVERY == 0:
            self._checkpointing = loop.run_in_executor(self._thread, self._checkpoint)
        return outcomes

    def _checkpoint(self) -> None:
        try:
            self._connection().execute("PRAGMA wal_checkpoint(RESTART)")
        except sqlite3.Error as exc:  # the next one tries again
            log.debug("sqlite checkpoint: %s", exc)

    def _in_transaction(self, calls: list[tuple[Any, tuple[Any, ...]]], conn: sqlite3.Connection | None = None) -> list[Any]:
        on_loop = conn is not None
        try:
            conn = conn or self._connection()
            conn.execute("BEGIN IMMEDIATE")  # the one write lock: every check and its hold together
        except sqlite3.OperationalError as exc:
            if on_loop:
                raise _Busy() from None
            raise Lost(str(exc)) from None
        outcomes: list[Any] = []
        try:
            for work, args in calls:
                try:
                    outcomes.append(work(conn, *args))
                except (Refused, RateLimited) as refused:  # it wrote nothing but expired entries' removal, which stands
                    outcomes.append(refused)
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:  # locked, I/O, disk full: the database, not one item
            conn.execute("ROLLBACK")
            raise Lost(str(exc)) from None
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return outcomes

    async def reserve(self, request_id: str, token: str, team_id: str | None, estimate: int, now: float, ttl: float) -> None:
        await self._run(_sqlite_reserve, request_id, token, team_id, estimate, now, ttl)

    async def lease(self, lease_id: str, token: str, team_id: str | None, need: int, slack: int, now: float, ttl: float) -> int:
        return await self._run(_sqlite_lease, lease_id, token, team_id, need, slack, now, ttl)  # type: ignore[no-any-return]

    async def settle(self, log: dict[str, Any]) -> bool:
        return bool(await self._run(_sqlite_settle, log))

    async def rate_admit(self, request_id: str, limits: tuple[Limit, ...], tokens: int, now: float, window: float, lease: float) -> Ticket:
        return await self._run(_sqlite_rate_admit, request_id, limits, tokens, now, window, lease)  # type: ignore[no-any-return]

    async def rate_finish(self, ticket: Ticket, used_tokens: int | None) -> None:
        await self._run(_sqlite_rate_finish, ticket.request_id, [limit.ident for limit in ticket.limits], used_tokens)

    async def close(self) -> None:
        await self._batched.drain()

        if self._inline is not None:
            self._inline.close()
            self._inline = None

        def shut() -> None:
            if self._conn is not None:
                self._checkpoint()
                self._conn.close()

        await asyncio.get_running_loop().run_in_executor(self._thread, shut)
        self._thread.shutdown(wait=True)


def _sqlite_room(conn: sqlite3.Connection, hold_id: str, token: str, team_id: str | None, need: int, now: float) -> int | None:
    """What the key's and team's budgets have left after ``need`` (None: neither has a budget),
    every live hold counted but ``hold_id``; raises Refused when ``need`` does not fit. Starts a
    new budget window where one is due."""
    held_key, held_team = conn.execute(
        "SELECT COALESCE(SUM(amount) FILTER (WHERE token = ?), 0), COALESCE(SUM(amount) FILTER (WHERE team_id = ?), 0) "
        "FROM ocilm_holds WHERE (token = ? OR team_id = ?) AND expires_at > ? AND request_id <> ?",
        (token, team_id, token, team_id, now, hold_id),
    ).fetchone()  # fmt: skip
    scopes = [("key", "ocilm_keys", "token", token, held_key)]
    if team_id:
        scopes.append(("team", "ocilm_teams", "team_id", team_id, held_team))
    room: int | None = None
    for scope, table, column, ident, held in scopes:
        row = conn.execute(f"SELECT max_budget, spend, budget_duration, budget_reset_at FROM {table} WHERE {column} = ?", (ident,)).fetchone()
        if row is None or row[0] is None:
            continue
        max_budget, spend, duration, reset_at = row
        seconds = stored_duration_seconds(duration)
        if seconds is not None and (reset_at is None or now >= reset_at):  # a new budget window starts
            spend = 0 if reset_at is not None else spend
            conn.execute(f"UPDATE {table} SET spend = ?, budget_reset_at = ? WHERE {column} = ?", (spend, now + seconds, ident))
        if spend + held + need > max_budget:
            raise Refused(scope, max_budget, spend, int(held))
        left = max_budget - spend - held - need
        room = left if room is None else min(room, left)
    return room


def _sqlite_reserve(conn: sqlite3.Connection, request_id: str, token: str, team_id: str | None, estimate: int, now: float, ttl: float) -> None:
    _sqlite_room(conn, request_id, token, team_id, estimate, now)
    conn.execute("INSERT INTO ocilm_holds (request_id, token, team_id, amount, expires_at) VALUES (?, ?, ?, ?, ?)",
                 (request_id, token, team_id, estimate, now + ttl))  # fmt: skip


def _sqlite_lease(conn: sqlite3.Connection, lease_id: str, token: str, team_id: str | None, need: int, slack: int, now: float,
                  ttl: float) -> int:  # fmt: skip
    """As migration 0012's ``ocilm_lease``: set the lease to ``need`` plus at most an eighth of
    the room left (and ``slack`` at most), or refuse it."""
    if need <= 0:  # given back: nothing to check, even for a budget already spent past its end
        conn.execute("DELETE FROM ocilm_holds WHERE request_id = ?", (lease_id,))
        return 0
    room = _sqlite_room(conn, lease_id, token, team_id, need, now)
    amount = need + (slack if room is None else min(slack, room // 8))
    conn.execute("INSERT INTO ocilm_holds (request_id, token, team_id, amount, expires_at) VALUES (?, ?, ?, ?, ?) "
                 "ON CONFLICT (request_id) DO UPDATE SET token = excluded.token, team_id = excluded.team_id, amount = excluded.amount, "
                 "expires_at = excluded.expires_at", (lease_id, token, team_id, amount, now + ttl))  # fmt: skip
    return amount


def _sqlite_settle(conn: sqlite3.Connection, log: dict[str, Any]) -> bool:
    if conn.execute(_SQLITE_SETTLE, [log.get(c) for c in LOG_COLUMNS]).rowcount == 0:
        return False  # settled before
    charge = log.get("cost") or 0
    if charge and log.get("token"):
        conn.execute("UPDATE ocilm_keys SET spend = spend + ? WHERE token = ?", (charge, log["token"]))
    if charge and log.get("team_id"):
        conn.execute("UPDATE ocilm_teams SET spend = spend + ? WHERE team_id = ?", (charge, log["team_id"]))
    conn.execute("DELETE FROM ocilm_holds WHERE request_id = ?", (log["request_id"],))
    return True


def _sqlite_rate_admit(conn: sqlite3.Connection, request_id: str, limits: tuple[Limit, ...], tokens: int, now: float, window: float,
                       lease: float) -> Ticket:  # fmt: skip
    """The same decision as the in-process limiter, on rows every worker sees (``check_limit``)."""
    tightest: tuple[Stat | None, Stat | None] = (None, None)
    for limit in limits:
        conn.execute("DELETE FROM ocilm_rate_window WHERE ident = ? AND at <= ?", (limit.ident, now - window))
        # The window's count and tokens are kept by triggers (migration 0018): one row, not a scan of the window.
        totals = conn.execute("SELECT requests, tokens FROM ocilm_rate_totals WHERE ident = ?", (limit.ident,)).fetchone()
        count, used = totals if totals is not None else (0, 0)
        (oldest,) = conn.execute("SELECT min(at) FROM ocilm_rate_window WHERE ident = ?", (limit.ident,)).fetchone()  # the (ident, at) index
        in_flight = 0
        if limit.parallel:
            conn.execute("DELETE FROM ocilm_rate_slots WHERE ident = ? AND until <= ?", (limit.ident, now))
            (in_flight,) = conn.execute("SELECT count(*) FROM ocilm_rate_slots WHERE ident = ?", (limit.ident,)).fetchone()
        reset = oldest + window - now if oldest is not None else window
        wait = functools.partial(_sqlite_tokens_free_after, conn, limit, now, used + tokens, window)
        tightest = check_limit(limit, count, used, reset, in_flight, tokens, window, wait, tightest)
    for limit in limits:
        # An update, not a replace, of a request's own earlier entry: the totals' triggers see it.
        conn.execute("INSERT INTO ocilm_rate_window (ident, request_id, at, tokens) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (ident, request_id) DO UPDATE SET at = excluded.at, tokens = excluded.tokens",
                     (limit.ident, request_id, now, tokens))  # fmt: skip
        if limit.parallel:
            conn.execute("INSERT OR REPLACE INTO ocilm_rate_slots (ident, request_id, until) VALUES (?, ?, ?)", (limit.ident, request_id, now + lease))
    return Ticket(request_id, limits, tokens, rate_headers(*tightest))


def _sqlite_tokens_free_after(conn: sqlite3.Connection, limit: Limit, now: float, wanted: int, window: float) -> float:
    excess = wanted - (limit.tpm or 0)
    for at, tokens in conn.execute("SELECT at, tokens FROM ocilm_rate_window WHERE ident = ? ORDER BY at", (limit.ident,)):
        excess -= tokens
        if excess <= 0:
            return float(at + window - now)
    return window


def _sqlite_rate_finish(conn: sqlite3.Connection, request_id: str, idents: list[str], used_tokens: int | None) -> None:
    for ident in idents:
        conn.execute("DELETE FROM ocilm_rate_slots WHERE ident = ? AND request_id = ?", (ident, request_id))
        if used_tokens is not None:
            conn.execute("UPDATE ocilm_rate_window SET tokens = ? WHERE ident = ? AND request_id = ?", (used_tokens, ident, request_id))

