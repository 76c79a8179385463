"""The governance store: keys, teams, budget holds and spend logs in SQLite or PostgreSQL.

Every budget decision is one transaction. ``reserve`` locks the key's and team's rows (``SELECT
... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` takes the one write lock), checks
committed spend + live holds + the request's worst case against each budget, and records a hold
that expires. ``settle`` writes the spend log row, adds the cost to the key and team, and drops
the hold, in one transaction keyed by the request id, so a request is billed once however often
settlement is retried, and nothing is billed that has no log row.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from sqlalchemy import delete, event, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ._hot import STATEMENT_SECONDS, PostgresBudgets, Refused, SQLiteBudgets
from ._models import AuditEntry, Conversation, Key, PlatformObject, SpendLog, StoredResponse, Team
from ._outcomes import NO_LIMITS, BudgetExceeded, KeyView, Lost, RateLimits, StoreUnavailable
from ._policy import key_hash, masked, new_key, token_of

_ADVISORY_LOCK = 0x6F63696C6D  # "ocilm": migrations run under it, one replica at a time
_AUDIT_LOCK = 0x6F63696C6E  # the audit chain's end, extended by one replica at a time


def async_url(url: str) -> str:
    """A configured database URL with the async driver ocilm uses."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///"):]
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    return url


class Store:
    def __init__(self, engine: AsyncEngine, budgets: PostgresBudgets | SQLiteBudgets) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._budgets = budgets

    @property
    def synchronous_commit(self) -> bool:
        """PostgreSQL: wait for the disk on each settlement. Off by default: the row is in the
        database before the reply is sent and survives any gateway dying; only a crash of the
        database server itself could lose its last fraction of a second (as with SQLite's WAL in
        NORMAL mode), and the key's row is then locked for a round trip, not a disk flush."""
        return getattr(self._budgets, "synchronous_commit", False)

    @synchronous_commit.setter
    def synchronous_commit(self, value: bool) -> None:
        if isinstance(self._budgets, PostgresBudgets):
            self._budgets.synchronous_commit = value

    @classmethod
    async def open(cls, url: str) -> Store:
        # No pre-ping (a round trip per checkout): a connection found dead fails its statement,
        # is invalidated, and the gateway answers 503 until the database is back.
        is_sqlite = url.startswith("sqlite:///")
        # Every statement and connection is bounded: a database that stalls (a partition drops
        # packets, sends no reset) answers 503 within seconds instead of hanging requests.
        pool: dict[str, Any] = {"connect_args": {"timeout": STATEMENT_SECONDS}} if is_sqlite else {
            "pool_size": 5, "max_overflow": 10, "pool_recycle": 1800, "pool_timeout": STATEMENT_SECONDS,
            "connect_args": {"timeout": STATEMENT_SECONDS, "command_timeout": STATEMENT_SECONDS}}  # fmt: skip
        engine = create_async_engine(async_url(url), **pool)
        if is_sqlite:
            _sqlite_one_writer(engine.sync_engine)
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
            budgets: PostgresBudgets | SQLiteBudgets = SQLiteBudgets(url[len("sqlite:///"):]) if is_sqlite else await PostgresBudgets.open(url)
        except (OSError, TimeoutError, DBAPIError, Lost) as exc:
            await engine.dispose()
            raise StoreUnavailable(f"cannot reach the database ({type(exc).__name__})") from None
        return cls(engine, budgets)

    async def schema_is_current(self) -> bool:
        """Whether the migrations have all been applied (``ocilm db upgrade``); SchemaAhead if a
        newer ocilm migrated it past what this one knows."""
        from .migrations import is_current

        async with self._tx() as conn:
            return await conn.run_sync(is_current)

    async def ping(self) -> bool:
        """Whether the database answers a trivial query now (readiness), within the deadline."""
        try:
            async with self._tx() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except StoreUnavailable:
            return False
        return True

    def rate_limiter(self, window_seconds: float) -> Any:
        """Rate-limit counters kept in this store, for several workers on one SQLite file; None
        on PostgreSQL (its replicas share limits through Redis)."""
        from ._limits import StoreLimiter

        return StoreLimiter(self._budgets, window_seconds) if isinstance(self._budgets, SQLiteBudgets) else None

    async def close(self) -> None:
        await self._budgets.close()
        await self.engine.dispose()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        with _unavailable_on_lost_connection():
            async with self.engine.begin() as conn:
                yield conn

    async def upgrade(self) -> None:
        """Apply the migrations; on PostgreSQL under an advisory lock, so replicas never race."""
        from .migrations import is_current, upgrade

        async with self._tx() as conn:
            if not self.is_sqlite:
                await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK})")
            if not await conn.run_sync(is_current):  # SchemaAhead before alembic fails on a revision it does not know
                await conn.run_sync(upgrade)  # Alembic is loaded only when there is something to apply

    # ------------------------------------------------------------------ keys

    async def authenticate(self, key: str, now: float | None = None) -> KeyView | None:
        """The key's view if ``key`` is a current virtual key (its secret, or the previous one
        within its grace period), else None. Blocked and expired keys are returned as they are:
        the caller says why it refuses them."""
        token = token_of(key)
        if token is None:
            return None
        now = time.time() if now is None else now
        async with self._tx() as conn:
            row = (await conn.execute(select(Key).where(Key.token == token))).first()
            if row is None:
                return None
            digest = key_hash(key)
            current = hmac.compare_digest(digest, row.key_hash)
            previous = row.previous_hash is not None and hmac.compare_digest(digest, row.previous_hash) and (row.previous_valid_until or 0) > now
            if not (current or previous):
                return None
            team = (await conn.execute(select(Team).where(Team.team_id == row.team_id))).first() if row.team_id else None
        return KeyView(
            token=row.token, team_id=row.team_id, models=tuple(row.models or ()), team_models=tuple(team.models or ()) if team else (),
            has_budget=row.max_budget is not None or (team is not None and team.max_budget is not None),
            blocked=bool(row.blocked or (team is not None and team.blocked)), expires_at=row.expires_at,
            limits=RateLimits(row.rpm_limit, row.tpm_limit, row.max_parallel_requests, dict(row.model_rpm_limit or {}),
                              dict(row.model_tpm_limit or {})),
            team_limits=RateLimits(team.rpm_limit, team.tpm_limit, team.max_parallel_requests) if team else NO_LIMITS,
            guardrails=tuple(dict.fromkeys([*(row.guardrails or ()), *((team.guardrails or ()) if team else ())])),
            cache={**((team.cache or {}) if team else {}), **(row.cache or {})} or None,
            budget_mark=(row.max_budget, row.budget_duration, team.max_budget, team.budget_duration) if team else (row.max_budget, row.budget_duration),
            object_permission=(row.object_permission, team.object_permission if team else None),
        )  # fmt: skip

    async def has_rate_limits(self) -> bool:
        """Whether any key or team has a rate limit (start-up checks a replica can enforce them)."""
        async with self._tx() as conn:
            for table in (Key, Team):
                counted = or_(table.rpm_limit.is_not(None), table.tpm_limit.is_not(None), table.max_parallel_requests.is_not(None))
                if table is Key:
                    counted = or_(counted, Key.model_rpm_limit.is_not(None), Key.model_tpm_limit.is_not(None))
                if (await conn.execute(select(table).where(counted).limit(1))).first() is not None:
                    return True
        return False

    async def create_key(self, fields: dict[str, Any], *, actor: str | None = None) -> tuple[str, dict[str, Any]]:
        """A new key; with ``actor``, the change is in the audit trail, in the same transaction."""
        key, token = new_key()
        now = time.time()
        values = {"token": token, "key_hash": key_hash(key), "key_name": masked(key), "created_at": now, "spend": 0,
                  "models": [], "metadata_": {}, "blocked": False, **fields}  # fmt: skip
        async with self._tx() as conn:
            if values.get("team_id") and (await conn.execute(select(Team.team_id).where(Team.team_id == values["team_id"]))).first() is None:
                raise LookupError(f"team_id: no team {values['team_id']!r}")
            await conn.execute(insert(Key).values(**_columns(values)))
            if actor is not None:
                await self._chain(conn, actor, "key.generate", token, None, await _key_row(conn, token))
        return key, await self.key_info(token)  # type: ignore[return-value]

    async def key_info(self, token: str) -> dict[str, Any] | None:
        async with self._tx() as conn:
            row = (await conn.execute(select(Key).where(Key.token == token))).first()
        return None if row is None else _key_dict(row)

    async def list_keys(self) -> list[dict[str, Any]]:
        async with self._tx() as conn:
            rows = (await conn.execute(select(Key).order_by(Key.created_at))).all()
        return [_key_dict(r) for r in rows]

    async def update_key(self, token: str, fields: dict[str, Any], *, actor: str | None = None,
                         action: str = "key.update") -> dict[str, Any] | None:  # fmt: skip
        async with self._tx() as conn:
            if fields.get("team_id") and (await conn.execute(select(Team.team_id).where(Team.team_id == fields["team_id"]))).first() is None:
                raise LookupError(f"team_id: no team {fields['team_id']!r}")
            before = await _key_row(conn, token)
            if before is None:
                return None
            if fields:
                await conn.execute(update(Key).where(Key.token == token).values(**_columns(fields)))
            after = await _key_row(conn, token)
            if actor is not None:
                await self._chain(conn, actor, action, token, before, after)
        return after

    async def delete_keys(self, tokens: list[str], *, actor: str | None = None) -> list[str]:
        async with self._tx() as conn:
            rows = (await conn.execute(select(Key).where(Key.token.in_(tokens)))).all()
            found = [r.token for r in rows]
            await conn.execute(delete(Key).where(Key.token.in_(found)))
            if actor is not None:
                for row in rows:
                    await self._chain(conn, actor, "key.delete", row.token, _key_dict(row), None)
        return found

    async def regenerate(self, token: str, grace_seconds: float, *, actor: str | None = None) -> tuple[str, dict[str, Any]] | None:
        """A new secret for the same key (same id, budget window and spend); the old secret
        keeps working for ``grace_seconds``."""
        key, _ = new_key(token)  # the same public id
        async with self._tx() as conn:
            row = (await conn.execute(select(Key).where(Key.token == token))).first()
            if row is None:
                return None
            await conn.execute(update(Key).where(Key.token == token).values(
                key_hash=key_hash(key), key_name=masked(key), previous_hash=row.key_hash if grace_seconds > 0 else None,
                previous_valid_until=time.time() + grace_seconds if grace_seconds > 0 else None,
            ))  # fmt: skip
            if actor is not None:
                after = await _key_row(conn, token)
                await self._chain(conn, actor, "key.regenerate", token, _key_dict(row), {**(after or {}), "grace_period_seconds": grace_seconds})
        return key, await self.key_info(token)  # type: ignore[return-value]

    # ------------------------------------------------------------------ teams

    async def create_team(self, fields: dict[str, Any], *, actor: str | None = None) -> dict[str, Any]:
        values = {"created_at": time.time(), "spend": 0, "models": [], "metadata_": {}, "blocked": False, **fields}
        async with self._tx() as conn:
            await conn.execute(insert(Team).values(**_columns(values)))
            if actor is not None:
                await self._chain(conn, actor, "team.new", values["team_id"], None, await _team_row(conn, values["team_id"]))
        return await self.team_info(values["team_id"])  # type: ignore[return-value]

    async def team_info(self, team_id: str) -> dict[str, Any] | None:
        async with self._tx() as conn:
            row = (await conn.execute(select(Team).where(Team.team_id == team_id))).first()
            if row is None:
                return None
            keys = [r.token for r in (await conn.execute(select(Key.token).where(Key.team_id == team_id))).all()]
        return {**_team_dict(row), "keys": keys}

    async def list_teams(self) -> list[dict[str, Any]]:
        async with self._tx() as conn:
            rows = (await conn.execute(select(Team).order_by(Team.created_at))).all()
        return [_team_dict(r) for r in rows]

    async def update_team(self, team_id: str, fields: dict[str, Any], *, actor: str | None = None) -> dict[str, Any] | None:
        async with self._tx() as conn:
            before = await _team_row(conn, team_id)
            if before is None:
                return None
            if fields:
                await conn.execute(update(Team).where(Team.team_id == team_id).values(**_columns(fields)))
            if actor is not None:
                await self._chain(conn, actor, "team.update", team_id, before, await _team_row(conn, team_id))
        return await self.team_info(team_id)

    # ------------------------------------------------------------------ budgets

    async def reserve(self, request_id: str, token: str, team_id: str | None, estimate: int, ttl: float) -> None:
        """Hold ``estimate`` nano-dollars against the key's and team's budgets, or raise
        BudgetExceeded naming the budget that has no room. One transaction, all or nothing: the
        key's and team's rows are locked first (SQLite: its one write lock), then the live holds
        are summed, so two replicas never both take the last room."""
        try:
            await self._budgets.reserve(request_id, token, team_id, estimate, time.time(), ttl)
        except Refused as refused:
            scope, max_budget, spend, held = refused.args
            raise BudgetExceeded(scope, max_budget, spend, held, estimate) from None
        except Lost as exc:
            raise StoreUnavailable(f"the database failed ({exc})") from None

    async def lease(self, lease_id: str, token: str, team_id: str | None, need: int, slack: int, ttl: float) -> int:
        """Set a replica's lease on the key's and team's budgets (``_leases``) to ``need`` plus at
        most ``slack`` (and an eighth of the room left), checked as a hold is; returns the amount
        set, or raises BudgetExceeded naming the budget that cannot take ``need``. 0 gives it back."""
        try:
            return await self._budgets.lease(lease_id, token, team_id, need, slack, time.time(), ttl)
        except Refused as refused:
            scope, max_budget, spend, held = refused.args
            raise BudgetExceeded(scope, max_budget, spend, held, need) from None
        except Lost as exc:
            raise StoreUnavailable(f"the database failed ({exc})") from None

    async def settle(self, log: dict[str, Any]) -> bool:
        """Record one request's spend (its log row, the key's and team's totals) and release its
        hold, once: a second settlement of the same request id changes nothing. True if recorded."""
        try:
            return await self._budgets.settle(log)
        except Lost as exc:
            raise StoreUnavailable(f"the database failed ({exc})") from None

    async def claim_budget_alerts(self, token: str | None, team_id: str | None, thresholds: tuple[float, ...]) -> list[dict[str, Any]]:
        """The budget thresholds the key's and team's spend has newly passed, each claimed in the
        database so that, of every replica asking, exactly one announces it."""
        from ._policy import to_usd

        crossed: list[dict[str, Any]] = []
        async with self._tx() as conn:
            for scope, table, column, ident in (("key", Key, Key.token, token), ("team", Team, Team.team_id, team_id)):
                if ident is None:
                    continue
                for threshold in sorted(thresholds):
                    percent = round(threshold * 100)
                    claimed = await conn.execute(
                        update(table).where(column == ident, table.max_budget.is_not(None), table.max_budget > 0,
                                            table.spend * 100 >= table.max_budget * percent,
                                            or_(table.alert_level.is_(None), table.alert_level < percent,
                                                table.alert_window.is_distinct_from(table.budget_reset_at),
                                                table.alert_budget.is_distinct_from(table.max_budget)))
                        .values(alert_level=percent, alert_window=table.budget_reset_at, alert_budget=table.max_budget)
                        .returning(table.spend, table.max_budget, table.budget_duration))  # fmt: skip
                    row = claimed.first()
                    if row is not None:
                        crossed.append({"scope": scope, "id": ident, "threshold": threshold, "spend": to_usd(row.spend),
                                        "max_budget": to_usd(row.max_budget), "budget_duration": row.budget_duration})  # fmt: skip
        return crossed

    async def record_response(self, response_id: str, owner: str, deployment: str) -> None:
        """Remember who made a stored response and where it lives (once; a retry changes nothing)."""
        async with self._tx() as conn:
            found = (await conn.execute(select(StoredResponse.response_id).where(StoredResponse.response_id == response_id))).first()
            if found is None:
                await conn.execute(insert(StoredResponse).values(response_id=response_id, owner=owner, deployment=deployment,
                                                                 created_at=time.time()))  # fmt: skip

    async def response_home(self, response_id: str) -> tuple[str, str] | None:
        """(owner, deployment) of a stored response, or None."""
        async with self._tx() as conn:
            row = (await conn.execute(select(StoredResponse).where(StoredResponse.response_id == response_id))).first()
        return None if row is None else (row.owner, row.deployment)

    async def forget_response(self, response_id: str) -> None:
        async with self._tx() as conn:
            await conn.execute(delete(StoredResponse).where(StoredResponse.response_id == response_id))

    async def record_object(self, object_id: str, kind: str, owner: str, deployment: str, size: int) -> None:
        """Remember who made an object on OCI's agent platform (once; a retry changes nothing)."""
        async with self._tx() as conn:
            found = (await conn.execute(select(PlatformObject.object_id).where(PlatformObject.object_id == object_id))).first()
            if found is None:
                await conn.execute(insert(PlatformObject).values(object_id=object_id, kind=kind, owner=owner, deployment=deployment,
                                                                 bytes=size, created_at=time.time()))  # fmt: skip

    async def object_home(self, object_id: str) -> tuple[str, str, str] | None:
        """(kind, owner, deployment) of an object, or None."""
        async with self._tx() as conn:
            row = (await conn.execute(select(PlatformObject).where(PlatformObject.object_id == object_id))).first()
        return None if row is None else (row.kind, row.owner, row.deployment)

    async def owned_objects(self, owner: str, kind: str) -> set[str]:
        async with self._tx() as conn:
            rows = await conn.execute(select(PlatformObject.object_id).where(PlatformObject.owner == owner, PlatformObject.kind == kind))
        return {row.object_id for row in rows}

    async def bytes_held(self, owner: str) -> int:
        async with self._tx() as conn:
            total = (await conn.execute(select(func.coalesce(func.sum(PlatformObject.bytes), 0)).where(PlatformObject.owner == owner))).scalar()
        return int(total or 0)

    async def forget_object(self, object_id: str) -> None:
        async with self._tx() as conn:
            await conn.execute(delete(PlatformObject).where(PlatformObject.object_id == object_id))

    async def save_conversation(self, response_id: str, owner: str, history: str, retention_seconds: float, *,
                                max_owner_chars: int = 2**62, max_owner_count: int = 2**62) -> None:  # fmt: skip
        """Keep a conversation (JSON text) for ``previous_response_id``; conversations older than
        the retention go as new ones come, and an owner over its bounds (characters kept, or
        conversations) loses its own oldest first: one tenant never evicts another's."""
        now = time.time()
        async with self._tx() as conn:
            await conn.execute(delete(Conversation).where(Conversation.created_at < now - retention_seconds))
            await conn.execute(delete(Conversation).where(Conversation.response_id == response_id))
            await conn.execute(insert(Conversation).values(response_id=response_id, owner=owner, history=history, chars=len(history),
                                                           created_at=now))  # fmt: skip
            held = (await conn.execute(select(func.coalesce(func.sum(Conversation.chars), 0), func.count())
                                       .where(Conversation.owner == owner))).one()  # fmt: skip
            chars_over, count_over = int(held[0]) - max_owner_chars, int(held[1]) - max_owner_count
            if chars_over <= 0 and count_over <= 0:
                return
            dropped: list[str] = []
            oldest = await conn.stream(select(Conversation.response_id, Conversation.chars).where(Conversation.owner == owner,
                                       Conversation.response_id != response_id).order_by(Conversation.created_at))  # fmt: skip
            async for row in oldest:
                if chars_over <= 0 and count_over <= 0:
                    break
                dropped.append(row.response_id)
                chars_over, count_over = chars_over - int(row.chars), count_over - 1
            await oldest.close()
            for start in range(0, len(dropped), 500):
                await conn.execute(delete(Conversation).where(Conversation.response_id.in_(dropped[start:start + 500])))

    async def load_conversation(self, response_id: str, owner: str) -> str | None:
        """A kept conversation's JSON, only for its owner (anyone else: as if it did not exist)."""
        async with self._tx() as conn:
            row = (await conn.execute(select(Conversation.history).where(Conversation.response_id == response_id,
                                                                         Conversation.owner == owner))).first()  # fmt: skip
        return None if row is None else str(row.history)

    async def spend_logs(self, token: str | None = None, team_id: str | None = None, start: float | None = None,
                         end: float | None = None, limit: int = 1000, *, request_id: str | None = None, model: str | None = None,
                         status: int | None = None, before: tuple[float, str] | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """Rows newest first, filtered in the database (each filter has an index with the time);
        ``before``: the (started_at, request_id) of the last row of the previous page."""
        query = select(SpendLog).order_by(SpendLog.started_at.desc(), SpendLog.request_id.desc()).limit(limit)
        for column, value in ((SpendLog.request_id, request_id), (SpendLog.token, token), (SpendLog.team_id, team_id),
                              (SpendLog.model, model), (SpendLog.status, status)):  # fmt: skip
            if value is not None:
                query = query.where(column == value)
        if start is not None:
            query = query.where(SpendLog.started_at >= start)
        if end is not None:
            query = query.where(SpendLog.started_at < end)
        if before is not None:
            at, last = before
            # the first condition alone walks the time index; the second drops the rows of the last page at that instant
            query = query.where(SpendLog.started_at <= at, or_(SpendLog.started_at < at, SpendLog.request_id < last))
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [dict(r._mapping) for r in rows]

    async def delete_spend_before(self, cutoff: float, batch: int) -> int:
        """At most ``batch`` rows older than ``cutoff`` deleted, in one short transaction (a
        retention sweep takes many, so writers never wait long)."""
        oldest = select(SpendLog.request_id).where(SpendLog.started_at < cutoff).limit(batch)
        async with self._tx() as conn:
            done = await conn.execute(delete(SpendLog).where(SpendLog.request_id.in_(oldest.scalar_subquery())))
        return int(done.rowcount or 0)

    # ------------------------------------------------------------------ audit

    async def append_audit(self, actor: str, action: str, target: str | None, before: Any, after: Any) -> int:
        """One change appended to the audit chain in its own transaction (the admin API's changes
        are appended in theirs, through the methods' ``actor``); returns its sequence number."""
        async with self._tx() as conn:
            return await self._chain(conn, actor, action, target, before, after)

    async def _chain(self, conn: AsyncConnection, actor: str, action: str, target: str | None, before: Any, after: Any) -> int:
        """Extend the chain inside ``conn``'s transaction: its end is read and extended under one
        lock (SQLite's write lock; an advisory lock on PostgreSQL), so replicas never fork it, and
        the change and its entry commit together or not at all."""
        from ._audit import GENESIS, digest, scrubbed

        if not self.is_sqlite:
            await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_AUDIT_LOCK})")
        last = (await conn.execute(select(AuditEntry.seq, AuditEntry.digest).order_by(AuditEntry.seq.desc()).limit(1))).first()
        seq, previous = (last.seq + 1, last.digest) if last else (1, GENESIS)
        entry = {"seq": seq, "at": time.time(), "actor": actor, "action": action, "target": target, "before": scrubbed(before),
                 "after": scrubbed(after)}  # fmt: skip
        entry = json.loads(json.dumps(entry, default=str))  # what the JSON columns will hand back, digested as such
        await conn.execute(insert(AuditEntry).values(**entry, previous=previous, digest=digest(previous, entry)))
        return seq

    async def audit_entries(self, *, after_seq: int = 0, limit: int = 1000, action: str | None = None,
                            target: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
        query = select(AuditEntry).where(AuditEntry.seq > after_seq).order_by(AuditEntry.seq).limit(limit)
        if action is not None:
            query = query.where(AuditEntry.action == action)
        if target is not None:
            query = query.where(AuditEntry.target == target)
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [dict(r._mapping) for r in rows]

    async def verify_audit(self) -> tuple[int, Any]:
        """(entries checked, the first break or None), read in pages."""
        from ._audit import verify

        async def pages() -> AsyncIterator[dict[str, Any]]:
            after = 0
            while True:
                page = await self.audit_entries(after_seq=after, limit=5000)
                for row in page:
                    yield row
                if len(page) < 5000:
                    return
                after = page[-1]["seq"]

        rows = [row async for row in pages()]
        return verify(rows)


@contextmanager
def _unavailable_on_lost_connection() -> Iterator[None]:
    """A database that cannot be reached becomes StoreUnavailable (the gateway answers 503);
    any other database error is a bug and stays what it is."""
    try:
        yield
    except (OSError, TimeoutError, asyncio.TimeoutError, OperationalError, InterfaceError) as exc:  # asyncio's is its own class before 3.11
        raise StoreUnavailable(f"the database failed ({type(exc).__name__})") from None
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise StoreUnavailable(f"the database connection was lost ({type(exc).__name__})") from None
        raise


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    """Attribute names to column names (``metadata_`` is stored as ``metadata``)."""
    return {("metadata" if k == "metadata_" else k): v for k, v in values.items()}


async def _key_row(conn: AsyncConnection, token: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(Key).where(Key.token == token))).first()
    return None if row is None else _key_dict(row)


