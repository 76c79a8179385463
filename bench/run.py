"""All benchmarks in one run; writes bench/RESULTS.md.

Usage: ./scripts/bench.sh  (or .venv/bin/python bench/run.py [--quick])

Every ocilm figure is measured interleaved with its "limit" in the same run: a plain persistent
httpx client posting a prebuilt OCI body signed per call (client), and a minimal raw-ASGI
pass-through proxy (gateway). The simulator runs in its own process; so does the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import import_budget  # noqa: E402
from _harness import (  # noqa: E402
    COMPARTMENT,
    GATEWAY_CPU,
    MODEL,
    PROMPT,
    STREAM_PROMPT,
    free_port,
    loadgen,
    rss_mb,
    start,
    start_simulator,
    summary,
)

BEFORE_TYPES = "1f6625c"


# ---------------------------------------------------------------- helpers


















def oci_body(stream: bool, prompt: str = PROMPT) -> bytes:
    request = {"apiFormat": "GENERIC", "messages": [{"role": "USER", "content": [{"type": "TEXT", "text": prompt}]}], "maxTokens": 4000}
    if stream:
        request["isStream"] = True
    return json.dumps({"compartmentId": COMPARTMENT, "servingMode": {"servingType": "ON_DEMAND", "modelId": MODEL}, "chatRequest": request}).encode()


def parse_stream_line(line: bytes) -> None:
    if line.startswith(b"data: ") and line != b"data: [DONE]":
        json.loads(line[6:])


def read_stream_text(line: bytes) -> str | None:
    """The limit reads what a caller reads: each event's text, by dict access."""
    if line.startswith(b"data: ") and line != b"data: [DONE]":
        content = (json.loads(line[6:]).get("message") or {}).get("content") or ()
        return content[0].get("text") if content else None
    return None


# ---------------------------------------------------------------- client benchmarks


def client_sync(ctx: dict, rounds: int) -> dict:
    import httpx

    import ocilm

    url = ctx["sim"] + "/20231130/actions/chat"
    signer = ctx["signer"]
    messages = [{"role": "user", "content": PROMPT}]
    out: dict[str, list[float]] = {k: [] for k in ("ocilm", "limit", "ocilm_ttfc", "limit_ttfc", "ocilm_stream", "limit_stream")}
    body, sbody = oci_body(False), oci_body(True)
    from ocilm._transport import LIMITS

    with ocilm.Client(**ctx["creds"]) as client, httpx.Client(limits=LIMITS) as http:
        for i in range(rounds + 20):
            keep = i >= 20  # warm-up rounds are not recorded
            t = time.perf_counter()
            client.completion(f"oci/{MODEL}", messages)
            a = time.perf_counter() - t
            t = time.perf_counter()
            http.post(url, content=body, headers=signer.headers(body)).json()
            b = time.perf_counter() - t
            t = time.perf_counter()
            first = None
            for chunk in client.completion(f"oci/{MODEL}", messages, stream=True):
                if chunk.choices:  # read as a caller does: typed access to each delta's text
                    chunk.choices[0].delta.content  # noqa: B018
                first = first or time.perf_counter() - t
            c = time.perf_counter() - t
            t = time.perf_counter()
            lfirst = None
            with http.stream("POST", url, content=sbody, headers=signer.headers(sbody)) as r:
                for line in r.iter_lines():
                    if line:
                        read_stream_text(line.encode())
                        lfirst = lfirst or time.perf_counter() - t
            d = time.perf_counter() - t
            if keep:
                out["ocilm"].append(a), out["limit"].append(b)
                out["ocilm_ttfc"].append(first), out["limit_ttfc"].append(lfirst)
                out["ocilm_stream"].append(c), out["limit_stream"].append(d)
    return {k: summary(v) for k, v in out.items()}


