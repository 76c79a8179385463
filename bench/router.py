"""What routing costs and what it buys.

1. CPU per request of the router's decisions in process (choose the order of a model's four
   deployments, record the start and the outcome), for each strategy, against no router (the
   deployments in config order), interleaved, best of 5.
2. Chaos: `ocilm serve` in front of the simulator with two regions, one answering 429 (no
   Retry-After) to half its calls for a minute, against both healthy; success rate and p50/p99.

Usage: .venv/bin/python bench/router.py [--chaos-seconds 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

STRATEGIES = ("simple-shuffle", "least-busy", "latency-based-routing", "usage-based-routing-v2", "cost-based-routing")


def decision_costs(requests: int = 50_000, rounds: int = 5) -> dict[str, float]:
    from ocilm.gateway import parse_config

    creds = {"oci_user": "ocid1.user.oc1..x", "oci_tenancy": "ocid1.tenancy.oc1..x", "oci_fingerprint": "aa", "oci_key": "unused",
             "oci_compartment_id": "ocid1.compartment.oc1..x", "input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}  # fmt: skip
    models = [{"model_name": "m", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds, "rpm": 100 * (i + 1),
               "weight": i + 1}} for i in range(4)]  # fmt: skip
    results: dict[str, list[float]] = {}
    from ocilm.gateway._routing_policy import RoutingState

    for _ in range(rounds):
        for strategy in ("none", *STRATEGIES):
            config = parse_config({"model_list": models, "router_settings": {"routing_strategy": strategy if strategy != "none" else "simple-shuffle"}},
                                  check_credentials=False)  # fmt: skip
            group = config.deployments["m"]
            state = RoutingState(config.routing)
            started = time.perf_counter()
            if strategy == "none":
                for _ in range(requests):
                    ordered = list(group)
                    assert ordered
            else:
                for _ in range(requests):
                    now = time.monotonic()
                    ordered, _wait = state.candidates(group, now)
                    first = ordered[0].id
                    state.started(first, now)
                    state.succeeded(first, now, 0.001, tokens=60)
            results.setdefault(strategy, []).append((time.perf_counter() - started) / requests)
    return {k: min(v) for k, v in results.items()}


def chaos(seconds: float) -> dict:
    import yaml

    from _harness import free_port, loadgen, start, start_simulator
    from ocilm.testing import Fault

    sim, ctx = start_simulator()
    out = {}
    try:
        for name, fault in (("both healthy", None), ("one region throttling half its calls", Fault(status=429, times=None, probability=0.5))):
            extra = {"extra_headers": {"x-ocilm-sim-fault": fault.header()}} if fault else {}
            config = Path(ctx["tmp"]) / "router.yaml"
            config.write_text(yaml.safe_dump({
                "model_list": [
                    {"model_name": "m", "litellm_params": {"model": "oci/xai.grok-3", **ctx["creds"], "max_retries": 0, **extra}},
                    {"model_name": "m", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **ctx["creds"], "max_retries": 0}},
                ],
                "router_settings": {"cooldown_time": 5},
                "general_settings": {"master_key": "sk-bench-master-key"},
            }))  # fmt: skip
            port = free_port()
            gateway = start(["-m", "ocilm", "serve", "--config", str(config), "--port", str(port), "--log-level", "error"],
                            f"http://127.0.0.1:{port}/health/liveliness")  # fmt: skip
            body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}).encode()
            try:
                loadgen(f"http://127.0.0.1:{port}/v1/chat/completions", body, 4, 200, ["authorization: Bearer sk-bench-master-key"])
                began, runs = time.monotonic(), []
                while time.monotonic() - began < seconds:
                    runs.append(loadgen(f"http://127.0.0.1:{port}/v1/chat/completions", body, 8, 2000,
                                        ["authorization: Bearer sk-bench-master-key"]))  # fmt: skip
            finally:
                gateway.terminate()
                gateway.wait(10)
            total = sum(r["requests"] for r in runs)
            errors = sum(r["errors"] for r in runs)
            out[name] = {"requests": total, "success": (total - errors) / total, "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                         "p99_ms": max(r["p99_ms"] for r in runs)}  # fmt: skip
    finally:
        sim.terminate()
    return out


def report(costs: dict[str, float], chaos_figures: dict) -> str:
    lines = ["| strategy | routing CPU per request (µs) | over no router (µs) |", "| --- | --- | --- |"]
    base = costs["none"]
    for strategy in STRATEGIES:
        lines.append(f"| {strategy} | {costs[strategy] * 1e6:.2f} | {(costs[strategy] - base) * 1e6:+.2f} |")
    lines += ["", "| chaos run | requests | succeeded | p50 ms | p99 ms (worst batch) |", "| --- | --- | --- | --- | --- |"]
    for name, row in chaos_figures.items():
        lines.append(f"| {name} | {row['requests']} | {row['success'] * 100:.3f}% | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chaos-seconds", type=float, default=60.0)
    args = parser.parse_args()
    print(report(decision_costs(), chaos(args.chaos_seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
