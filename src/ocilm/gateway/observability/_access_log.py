"""One JSON line per request on the ``ocilm.access`` logger: who, what, how it went, what it
cost. Never a key or a secret; the prompt only with ``log_prompts: true``."""

from __future__ import annotations

import datetime
import json
import logging
import sys
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
        "fallbacks": record.fallbacks, "retries": record.retries,
    }  # fmt: skip
    if with_prompt:
        line["prompt"] = record.prompt
    return line


def write_access_line(record: RequestRecord, with_prompt: bool) -> None:
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(json.dumps(access_line(record, with_prompt=with_prompt), separators=(",", ":"), default=str))


def log_to_stdout() -> None:
    """``ocilm serve``: the access lines on standard output, one JSON object per line."""
    if not access_log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
        access_log.propagate = False
