"""What keys, budgets and spend logs cost the gateway (issue #14): the same ``ocilm serve`` without
governance, with its SQLite store, and with PostgreSQL, each pinned to one core, loaded in turns
with a budgeted virtual key (the worst case: a hold and a settlement per request).

Usage: .venv/bin/python bench/governance.py [ROUNDS]   (prints a Markdown table)
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402

MASTER = "sk-bench-master-key"
PG_ADMIN = os.environ.get("OCILM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg(sql: str) -> None:
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(PG_ADMIN.replace("postgresql://", "postgres://", 1))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(rounds: int) -> str:
    sim, ctx = run.start_simulator()
    procs: list[subprocess.Popen] = []
    pg_name = f"ocilm_bench_{uuid.uuid4().hex[:8]}"
    _pg(f'CREATE DATABASE "{pg_name}"')
    try:
        deployment = {"model_name": "llama", "litellm_params": {"model": f"oci/{run.MODEL}", **ctx["creds"],
                                                                 "input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7}}  # fmt: skip
        stores = {"no governance (no key, no store)": None, "SQLite store, budgeted key": f"sqlite:///{ctx['tmp']}/bench.db",
                  "PostgreSQL store, budgeted key": f"{PG_ADMIN.rsplit('/', 1)[0]}/{pg_name}"}  # fmt: skip
        targets: dict[str, tuple[str, list[str]]] = {}
        pids: dict[str, int] = {}
        for name, url in stores.items():
            # The baseline has no master key: with one, ocilm serve keeps a SQLite store by default.
            general: dict = {"master_key": MASTER, "database_url": url} if url else {}
            path = Path(ctx["tmp"]) / f"gw-{len(targets)}.yaml"
            path.write_text(yaml.safe_dump({"model_list": [deployment], "general_settings": general}))
            if url:
                subprocess.run([sys.executable, "-m", "ocilm", "db", "upgrade", "--config", str(path)], check=True, capture_output=True)
            port = run.free_port()
            procs.append(run.start(["-m", "ocilm", "serve", "--config", str(path), "--port", str(port), "--log-level", "error"],
                                   f"http://127.0.0.1:{port}/health/liveliness", cpu=run.GATEWAY_CPU))  # fmt: skip
            pids[name] = procs[-1].pid
            base = f"http://127.0.0.1:{port}"
            key = MASTER
            if url:
                key = httpx.post(f"{base}/key/generate", headers={"authorization": f"Bearer {MASTER}"}, json={"max_budget": 1e6}).json()["key"]
            targets[name] = (f"{base}/v1/chat/completions", [f"authorization: Bearer {key}"])
        body = json.dumps({"model": "llama", "messages": [{"role": "user", "content": run.PROMPT}], "max_tokens": 100}).encode()
        for url, headers in targets.values():
            run.loadgen(url, body, 8, 300, headers)
        results: dict[str, dict[int, list[dict]]] = {name: {1: [], 8: []} for name in targets}
        for _ in range(rounds):
            for concurrency, count in ((1, 600), (8, 1600)):
                for name, (url, headers) in targets.items():
                    before = _cpu_seconds(pids[name])
                    got = run.loadgen(url, body, concurrency, count, headers)
                    got["cpu_ms"] = (_cpu_seconds(pids[name]) - before) / got["requests"] * 1000
                    assert got["errors"] == 0, got
                    results[name][concurrency].append(got)
        base_name = next(iter(targets))
        lines = ["| server | c=1 p50 ms | added p50 ms | c=8 req/s | req/s vs no governance | gateway CPU ms per request (c=8) |",
                 "| --- | --- | --- | --- | --- | --- |"]
        ref_p50 = statistics.median(r["p50_ms"] for r in results[base_name][1])
        ref_rps = statistics.median(r["rps"] for r in results[base_name][8])
        for name, by_c in results.items():
            p50 = statistics.median(r["p50_ms"] for r in by_c[1])
            rps = statistics.median(r["rps"] for r in by_c[8])
            cpu = statistics.median(r["cpu_ms"] for r in by_c[8])
            lines.append(f"| {name} | {p50:.3f} | {p50 - ref_p50:+.3f} | {rps:.0f} | {(rps / ref_rps - 1) * 100:+.1f}% | {cpu:.2f} |")
        return "\n".join(lines)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        sim.terminate()
        _pg(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


if __name__ == "__main__":
    print(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
