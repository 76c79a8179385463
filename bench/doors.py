"""What the agent doors cost: the gateway's CPU per request on /v1/responses and /v1/messages
against /v1/chat/completions for the same reply, streamed and not, interleaved in one run.

The gateway runs as `ocilm serve` in its own process; its CPU time is read from /proc before and
after each batch of requests sent by the load generator (its own process too), so only the
gateway's work is counted. Usage: .venv/bin/python bench/doors.py (or via bench/run.py).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PROMPT = " ".join(f"w{i}" for i in range(45))
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def bodies(stream: bool) -> dict[str, tuple[str, dict]]:
    messages = [{"role": "user", "content": PROMPT}]
    return {
        # The same reply as the doors get: a door's stream asks upstream for usage, so the chat stream does too.
        "chat completions": ("/v1/chat/completions", {"model": "llama", "messages": messages, "stream": stream,
                                                       **({"stream_options": {"include_usage": True}} if stream else {})}),
        "responses": ("/v1/responses", {"model": "llama", "input": PROMPT, "stream": stream}),
        "messages": ("/v1/messages", {"model": "llama", "max_tokens": 4000, "messages": messages, "stream": stream}),
    }


def door_bench(ctx: dict, count: int = 1500, rounds: int = 3) -> dict:
    import yaml

    from _harness import free_port, loadgen, start

    config = Path(ctx["tmp"]) / "doors.yaml"
    config.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **ctx["creds"]}}],
        "general_settings": {"master_key": "sk-bench-master-key"},
    }))  # fmt: skip
    port = free_port()
    gateway = start(["-m", "ocilm", "serve", "--config", str(config), "--port", str(port), "--log-level", "error"],
                    f"http://127.0.0.1:{port}/health/liveliness")  # fmt: skip
    auth = ["authorization: Bearer sk-bench-master-key"]
    samples: dict[str, list[float]] = {}
    try:
        for stream in (False, True):
            for path, body in bodies(stream).values():  # warm-up
                loadgen(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(), 4, 200, auth)
            for _ in range(rounds):
                for name, (path, body) in bodies(stream).items():
                    before = cpu_seconds(gateway.pid)
                    got = loadgen(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(), 4, count, auth)
                    assert got["errors"] == 0, got
                    per_request = (cpu_seconds(gateway.pid) - before) / got["requests"]
                    samples.setdefault(f"{'stream' if stream else 'non-stream'}|{name}", []).append(per_request)
    finally:
        gateway.terminate()
        gateway.wait(10)
    return {key: statistics.median(values) for key, values in samples.items()}


def table(result: dict) -> str:
    lines = ["| mode | route | gateway CPU per request (ms) | vs chat completions |", "| --- | --- | --- | --- |"]
    for mode in ("non-stream", "stream"):
        base = result[f"{mode}|chat completions"]
        for name in ("chat completions", "responses", "messages"):
            value = result[f"{mode}|{name}"]
            lines.append(f"| {mode} | {name} | {value * 1000:.3f} | {(value / base - 1) * 100:+.1f}% |")
    return "\n".join(lines)


def main() -> int:
    from _harness import start_simulator

    sim, ctx = start_simulator()
    try:
        print(table(door_bench(ctx)))
    finally:
        sim.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
