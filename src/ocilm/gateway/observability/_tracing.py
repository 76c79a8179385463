"""OpenTelemetry spans (the ``ocilm[otel]`` extra, on with ``general_settings.otel: true``): one
span per request with the GenAI semantic conventions' ``gen_ai.*`` attributes, and a child span
for each OCI call it makes. Spans go to whatever tracer provider the process set up (the
OpenTelemetry SDK's exporters, configured by their usual ``OTEL_*`` variables)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ._record import RequestRecord

_OPERATIONS = {"chat/completions": "chat", "embeddings": "embeddings", "responses": "chat", "messages": "chat"}


class Tracing:
    def __init__(self, tracer_provider: Any = None) -> None:
        from opentelemetry import context, trace

        self._trace, self._context = trace, context
        self.tracer = trace.get_tracer("ocilm.gateway", tracer_provider=tracer_provider)

    def start(self, record: RequestRecord) -> None:
        operation = _OPERATIONS.get(record.route, record.route)
        span = self.tracer.start_span(f"{operation}", kind=self._trace.SpanKind.SERVER,
                                      attributes={"gen_ai.operation.name": operation, "gen_ai.provider.name": "oci",
                                                  "http.request.method": record.method, "http.route": record.route,
                                                  "ocilm.request_id": record.request_id})  # fmt: skip
        record.span = span
        record.span_token = self._context.attach(self._trace.set_span_in_context(span))

    def leave(self, record: RequestRecord) -> None:
        """The handler is done with the request (its stream may go on): its calls are no longer children."""
        if record.span_token is not None:
            self._context.detach(record.span_token)
            record.span_token = None

    def finish(self, record: RequestRecord) -> None:
        span = record.span
        if span is None:
            return
        operation = _OPERATIONS.get(record.route, record.route)
        if record.model:
            span.update_name(f"{operation} {record.model}")
            span.set_attribute("gen_ai.request.model", record.model)
        attributes = {"gen_ai.response.model": record.deployment, "gen_ai.usage.input_tokens": record.input_tokens,
                      "gen_ai.usage.output_tokens": record.output_tokens, "http.response.status_code": record.status,
                      "ocilm.key": record.key, "ocilm.team": record.team, "ocilm.cost_usd": record.cost,
                      "oci.request_id": record.opc_request_id}  # fmt: skip
        for name, value in attributes.items():
            if value is not None:
                span.set_attribute(name, value)
        if record.status >= 500 or record.upstream_code:
            span.set_attribute("error.type", record.upstream_code or str(record.status))
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
        span.end()

    @contextlib.contextmanager
    def upstream(self, record: RequestRecord | None, deployment: str, operation: str) -> Iterator[Any]:
        """A child span around one OCI call."""
        with self.tracer.start_as_current_span(f"{operation} {deployment}", kind=self._trace.SpanKind.CLIENT,
                                               attributes={"gen_ai.operation.name": operation, "gen_ai.provider.name": "oci",
                                                           "gen_ai.request.model": deployment}) as span:  # fmt: skip
            yield span
