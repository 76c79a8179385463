"""Rate limits, decided on the counters in one process and on a real Redis (one Lua script on
the server's clock): the same behaviour from both."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ocilm.gateway.governance._hot import SQLiteBudgets
from ocilm.gateway.governance._limits import (
    Limit,
    Limits,
    MemoryLimiter,
    RateLimited,
    RedisLimiter,
    StoreLimiter,
    go_duration,
    rate_headers,
)
from ocilm.gateway.governance._store import Store


class _SQLiteLimiter(StoreLimiter):
    """The store's counters on a SQLite file of the test's own (what several workers share)."""

    async def close(self) -> None:
        await self.budgets.close()


@pytest.fixture(params=["memory", "redis", "sqlite"])
def make_limiter(request, tmp_path):
    """A limiter of each kind, one table of cases through every implementation of the rule:
    Python in one process, Lua in Redis, and SQL rows in the SQLite store (each test closes its
    own, on its own event loop)."""
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    if request.param == "sqlite":
        path = tmp_path / "limits.db"

        async def migrate() -> None:
            store = await Store.open(f"sqlite:///{path}")
            await store.upgrade()
            await store.close()

        asyncio.run(migrate())

    def make(window: float = 60.0):
        if request.param == "sqlite":
            return _SQLiteLimiter(SQLiteBudgets(str(path)), window)
        return MemoryLimiter(window) if url is None else RedisLimiter(url, window)

    return make


def ident(scope: str) -> str:
    return f"{scope}:{uuid.uuid4().hex}"


async def admitted(limiter, limits, count: int, tokens: int = 1) -> list:
    outcomes = []
    for _ in range(count):
        try:
            outcomes.append(await limiter.admit(uuid.uuid4().hex, limits, tokens))
        except RateLimited as exc:
            outcomes.append(exc)
    return outcomes


async def test_requests_per_window_all_or_nothing_across_limits(make_limiter):
    limiter = make_limiter()
    key, team = Limit("key", ident("key"), rpm=5), Limit("team", ident("team"), rpm=3)
    got = await admitted(limiter, (key, team), 6)
    assert [not isinstance(o, RateLimited) for o in got] == [True] * 3 + [False] * 3
    assert {o.scope for o in got if isinstance(o, RateLimited)} == {"team"}
    # the refusals took nothing from the key: another team's request still has the key's 2 left
    other = Limit("team", ident("team"), rpm=100)
    assert sum(not isinstance(o, RateLimited) for o in await admitted(limiter, (key, other), 5)) == 2
    await limiter.close()


async def test_the_window_slides_so_no_boundary_lets_a_second_burst_through(make_limiter):
    limiter = make_limiter(window=1.5)
    limit = (Limit("key", ident("key"), rpm=4),)
    assert all(not isinstance(o, RateLimited) for o in await admitted(limiter, limit, 4))
    await asyncio.sleep(0.8)  # a fixed window that started at the first request could have rolled over here
    late = await admitted(limiter, limit, 4)
    assert all(isinstance(o, RateLimited) for o in late)
    assert 0.3 < late[0].retry_after <= 0.8  # when the oldest leaves
    await asyncio.sleep(0.9)  # the first four left the window
    assert sum(not isinstance(o, RateLimited) for o in await admitted(limiter, limit, 6)) == 4
    await limiter.close()


async def test_tokens_are_reserved_then_set_to_what_was_used(make_limiter):
    limiter = make_limiter()
    limit = (Limit("key", ident("key"), tpm=1000),)
    first = await limiter.admit("a", limit, 600)
    with pytest.raises(RateLimited) as full:
        await limiter.admit("b", limit, 600)
    assert full.value.kind == "tokens" and full.value.limit == 1000
    await limiter.finish(first, 150)  # the reply used far less than its worst case
    second = await limiter.admit("c", limit, 600)
    assert second.headers["x-ratelimit-remaining-tokens"] == str(1000 - 150 - 600)
    with pytest.raises(RateLimited) as never:
        await limiter.admit("d", limit, 5000)  # larger than the limit itself: it never fits
    assert never.value.kind == "tokens"
    await limiter.close()


async def test_parallel_slots_are_freed_when_requests_finish(make_limiter):
    limiter = make_limiter()
    limit = (Limit("key", ident("key"), parallel=2),)
    a, b = await limiter.admit("a", limit, 1), await limiter.admit("b", limit, 1)
    with pytest.raises(RateLimited) as full:
        await limiter.admit("c", limit, 1)
    assert full.value.kind == "parallel"
    await limiter.finish(a, None)
    await limiter.admit("d", limit, 1)
    await limiter.finish(b, None)
    await limiter.close()


async def test_headers_describe_the_tightest_limit(make_limiter):
    limiter = make_limiter()
    ticket = await limiter.admit("a", (Limit("key", ident("key"), rpm=100, tpm=10_000), Limit("team", ident("team"), rpm=10)), 100)
    assert ticket.headers["x-ratelimit-limit-requests"] == "10" and ticket.headers["x-ratelimit-remaining-requests"] == "9"
    assert ticket.headers["x-ratelimit-limit-tokens"] == "10000" and ticket.headers["x-ratelimit-remaining-tokens"] == "9900"
    assert ticket.headers["x-ratelimit-reset-requests"].endswith("s")
    await limiter.close()


async def test_concurrent_decisions_never_admit_more_than_the_limit(make_limiter):
    limiter = make_limiter()
    limit = (Limit("key", ident("key"), rpm=7),)

    async def one() -> bool:
        try:
            await limiter.admit(uuid.uuid4().hex, limit, 1)
            return True
        except RateLimited:
            return False

    assert sum(await asyncio.gather(*(one() for _ in range(60)))) == 7
    await limiter.close()


def test_openai_reset_durations():
    assert go_duration(0.012) == "12ms" and go_duration(1.5) == "1.5s" and go_duration(360) == "6m0s" and go_duration(179.56) == "2m59.56s"
    assert rate_headers(None, None) == {}


async def test_an_unreachable_redis_fails_closed_or_open_by_policy():
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    limit = (Limit("key", ident("key"), rpm=1),)
    closed = Limits(RedisLimiter(dead), "closed")
    with pytest.raises(Exception) as err:
        await closed.admit("a", limit, 1)
    assert type(err.value).__name__ == "LimiterUnavailable" and closed.status()["reachable"] is False
    opened = Limits(RedisLimiter(dead), "open")
    assert await opened.admit("a", limit, 1) is None and await opened.admit("b", limit, 1) is None
    assert opened.status() == {"counters": "redis", "failure_policy": "open", "reachable": False, "served_unlimited": 2}
    await closed.close()
    await opened.close()


def test_memory_limits_follow_their_clock():
    now = [1000.0]
    limiter = MemoryLimiter(60.0, clock=lambda: now[0])
    limit = (Limit("key", "k", rpm=2),)
    limiter.admit_now("a", limit, 1)
    now[0] += 59.9
    limiter.admit_now("b", limit, 1)
    with pytest.raises(RateLimited):
        limiter.admit_now("c", limit, 1)
    now[0] += 0.2  # "a" left the window: one more fits, not two
    limiter.admit_now("d", limit, 1)
    with pytest.raises(RateLimited):
        limiter.admit_now("e", limit, 1)


class _CountingRedis(RedisLimiter):
    """A RedisLimiter that counts its round trips and what each carried."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.trips: list[int] = []

    async def _pipeline(self, batch):
        self.trips.append(len(batch))
        return await super()._pipeline(batch)


