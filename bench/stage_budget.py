"""A CPU budget per stage (issue 37): what each stage of the gateway costs per request, in CPU
microseconds, so the next stage shows its cost when it lands.

The gateway's app runs in this thread (driven in process through an ASGI transport, so HTTP
parsing is left out on both sides), the simulator in another thread; ``cProfile`` sees this
thread only. A stage's cost is the profiled time inside its entry function(s) (an ``async``
function's time counts only while it runs, never while it waits). Profiling slows everything
about twice, so each stage is also shown as a share of the whole request's profiled time, and
the request's own CPU is measured unprofiled (``time.thread_time``). Configurations: the plain
gateway, and governance on SQLite with a budgeted, rate-limited key; at c=1 and c=32.

Usage: .venv/bin/python bench/stage_budget.py [requests]"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from typing import Any

import httpx

from ocilm.gateway import create_app, parse_config
from ocilm.testing import Simulator

REQUESTS = int(sys.argv[1]) if len(sys.argv) > 1 else 600
MASTER = "sk-master-stage-budget"
BODY = {"model": "llama", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 20}

# stage -> the functions whose time is the stage's (the outermost entry points: wrappers are not counted twice)
def _stages() -> dict[str, tuple[Any, ...]]:
    from ocilm import _client, _core, _transport
    from ocilm.auth import _signers
    from ocilm.formats import generic
    from ocilm.gateway import _guardrails, _routing
    from ocilm.gateway.governance import _gate, _limits
    from ocilm.gateway.observability import _observer

    return {
        "auth and key cache": (_gate.Gate.caller,),
        "rate limits": (_limits.Limits.admit, _limits.Limits.finish),
        "budget hold": (_gate.Gate.hold,),
        "settlement (spend log)": (_gate.Meter.settle,),
        "router (choosing, deadlines)": (_routing.Router.call,),
        "SDK client's own (retries, reading the reply, response objects)": (_client.AsyncClient.completion,),
        "request translation and call set-up": (_core.prepare_chat,),
        "signing": tuple(getattr(_signers, name).sign for name in dir(_signers) if hasattr(getattr(_signers, name), "sign")),
        "upstream HTTP (aiohttp)": tuple(getattr(_transport, name).send for name in dir(_transport)
                                         if isinstance(getattr(_transport, name), type) and "send" in vars(getattr(_transport, name))),
        "reply translation": (generic.generic_response,),
        "guardrail bookkeeping (none configured)": (_guardrails.Guardrails.selected,),
        "metrics and access log": (_observer.Observer.finish,),
        "request record": (_observer.Observer.start,),
    }


STAGES = _stages()


def _key_of(function: Any) -> tuple[str, int, str]:
    code = function.__code__
    return code.co_filename, code.co_firstlineno, code.co_name


def _config(sim: Any, database: str | None) -> dict[str, Any]:
    general: dict[str, Any] = {"master_key": MASTER}
    if database:
        general["database_url"] = database
    return {"model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **sim.credentials(),
                                                                      "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}],
            "general_settings": general}  # fmt: skip


async def _run(app: Any, key: str, concurrency: int, count: int, profile: cProfile.Profile | None) -> tuple[float, float]:
    """(CPU µs of this thread per request, wall seconds) for ``count`` requests."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway", headers={"authorization": f"Bearer {key}"}) as client:

        async def one() -> None:
            reply = await client.post("/v1/chat/completions", json=BODY)
            assert reply.status_code == 200, reply.text

        for _ in range(20):
            await one()  # warm: pools, caches, leases
        queue = list(range(count))

        async def worker() -> None:
            while queue:
                queue.pop()
                await one()

        if profile is not None:
            profile.enable()
        cpu, wall = time.thread_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        if profile is not None:
            profile.disable()
    return cpu / count * 1e6, wall


# stages that run inside the SDK client's call, itself inside the router's: each one's own cost is
# its time less what runs inside it
INSIDE_CLIENT = ("request translation and call set-up", "signing", "upstream HTTP (aiohttp)", "reply translation")
CLIENT = "SDK client's own (retries, reading the reply, response objects)"


def _stage_times(profile: cProfile.Profile, count: int) -> tuple[dict[str, float], float]:
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, _), (_, _, tt, _, _) in stats.items())
    out = {}
    for stage, functions in STAGES.items():
        keys = {_key_of(f) for f in functions}
        out[stage] = sum(row[3] for key, row in stats.items() if key in keys) / count * 1e6
    out["router (choosing, deadlines)"] -= out[CLIENT]
    out[CLIENT] -= sum(out[stage] for stage in INSIDE_CLIENT)
    return out, total / count * 1e6


async def _measure(app: Any, key: str) -> dict[int, tuple[float, dict[str, float], float]]:
    results = {}
    async with app.router.lifespan_context(app):
        for concurrency in (1, 32):
            cpu, _ = await _run(app, key, concurrency, REQUESTS, None)
            profile = cProfile.Profile()
            await _run(app, key, concurrency, REQUESTS, profile)
            stages, profiled_total = _stage_times(profile, REQUESTS)
            results[concurrency] = (cpu, stages, profiled_total)
    return results


async def _governed_key(app: Any) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway", headers={"authorization": f"Bearer {MASTER}"}) as admin:
        made = await admin.post("/key/generate", json={"max_budget": 1000, "rpm_limit": 1_000_000, "tpm_limit": 100_000_000})
        return str(made.json()["key"])


def table(requests: int = REQUESTS) -> str:
    """The bench's two tables, as Markdown."""
    global REQUESTS
    REQUESTS = requests
    rows: list[tuple[str, int, float, dict[str, float], float]] = []
    with Simulator() as sim, tempfile.TemporaryDirectory() as folder:
        plain = create_app(parse_config(_config(sim, None)))
        for concurrency, (cpu, stages, total) in asyncio.run(_measure(plain, MASTER)).items():
            rows.append(("gateway", concurrency, cpu, stages, total))
        governed = create_app(parse_config(_config(sim, f"sqlite:///{folder}/stage.db")))

        async def governed_run() -> dict[int, tuple[float, dict[str, float], float]]:
            async with governed.router.lifespan_context(governed):
                key = await _governed_key(governed)
            return await _measure(governed, key)

        for concurrency, (cpu, stages, total) in asyncio.run(governed_run()).items():
            rows.append(("gateway + governance (SQLite, budget and limits)", concurrency, cpu, stages, total))
    lines = [f"CPU of the gateway's thread per request, unprofiled ({REQUESTS} chat requests, in process, the bench's own "
             "ASGI client included):", "", "| configuration | c | CPU µs per request |", "| --- | --- | --- |"]  # fmt: skip
    lines += [f"| {name} | {concurrency} | {cpu:.0f} |" for name, concurrency, cpu, _, _ in rows]
    lines += ["", "Each stage's profiled time per request (µs, about twice the real cost) and its share of the request:", ""]
    header = " | ".join(f"{name.split(' (')[0]} c={c}" for name, c, _, _, _ in rows)
    lines += [f"| stage | {header} |", "| --- |" + " --- |" * len(rows)]
    for stage in STAGES:
        cells = " | ".join(f"{stages[stage]:.0f} ({stages[stage] / total * 100:.1f}%)" for _, _, _, stages, total in rows)
        lines.append(f"| {stage} | {cells} |")
    lines.append("| the whole request (profiled) | " + " | ".join(f"{total:.0f}" for *_, total in rows) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(int(sys.argv[1]) if len(sys.argv) > 1 else REQUESTS))