async def client_async(ctx: dict, rounds: int, concurrencies: tuple[int, ...], calls: int) -> dict:
    """ocilm.AsyncClient against raw aiohttp (the limit) and raw httpx, both signing per call:
    latency one call at a time, then calls/s with ``calls`` calls at each concurrency."""
    import aiohttp
    import httpx

    import ocilm
    from ocilm._transport import LIMITS  # the same pool limits for every arm

    url = ctx["sim"] + "/20231130/actions/chat"
    signer = ctx["signer"]
    messages = [{"role": "user", "content": PROMPT}]
    body, sbody = oci_body(False), oci_body(True)
    results: dict = {}
    connector = aiohttp.TCPConnector(limit=LIMITS.max_connections)
    async with ocilm.AsyncClient(**ctx["creds"]) as client, httpx.AsyncClient(limits=LIMITS) as http, \
            aiohttp.ClientSession(connector=connector) as session:  # fmt: skip

        async def ours() -> float:
            t = time.perf_counter()
            await client.completion(f"oci/{MODEL}", messages)
            return time.perf_counter() - t

        async def limit() -> float:
            t = time.perf_counter()
            for attempt in range(3):  # a pooled connection the server closed as it was reused: once more, as ocilm does
                try:
                    async with session.post(url, data=body, headers=signer.headers(body)) as r:
                        json.loads(await r.read())
                    break
                except aiohttp.ClientConnectionError:
                    if attempt == 2:
                        raise
            return time.perf_counter() - t

        async def plain_httpx() -> float:
            t = time.perf_counter()
            for attempt in range(3):
                try:
                    (await http.post(url, content=body, headers=signer.headers(body))).json()
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        raise
            return time.perf_counter() - t

        async def ours_stream() -> tuple[float, float]:
            t = time.perf_counter()
            first = None
            async for _chunk in await client.completion(f"oci/{MODEL}", messages, stream=True):
                first = first or time.perf_counter() - t
            return first, time.perf_counter() - t

        async def limit_stream() -> tuple[float, float]:
            t = time.perf_counter()
            first = None
            async with session.post(url, data=sbody, headers=signer.headers(sbody)) as r:
                async for line in r.content:
                    if line.strip():
                        parse_stream_line(line.rstrip(b"\r\n"))
                        first = first or time.perf_counter() - t
            return first, time.perf_counter() - t

        arms = {"ocilm.AsyncClient": ours, "raw aiohttp (limit)": limit, "raw httpx": plain_httpx}
        samples: dict[str, list[float]] = {"ocilm": [], "limit": []}
        for i in range(rounds + 10):  # one call at a time: latency
            a, b = await ours(), await limit()
            if i >= 10:
                samples["ocilm"].append(a), samples["limit"].append(b)
        results["concurrency 1"] = {name: summary(got) for name, got in samples.items()}

        async def throughput(fn, concurrency: int) -> float:
            gate = asyncio.Semaphore(concurrency)

            async def one() -> None:
                async with gate:
                    await fn()

            t = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(calls)))
            return calls / (time.perf_counter() - t)

        for fn in arms.values():
            await throughput(fn, 50)  # warm every pool
        table: dict = {}
        for c in concurrencies:
            got: dict[str, list[float]] = {name: [] for name in arms}
            for _ in range(3):  # the arms take turns; the median is kept
                for name, fn in arms.items():
                    got[name].append(await throughput(fn, c))
            table[c] = {name: statistics.median(v) for name, v in got.items()}
        results["calls_per_s"] = table
        stream = {"ocilm_ttfc": [], "ocilm_total": [], "limit_ttfc": [], "limit_total": []}
        for i in range(rounds + 10):
            a, b = await ours_stream(), await limit_stream()
            if i >= 10:
                stream["ocilm_ttfc"].append(a[0]), stream["ocilm_total"].append(a[1])
                stream["limit_ttfc"].append(b[0]), stream["limit_total"].append(b[1])
        results["stream"] = {k: summary(v) for k, v in stream.items()}
    return results


