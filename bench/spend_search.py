"""Finding a request among a million: the spend log searched through ``Store.spend_logs`` (what
``GET /spend/logs`` runs), on SQLite and on PostgreSQL, with 1,000,000 rows made by this script
(2,000 keys in 100 teams, 8 models, 30 days). Limits (issue 35): by id, or by key and day, under
100 ms; a page of any filter under 1 s. Each query runs 7 times; the median and the worst are shown.

Usage: .venv/bin/python bench/spend_search.py [rows]   (PostgreSQL at OCILM_TEST_POSTGRES or the local server)"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid

from ocilm.gateway.governance._store import Store

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
DAY = 86400.0
NOW = 1_796_000_000.0
MODELS = [f"model-{i}" for i in range(8)]
PG_ADMIN = os.environ.get("OCILM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def rows(n: int, seed: int = 7) -> list[tuple]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        key = rng.randrange(2000)
        out.append((f"req-{i:08d}", f"k{key:05d}", f"team-{key % 100:03d}", MODELS[rng.randrange(8)], "d", "chat", 10, 20,
                    1000, 429 if rng.random() < 0.02 else 200, 12.5, NOW - rng.random() * 30 * DAY, None))  # fmt: skip
    return out


COLUMNS = ("request_id", "token", "team_id", "model", "deployment", "route", "input_tokens", "output_tokens", "cost", "status",
           "latency_ms", "started_at", "tool_calls")  # fmt: skip


async def fill(store: Store, url: str, data: list[tuple]) -> None:
    if store.is_sqlite:
        async with store.engine.begin() as conn:
            raw = await conn.get_raw_connection()
            sqlite = raw.driver_connection._conn  # aiosqlite's sqlite3 connection: one executemany
            sqlite.executemany(f"INSERT INTO ocilm_spend_logs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", data)
            sqlite.execute("ANALYZE")
    else:  # its own connection: the store's carry a statement timeout made for requests, not for a million-row COPY
        import asyncpg

        conn = await asyncpg.connect(url.replace("postgresql://", "postgres://", 1))
        try:
            await conn.copy_records_to_table("ocilm_spend_logs", records=data, columns=list(COLUMNS))
            await conn.execute("ANALYZE ocilm_spend_logs")
        finally:
            await conn.close()


async def timed(work) -> tuple[float, float, int]:
    times, found = [], 0
    for _ in range(7):
        started = time.perf_counter()
        got = await work()
        times.append((time.perf_counter() - started) * 1000)
        found = len(got)
    return statistics.median(times), max(times), found


async def measure(url: str, label: str) -> list[tuple]:
    store = await Store.open(url)
    try:
        await store.upgrade()
        data = rows(ROWS)
        started = time.perf_counter()
        await fill(store, url, data)
        print(f"{label}: {ROWS:,} rows written in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        probe = data[ROWS // 2]
        day_start = NOW - 3 * DAY
        cases = [
            ("by request_id", "< 100 ms", lambda: store.spend_logs(request_id=probe[0], limit=100)),
            ("by key, one day", "< 100 ms", lambda: store.spend_logs(token=probe[1], start=day_start, end=day_start + DAY, limit=1000)),
            ("by key, newest page", "< 1 s", lambda: store.spend_logs(token=probe[1], limit=100)),
            ("by team, one day", "< 1 s", lambda: store.spend_logs(team_id=probe[2], start=day_start, end=day_start + DAY, limit=1000)),
            ("by model, newest page", "< 1 s", lambda: store.spend_logs(model="model-3", limit=100)),
            ("by status 429, newest page", "< 1 s", lambda: store.spend_logs(status=429, limit=100)),
            ("by a status no row has", "< 1 s", lambda: store.spend_logs(status=503, limit=100)),
            ("by a model no row has", "< 1 s", lambda: store.spend_logs(model="model-none", limit=100)),
            ("no filter, newest page", "< 1 s", lambda: store.spend_logs(limit=100)),
            ("no filter, a page halfway down (cursor)", "< 1 s",
             lambda: store.spend_logs(limit=100, before=(sorted(r[11] for r in data[:: max(1, ROWS // 1000)])[len(data[:: max(1, ROWS // 1000)]) // 2], "~"))),
        ]  # fmt: skip
        results = []
        for name, limit, work in cases:
            median, worst, found = await timed(work)
            results.append((label, name, median, worst, found, limit))
        return results
    finally:
        await store.close()


async def main() -> None:
    results = []
    with tempfile.TemporaryDirectory() as folder:
        results += await measure(f"sqlite:///{folder}/search.db", "SQLite")
    import asyncpg

    name = f"ocilm_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN.replace("postgresql://", "postgres://", 1))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        results += await measure(f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}", "PostgreSQL")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print(f"| store | search ({ROWS:,} rows) | median ms | worst ms | rows returned | limit |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, name, median, worst, found, limit in results:
        print(f"| {label} | {name} | {median:.2f} | {worst:.2f} | {found} | {limit} |")


if __name__ == "__main__":
    asyncio.run(main())
