"""What a pre_call guardrail adds: the gateway's CPU per request and the latency, with and
without one OCI ApplyGuardrails check (personal information, content moderation, prompt
injection) before each chat call, interleaved in one run.

`ocilm serve` in its own process, its CPU read from /proc around each batch; the load generator
and the simulator in their own. Usage: .venv/bin/python bench/guardrails.py
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from doors import cpu_seconds  # noqa: E402

PROMPT = " ".join(f"w{i}" for i in range(45))


def guardrail_bench(ctx: dict, count: int = 1500, rounds: int = 3) -> dict:
    import yaml

    from _harness import free_port, loadgen, start

    guard = {"guardrail_name": "g", "litellm_params": {"guardrail": "oci_guardrails", **ctx["creds"], "default_on": True,
             "pii_entities_config": {"EMAIL": "MASK"}, "content_moderation": "MONITOR", "prompt_injection": "BLOCK"}}  # fmt: skip
    model = {"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **ctx["creds"]}}
    gateways = {}
    try:
        for name, guardrails in (("without a guardrail", []), ("with a pre_call guardrail", [guard])):
            config = Path(ctx["tmp"]) / f"guard-{len(guardrails)}.yaml"
            config.write_text(yaml.safe_dump({"model_list": [model], "guardrails": guardrails,
                                              "general_settings": {"master_key": "sk-bench-master-key"}}))  # fmt: skip
            port = free_port()
            gateways[name] = (start(["-m", "ocilm", "serve", "--config", str(config), "--port", str(port), "--log-level", "error"],
                                    f"http://127.0.0.1:{port}/health/liveliness"), port)  # fmt: skip
        body = json.dumps({"model": "llama", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 100}).encode()
        auth = ["authorization: Bearer sk-bench-master-key"]
        samples: dict[str, dict[str, list[float]]] = {}
        for _, port in gateways.values():
            loadgen(f"http://127.0.0.1:{port}/v1/chat/completions", body, 4, 200, auth)
        for _ in range(rounds):
            for name, (proc, port) in gateways.items():
                before = cpu_seconds(proc.pid)
                got = loadgen(f"http://127.0.0.1:{port}/v1/chat/completions", body, 1, count, auth)
                assert got["errors"] == 0, got
                row = samples.setdefault(name, {"cpu": [], "p50": [], "p99": []})
                row["cpu"].append((cpu_seconds(proc.pid) - before) / got["requests"])
                row["p50"].append(got["p50_ms"])
                row["p99"].append(got["p99_ms"])
    finally:
        for proc, _ in gateways.values():
            proc.terminate()
            proc.wait(10)
    return {name: {k: statistics.median(v) for k, v in row.items()} for name, row in samples.items()}


def table(result: dict) -> str:
    base = result["without a guardrail"]
    lines = ["| gateway | CPU per request (ms) | p50 ms (c=1) | p99 ms |", "| --- | --- | --- | --- |"]
    for name, row in result.items():
        lines.append(f"| {name} | {row['cpu'] * 1000:.3f} | {row['p50']:.3f} | {row['p99']:.3f} |")
    guarded = result["with a pre_call guardrail"]
    lines.append(f"| added by the guardrail | {(guarded['cpu'] - base['cpu']) * 1000:+.3f} | {guarded['p50'] - base['p50']:+.3f} | |")
    return "\n".join(lines)


def main() -> int:
    from _harness import start_simulator

    sim, ctx = start_simulator()
    try:
        print(table(guardrail_bench(ctx)))
    finally:
        sim.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
