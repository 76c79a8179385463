"""What the agent doors cost: the gateway's CPU per request on /v1/responses and /v1/messages
against /v1/chat/completions for the same reply, streamed and not, interleaved in one run.

The gateway runs as `ocilm serve` in its own process; its CPU time is read from /proc before and
after each batch of requests sent by the load generator (its own process too), so only the
gateway's work is counted. Usage: .venv/bin/python bench/doors.py (or via bench/run.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PROMPT = " ".join(f"w{i}" for i in range(45))


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
    from _harness import modes_cpu

    config = {"model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **ctx["creds"]}}],
              "general_settings": {"master_key": "sk-bench-master-key"}}  # fmt: skip
    return modes_cpu(config, ctx, bodies, rounds, count)


def table(result: dict) -> str:
    lines = ["| mode | route | gateway CPU per request (ms) | vs chat completions |", "| --- | --- | --- | --- |"]
    for mode in ("non-stream", "stream"):
        base = result[f"{mode}|chat completions"]
        for name in ("chat completions", "responses", "messages"):
            value = result[f"{mode}|{name}"]
            lines.append(f"| {mode} | {name} | {value * 1000:.3f} | {(value / base - 1) * 100:+.1f}% |")
    return "\n".join(lines)


def main() -> int:
    from _harness import with_simulator

    return with_simulator(lambda ctx: table(door_bench(ctx)))


if __name__ == "__main__":
    sys.exit(main())
