"""What a pre_call guardrail adds: the gateway's CPU per request and the latency, with and
without one OCI ApplyGuardrails check (personal information, content moderation, prompt
injection) before each chat call, interleaved in one run.

`ocilm serve` in its own process, its CPU read from /proc around each batch; the load generator
and the simulator in their own. Usage: .venv/bin/python bench/guardrails.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PROMPT = " ".join(f"w{i}" for i in range(45))


def guardrail_bench(ctx: dict, count: int = 1500, rounds: int = 3) -> dict:
    from _harness import gateway_rounds, serving

    guard = {"guardrail_name": "g", "litellm_params": {"guardrail": "oci_guardrails", **ctx["creds"], "default_on": True,
             "pii_entities_config": {"EMAIL": "MASK"}, "content_moderation": "MONITOR", "prompt_injection": "BLOCK"}}  # fmt: skip
    model = {"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **ctx["creds"]}}
    configs = {name: {"model_list": [model], "guardrails": guardrails, "general_settings": {"master_key": "sk-bench-master-key"}}
               for name, guardrails in (("without a guardrail", []), ("with a pre_call guardrail", [guard]))}  # fmt: skip
    body = json.dumps({"model": "llama", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 100}).encode()
    with serving(configs, ctx["tmp"]) as gateways:
        return gateway_rounds(gateways, "/v1/chat/completions", body, ["authorization: Bearer sk-bench-master-key"], rounds, count)


def table(result: dict) -> str:
    base = result["without a guardrail"]
    lines = ["| gateway | CPU per request (ms) | p50 ms (c=1) | p99 ms |", "| --- | --- | --- | --- |"]
    for name, row in result.items():
        lines.append(f"| {name} | {row['cpu'] * 1000:.3f} | {row['p50']:.3f} | {row['p99']:.3f} |")
    guarded = result["with a pre_call guardrail"]
    lines.append(f"| added by the guardrail | {(guarded['cpu'] - base['cpu']) * 1000:+.3f} | {guarded['p50'] - base['p50']:+.3f} | |")
    return "\n".join(lines)


def main() -> int:
    from _harness import with_simulator

    return with_simulator(lambda ctx: table(guardrail_bench(ctx)))


if __name__ == "__main__":
    sys.exit(main())
