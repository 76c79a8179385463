"""What the response cache saves and costs: the gateway's CPU per request and the latency of the
same chat request served upstream (no cache), from the in-process cache, and from Redis; and
the cache's own work per hit (key, lookup, decoding the entry), in process. Interleaved in one run.

`ocilm serve` in its own process, its CPU read from /proc around each batch; the load generator
and the simulator in their own. Usage: .venv/bin/python bench/cache.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PROMPT = " ".join(f"w{i}" for i in range(45))
REDIS = "redis://127.0.0.1:6379/0"


def gateway_bench(ctx: dict, count: int = 1500, rounds: int = 3) -> dict:
    from _harness import gateway_rounds, serving

    model = {"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **ctx["creds"]}}
    variants = {"upstream (no cache)": None, "hit, local cache": {"type": "local"},
                "hit, Redis cache": {"type": "redis", "url": REDIS, "namespace": f"bench{time.time_ns()}"}}  # fmt: skip
    configs = {name: {"model_list": [model], "litellm_settings": {"cache": True, "cache_params": params} if params else {},
                      "general_settings": {"master_key": "sk-bench-master-key"}} for name, params in variants.items()}  # fmt: skip
    body = json.dumps({"model": "llama", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 100}).encode()
    with serving(configs, ctx["tmp"]) as gateways:  # the warm-up leaves the entry in the cached ones: every measured request hits
        return gateway_rounds(gateways, "/v1/chat/completions", body, ["authorization: Bearer sk-bench-master-key"], rounds, count)


def lookup_bench(count: int = 20000) -> float:
    """Seconds of the cache's own work per local hit: the key of a 45-word chat request, the
    lookup, and decoding the stored reply."""
    from ocilm.gateway._cache import CacheControl, CacheSettings, ResponseCache, reply_of

    cache = ResponseCache(CacheSettings())
    caller = SimpleNamespace(token="t", team_id="team", cache=None)
    messages = [{"role": "user", "content": PROMPT}]
    reply = {"id": "x", "object": "chat.completion", "created": 1, "model": "llama", "usage": {"prompt_tokens": 50, "completion_tokens": 100},
             "choices": [{"index": 0, "message": {"role": "assistant", "content": PROMPT * 3}, "finish_reason": "stop"}]}  # fmt: skip

    async def run() -> float:
        plan = cache.plan(CacheControl(), route="chat", method="completion", model=["llama", ["d1"]], first=messages,
                          params={"max_tokens": 100}, guardrails=[], caller=caller)  # fmt: skip
        assert plan is not None
        await cache.keep(plan, reply)
        started = time.perf_counter()
        for _ in range(count):
            plan = cache.plan(CacheControl.parse(None, None), route="chat", method="completion", model=["llama", ["d1"]], first=messages,
                              params={"max_tokens": 100}, guardrails=[], caller=caller)  # fmt: skip
            entry = await cache.find(plan)  # type: ignore[arg-type]
            reply_of(entry)  # type: ignore[arg-type]
        return (time.perf_counter() - started) / count

    return asyncio.run(run())


def table(result: dict, own: float) -> str:
    base = result["upstream (no cache)"]
    lines = ["| request | gateway CPU per request (ms) | p50 ms (c=1) | p99 ms |", "| --- | --- | --- | --- |"]
    for name, row in result.items():
        lines.append(f"| {name} | {row['cpu'] * 1000:.3f} | {row['p50']:.3f} | {row['p99']:.3f} |")
    for name in ("hit, local cache", "hit, Redis cache"):
        row = result[name]
        lines.append(f"| {name} against upstream | {(row['cpu'] - base['cpu']) * 1000:+.3f} | {row['p50'] - base['p50']:+.3f} | |")
    lines.append(f"\nThe cache's own work per local hit (key, lookup, decoding the entry), in process: {own * 1e6:.1f} µs")
    return "\n".join(lines)


def main() -> int:
    from _harness import with_simulator

    return with_simulator(lambda ctx: table(gateway_bench(ctx), lookup_bench()))


if __name__ == "__main__":
    sys.exit(main())