def stream_event_costs(ctx: dict, repeat: int = 300) -> dict:
    """CPU per stream event, by stage, on a real ~52-event stream from the simulator, in process."""
    import timeit

    import httpx

    from ocilm import _sse
    from ocilm._core import prepare_chat
    from ocilm._settings import SettingsCache
    from ocilm.gateway._chat_stream import ChunkEncoder as _ChunkEncoder

    call = prepare_chat(SettingsCache(), f"oci/{MODEL}", [{"role": "user", "content": PROMPT}], True, dict(ctx["creds"]))
    sbody = oci_body(True)
    raw = httpx.post(ctx["sim"] + "/20231130/actions/chat", content=sbody, headers=ctx["signer"].headers(sbody)).content
    reads = [part + b"\n\n" for part in raw.split(b"\n\n") if part.strip()]  # one read per event, as OCI sends them
    events = len(reads)

    def decode() -> None:
        decoder = _sse.SSEDecoder()
        for data in reads:
            decoder.feed(data)

    def assemble(wrap: bool):
        def run() -> list:
            assembler = call.new_assembler("bench")
            assembler.wrap = wrap
            out: list = []
            for data in reads:
                out += assembler.feed(data)
            return out + assembler.close()
        return run

    chunks = assemble(False)()

    def encode() -> None:
        encoder = _ChunkEncoder("llama")
        for chunk in chunks:
            encoder(chunk)

    def per_event(fn) -> float:
        return min(timeit.repeat(fn, number=repeat, repeat=3)) / repeat / events * 1e6

    costs = {"events": events}
    parser = _sse._loads
    try:
        import orjson

        _sse._loads = json.loads
        costs["SSE decode + JSON parse (json)"] = per_event(decode)
        _sse._loads = orjson.loads
        costs["SSE decode + JSON parse (orjson)"] = per_event(decode)
    except ImportError:
        costs["SSE decode + JSON parse (json)"] = per_event(decode)
    finally:
        _sse._loads = parser
    costs["decode + translate to a chunk dict (the gateway's path)"] = per_event(assemble(False))
    costs["decode + translate + ChatCompletionChunk (the SDK's path)"] = per_event(assemble(True))
    costs["gateway: encode one chunk as an SSE event"] = per_event(encode)
    return costs


# ---------------------------------------------------------------- gateway benchmarks




GATEWAY_SERVERS = ("pass-through, aiohttp (limit)", "pass-through, httpx", "ocilm serve")


def gateway_bench(ctx: dict, counts: dict[int, int], rounds: int, soak: int) -> dict:
    """req/s and latency of each server at each concurrency, non-stream and stream, the
    servers taking turns cell by cell (interleaved) for ``rounds`` rounds; medians kept."""
    import yaml

    creds = ctx["creds"]
    gw_port, proxy_port, aio_port = free_port(), free_port(), free_port()
    config = Path(ctx["tmp"]) / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "llama", "litellm_params": {"model": f"oci/{MODEL}", **creds}}],
        "general_settings": {"master_key": "sk-bench-master-key"},
    }))  # fmt: skip
    gateway = start(["-m", "ocilm", "serve", "--config", str(config), "--port", str(gw_port), "--log-level", "error"],
                    f"http://127.0.0.1:{gw_port}/health/liveliness", cpu=GATEWAY_CPU)
    proxy = start([str(HERE / "_servers.py"), "proxy", str(proxy_port), ctx["sim"], ctx["key_file"], ctx["key_id"]],
                  f"http://127.0.0.1:{proxy_port}/", cpu=GATEWAY_CPU)
    aio = start([str(HERE / "_servers.py"), "proxy-aiohttp", str(aio_port), ctx["sim"], ctx["key_file"], ctx["key_id"]],
                f"http://127.0.0.1:{aio_port}/", cpu=GATEWAY_CPU)
    auth = ["authorization: Bearer sk-bench-master-key"]

    def openai_body(stream: bool) -> bytes:
        return json.dumps({"model": "llama", "messages": [{"role": "user", "content": STREAM_PROMPT if stream else PROMPT}], "stream": stream}).encode()

    def oci(stream: bool) -> bytes:
        return oci_body(stream, STREAM_PROMPT if stream else PROMPT)

    targets = {
        "pass-through, aiohttp (limit)": (f"http://127.0.0.1:{aio_port}/20231130/actions/chat", oci, []),
        "pass-through, httpx": (f"http://127.0.0.1:{proxy_port}/20231130/actions/chat", oci, []),
        "ocilm serve": (f"http://127.0.0.1:{gw_port}/v1/chat/completions", openai_body, auth),
    }
    results: dict = {"cells": {}}
    try:
        for url, body, headers in targets.values():  # warm each server's pool and code paths
            loadgen(url, body(False), 8, 400, headers), loadgen(url, body(True), 8, 200, headers)
        for stream in (False, True):
            for concurrency, count in counts.items():
                n = count // 2 if stream else count
                runs: dict[str, list[dict]] = {name: [] for name in targets}
                for _ in range(rounds):
                    for name, (url, body, headers) in targets.items():
                        runs[name].append(loadgen(url, body(stream), concurrency, n, headers))
                results["cells"][f"{'stream' if stream else 'non-stream'} c={concurrency}"] = {
                    name: {"rps": statistics.median(r["rps"] for r in got), "p50_ms": statistics.median(r["p50_ms"] for r in got),
                           "p99_ms": statistics.median(r["p99_ms"] for r in got), "errors": sum(r["errors"] for r in got),
                           "requests": sum(r["requests"] for r in got)}
                    for name, got in runs.items()
                }  # fmt: skip
        url, body, headers = targets["ocilm serve"]
        loadgen(url, body(False), 8, 1000, headers)  # warm
        before = rss_mb(gateway.pid)
        soaked = loadgen(url, body(False), 8, soak, headers)
        after = rss_mb(gateway.pid)
        results["memory"] = {"requests": soaked["requests"], "errors": soaked["errors"], "rss_before_mb": before, "rss_after_mb": after,
                             "growth_pct": (after - before) / before * 100}
    finally:
        for proc in (gateway, proxy, aio):
            proc.terminate()
            proc.wait(10)
    return results


