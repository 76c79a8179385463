"""The during_call stream guard's own CPU (the review's M5 case: a reply full of e-mail addresses,
masked), in process, with ApplyGuardrails answered at once by a regex: what the gateway spends
per reply size, which must grow linearly. Usage: .venv/bin/python bench/stream_guard.py"""

from __future__ import annotations

import asyncio
import re
import time

from ocilm.gateway._guardrails import Guardrails, GuardrailSpec

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


class _Instant:
    async def apply_guardrails(self, text: str, **params):
        return {"results": {"personallyIdentifiableInformation": [
            {"offset": m.start(), "length": m.end() - m.start(), "label": "EMAIL"} for m in EMAIL.finditer(text)]}}


def run(size: int) -> tuple[float, int]:
    spec = GuardrailSpec("g", frozenset({"during_call"}), pii={"EMAIL": "MASK"})
    guard = Guardrails([spec], _Instant(), None).stream_guard([spec], None)
    text = "a@b.cc " * (size // 7)
    events = [{"choices": [{"index": 0, "delta": {"content": text[i : i + 7]}}]} for i in range(0, len(text), 7)]

    async def go() -> int:
        out = 0
        for event in events:
            out += len(await guard.see([event]))
        return out + len(await guard.finish())

    started = time.process_time()
    released = asyncio.run(go())
    return time.process_time() - started, released


if __name__ == "__main__":
    print("| reply | events | guard CPU ms | µs per event |")
    print("| --- | --- | --- | --- |")
    for size in (10_000, 40_000, 160_000):
        best = min(run(size) for _ in range(3))
        print(f"| {size // 1000} KB | {best[1]} | {best[0] * 1000:.1f} | {best[0] * 1e6 / best[1]:.1f} |")
