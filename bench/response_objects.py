"""What the typed response objects cost: ocilm's objects before the change (the untyped
OpenAIObject of commit 1f6625c) against now, interleaved in one process.

Usage: .venv/bin/python bench/response_objects.py
Each round wraps a parsed chat reply and reads what a caller reads, and wraps 52 stream chunks
and reads each delta's content; ``now`` also reads ``chunk.usage`` and ``delta.role``, which
raised AttributeError before (so ``before`` cannot be asked them).
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEFORE_COMMIT = "1f6625c"

REPLY = {
    "id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "m", "system_fingerprint": None,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello " * 40, "tool_calls": None, "refusal": None},
                 "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 50, "completion_tokens": 40, "total_tokens": 90, "prompt_tokens_details": {"cached_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
}  # fmt: skip
CHUNK = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "m", "system_fingerprint": None,
         "choices": [{"index": 0, "delta": {"content": "Hello ", "tool_calls": None}, "finish_reason": None, "logprobs": None}]}  # fmt: skip


def load_before():
    source = subprocess.run(["git", "show", f"{BEFORE_COMMIT}:src/ocilm/_types.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "types_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("types_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reply_round(types, typed: bool) -> list:
    r = types.ChatCompletion(dict(REPLY))
    read = [r.choices[0].message.content, r.choices[0].finish_reason, r.usage.total_tokens]
    if typed:
        read += [r.choices[0].message.function_call, r.service_tier]
    return read


def stream_round(types, typed: bool) -> list:
    read = []
    for _ in range(52):
        c = types.ChatCompletionChunk({**CHUNK, "choices": [dict(CHUNK["choices"][0], delta=dict(CHUNK["choices"][0]["delta"]))]})
        read.append(c.choices[0].delta.content)
        if typed:
            read += [c.usage, c.choices[0].delta.role]
    return read


def measure(fn, *args, repeat: int = 2000) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn(*args)
    return (time.perf_counter() - start) / repeat


def table() -> str:
    """The comparison as a Markdown table (bench/run.py puts it in RESULTS.md)."""
    sys.path.insert(0, str(ROOT / "src"))
    from ocilm import _types as now

    before = load_before()
    rows = {"reply: before": [], "reply: now": [], "reply: now, + None fields": [],
            "52 chunks: before": [], "52 chunks: now": [], "52 chunks: now, + None fields": []}  # fmt: skip
    for _ in range(15):  # interleaved rounds
        rows["reply: before"].append(measure(reply_round, before, False))
        rows["reply: now"].append(measure(reply_round, now, False))
        rows["reply: now, + None fields"].append(measure(reply_round, now, True))
        rows["52 chunks: before"].append(measure(stream_round, before, False, repeat=200))
        rows["52 chunks: now"].append(measure(stream_round, now, False, repeat=200))
        rows["52 chunks: now, + None fields"].append(measure(stream_round, now, True, repeat=200))
    lines = ["| what | median µs | best µs |", "| --- | --- | --- |"]
    for name, samples in rows.items():
        lines.append(f"| {name} | {statistics.median(samples) * 1e6:.2f} | {min(samples) * 1e6:.2f} |")
    return "\n".join(lines)


def main() -> int:
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
