"""RSS of one `ocilm serve` worker with everything on (a SQLite store and a budgeted,
rate-limited virtual key; the router with two deployments; the response cache; metrics and
access lines), under a soak at 16 concurrent callers: sampled every few seconds, reported as
the start, the peak, the end, and the drift over the second half (flat means no leak).

Half the requests repeat one prompt (cache hits) and half are unique (misses that add entries
until the cache's bounds hold them). Usage: .venv/bin/python bench/memory.py [SECONDS]
(the issue asks for 1800; a shorter run shows the shape).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import PROMPT, free_port, loadgen, rss_mb, start, start_simulator  # noqa: E402

MASTER = "sk-bench-master-key"


def soak(ctx: dict, seconds: float, concurrency: int = 16, batch: int = 2000) -> list[tuple[float, float]]:
    deployments = [{"model_name": "llama", "litellm_params": {"model": name, **ctx["creds"]}}
                   for name in ("oci/meta.llama-3.3-70b-instruct", "oci/meta.llama-3.1-405b-instruct")]  # fmt: skip
    config = Path(ctx["tmp"]) / "memory.yaml"
    config.write_text(yaml.safe_dump({
        "model_list": deployments,
        "router_settings": {"routing_strategy": "least-busy", "num_retries": 1},
        "litellm_settings": {"cache": True, "cache_params": {"type": "local", "max_entries": 5000, "max_bytes": 32 * 1024 * 1024}},
        "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{Path(ctx['tmp']) / 'memory.db'}", "metrics": True},
    }))  # fmt: skip
    # migrated first, as a deployment is (`ocilm db upgrade`): a worker on a current schema never loads Alembic
    subprocess.run([sys.executable, "-m", "ocilm", "db", "upgrade", "--config", str(config)], check=True, capture_output=True)
    port = free_port()
    proc = start(["-m", "ocilm", "serve", "--config", str(config), "--port", str(port), "--log-level", "error"],
                 f"http://127.0.0.1:{port}/health/liveliness", stdout=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        made = httpx.post(f"{base}/key/generate", headers={"authorization": f"Bearer {MASTER}"},
                          json={"max_budget": 1_000_000, "rpm_limit": 1_000_000, "tpm_limit": 1_000_000_000}).json()  # fmt: skip
        key = made.get("key") or sys.exit(f"key/generate refused: {made}")
        auth = [f"authorization: Bearer {key}"]
        repeated = json.dumps({"model": "llama", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 100}).encode()
        samples = [(0.0, rss_mb(proc.pid))]
        started = time.monotonic()
        round_ = 0
        while time.monotonic() - started < seconds:
            round_ += 1
            unique = json.dumps({"model": "llama", "messages": [{"role": "user", "content": f"{PROMPT} round {round_}"}],
                                 "max_tokens": 100, "seed": round_}).encode()  # fmt: skip
            for body in (repeated, unique):
                got = loadgen(f"{base}/v1/chat/completions", body, concurrency, batch // 2, auth)
                assert got["errors"] == 0, got
            samples.append((time.monotonic() - started, rss_mb(proc.pid)))
        return samples
    finally:
        proc.terminate()
        proc.wait(10)


def report(samples: list[tuple[float, float]]) -> str:
    half = [rss for at, rss in samples if at >= samples[-1][0] / 2]
    drift = (half[-1] - half[0]) / half[0] * 100 if half else 0.0
    return (f"RSS over {samples[-1][0]:.0f} s at c=16: start {samples[0][1]:.1f} MB, after the first batch {samples[1][1]:.1f} MB, "
            f"peak {max(r for _, r in samples):.1f} MB, end {samples[-1][1]:.1f} MB; second half drift {drift:+.1f}% "
            f"({len(samples)} samples)")  # fmt: skip


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1800.0
    sim, ctx = start_simulator()
    try:
        print(report(soak(ctx, seconds)))
    finally:
        sim.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
