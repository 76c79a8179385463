"""Open-loop latency (#26): requests arrive at a fixed rate (200, 500 and 1,000 a second), not
from callers that wait for each other, so the figures compare with ai-gateway-bench's and
TensorZero's method. The upstream is the simulator answering after a fixed 20 ms (as a mock
model does in those benchmarks); each arm is measured at each rate, the arms interleaved:

- direct: the load generator calls the simulator itself (OCI's format, presigned), the baseline;
- ocilm: ``ocilm serve`` without governance;
- ocilm + governance: a budgeted virtual key with an rpm limit (neither binding), SQLite store,
  the counters in the process.

Added latency is each ocilm arm's percentile less the direct arm's at the same rate. The gateway
is pinned to one core; the simulator and the load generator share the other.

Usage: .venv/bin/python bench/open_loop.py [SECONDS]   (30 by default; prints a Markdown table)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _harness as run  # noqa: E402
from ocilm.testing import Fault  # noqa: E402

RATES = (200, 500, 1000)
UPSTREAM_SECONDS = 0.02
MASTER = "sk-bench-open-loop-master"


def generate(url: str, body: bytes, rate: int, seconds: float, headers: list[str]) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        f.write(body)
    try:
        out = subprocess.run([*run.pinned(run.SUPPORT_CPU), sys.executable, str(HERE / "open_loop_gen.py"), url, f.name, str(rate), str(seconds),
                              *headers], capture_output=True, text=True, check=True).stdout  # fmt: skip
    finally:
        os.unlink(f.name)
    return json.loads(out)


def main(seconds: float) -> str:
    sim, ctx = run.start_simulator()
    procs: list[subprocess.Popen] = []
    try:
        fault = Fault(delay=UPSTREAM_SECONDS, times=None).header()
        deployment = {"model_name": "llama", "litellm_params": {"model": f"oci/{run.MODEL}", **ctx["creds"], "extra_headers": {"x-ocilm-sim-fault": fault},
                                                                 "input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7}}  # fmt: skip
        arms: dict[str, tuple[str, bytes, list[str]]] = {}
        oci = _oci_body()
        signed = ctx["signer"].headers(oci)  # the simulator accepts a signature for five minutes: presigned once per run
        arms["direct (simulator)"] = (f"{ctx['sim']}/20231130/actions/chat", oci,
                                      [f"{k}: {v}" for k, v in signed.items() if k != "content-type"] + [f"x-ocilm-sim-fault: {fault}"])  # fmt: skip
        chat = json.dumps({"model": "llama", "messages": [{"role": "user", "content": run.PROMPT}], "max_tokens": 100}).encode()
        for name, general in (("ocilm", {}), ("ocilm + governance (SQLite, budget and rpm)",
                                              {"master_key": MASTER, "database_url": f"sqlite:///{ctx['tmp']}/open-loop.db"})):  # fmt: skip
            path = Path(ctx["tmp"]) / f"open-loop-{len(procs)}.yaml"
            path.write_text(yaml.safe_dump({"model_list": [deployment], "general_settings": general}))
            if general:
                subprocess.run([sys.executable, "-m", "ocilm", "db", "upgrade", "--config", str(path)], check=True, capture_output=True)
            port = run.free_port()
            procs.append(run.start(["-m", "ocilm", "serve", "--config", str(path), "--port", str(port), "--log-level", "error"],
                                   f"http://127.0.0.1:{port}/health/liveliness", cpu=run.GATEWAY_CPU))  # fmt: skip
            base = f"http://127.0.0.1:{port}"
            auth: list[str] = []
            if general:
                key = httpx.post(f"{base}/key/generate", headers={"authorization": f"Bearer {MASTER}"},
                                 json={"max_budget": 1e6, "rpm_limit": 10**7}).json()["key"]  # fmt: skip
                auth = [f"authorization: Bearer {key}"]
            arms[name] = (f"{base}/v1/chat/completions", chat, auth)
        for url, body, headers in arms.values():  # warm up: connections, caches, the lease
            generate(url, body, 200, 2, headers)
        results: dict[str, dict[int, dict]] = {name: {} for name in arms}
        for rate in RATES:
            for name, (url, body, headers) in arms.items():
                results[name][rate] = generate(url, body, rate, seconds, headers)
        direct = results["direct (simulator)"]
        lines = ["| arm | rate (req/s) | achieved | p50 ms | p99 ms | p99.9 ms | added p50 ms | added p99 ms | added p99.9 ms | errors |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for rate in RATES:
            for name in arms:
                got, ref = results[name][rate], direct[rate]
                added = ("", "", "") if name == "direct (simulator)" else tuple(f"{got[q] - ref[q]:+.2f}" for q in ("p50_ms", "p99_ms", "p999_ms"))
                lines.append(f"| {name} | {rate} | {got['rate']:.0f} | {got['p50_ms']:.2f} | {got['p99_ms']:.2f} | {got['p999_ms']:.2f} "
                             f"| {added[0]} | {added[1]} | {added[2]} | {got['errors']}{_kinds(got)} |")
        return "\n".join(lines)
    finally:
        run.stop(procs, sim)


def _kinds(got: dict) -> str:
    kinds = got.get("error_kinds") or {}
    return f" ({', '.join(f'{kind}: {count}' for kind, count in kinds.items())})" if kinds else ""


def _oci_body() -> bytes:
    request = {"apiFormat": "GENERIC", "messages": [{"role": "USER", "content": [{"type": "TEXT", "text": run.PROMPT}]}], "maxTokens": 100}
    return json.dumps({"compartmentId": run.COMPARTMENT, "servingMode": {"servingType": "ON_DEMAND", "modelId": run.MODEL},
                       "chatRequest": request}).encode()  # fmt: skip


if __name__ == "__main__":
    print(main(float(sys.argv[1]) if len(sys.argv) > 1 else 30.0))
