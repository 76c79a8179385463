"""The one place a request's record is opened and closed: metrics, the access line, the trace."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from ._access_log import AccessLog
from ._ids import new_id
from ._record import RequestRecord

log = logging.getLogger("ocilm.gateway")
RETIREMENT_LOG_EVERY = 3600.0  # seconds between log lines of one model's retirement notice


class Observer:
    def __init__(self, *, metrics: bool = True, access_log: bool = True, log_prompts: bool = False, tracing: Any = None,
                 access_stream: Any = None) -> None:  # fmt: skip
        from ._metrics import Metrics

        self.metrics = Metrics() if metrics else None
        self._notices_logged: dict[str, float] = {}  # model -> when its retirement notice was last logged
        self.access_log = AccessLog(access_stream, with_prompt=log_prompts) if access_log else None
        self.log_prompts = log_prompts
        self.tracing = tracing  # a Tracing, when OpenTelemetry is configured

    def start(self, route: str, method: str) -> RequestRecord:
        record = RequestRecord(route, method, new_id())
        if self.metrics is not None:
            self.metrics.started(record)
        if self.tracing is not None:
            self.tracing.start(record)
        return record

    def finish(self, record: RequestRecord) -> None:
        if record.done:
            return
        record.done = True
        try:
            if self.metrics is not None:
                self.metrics.finished(record)
                if record.guardrail_seconds is not None:
                    self.metrics.guardrail_latency.labels(record.route).observe(record.guardrail_seconds)
            if self.access_log is not None:
                self.access_log.write(record)
            if self.tracing is not None:
                self.tracing.finish(record)
        except Exception:  # seeing must never break serving
            log.exception("observability: recording request %s failed", record.request_id)

    async def follow(self, record: RequestRecord, body: AsyncIterable[Any]) -> AsyncIterator[Any]:
        """A streamed body that closes its record when the stream ends (or the client leaves)."""
        try:
            async for part in body:
                yield part
        finally:
            close = getattr(body, "aclose", None)
            if close is not None:
                await close()  # its own clean-up first (what a client that left used)
            self.finish(record)

    def close(self) -> None:
        if self.access_log is not None:
            self.access_log.flush()

    def leave(self, record: RequestRecord) -> None:
        if self.tracing is not None:
            self.tracing.leave(record)

    def upstream_span(self, record: RequestRecord | None, deployment: str, operation: str) -> Any:
        if self.tracing is None:
            return contextlib.nullcontext()
        return self.tracing.upstream(record, deployment, operation)

    def upstream_failed(self, record: RequestRecord | None, model: str, deployment: str, exc: Any) -> None:
        status, code = getattr(exc, "status_code", None), getattr(exc, "code", None)
        if record is not None:
            record.upstream_status, record.upstream_code = status, code
        if self.metrics is not None:
            self.metrics.upstream_failed(model, deployment, status, code)

    def guardrail_finding(self, guardrail: str, category: str, action: str) -> None:
        if self.metrics is not None:
            self.metrics.guardrail_findings.labels(guardrail, category, action).inc()

    def cooled(self, model: str, deployment: str) -> None:
        if self.metrics is not None:
            self.metrics.cooldowns.labels(model, deployment).inc()

    def retirement_notice(self, model: str, deployment: str, notice: str) -> None:
        """OCI said the model is deprecated: counted every time, logged once per model an hour."""
        if self.metrics is not None:
            self.metrics.retirement_notices.labels(model, deployment).inc()
        now = time.monotonic()
        if now - self._notices_logged.get(model, -RETIREMENT_LOG_EVERY) >= RETIREMENT_LOG_EVERY:
            self._notices_logged[model] = now
            log.warning("OCI says model %s (%s) is deprecated: %s", model, deployment, notice[:500])

    def fell_back(self, model: str, fallback: str) -> None:
        if self.metrics is not None:
            self.metrics.model_fallbacks.labels(model, fallback).inc()

    def cached(self, stored_bytes: int = 0, redis_up: bool | None = None) -> None:
        """The response cache wrote an entry of this size, or its Redis went away or came back."""
        if self.metrics is None:
            return
        if stored_bytes:
            self.metrics.cache_bytes.inc(stored_bytes)
        if redis_up is not None:
            self.metrics.cache_up.set(1 if redis_up else 0)

    def health(self, *, store: bool | None = None, limits: bool | None = None, served_unlimited: int = 0) -> None:
        if self.metrics is None:
            return
        if store is not None:
            self.metrics.store_up.set(1 if store else 0)
        if limits is not None:
            self.metrics.limits_up.set(1 if limits else 0)
        if served_unlimited:
            self.metrics.served_unlimited.inc(served_unlimited)
