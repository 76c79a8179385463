"""A small HTTP/1.1 keep-alive load generator (its own process): fixed concurrency, N requests.

Usage: python bench/loadgen.py URL BODYFILE CONCURRENCY REQUESTS [HEADER:VALUE ...]
Prints JSON: requests, seconds, rps, p50/p99 latency (ms) to the full response, errors.
With OCILM_LOADGEN_PAUSE_MS=N each client pauses a random 0-N ms between its requests, so that
clients behind a slow upstream do not move in lockstep (real callers do not).
Raw asyncio streams keep the generator cheap, so the server under test is what is measured.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import sys
import time
from urllib.parse import urlsplit

from _http1 import read_response  # beside this script


async def worker(host: str, port: int, request: bytes, todo: list[int], latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    pause = float(os.environ.get("OCILM_LOADGEN_PAUSE_MS", "0")) / 1000
    try:
        while todo:
            todo.pop()
            if pause:
                await asyncio.sleep(random.uniform(0, pause))
            start = time.perf_counter()
            writer.write(request)
            status = await read_response(reader)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                errors.append(str(status))
    finally:
        writer.close()


async def run(url: str, body: bytes, concurrency: int, count: int, headers: list[str]) -> dict:
    parts = urlsplit(url)
    head = (f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n")
    request = head.encode() + body
    todo = list(range(count))
    latencies: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    await asyncio.gather(*(worker(parts.hostname, parts.port, request, todo, latencies, errors) for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies), "seconds": round(seconds, 3), "rps": round(len(latencies) / seconds, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3), "errors": len(errors),
    }


if __name__ == "__main__":
    url, body_file, concurrency, count, *headers = sys.argv[1:]
    with open(body_file, "rb") as f:
        body = f.read()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(url, body, int(concurrency), int(count), headers))))