async def test_redis_decisions_that_arrive_together_share_a_round_trip_and_are_each_decided(redis_url):
    limiter = _CountingRedis(redis_url)
    try:
        limit = Limit("key", f"key:{uuid.uuid4().hex}", rpm=20)
        outcomes = await asyncio.gather(*(limiter.admit(f"r{i}", (limit,), 1) for i in range(50)), return_exceptions=True)
        admitted = [o for o in outcomes if not isinstance(o, BaseException)]
        refused = [o for o in outcomes if isinstance(o, RateLimited)]
        assert len(admitted) == 20 and len(refused) == 30  # each decided on its own, in order
        assert len(limiter.trips) < 10 and sum(limiter.trips) == 50
    finally:
        await limiter.close()


async def test_a_redis_release_travels_with_the_next_decision_or_goes_within_50_ms(redis_url):
    limiter = _CountingRedis(redis_url)
    try:
        limit = Limit("key", f"key:{uuid.uuid4().hex}", parallel=1)
        first = await limiter.admit("a", (limit,), 1)
        release = asyncio.ensure_future(limiter.finish(first, 1))
        await asyncio.sleep(0)
        second = await limiter.admit("b", (limit,), 1)  # the slot was freed ahead of it, in the same round trip
        assert limiter.trips == [1, 2]
        await release
        alone = asyncio.ensure_future(limiter.finish(second, 1))
        started = asyncio.get_running_loop().time()
        await alone  # no decision to travel with: it goes by itself, soon
        assert asyncio.get_running_loop().time() - started < 0.5 and limiter.trips == [1, 2, 1]
        await limiter.admit("c", (limit,), 1)  # the slot is free
    finally:
        await limiter.close()


