"""An open-loop load generator (its own process): requests start at a fixed rate whether or not
earlier ones have finished, so a slow server meets a growing queue instead of slower callers
(no coordinated omission). Latency is measured from when each request was due to start.

Usage: python bench/open_loop_gen.py URL BODYFILE RATE SECONDS [HEADER:VALUE ...]
Prints JSON: sent, completed, errors, achieved rate, p50/p99/p99.9 latency (ms), connections opened.
Keep-alive connections are reused when idle and opened when none is; raw asyncio streams keep
the generator cheap.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

from _http1 import read_response  # beside this script

IDLE_SECONDS = 4.0  # servers close a keep-alive connection idle for 5 s (uvicorn's default): not reused after this


class Connections:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self.idle:
            since, reader, writer = self.idle.pop()
            if time.perf_counter() - since < IDLE_SECONDS:
                return reader, writer
            writer.close()
        self.opened += 1
        return await asyncio.open_connection(self.host, self.port)

    def give_back(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.idle.append((time.perf_counter(), reader, writer))


async def one(pool: Connections, request: bytes, due: float, latencies: list[float], errors: list[str]) -> None:
    try:
        reader, writer = await pool.take()
        writer.write(request)
        status = await read_response(reader)
        latencies.append(time.perf_counter() - due)
        if status != 200:
            errors.append(str(status))
        pool.give_back(reader, writer)
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
        errors.append(type(exc).__name__)


async def main(url: str, body: bytes, rate: float, seconds: float, headers: list[str]) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = "".join(f"{h.split(':', 1)[0]}: {h.split(':', 1)[1].strip()}\r\n" for h in headers)
    request = (f"POST {parts.path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n{head}"
               f"content-length: {len(body)}\r\n\r\n").encode() + body  # fmt: skip
    pool = Connections(host, port)
    latencies: list[float] = []
    errors: list[str] = []
    tasks: set[asyncio.Task[None]] = set()
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        task = asyncio.ensure_future(one(pool, request, due, latencies, errors))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(set(tasks), timeout=60)
    elapsed = time.perf_counter() - start
    latencies.sort()

    def at(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1000 if latencies else float("nan")

    kinds = {kind: errors.count(kind) for kind in sorted(set(errors))}
    return {"sent": total, "completed": len(latencies), "errors": len(errors), "error_kinds": kinds, "rate": len(latencies) / elapsed,
            "p50_ms": at(0.5), "p99_ms": at(0.99), "p999_ms": at(0.999), "connections": pool.opened}  # fmt: skip


if __name__ == "__main__":
    target, body_file, rate_arg, seconds_arg, *extra = sys.argv[1:]
    with open(body_file, "rb") as f:
        payload = f.read()
    print(json.dumps(asyncio.run(main(target, payload, float(rate_arg), float(seconds_arg), extra))))
