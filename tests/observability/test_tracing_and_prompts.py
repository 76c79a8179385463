"""OpenTelemetry spans with the GenAI conventions, and prompts in access lines only when asked."""

from __future__ import annotations

import functools
import json
import logging

import httpx
import pytest

from ocilm.gateway import create_app, parse_config
from ocilm.testing import BackgroundServer

HI = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def spans():
    return _process_exporter()


@functools.cache
def _process_exporter():
    """One exporter for the process: OpenTelemetry takes the process's provider once, so a second
    one (this module's tests met again by the same xdist worker after their fixture ended) would be
    refused and see no span."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # the process's provider, as an application sets it up
    return exporter


def _gateway(creds, **general):
    return BackgroundServer(create_app(parse_config({
        "model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds}}],
        "general_settings": general})))  # fmt: skip


def test_each_request_is_a_span_with_its_oci_call_as_a_child(creds, spans):
    spans.clear()
    with _gateway(creds, otel=True) as gw:
        r = httpx.post(f"{gw.base_url}/v1/chat/completions", json={"model": "llama", "messages": HI, "max_tokens": 10}, timeout=30)
        with httpx.stream("POST", f"{gw.base_url}/v1/chat/completions", json={"model": "llama", "messages": HI, "stream": True},
                          timeout=30) as streamed:  # fmt: skip
            list(streamed.iter_lines())
    assert r.status_code == 200
    finished = spans.get_finished_spans()
    servers = [s for s in finished if s.name == "chat llama"]
    clients = [s for s in finished if s.name == "chat oci/meta.llama-3.3-70b-instruct"]
    assert len(servers) == 2 and len(clients) == 2
    for server in servers:
        attributes = dict(server.attributes)
        assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.provider.name"] == "oci"
        assert attributes["gen_ai.request.model"] == "llama" and attributes["gen_ai.response.model"] == "oci/meta.llama-3.3-70b-instruct"
        assert attributes["gen_ai.usage.input_tokens"] > 0 and attributes["gen_ai.usage.output_tokens"] > 0
        assert attributes["http.response.status_code"] == 200
        child = next(c for c in clients if c.parent is not None and c.parent.span_id == server.context.span_id)
        assert child.context.trace_id == server.context.trace_id


def test_tracing_is_off_unless_configured(creds, spans):
    spans.clear()
    with _gateway(creds) as gw:
        assert httpx.post(f"{gw.base_url}/v1/chat/completions", json={"model": "llama", "messages": HI}, timeout=30).status_code == 200
    assert spans.get_finished_spans() == ()


def test_the_prompt_is_in_the_access_line_only_with_log_prompts(creds, caplog):
    caplog.set_level(logging.INFO, logger="ocilm.access")
    for log_prompts in (False, True):
        caplog.clear()
        with _gateway(creds, log_prompts=log_prompts) as gw:
            httpx.post(f"{gw.base_url}/v1/chat/completions", json={"model": "llama", "messages": HI}, timeout=30)
        line = json.loads(next(r.getMessage() for r in caplog.records if r.name == "ocilm.access"))
        assert ("prompt" in line) is log_prompts
        if log_prompts:
            assert line["prompt"] == HI


def test_door_streams_close_their_record_once_with_time_to_first_token(creds, caplog):
    caplog.set_level(logging.INFO, logger="ocilm.access")
    with _gateway(creds) as gw:
        with httpx.stream("POST", f"{gw.base_url}/v1/messages", json={"model": "llama", "max_tokens": 50, "stream": True, "messages": HI},
                          headers={"anthropic-version": "2023-06-01"}, timeout=30) as streamed:  # fmt: skip
            assert streamed.status_code == 200 and any("message_stop" in line for line in streamed.iter_lines())
        with httpx.stream("POST", f"{gw.base_url}/v1/responses", json={"model": "llama", "input": "Hello", "stream": True},
                          timeout=30) as streamed:  # fmt: skip
            assert any("response.completed" in line for line in streamed.iter_lines())
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "ocilm.access"]
    assert [line["route"] for line in lines] == ["messages", "responses"]
    assert all(line["status"] == 200 and line["stream"] and line["ttft_ms"] is not None and line["output_tokens"] for line in lines)


def test_access_lines_are_written_whole_in_writes_no_worker_can_split():
    from ocilm.gateway.observability._access_log import ATOMIC_WRITE, whole_lines

    lines = [b"x" * n + b"\n" for n in (100, 3000, 900, 50, 5000, 10)]
    chunks = whole_lines(lines, ATOMIC_WRITE)
    assert b"".join(chunks) == b"".join(lines)
    assert all(chunk.endswith(b"\n") for chunk in chunks)
    assert all(len(chunk) <= ATOMIC_WRITE for chunk in chunks if chunk.count(b"\n") > 1)  # only a long line alone goes over
    assert [len(c) for c in chunks] == [101 + 3001 + 901 + 51, 5001, 11]