async def test_redis_forgetting_its_scripts_does_not_fail_a_decision(redis_url):
    import redis.asyncio as redis_asyncio

    limiter = RedisLimiter(redis_url)
    admin = redis_asyncio.from_url(redis_url)
    try:
        limit = Limit("key", f"key:{uuid.uuid4().hex}", rpm=5)
        await limiter.admit("a", (limit,), 1)
        await admin.script_flush()  # as after a restart: Redis keeps no scripts
        tickets = await asyncio.gather(*(limiter.admit(f"b{i}", (limit,), 1) for i in range(3)))
        assert len(tickets) == 3
        with pytest.raises(RateLimited):
            await asyncio.gather(*(limiter.admit(f"c{i}", (limit,), 1) for i in range(2)))
    finally:
        await limiter.close()
        await admin.aclose()


async def test_the_in_process_window_stays_exact_across_its_compaction():
    """Entries live in two arrays; those that left the window are dropped now and then. Counts,
    token sums and reconciliations stay exact across the drops, and memory stays bounded."""
    now = [0.0]
    limiter = MemoryLimiter(window_seconds=10.0, clock=lambda: now[0])
    limit = Limit("key", "key:compact", rpm=100_000, tpm=10**9)
    tickets = []
    for i in range(30_000):  # 3,000 a second for 10 s: entries leave the window as others arrive
        now[0] = i / 3000
        tickets.append(await limiter.admit(f"r{i}", (limit,), 10))
    window = limiter._window(limit.ident)
    assert len(window) == 30_000 and window.token_sum == 300_000  # the first leaves at 10 s
    now[0] = 15.0
    await limiter.admit("late", (limit,), 10)
    in_window = sum(1 for i in range(30_000) if i / 3000 > 5.0) + 1
    assert len(window) == in_window and len(window.times) < 30_000  # the departed were dropped
    await limiter.finish(tickets[0], 1)  # long gone: its tokens are no longer counted, nothing changes
    await limiter.finish(tickets[-1], 3)  # still in the window: reconciled in place
    assert window.token_sum == 10 * in_window - 7
    now[0] = 100.0
    await limiter.admit("later", (limit,), 10)
    assert len(window) == 1 and window.token_sum == 10


async def test_the_sqlite_windows_running_totals_match_their_rows_through_every_change(tmp_path):
    """The store's counters read a running count and token sum (kept by triggers) instead of
    scanning the window: after admissions, reconciled tokens, a request admitted again under its
    own id, and entries leaving the window, the totals are what the rows add up to, and the
    decisions are the ones a scan gives."""
    import sqlite3

    path = tmp_path / "totals.db"
    store = await Store.open(f"sqlite:///{path}")
    await store.upgrade()
    await store.close()
    budgets = SQLiteBudgets(str(path))
    limit = (Limit("key", ident("key"), rpm=50, tpm=10_000),)
    tickets = [await budgets.rate_admit(f"r{i}", limit, 100 + i, 1000.0 + i, 60.0, 30.0) for i in range(20)]
    for ticket in tickets[::3]:
        await budgets.rate_finish(ticket, 7)
    await budgets.rate_admit("r5", limit, 999, 1020.0, 60.0, 30.0)  # the same request again: its entry updated, not a second one
    late = await budgets.rate_admit("late", limit, 50, 1070.5, 60.0, 30.0)  # r0..r10 but r5 have left the window
    await budgets.close()
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT count(*), sum(tokens) FROM ocilm_rate_window WHERE ident = ?", (limit[0].ident,)).fetchone()
        totals = conn.execute("SELECT requests, tokens FROM ocilm_rate_totals WHERE ident = ?", (limit[0].ident,)).fetchone()
    assert totals == rows and rows[0] == 11  # r11..r19, r5 (moved to 1020) and late: ten left the window
    assert late.headers["x-ratelimit-remaining-requests"] == str(50 - rows[0])
    assert late.headers["x-ratelimit-remaining-tokens"] == str(10_000 - rows[1])
