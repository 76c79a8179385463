"""What keys, budgets, spend logs (issue #14) and rate limits (#15) cost the gateway: the same
``ocilm serve`` without governance, with its SQLite store, with PostgreSQL, and with PostgreSQL
plus Redis-backed limits, each pinned to one core, loaded in turns with a budgeted virtual key
(the worst case: a hold and a settlement per request, plus one limit decision and its release).

Usage: .venv/bin/python bench/governance.py [ROUNDS]   (prints two Markdown tables)

The second table is the speed issue's (#26): req/s at c=1, 8 and 32, streams and not, of the
gateway with a budgeted, rate-limited key against the same gateway without governance: on
SQLite (one process, the counters in it), and on PostgreSQL + Redis with three replicas sharing
the gateway's core (the load split between them, each replica's req/s summed).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _harness as run  # noqa: E402  (the shared harness, not the full bench: no import circle)
from ocilm.testing import Fault  # noqa: E402

# c=32 runs against an upstream that answers in 100 ms, as a model does, with callers that pause
# a little between requests: about 290 requests a second, well inside what one core serves, so
# p99 shows what governance adds to each request rather than the queue of a saturated core (c=8
# measures that). Without the pauses the 32 callers move in lockstep and each wave of 32 replies
# queues on the core at once.
PACED_UPSTREAM_SECONDS = 0.1
PACED_PAUSE_MS = 20  # each caller pauses 0-20 ms between requests: they do not arrive in lockstep

MASTER = "sk-bench-master-key"
PG_ADMIN = os.environ.get("OCILM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("OCILM_TEST_REDIS", "redis://127.0.0.1:6379/0")
LIMITED = "PostgreSQL store + Redis limits, budgeted key with rpm/tpm"


def _pg(sql: str) -> None:
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(PG_ADMIN.replace("postgresql://", "postgres://", 1))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


def _pin_services(cpus: set[int]) -> dict[int, set[int]]:
    """Move PostgreSQL's and Redis's processes (every thread; new PostgreSQL backends fork from
    the postmaster and follow it) to ``cpus``; returns what to restore. Here they run on the
    bench machine itself; in production they are on other hosts, and left free they preempt the
    gateway on its pinned core."""
    before: dict[int, set[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            name = (proc / "comm").read_text().strip()
            if not (name.startswith("postgres") or name.startswith("redis-server")):
                continue
            for task in (proc / "task").iterdir():
                tid = int(task.name)
                before[tid] = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, cpus)
        except (OSError, ValueError):
            continue
    return before


def _restore(before: dict[int, set[int]]) -> None:
    for tid, cpus in before.items():
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            pass


REPLICAS = 3
THREE = f"PostgreSQL + Redis, {REPLICAS} replicas, budgeted key with rpm/tpm"


def split_load(urls: list[str], body: bytes, concurrency: int, count: int, headers: list[str]) -> dict:
    """Load several replicas at once, the callers split between them; req/s summed, p50 the
    replicas' median."""
    shares = [concurrency // len(urls) + (1 if i < concurrency % len(urls) else 0) for i in range(len(urls))]
    work = [(url, share) for url, share in zip(urls, shares, strict=True) if share]
    with concurrent.futures.ThreadPoolExecutor(len(work)) as pool:
        got = list(pool.map(lambda w: run.loadgen(w[0], body, w[1], max(1, count * w[1] // concurrency), headers), work))
    return {"rps": sum(g["rps"] for g in got), "p50_ms": statistics.median(g["p50_ms"] for g in got),
            "errors": sum(g["errors"] for g in got), "requests": sum(g["requests"] for g in got)}  # fmt: skip


@contextlib.contextmanager
def _bench_setup() -> Iterator[tuple[dict, dict, str, list[subprocess.Popen]]]:
    """The simulator, a PostgreSQL database of the run's own and the priced deployment; the
    servers a bench adds to ``procs`` are stopped, and the database dropped, at the end."""
    sim, ctx = run.start_simulator()
    procs: list[subprocess.Popen] = []
    pg_name = f"ocilm_bench_{uuid.uuid4().hex[:8]}"
    _pg(f'CREATE DATABASE "{pg_name}"')
    try:
        deployment = {"model_name": "llama", "litellm_params": {"model": f"oci/{run.MODEL}", **ctx["creds"],
                                                                 "input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7}}  # fmt: skip
        yield ctx, deployment, f"{PG_ADMIN.rsplit('/', 1)[0]}/{pg_name}", procs
    finally:
        run.stop(procs, sim)
        _pg(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def throughput(rounds: int) -> str:
    """req/s with governance against without, c=1/8/32, streams and not."""
    with _bench_setup() as (ctx, deployment, pg_url, procs):
        arms: dict[str, tuple[list[str], list[str]]] = {}
        for name, general, count in (("no governance", {}, 1),
                                     ("SQLite store, budgeted key with rpm/tpm", {"master_key": MASTER, "database_url": f"sqlite:///{ctx['tmp']}/tp.db"}, 1),
                                     (THREE, {"master_key": MASTER, "database_url": pg_url, "redis_url": REDIS}, REPLICAS)):  # fmt: skip
            path = Path(ctx["tmp"]) / f"tp-{len(arms)}.yaml"
            path.write_text(yaml.safe_dump({"model_list": [deployment], "general_settings": general}))
            if general:
                subprocess.run([sys.executable, "-m", "ocilm", "db", "upgrade", "--config", str(path)], check=True, capture_output=True)
            urls = []
            for _ in range(count):
                port = run.free_port()
                procs.append(run.start(["-m", "ocilm", "serve", "--config", str(path), "--port", str(port), "--log-level", "error"],
                                       f"http://127.0.0.1:{port}/health/liveliness", cpu=run.GATEWAY_CPU))  # fmt: skip
                urls.append(f"http://127.0.0.1:{port}/v1/chat/completions")
            auth: list[str] = []
            if general:
                key = httpx.post(urls[0].replace("/v1/chat/completions", "/key/generate"), headers={"authorization": f"Bearer {MASTER}"},
                                 json={"max_budget": 1e6, "rpm_limit": 10**7, "tpm_limit": 10**9}).json()["key"]  # fmt: skip
                auth = [f"authorization: Bearer {key}"]
            arms[name] = (urls, auth)
        bodies = {False: json.dumps({"model": "llama", "messages": [{"role": "user", "content": run.PROMPT}], "max_tokens": 100}).encode(),
                  True: json.dumps({"model": "llama", "messages": [{"role": "user", "content": run.STREAM_PROMPT}], "max_tokens": 100,
                                    "stream": True}).encode()}  # fmt: skip
        for urls, auth in arms.values():
            split_load(urls, bodies[False], 8, 400, auth)
        cells = [(stream, c) for stream in (False, True) for c in (1, 8, 32)]
        results: dict[str, dict[tuple[bool, int], list[dict]]] = {name: {cell: [] for cell in cells} for name in arms}
        for _ in range(rounds):
            for stream, c in cells:
                for name, (urls, auth) in arms.items():
                    got = split_load(urls, bodies[stream], c, 600 if c == 1 else 1600, auth)
                    assert got["errors"] == 0, (name, got)
                    results[name][(stream, c)].append(got)
        base = results["no governance"]
        lines = ["| arm | " + " | ".join(f"{'stream' if st else 'non-stream'} c={c}" for st, c in cells) + " | p50 added at c=1 (non-stream / stream) |",
                 "| --- |" + " --- |" * (len(cells) + 1)]  # fmt: skip
        for name, by_cell in results.items():
            row = []
            for cell in cells:
                rps = statistics.median(g["rps"] for g in by_cell[cell])
                ref = statistics.median(g["rps"] for g in base[cell])
                row.append(f"{rps:.0f} ({rps / ref:.2f}x)")
            added = [statistics.median(g["p50_ms"] for g in by_cell[(st, 1)]) - statistics.median(g["p50_ms"] for g in base[(st, 1)])
                     for st in (False, True)]  # fmt: skip
            lines.append(f"| {name} | " + " | ".join(row) + f" | {added[0]:+.2f} / {added[1]:+.2f} ms |")
        return "\n".join(lines)


def main(rounds: int) -> str:
    pinned = _pin_services({int(run.SUPPORT_CPU)}) if len(os.sched_getaffinity(0)) > 1 else {}
    try:
        return _main(rounds) + "\n\n" + throughput(rounds)
    finally:
        _restore(pinned)


def _main(rounds: int) -> str:
    with _bench_setup() as (ctx, deployment, pg_url, procs):
        stores = {"no governance (no key, no store)": None, "SQLite store, budgeted key": f"sqlite:///{ctx['tmp']}/bench.db",
                  "PostgreSQL store, budgeted key": pg_url, LIMITED: pg_url}  # fmt: skip
        targets: dict[str, tuple[str, list[str]]] = {}
        pids: dict[str, int] = {}
        for name, url in stores.items():
            # The baseline has no master key: with one, ocilm serve keeps a SQLite store by default.
            general: dict = {"master_key": MASTER, "database_url": url} if url else {}
            if name == LIMITED:
                general["redis_url"] = REDIS
            path = Path(ctx["tmp"]) / f"gw-{len(targets)}.yaml"
            paced = {**deployment, "model_name": "paced", "litellm_params": {**deployment["litellm_params"], "extra_headers": {
                "x-ocilm-sim-fault": Fault(delay=PACED_UPSTREAM_SECONDS, times=None).header()}}}  # fmt: skip
            path.write_text(yaml.safe_dump({"model_list": [deployment, paced], "general_settings": general}))
            if url and name != LIMITED:
                subprocess.run([sys.executable, "-m", "ocilm", "db", "upgrade", "--config", str(path)], check=True, capture_output=True)
            port = run.free_port()
            procs.append(run.start(["-m", "ocilm", "serve", "--config", str(path), "--port", str(port), "--log-level", "error"],
                                   f"http://127.0.0.1:{port}/health/liveliness", cpu=run.GATEWAY_CPU))  # fmt: skip
            pids[name] = procs[-1].pid
            base = f"http://127.0.0.1:{port}"
            key = MASTER
            if url:
                fields = {"max_budget": 1e6, **({"rpm_limit": 10**7, "tpm_limit": 10**9} if name == LIMITED else {})}
                key = httpx.post(f"{base}/key/generate", headers={"authorization": f"Bearer {MASTER}"}, json=fields).json()["key"]
            targets[name] = (f"{base}/v1/chat/completions", [f"authorization: Bearer {key}"])
        body = json.dumps({"model": "llama", "messages": [{"role": "user", "content": run.PROMPT}], "max_tokens": 100}).encode()
        paced_body = body.replace(b'"llama"', b'"paced"')
        for url, headers in targets.values():
            run.loadgen(url, body, 8, 300, headers)
        results: dict[str, dict[int, list[dict]]] = {name: {1: [], 8: [], 32: []} for name in targets}
        for _ in range(rounds):
            for concurrency, count in ((1, 600), (8, 1600), (32, 1600)):
                for name, (url, headers) in targets.items():
                    before = run.cpu_seconds(pids[name])
                    if concurrency == 32:
                        got = run.loadgen(url, paced_body, concurrency, count, headers, pause_ms=PACED_PAUSE_MS)
                    else:
                        got = run.loadgen(url, body, concurrency, count, headers)
                    got["cpu_ms"] = (run.cpu_seconds(pids[name]) - before) / got["requests"] * 1000
                    assert got["errors"] == 0, got
                    results[name][concurrency].append(got)
        base_name = next(iter(targets))
        lines = ["| server | c=1 p50 ms | added p50 ms | c=8 req/s | req/s vs no governance | gateway CPU ms per request (c=8) "
                 "| c=32 p50 ms (100 ms upstream) | c=32 p99 ms | added p99 ms (c=32) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        ref_p50 = statistics.median(r["p50_ms"] for r in results[base_name][1])
        ref_rps = statistics.median(r["rps"] for r in results[base_name][8])
        ref_p99 = statistics.median(r["p99_ms"] for r in results[base_name][32])
        for name, by_c in results.items():
            p50 = statistics.median(r["p50_ms"] for r in by_c[1])
            rps = statistics.median(r["rps"] for r in by_c[8])
            cpu = statistics.median(r["cpu_ms"] for r in by_c[8])
            p99 = statistics.median(r["p99_ms"] for r in by_c[32])
            p50_32 = statistics.median(r["p50_ms"] for r in by_c[32])
            lines.append(f"| {name} | {p50:.3f} | {p50 - ref_p50:+.3f} | {rps:.0f} | {(rps / ref_rps - 1) * 100:+.1f}% | {cpu:.2f} "
                         f"| {p50_32:.2f} | {p99:.2f} | {p99 - ref_p99:+.2f} |")
        return "\n".join(lines)


if __name__ == "__main__":
    print(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
