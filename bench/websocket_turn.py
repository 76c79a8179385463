"""A Responses turn over the WebSocket door against the same turn over SSE: the gateway's CPU per
turn, interleaved in one run (the speed issue's target: the WebSocket turn costs no more).

`ocilm serve` runs in its own process (pinned to a core where there are two); its CPU is read from
/proc around each batch. SSE turns are `POST /v1/responses` with `stream: true` from the load
generator (four keep-alive connections); WebSocket turns are `response.create` frames on four open
connections, each turn read to `response.completed`. The simulator answers the same ~30-event
stream to both. Usage: .venv/bin/python bench/websocket_turn.py [TURNS] [ROUNDS]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MASTER = "sk-bench-master-key"
CONNECTIONS = 4


async def _ws_turns(port: int, body: dict, turns: int) -> int:
    from websockets.asyncio.client import connect

    frame = json.dumps({"type": "response.create", **body})
    left = [turns]
    done = [0]

    async def one() -> None:
        async with connect(f"ws://127.0.0.1:{port}/v1/responses", additional_headers={"authorization": f"Bearer {MASTER}"},
                           max_size=None) as ws:  # fmt: skip
            while left[0] > 0:
                left[0] -= 1
                await ws.send(frame)
                while True:
                    event = json.loads(await ws.recv())
                    if event["type"] in ("response.completed", "response.failed", "error"):
                        if event["type"] != "response.completed":
                            raise RuntimeError(f"a WebSocket turn failed: {event}")
                        done[0] += 1
                        break

    await asyncio.gather(*(one() for _ in range(CONNECTIONS)))
    return done[0]


def websocket_bench(ctx: dict, turns: int = 1500, rounds: int = 3) -> dict[str, float]:
    from _harness import STREAM_PROMPT, cpu_seconds, loadgen, serving

    config = {"model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **ctx["creds"]}}],
              "general_settings": {"master_key": MASTER}}  # fmt: skip
    body = {"model": "llama", "input": STREAM_PROMPT, "store": False}
    sse = json.dumps({**body, "stream": True}).encode()
    auth = [f"authorization: Bearer {MASTER}"]
    samples: dict[str, list[float]] = {"SSE (POST /v1/responses, stream)": [], "WebSocket (response.create frames)": []}
    with serving({"gateway": config}, ctx["tmp"]) as gateways:
        proc, port = gateways["gateway"]
        url = f"http://127.0.0.1:{port}/v1/responses"
        loadgen(url, sse, CONNECTIONS, 200, auth)  # warm-up, both ways
        asyncio.run(_ws_turns(port, body, 200))
        for _ in range(rounds):
            before = cpu_seconds(proc.pid)
            got = loadgen(url, sse, CONNECTIONS, turns, auth)
            assert got["errors"] == 0, got
            samples["SSE (POST /v1/responses, stream)"].append((cpu_seconds(proc.pid) - before) / got["requests"])
            before = cpu_seconds(proc.pid)
            done = asyncio.run(_ws_turns(port, body, turns))
            samples["WebSocket (response.create frames)"].append((cpu_seconds(proc.pid) - before) / done)
    return {name: statistics.median(values) for name, values in samples.items()}


def table(result: dict[str, float]) -> str:
    base = result["SSE (POST /v1/responses, stream)"]
    lines = ["| transport | gateway CPU per turn (ms) | vs SSE |", "| --- | --- | --- |"]
    lines += [f"| {name} | {value * 1000:.3f} | {(value / base - 1) * 100:+.1f}% |" for name, value in result.items()]
    return "\n".join(lines)


def main() -> int:
    from _harness import with_simulator

    turns = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    return with_simulator(lambda ctx: table(websocket_bench(ctx, turns, rounds)))


if __name__ == "__main__":
    sys.exit(main())
