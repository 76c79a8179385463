"""What OCI's /openai/v1 costs the gateway per request against the native path, for the same
model and reply: chat completions (the body passed through with a Bearer API key, against OCI's
format translated and RSA-signed), and the Responses API (passed through, against translated onto
native chat by the door), streamed and not, interleaved in one run.

The gateway runs as `ocilm serve` in its own process; its CPU time is read from /proc around each
batch sent by the load generator (its own process), so only the gateway's work is counted.
Usage: .venv/bin/python bench/openai_v1.py (or via bench/run.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PROMPT = " ".join(f"w{i}" for i in range(45))


def bodies(stream: bool) -> dict[str, tuple[str, dict]]:
    messages = [{"role": "user", "content": PROMPT}]
    usage = {"stream_options": {"include_usage": True}} if stream else {}
    return {
        "chat, native": ("/v1/chat/completions", {"model": "native", "messages": messages, "stream": stream, **usage}),
        "chat, /openai/v1": ("/v1/chat/completions", {"model": "openai", "messages": messages, "stream": stream, **usage}),
        "responses, native (door)": ("/v1/responses", {"model": "native", "input": PROMPT, "stream": stream, "store": False}),
        "responses, /openai/v1 (pass-through)": ("/v1/responses", {"model": "openai", "input": PROMPT, "stream": stream, "store": False}),
    }


def openai_v1_bench(ctx: dict, count: int = 1500, rounds: int = 3) -> dict:
    from _harness import modes_cpu
    from _servers import BENCH_API_KEY

    model = "oci/meta.llama-3.3-70b-instruct"
    config = {
        "model_list": [
            {"model_name": "native", "litellm_params": {"model": model, **ctx["creds"]}},
            {"model_name": "openai", "litellm_params": {"model": model, "oci_api_key": BENCH_API_KEY, "oci_region": "us-chicago-1",
                                                        "api_base": ctx["creds"]["api_base"]}},
        ],
        "general_settings": {"master_key": "sk-bench-master-key"},
    }  # fmt: skip
    return modes_cpu(config, ctx, bodies, rounds, count)


def table(result: dict) -> str:
    lines = ["| mode | route and API | gateway CPU per request (ms) | vs the native path |", "| --- | --- | --- | --- |"]
    for mode in ("non-stream", "stream"):
        for native, other in (("chat, native", "chat, /openai/v1"), ("responses, native (door)", "responses, /openai/v1 (pass-through)")):
            base = result[f"{mode}|{native}"]
            lines.append(f"| {mode} | {native} | {base * 1000:.3f} | |")
            value = result[f"{mode}|{other}"]
            lines.append(f"| {mode} | {other} | {value * 1000:.3f} | {(value / base - 1) * 100:+.1f}% |")
    return "\n".join(lines)


def main() -> int:
    from _harness import with_simulator

    return with_simulator(lambda ctx: table(openai_v1_bench(ctx)))


if __name__ == "__main__":
    sys.exit(main())
