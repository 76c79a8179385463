"""`ocilm serve --workers 2` against one worker, with governance on each store (the speed issue's
target: 2 workers on 2 cores serve at least 1.8x one worker, and SQLite's single writer across
processes is not the ceiling).

Each arm is a budgeted virtual key with rpm and tpm limits (a hold, a limit decision and a
settlement per request): on SQLite (the workers share the file: its budget rows, its rate
counters, its spend log) and on PostgreSQL + Redis. 32 callers, non-stream, the arms taking turns
for ROUNDS rounds. Nothing is pinned: the gateway may use both cores, which it shares with the
simulator, the load generator, PostgreSQL and Redis (this machine has two). So besides req/s the
table gives each arm's CPU per request, summed over the gateway's processes, and the gateway's and
the rest's share of the machine: where the 2-worker arm falls short of 1.8x while the gateway's
own CPU per request did not grow, the machine's other tenants took the cores, not a lock.

Usage: .venv/bin/python bench/workers.py [ROUNDS]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _harness as run  # noqa: E402
from governance import MASTER, REDIS, _bench_setup  # noqa: E402

CALLERS = 32
REQUESTS = 4000


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and every process under it (uvicorn's workers are its children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += run.cpu_seconds(current)
        except OSError:
            continue
        todo += children.get(current, [])
    return total


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (every core), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def main(rounds: int = 3) -> str:
    with _bench_setup() as (ctx, deployment, pg_url, procs):
        arms: dict[str, tuple[subprocess.Popen, str, list[str]]] = {}
        stores = {"SQLite": f"sqlite:///{ctx['tmp']}/workers.db", "PostgreSQL + Redis": pg_url}
        for store, url in stores.items():
            general = {"master_key": MASTER, "database_url": url, **({"redis_url": REDIS} if store != "SQLite" else {})}
            path = Path(ctx["tmp"]) / f"workers-{len(arms)}.yaml"
            path.write_text(yaml.safe_dump({"model_list": [deployment], "general_settings": general}))
            subprocess.run([sys.executable, "-m", "ocilm", "db", "upgrade", "--config", str(path)], check=True, capture_output=True)
            for workers in (1, 2):
                port = run.free_port()
                proc = run.start(["-m", "ocilm", "serve", "--config", str(path), "--port", str(port), "--workers", str(workers),
                                  "--log-level", "error"], f"http://127.0.0.1:{port}/health/liveliness")  # fmt: skip
                procs.append(proc)
                base = f"http://127.0.0.1:{port}"
                for _ in range(100):  # every worker up (the first answers before the second has started)
                    if len(subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()) >= workers:
                        break
                    time.sleep(0.1)
                key = httpx.post(f"{base}/key/generate", headers={"authorization": f"Bearer {MASTER}"},
                                 json={"max_budget": 1e6, "rpm_limit": 10**7, "tpm_limit": 10**9}, timeout=30).json()["key"]  # fmt: skip
                arms[f"{store}, {workers} worker{'s' if workers > 1 else ''}"] = (proc, f"{base}/v1/chat/completions",
                                                                                  [f"authorization: Bearer {key}"])  # fmt: skip
        body = json.dumps({"model": "llama", "messages": [{"role": "user", "content": run.PROMPT}], "max_tokens": 100}).encode()
        for _, url, auth in arms.values():
            run.loadgen(url, body, CALLERS, 800, auth)
        samples: dict[str, list[dict]] = {name: [] for name in arms}
        for _ in range(rounds):
            for name, (proc, url, auth) in arms.items():
                cpu, busy, began = tree_cpu(proc.pid), machine_busy(), time.monotonic()
                got = run.loadgen(url, body, CALLERS, REQUESTS, auth)
                seconds = time.monotonic() - began
                assert got["errors"] == 0, (name, got)
                gateway = tree_cpu(proc.pid) - cpu
                got.update(cpu_ms=gateway / got["requests"] * 1000, gateway_cores=gateway / seconds,
                           other_cores=(machine_busy() - busy - gateway) / seconds)  # fmt: skip
                samples[name].append(got)
    lines = ["| arm | req/s | vs 1 worker | p50 ms | gateway CPU ms per request | cores busy: gateway | cores busy: the rest |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    medians = {name: {k: statistics.median(s[k] for s in got) for k in ("rps", "p50_ms", "cpu_ms", "gateway_cores", "other_cores")}
               for name, got in samples.items()}  # fmt: skip
    for name, m in medians.items():
        one = medians[name.rsplit(",", 1)[0] + ", 1 worker"]
        lines.append(f"| {name} | {m['rps']:.0f} | {m['rps'] / one['rps']:.2f}x | {m['p50_ms']:.2f} | {m['cpu_ms']:.3f} "
                     f"| {m['gateway_cores']:.2f} | {m['other_cores']:.2f} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