# ---------------------------------------------------------------- LiteLLM, when installed


def litellm_row(ctx: dict, rounds: int) -> str:
    """LiteLLM's OCI provider against the same simulator, interleaved with the same limit."""
    import importlib.util

    if importlib.util.find_spec("litellm") is None:
        return "LiteLLM is not installed in this environment, so it has no row (it is never a dependency of ocilm)."
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch at import
    imp = import_budget.measure("import os; os.environ[\"LITELLM_LOCAL_MODEL_COST_MAP\"] = \"True\"; import litellm", 3)
    import httpx
    import litellm

    creds = ctx["creds"]
    kwargs = {"api_base": creds["api_base"], "oci_region": "us-chicago-1", "oci_user": creds["oci_user"],
              "oci_fingerprint": creds["oci_fingerprint"], "oci_tenancy": creds["oci_tenancy"],
              "oci_key_file": creds["oci_key_file"], "oci_compartment_id": creds["oci_compartment_id"]}  # fmt: skip
    messages = [{"role": "user", "content": PROMPT}]
    url, body = ctx["sim"] + "/20231130/actions/chat", oci_body(False)
    ours, limit = [], []
    try:
        with httpx.Client() as http:
            for i in range(rounds + 3):
                t = time.perf_counter()
                reply = litellm.completion(model=f"oci/{MODEL}", messages=messages, max_tokens=4000, **kwargs)
                a = time.perf_counter() - t
                t = time.perf_counter()
                http.post(url, content=body, headers=ctx["signer"].headers(body)).json()
                b = time.perf_counter() - t
                if i >= 3:
                    ours.append(a), limit.append(b)
        text = reply.choices[0].message.content or ""
    except Exception as exc:  # report what happened instead of a figure
        return (f"LiteLLM {getattr(litellm, '__version__', '')} is installed (import: {imp['median_s']:.2f} s, {imp['rss_mb']:.0f} MB RSS), "
                f"but its OCI call against the simulator failed: {type(exc).__name__}: {str(exc)[:300]}")
    o, lim = summary(ours), summary(limit)
    return (f"| client | import s | import RSS MB | non-stream median ms | p95 ms | limit median ms | ratio |\n| --- | --- | --- | --- | --- | --- | --- |\n"
            f"| LiteLLM | {imp['median_s']:.2f} | {imp['rss_mb']:.0f} | {fmt(o['median_ms'])} | {fmt(o['p95_ms'])} | {fmt(lim['median_ms'])} | "
            f"{o['median_ms'] / lim['median_ms']:.2f}x |\n\nLiteLLM's reply: {text[:80]!r}")


