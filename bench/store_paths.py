"""What one governed request's store and counter writes cost the gateway, in process (#26):

- a SQLite settlement written on the event loop (the lock free) against the same settlement sent
  to the store's writer thread, one at a time (what a request at c=1 waits for);
- a Redis rate-limit decision and its release as ocilm sends them (pipelined: alone, a release
  travels with the next decision) against redis-py's script objects, one call each.

Usage: .venv/bin/python bench/store_paths.py [N]   (prints a Markdown table; needs Redis on
127.0.0.1:6379, or OCILM_TEST_REDIS)
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid

from ocilm.gateway.governance._hot import _sqlite_settle
from ocilm.gateway.governance._limits import Limit, RedisLimiter, _keys
from ocilm.gateway.governance._policy import NANO
from ocilm.gateway.governance._store import Store

REDIS = os.environ.get("OCILM_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _row(i: int, token: str) -> dict:
    return {"request_id": f"r{uuid.uuid4().hex[:8]}{i}", "token": token, "team_id": None, "model": "m", "deployment": "d", "route": "chat",
            "input_tokens": 10, "output_tokens": 5, "cost": 100, "status": 200, "latency_ms": 1.0, "started_at": time.time()}  # fmt: skip


def _timed(rows: list[tuple[str, float, float]], name: str, n: int, wall: float, cpu: float) -> None:
    rows.append((name, wall / n * 1e6, cpu / n * 1e6))


async def sqlite_rows(n: int) -> list[tuple[str, float, float]]:
    rows: list[tuple[str, float, float]] = []
    store = await Store.open(f"sqlite:///{tempfile.mkdtemp()}/paths.db")
    await store.upgrade()
    try:
        _, info = await store.create_key({"max_budget": 10**6 * NANO})
        budgets = store._budgets
        loop = asyncio.get_running_loop()
        for _ in range(2):  # interleaved: thread, loop, thread, loop
            w, c = time.perf_counter(), time.process_time()
            for i in range(n):
                await loop.run_in_executor(budgets._thread, budgets._in_transaction, [(_sqlite_settle, (_row(i, info["token"]),))])
            _timed(rows, "SQLite settlement, through the writer thread (before)", n, time.perf_counter() - w, time.process_time() - c)
            w, c = time.perf_counter(), time.process_time()
            for i in range(n):
                await store.settle(_row(i, info["token"]))
            _timed(rows, "SQLite settlement, on the loop (now)", n, time.perf_counter() - w, time.process_time() - c)
    finally:
        await store.close()
    return rows


async def redis_rows(n: int) -> list[tuple[str, float, float]]:
    rows: list[tuple[str, float, float]] = []
    limiter = RedisLimiter(REDIS)
    try:
        limits = (Limit("key", f"key:bench-{uuid.uuid4().hex}", 10**7, 10**9),)
        keys = _keys(limits)
        ticket = await limiter.admit("warm", limits, 100)
        await limiter.finish(ticket, 50)
        for _ in range(2):
            w, c = time.perf_counter(), time.process_time()
            for i in range(n):  # as before: two script calls through redis-py, each its own round trip
                rid = f"a{i}"
                await limiter._admit(keys=keys, args=[rid, 100, 60000, 900000, 10**7, 10**9, 0])
                await limiter._finish(keys=keys, args=[rid, 50])
            _timed(rows, "Redis decision + release, redis-py script calls (before)", n, time.perf_counter() - w, time.process_time() - c)
            w, c = time.perf_counter(), time.process_time()
            releases = []
            for i in range(n):  # now: each release rides with the next decision
                ticket = await limiter.admit(f"b{i}", limits, 100)
                releases.append(asyncio.ensure_future(limiter.finish(ticket, 50)))
            await asyncio.gather(*releases)
            _timed(rows, "Redis decision + release, pipelined (now), one request at a time", n, time.perf_counter() - w, time.process_time() - c)
            w, c = time.perf_counter(), time.process_time()
            releases = []
            for start in range(0, n, 8):  # eight requests arriving together; their releases ride with the next eight
                tickets = await asyncio.gather(*(limiter.admit(f"c{start + j}", limits, 100) for j in range(8)))
                releases += [asyncio.ensure_future(limiter.finish(t, 50)) for t in tickets]
            await asyncio.gather(*releases)
            _timed(rows, "Redis decision + release, pipelined (now), eight at a time", n, time.perf_counter() - w, time.process_time() - c)
    finally:
        await limiter.close()
    return rows


def main(n: int) -> str:
    import uvloop

    rows = uvloop.run(sqlite_rows(n)) + uvloop.run(redis_rows(n))
    best: dict[str, tuple[float, float]] = {}
    for name, wall, cpu in rows:
        old = best.get(name)
        best[name] = (min(wall, old[0]), min(cpu, old[1])) if old else (wall, cpu)
    lines = ["| path | wall µs per request | CPU µs per request |", "| --- | --- | --- |"]
    lines += [f"| {name} | {wall:.0f} | {cpu:.0f} |" for name, (wall, cpu) in best.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
