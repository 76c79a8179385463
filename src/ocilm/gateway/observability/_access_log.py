"""One JSON line per request on the ``ocilm.access`` logger: who, what, how it went, what it
cost. Never a key or a secret; the prompt only with ``log_prompts: true``."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from typing import Any

from ._record import RequestRecord

access_log = logging.getLogger("ocilm.access")


def access_line(record: RequestRecord, *, with_prompt: bool = False) -> dict[str, Any]:
    ttft = record.ttft_seconds
    line: dict[str, Any] = {
        "time": datetime.datetime.fromtimestamp(record.started_at, datetime.timezone.utc).isoformat(timespec="milliseconds"),
        "request_id": record.request_id, "opc_request_id": record.opc_request_id, "method": record.method, "route": record.route,
        "status": record.status, "key": record.key, "team": record.team, "model": record.model, "deployment": record.deployment,
        "stream": record.stream, "input_tokens": record.input_tokens, "output_tokens": record.output_tokens, "cost_usd": record.cost,
        "latency_ms": round(record.latency_seconds * 1000, 3), "ttft_ms": None if ttft is None else round(ttft * 1000, 3),
        "reason": record.reason, "upstream_status": record.upstream_status, "upstream_code": record.upstream_code,
        "fallbacks": record.fallbacks, "retries": record.retries, "guardrails": record.guardrail_findings or None, "cache": record.cache,
        "guardrail_ms": None if record.guardrail_seconds is None else round(record.guardrail_seconds * 1000, 3),
        "transport": record.transport,
    }  # fmt: skip
    if with_prompt:
        line["prompt"] = record.prompt
    return line


try:
    import orjson

    def _encode(line: dict[str, Any]) -> bytes:
        return orjson.dumps(line, default=str)
except ImportError:  # pragma: no cover - the gateway extra installs orjson

    def _encode(line: dict[str, Any]) -> bytes:
        return json.dumps(line, separators=(",", ":"), default=str).encode()


class AccessLog:
    """Where the lines go: the ``ocilm.access`` logger (an app inside someone else's process),
    or a byte stream written in batches (``ocilm serve``: standard output), at most 0.2 s late."""

    FLUSH_AFTER = 0.2
    FLUSH_LINES = 512

    def __init__(self, stream: Any = None, *, with_prompt: bool = False) -> None:
        self.stream, self.with_prompt = stream, with_prompt
        self._pending: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None

    def write(self, record: RequestRecord) -> None:
        line = access_line(record, with_prompt=self.with_prompt)
        if self.stream is None:
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(_encode(line).decode())
            return
        self._pending.append(_encode(line) + b"\n")
        if len(self._pending) >= self.FLUSH_LINES:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(self.FLUSH_AFTER, self.flush)
            except RuntimeError:  # no loop: write now
                self.flush()

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        try:
            for chunk in whole_lines(lines, ATOMIC_WRITE):
                self.stream.write(chunk)
                self.stream.flush()
        except (OSError, ValueError):  # a closed or broken output: the lines are lost, serving goes on
            pass


# A write of at most PIPE_BUF bytes to a pipe is never interleaved with another process's: with
# --workers N every worker writes to the same standard output.
ATOMIC_WRITE = 4096


def whole_lines(lines: list[bytes], limit: int) -> list[bytes]:
    """``lines`` joined into as few writes as possible, each of whole lines and at most ``limit``
    bytes (a longer line alone)."""
    chunks: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if current and size + len(line) > limit:
            chunks.append(b"".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        chunks.append(b"".join(current))
    return chunks