# ---------------------------------------------------------------- report


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), "?")
    import httpx

    import ocilm

    return (f"{os.cpu_count()} cores ({cpu}), {int(mem) // 1024 // 1024} GiB; {platform.platform()}; "
            f"Python {platform.python_version()}; ocilm {ocilm.__version__}, httpx {httpx.__version__}")


def fmt(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def report(data: dict, command: str, seconds: float) -> str:
    lines = [
        "# Benchmark results", "",
        f"Produced by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, in {seconds:.0f} s.", "",
        f"Machine: {machine()}.", "",
        "Every ocilm row was measured interleaved with its limit in the same run. The simulator (the",
        "upstream for every row) runs in its own process, and verifies every signature.", "",
        "## Import (fresh process)", "", "| what | median s | max s | RSS MB |", "| --- | --- | --- | --- |",
    ]
    for name, row in data["import"].items():
        lines.append(f"| {name} | {row['median_s']:.4f} | {row['max_s']:.4f} | {row['rss_mb']:.1f} |")
    sync = data["client_sync"]
    lines += ["", "## Client, sync (one call at a time, ~50-token replies)", "",
              "| measure | ocilm median ms | ocilm p95 ms | limit median ms | limit p95 ms | ratio (median) |", "| --- | --- | --- | --- | --- | --- |"]
    for label, a, b in (("non-stream call", "ocilm", "limit"), ("stream: time to first chunk", "ocilm_ttfc", "limit_ttfc"),
                        ("stream: total", "ocilm_stream", "limit_stream")):
        lines.append(f"| {label} | {fmt(sync[a]['median_ms'])} | {fmt(sync[a]['p95_ms'])} | {fmt(sync[b]['median_ms'])} | "
                     f"{fmt(sync[b]['p95_ms'])} | {sync[a]['median_ms'] / sync[b]['median_ms']:.2f}x |")
    asy = data["client_async"]
    lines += ["", "## Client, async", "", "One call at a time, against raw aiohttp signing each call (the limit):", "",
              "| measure | ocilm median ms | ocilm p95 ms | limit median ms | limit p95 ms | ratio (median) |", "| --- | --- | --- | --- | --- | --- |"]
    one = asy["concurrency 1"]
    lines.append(f"| non-stream call | {fmt(one['ocilm']['median_ms'])} | {fmt(one['ocilm']['p95_ms'])} | {fmt(one['limit']['median_ms'])} | "
                 f"{fmt(one['limit']['p95_ms'])} | {one['ocilm']['median_ms'] / one['limit']['median_ms']:.2f}x |")
    st = asy["stream"]
    for label, a, b in (("stream: time to first chunk", "ocilm_ttfc", "limit_ttfc"), ("stream: total", "ocilm_total", "limit_total")):
        lines.append(f"| {label} | {fmt(st[a]['median_ms'])} | {fmt(st[a]['p95_ms'])} | {fmt(st[b]['median_ms'])} | {fmt(st[b]['p95_ms'])} | "
                     f"{st[a]['median_ms'] / st[b]['median_ms']:.2f}x |")
    lines += ["", "Calls per second, 2,000 non-stream calls at each concurrency in one process (median of 3 interleaved runs):", "",
              "| calls in flight | ocilm.AsyncClient | raw aiohttp (limit) | raw httpx | ocilm vs limit |", "| --- | --- | --- | --- | --- |"]
    for c, row in asy["calls_per_s"].items():
        lines.append(f"| {c} | {row['ocilm.AsyncClient']:.0f} | {row['raw aiohttp (limit)']:.0f} | {row['raw httpx']:.0f} | "
                     f"{row['ocilm.AsyncClient'] / row['raw aiohttp (limit)'] * 100:.0f}% |")
    ev = data["stream_events"]
    lines += ["", f"## Stream events: CPU per event, by stage ({ev['events']}-event stream, in process, best of 3)", "",
              "| stage | µs per event |", "| --- | --- |"]
    for name, value in ev.items():
        if name != "events":
            lines.append(f"| {name} | {value:.2f} |")
    gw = data["gateway"]
    lines += ["", "## Gateway: req/s against the pass-through limits", "",
              f"Each server pinned to core {GATEWAY_CPU} (`taskset`); the simulator and the load generator (`bench/loadgen.py`, "
              "keep-alive HTTP/1.1) on the other core. The servers take turns cell by cell; each figure is the median of "
              f"{data['gateway_rounds']} rounds. Non-stream replies are ~50 tokens; streams ~30 events.", "",
              "| cell | aiohttp pass-through (limit) req/s | httpx pass-through req/s | ocilm serve req/s | ocilm vs limit | "
              "limit p50 ms | ocilm p50 ms | ocilm p50 - limit p50 ms | ocilm p99 ms | errors |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for cell, rows in gw["cells"].items():
        lim, hx, ours = (rows[name] for name in GATEWAY_SERVERS)
        errors = sum(r["errors"] for r in rows.values())
        lines.append(f"| {cell} | {lim['rps']:.0f} | {hx['rps']:.0f} | {ours['rps']:.0f} | {ours['rps'] / lim['rps'] * 100:.0f}% | "
                     f"{fmt(lim['p50_ms'])} | {fmt(ours['p50_ms'])} | {ours['p50_ms'] - lim['p50_ms']:+.2f} | {fmt(ours['p99_ms'])} | {errors} |")
    mem = gw["memory"]
    lines += ["", f"Gateway memory: {mem['rss_before_mb']:.1f} MB RSS after warm-up, {mem['rss_after_mb']:.1f} MB after "
              f"{mem['requests']} more requests ({mem['errors']} errors): {mem['growth_pct']:+.1f}%.", ""]
    lines += ["## Agent doors: the gateway's CPU per request, against chat completions for the same reply", "",
              "`ocilm serve` in its own process, its CPU time read from /proc around each batch (`bench/doors.py`); "
              "the chat stream asks for usage, as the doors' streams do:", "", data["doors"], ""]
    lines += ["## OCI's /openai/v1 against the native API: the gateway's CPU per request (`bench/openai_v1.py`)", "",
              "The same model and reply through a deployment with a Generative AI API key (the body passed through, "
              "a Bearer header) and one with IAM credentials (OCI's format translated, RSA-signed), interleaved:", "",
              data["openai_v1"], ""]
    lines += ["## Governance: keys, budgets, spend logs and rate limits (`bench/governance.py`)", "",
              "The same `ocilm serve`, pinned to one core (PostgreSQL and Redis on the other), without governance and with a "
              "budgeted virtual key (a budget lease and a settlement per request) on each store, and with Redis-backed rate limits; "
              "medians of interleaved rounds. c=32 runs against an upstream that answers in 100 ms, with callers out of "
              "lockstep. The second table is req/s with a budgeted, rate-limited key against the same gateway without "
              "governance (in parentheses: the ratio), on SQLite and on PostgreSQL + Redis with three replicas on the "
              "gateway's core:", "", data["governance"], ""]
    lines += ["## Metrics and access logs (`bench/observability.py`)", "",
              "The same `ocilm serve`, pinned to one core, with Prometheus metrics and a JSON access line per request "
              "(written to a file) and with both off; medians of interleaved rounds:", "", data["observability"], ""]
    import websocket_turn

    lines += ["## A Responses turn over WebSocket against SSE (`bench/websocket_turn.py`)", "",
              "`ocilm serve` in its own process, its CPU read from /proc around each batch: the same streamed Responses turn as "
              "`POST /v1/responses` (SSE) and as `response.create` frames on four open WebSocket connections, interleaved:", "",
              websocket_turn.table(data["websocket"]), ""]
    lines += ["## `ocilm serve --workers 2` against one worker (`bench/workers.py`)", "",
              "A budgeted key with rpm and tpm limits, 32 callers, non-stream, nothing pinned: the gateway shares the two cores "
              "with the simulator, the load generator, PostgreSQL and Redis; the last two columns say how many cores each side kept busy:",
              "", data["workers"], ""]
    lines += ["## A CPU budget per stage (`bench/stage_budget.py`)", "",
              "The gateway's app driven in process (the simulator in another thread, which cProfile does not see); each "
              "stage's time is the profiled time inside its entry functions (an async function's only while it runs). "
              "A stage not configured costs nothing measurable.", "", data["stage_budget"], ""]
    lines += ["## Response objects (openai-python's declared fields)", "",
              f"Wrapping a reply or chunks and reading fields, against the untyped objects of commit {BEFORE_TYPES}, "
              "interleaved in one process (`bench/response_objects.py`):", "", data["response_objects"], ""]
    lines += ["## LiteLLM", "", data["litellm"], "", "## Targets", ""]
    for line in data["targets"]:
        lines.append(f"- {line}")
    notes = HERE / "PROFILE_NOTES.md"
    if notes.exists():  # hand-written: what was profiled and changed, with before/after figures
        lines += ["", notes.read_text().strip()]
    return "\n".join(lines) + "\n"


def targets(data: dict) -> list[str]:
    sync = data["client_sync"]
    out = []
    ratio = sync["ocilm"]["median_ms"] / sync["limit"]["median_ms"]
    out.append(f"client overhead per call <= 1.3x the limit: {ratio:.2f}x (sync, non-stream) -> {'met' if ratio <= 1.3 else 'MISSED'}")
    a = data["client_async"]["concurrency 1"]
    ratio = a["ocilm"]["median_ms"] / a["limit"]["median_ms"]
    out.append(f"client overhead per call <= 1.3x the limit: {ratio:.2f}x (async, non-stream) -> {'met' if ratio <= 1.3 else 'MISSED'}")
    ratio = sync["ocilm_stream"]["median_ms"] / sync["limit_stream"]["median_ms"]
    out.append(f"a ~50-event stream through the sync client <= 1.2x a plain httpx client parsing each line: {ratio:.2f}x -> {'met' if ratio <= 1.2 else 'MISSED'}")
    for c, row in data["client_async"]["calls_per_s"].items():
        share = row["ocilm.AsyncClient"] / row["raw aiohttp (limit)"]
        out.append(f"AsyncClient >= 90% of raw aiohttp's calls/s at {c} in flight: {share * 100:.0f}% -> {'met' if share >= 0.9 else 'MISSED'}")
    for cell, rows in data["gateway"]["cells"].items():
        share = rows["ocilm serve"]["rps"] / rows[GATEWAY_SERVERS[0]]["rps"]
        out.append(f"ocilm serve >= 90% of the aiohttp pass-through's req/s ({cell}): {share * 100:.0f}% -> {'met' if share >= 0.9 else 'MISSED'}")
    for mode in ("non-stream", "stream"):
        rows = data["gateway"]["cells"][f"{mode} c=1"]
        added = rows["ocilm serve"]["p50_ms"] - rows[GATEWAY_SERVERS[0]]["p50_ms"]
        out.append(f"p50 at c=1 within 0.3 ms of the limit's ({mode}): {added:+.2f} ms -> {'met' if added <= 0.3 else 'MISSED'}")
    mem = data["gateway"]["memory"]
    ok = mem["rss_after_mb"] < 80 and mem["growth_pct"] < 10
    out.append(f"gateway RSS under 80 MB and flat over {mem['requests']} requests: {mem['rss_before_mb']:.1f} -> {mem['rss_after_mb']:.1f} MB "
               f"({mem['growth_pct']:+.1f}%) -> {'met' if ok else 'MISSED'}")
    worst = max(float(line.split("|")[4].strip().rstrip("%")) for line in data["doors"].splitlines()[2:])
    out.append(f"agent doors add <= 10% gateway CPU per request over chat completions: worst {worst:+.1f}% -> {'met' if worst <= 10 else 'MISSED'}")
    ws = data["websocket"]
    added = ws["WebSocket (response.create frames)"] / ws["SSE (POST /v1/responses, stream)"] - 1
    out.append(f"a WebSocket Responses turn costs no more gateway CPU than the same turn over SSE: {added * 100:+.1f}% -> "
               f"{'met' if added <= 0 else 'MISSED'}")
    for line in data["workers"].splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if "2 workers" in cells[0]:
            ratio = float(cells[2].rstrip("x"))
            out.append(f"--workers 2 serves >= 1.8x one worker ({cells[0].split(',')[0]}): {ratio:.2f}x -> {'met' if ratio >= 1.8 else 'MISSED'}")
    imp = data["import"]["import ocilm"]
    ok = imp["median_s"] < 0.15 and imp["rss_mb"] < 45
    out.append(f"import under 0.15 s and 45 MB: {imp['median_s']:.3f} s, {imp['rss_mb']:.1f} MB -> {'met' if ok else 'MISSED'}")
    return out




def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run, not for RESULTS.md)")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    rounds, count, soak, conc = (60, 600, 2000, 8) if args.quick else (400, 4000, 20000, 8)
    gateway_counts, gateway_rounds = ({1: 300, 8: 600, 32: 900}, 1) if args.quick else ({1: 1200, 8: 2400, 32: 3200}, 3)
    command = os.environ.get("OCILM_BENCH_COMMAND") or " ".join([os.path.relpath(sys.executable), "bench/run.py", *sys.argv[1:]])
    began = time.monotonic()
    sim, ctx = start_simulator()
    data: dict = {"concurrency": conc}
    try:
        print("import ...", file=sys.stderr)
        data["import"] = {name: import_budget.measure(stmt, 11) for name, stmt in
                          (("python (nothing imported)", "pass"), ("import ocilm", "import ocilm"), ("import httpx (for scale)", "import httpx"))}
        print("client, sync ...", file=sys.stderr)
        data["client_sync"] = client_sync(ctx, rounds)
        print("client, async ...", file=sys.stderr)
        data["client_async"] = asyncio.run(client_async(ctx, rounds, (10, 100, 1000), 2000 if not args.quick else 500))
        print("stream events ...", file=sys.stderr)
        data["stream_events"] = stream_event_costs(ctx)
        print("gateway ...", file=sys.stderr)
        data["gateway"] = gateway_bench(ctx, gateway_counts, gateway_rounds, soak)
        data["gateway_rounds"] = gateway_rounds
        print("agent doors ...", file=sys.stderr)
        import doors

        data["doors"] = doors.table(doors.door_bench(ctx, count=max(300, count // 4)))
        print("WebSocket turn ...", file=sys.stderr)
        import websocket_turn

        data["websocket"] = websocket_turn.websocket_bench(ctx, turns=max(300, count // 4))
        print("/openai/v1 ...", file=sys.stderr)
        import openai_v1

        data["openai_v1"] = openai_v1.table(openai_v1.openai_v1_bench(ctx, count=max(300, count // 4)))
        print("governance ...", file=sys.stderr)
        import governance

        data["governance"] = governance.main(1 if args.quick else 3)
        print("observability ...", file=sys.stderr)
        import observability

        data["observability"] = observability.main(1 if args.quick else 3)
        print("workers ...", file=sys.stderr)
        import workers

        data["workers"] = workers.main(1 if args.quick else 3)
        print("stage budget ...", file=sys.stderr)
        import stage_budget

        data["stage_budget"] = stage_budget.table(200 if args.quick else 600)
        print("response objects ...", file=sys.stderr)
        import response_objects

        data["response_objects"] = response_objects.table()
        print("litellm ...", file=sys.stderr)
        data["litellm"] = litellm_row(ctx, max(30, rounds // 4))
    finally:
        sim.terminate()
        sim.wait(10)

    data["targets"] = targets(data)
    text = report(data, command, time.monotonic() - began)
    if not args.quick:
        Path(args.out).write_text(text)
    (HERE / "last_run.json").write_text(json.dumps(data, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
