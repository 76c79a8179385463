"""LiteLLM's proxy and ``ocilm serve`` on the same harness (#26): the same simulator, the same
model, non-stream chat at c=1, 8 and 32, each gateway pinned to the same core, cells taken in
turns. LiteLLM is never a dependency of ocilm: install it in a virtualenv of its own and pass its
``litellm`` executable (it runs offline against the simulator through ``api_base``).

Usage:
  python3 -m venv /tmp/llvenv && /tmp/llvenv/bin/pip install 'litellm[proxy]'
  .venv/bin/python bench/litellm_proxy.py /tmp/llvenv/bin/litellm [ROUNDS]   (prints a Markdown table)
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

CELLS = ((1, 300), (8, 600), (32, 600))


def start_litellm(executable: str, ctx: dict) -> tuple[subprocess.Popen, str]:
    creds = ctx["creds"]
    params = {"model": f"oci/{run.MODEL}", "oci_user": creds["oci_user"], "oci_tenancy": creds["oci_tenancy"],
              "oci_fingerprint": creds["oci_fingerprint"], "oci_key_file": creds["oci_key_file"],
              "oci_compartment_id": creds["oci_compartment_id"], "oci_region": "us-chicago-1", "api_base": creds["api_base"]}  # fmt: skip
    path = Path(ctx["tmp"]) / "litellm.yaml"
    path.write_text(yaml.safe_dump({"model_list": [{"model_name": "llama", "litellm_params": params}]}))
    port = run.free_port()
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true"}  # loopback only, no key: as ocilm's arm  # fmt: skip
    proc = subprocess.Popen([*run.pinned(run.GATEWAY_CPU), executable, "--config", str(path), "--port", str(port), "--num_workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=1)
            return proc, f"http://127.0.0.1:{port}/v1/chat/completions"
        except httpx.HTTPError:
            time.sleep(1)
    proc.kill()
    raise RuntimeError("LiteLLM's proxy did not start")


def main(executable: str, rounds: int) -> str:
    sim, ctx = run.start_simulator()
    procs: list[subprocess.Popen] = []
    try:
        path = Path(ctx["tmp"]) / "ocilm.yaml"
        path.write_text(yaml.safe_dump({"model_list": [{"model_name": "llama", "litellm_params": {"model": f"oci/{run.MODEL}", **ctx["creds"]}}]}))
        port = run.free_port()
        procs.append(run.start(["-m", "ocilm", "serve", "--config", str(path), "--port", str(port), "--log-level", "error"],
                               f"http://127.0.0.1:{port}/health/liveliness", cpu=run.GATEWAY_CPU))  # fmt: skip
        litellm, litellm_url = start_litellm(executable, ctx)
        procs.append(litellm)
        arms = {"ocilm serve": f"http://127.0.0.1:{port}/v1/chat/completions", "LiteLLM proxy": litellm_url}
        body = json.dumps({"model": "llama", "messages": [{"role": "user", "content": run.PROMPT}], "max_tokens": 100}).encode()
        for url in arms.values():
            reply = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=60)
            assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"], reply.text[:200]
            run.loadgen(url, body, 4, 100)
        results: dict[str, dict[int, list[dict]]] = {name: {c: [] for c, _ in CELLS} for name in arms}
        for _ in range(rounds):
            for concurrency, count in CELLS:
                for name, url in arms.items():
                    got = run.loadgen(url, body, concurrency, count if name == "ocilm serve" else max(concurrency * 4, 100))
                    assert got["errors"] == 0, (name, got)
                    results[name][concurrency].append(got)
        lines = ["| gateway | " + " | ".join(f"c={c} req/s | c={c} p50 ms" for c, _ in CELLS) + " |", "| --- |" + " --- |" * (2 * len(CELLS))]
        for name, by_c in results.items():
            cells = [f"{statistics.median(g['rps'] for g in by_c[c]):.0f} | {statistics.median(g['p50_ms'] for g in by_c[c]):.1f}"
                     for c, _ in CELLS]  # fmt: skip
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)
    finally:
        run.stop(procs, sim)


if __name__ == "__main__":
    print(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2))
