"""What one request did, gathered as it goes and reported once at its end (pure data)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

# Why the gateway itself refused a request, by the code of its error body.
REJECTION_REASONS = {
    "invalid_api_key": "auth", "model_not_allowed": "forbidden", "admin_only": "forbidden", "budget_exceeded": "budget",
    "price_unknown": "budget", "rate_limit_exceeded": "rate_limit", "governance_unavailable": "store_unavailable",
    "rate_limit_unavailable": "limits_unavailable", "deployments_full": "rate_limit", "deployments_cooling": "cooling",
    "guardrail_violation": "guardrail", "guardrail_unavailable": "guardrail_unavailable",
}  # fmt: skip


@dataclass(slots=True)
class RequestRecord:
    route: str
    method: str
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    started_at: float = field(default_factory=time.time)
    status: int = 0
    model: str | None = None  # the public model name asked for
    deployment: str | None = None  # the OCI model that answered (or last failed)
    key: str | None = None  # the virtual key's public id (never the key)
    team: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None  # USD
    first_token_at: float | None = None  # perf_counter of the first streamed content
    opc_request_id: str | None = None
    reason: str | None = None  # why the gateway refused it (auth, budget, rate_limit, ...)
    upstream_status: int | None = None
    upstream_code: str | None = None
    fallbacks: int = 0
    cache: str | None = None  # "hit" or "miss" where the response cache was consulted
    retries: int = 0
    stream: bool = False
    prompt: Any = None  # kept only with log_prompts: true
    done: bool = False
    closes_itself: bool = False  # a relayed stream closes its record at its end
    guardrail_findings: list[str] = field(default_factory=list)  # "name:category:action", never the detected text
    guardrail_seconds: float | None = None  # time spent in guardrail checks
    transport: str = "http"  # "websocket": a frame of the Responses door's WebSocket mode
    guardrail_skipped: bool = False  # a guardrail could not answer and failed open: nothing of it is cached
    span: Any = None  # the request's OpenTelemetry span, when tracing is on
    span_token: Any = None

    @property
    def latency_seconds(self) -> float:
        return time.perf_counter() - self.started

    @property
    def ttft_seconds(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started

    def refused(self, code: str | None) -> None:
        self.reason = REJECTION_REASONS.get(code or "")

    def usage(self, usage: dict[str, Any] | None) -> None:
        if usage:
            self.input_tokens = int(usage.get("prompt_tokens") or 0)
            self.output_tokens = int(usage.get("completion_tokens") or 0)