async def _team_row(conn: AsyncConnection, team_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(Team).where(Team.team_id == team_id))).first()
    return None if row is None else _team_dict(row)


def _key_dict(row: Any) -> dict[str, Any]:
    from ._policy import to_usd

    return {
        "token": row.token, "key_name": row.key_name, "key_alias": row.key_alias, "team_id": row.team_id, "user_id": row.user_id,
        "models": list(row.models or []), "max_budget": to_usd(row.max_budget), "budget_duration": row.budget_duration,
        "budget_reset_at": row.budget_reset_at, "spend": to_usd(row.spend), "expires": row.expires_at, "blocked": bool(row.blocked),
        "metadata": dict(row.metadata or {}), "created_at": row.created_at, "rpm_limit": row.rpm_limit, "tpm_limit": row.tpm_limit,
        "max_parallel_requests": row.max_parallel_requests, "model_rpm_limit": dict(row.model_rpm_limit or {}),
        "model_tpm_limit": dict(row.model_tpm_limit or {}), "guardrails": list(row.guardrails or []), "cache": row.cache,
        "object_permission": row.object_permission,
    }  # fmt: skip


def _team_dict(row: Any) -> dict[str, Any]:
    from ._policy import to_usd

    return {
        "team_id": row.team_id, "team_alias": row.team_alias, "models": list(row.models or []), "max_budget": to_usd(row.max_budget),
        "budget_duration": row.budget_duration, "budget_reset_at": row.budget_reset_at, "spend": to_usd(row.spend),
        "blocked": bool(row.blocked), "metadata": dict(row.metadata or {}), "created_at": row.created_at, "rpm_limit": row.rpm_limit,
        "tpm_limit": row.tpm_limit, "max_parallel_requests": row.max_parallel_requests, "guardrails": list(row.guardrails or []),
        "cache": row.cache, "object_permission": row.object_permission,
    }  # fmt: skip


def _sqlite_one_writer(engine: Any) -> None:
    """SQLite: WAL (readers never wait on the writer), a busy timeout, and BEGIN IMMEDIATE for
    every transaction, so a budget check and its hold are taken under the one write lock."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver must not open transactions itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
