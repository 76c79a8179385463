"""The gateway's Prometheus metrics (``GET /metrics``), safe under ``--workers N``.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``ocilm serve --workers N`` sets it to a fresh directory
before its workers start), every worker writes its samples to files there and a scrape of any
worker reads them all; otherwise the metrics live in this process's own registry.
"""

from __future__ import annotations

import os
from typing import Any

from ._record import RequestRecord

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.shared = multiprocess_dir() is not None
        # A registry per app (one process may hold several apps, as tests do); with several
        # workers the samples go to files instead, and a scrape reads every worker's.
        self.registry = None if self.shared else CollectorRegistry(auto_describe=True)
        common: dict[str, Any] = {"registry": self.registry}
        who = ("key", "team")
        self.requests = Counter("ocilm_requests", "Requests answered, by route, model, deployment, status and caller.",
                                ["route", "model", "deployment", "status", *who], **common)  # fmt: skip
        self.latency = Histogram("ocilm_request_duration_seconds", "Time to the end of the reply (a stream's last event).",
                                 ["route", "model"], buckets=LATENCY_BUCKETS, **common)  # fmt: skip
        self.ttft = Histogram("ocilm_time_to_first_token_seconds", "Time to a stream's first content.", ["route", "model"],
                              buckets=TTFT_BUCKETS, **common)  # fmt: skip
        self.tokens = Counter("ocilm_tokens", "Tokens OCI reported, by direction (input, output).", ["model", "direction", *who], **common)
        self.cost = Counter("ocilm_spend_usd", "What requests cost, in US dollars.", ["model", *who], **common)
        self.upstream_errors = Counter("ocilm_upstream_errors", "Failed OCI calls, by OCI's HTTP status and error code.",
                                       ["model", "deployment", "status", "code"], **common)  # fmt: skip
        self.retries = Counter("ocilm_retries", "Attempts of an OCI call after its first.", ["model"], **common)
        self.fallbacks = Counter("ocilm_fallbacks", "Requests served by a deployment after another failed or was full.", ["model"], **common)
        self.cooldowns = Counter("ocilm_deployment_cooldowns", "Cooldowns a deployment entered (this replica's, and those other "
                                 "replicas announced are not counted twice).", ["model", "deployment"], **common)  # fmt: skip
        self.model_fallbacks = Counter("ocilm_model_fallbacks", "Requests handed from a model to a fallback model.",
                                       ["model", "fallback"], **common)  # fmt: skip
        self.cache_bytes = Counter("ocilm_cache_stored_bytes", "Bytes of entries the response cache wrote.", **common)
        self.cache_up = Gauge("ocilm_cache_redis_up", "1 while the response cache's Redis answers, 0 while requests go uncached.",
                              multiprocess_mode="livemin", registry=self.registry)  # fmt: skip
        self.cache = Counter("ocilm_cache_lookups", "Response-cache lookups, by model and result (hit or miss).", ["model", "result"], **common)
        self.guardrail_findings = Counter("ocilm_guardrail_findings", "What guardrails found, by guardrail, category (content_moderation, "
                                          "prompt_injection, pii:<LABEL>) and action.", ["guardrail", "category", "action"], **common)  # fmt: skip
        self.guardrail_latency = Histogram("ocilm_guardrail_duration_seconds", "Time a request spent in guardrail checks.", ["route"],
                                           buckets=LATENCY_BUCKETS, **common)  # fmt: skip
        self.rejections = Counter("ocilm_rejections", "Requests the gateway refused, by reason.", ["route", "reason"], **common)
        self.retirement_notices = Counter("ocilm_model_retirement_notices", "Replies that carried OCI's model-retirement-info notice "
                                          "(the model is deprecated).", ["model", "deployment"], **common)  # fmt: skip
        # multiprocess_mode says how a scrape joins the workers' values (ignored in one process)
        self.in_flight = Gauge("ocilm_in_flight_requests", "Requests being served now.", ["route"], multiprocess_mode="livesum",
                               registry=self.registry)  # fmt: skip
        self.store_up = Gauge("ocilm_governance_store_up", "1 while the key and budget store answers, 0 while it fails.",
                              multiprocess_mode="livemin", registry=self.registry)  # fmt: skip
        self.limits_up = Gauge("ocilm_rate_limit_counters_up", "1 while the rate-limit counters answer, 0 while they fail.",
                               multiprocess_mode="livemin", registry=self.registry)  # fmt: skip
        self.served_unlimited = Counter("ocilm_served_without_limits", "Requests served without rate limits while the counters "
                                        "were unreachable (rate_limit_failure: open).", **common)  # fmt: skip
        self.store_up.set(1)
        self.limits_up.set(1)
        self._series: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._in_flight: dict[str, Any] = {}

    def started(self, record: RequestRecord) -> None:
        self._in_flight_of(record.route).inc()

    def _children(self, record: RequestRecord) -> tuple[Any, ...]:
        """The labelled series one kind of request updates, looked up once per label set
        (prometheus-client's own lookup costs a lock and a tuple per call)."""
        model, key, team = record.model or "", record.key or "", record.team or ""
        labels = (record.route, model, record.deployment or "", record.status, key, team)
        found = self._series.get(labels)
        if found is None:
            if len(self._series) > 50_000:
                self._series.clear()
            found = self._series[labels] = (
                self.requests.labels(record.route, model, record.deployment or "", str(record.status), key, team),
                self.latency.labels(record.route, model), self.ttft.labels(record.route, model),
                self.tokens.labels(model, "input", key, team), self.tokens.labels(model, "output", key, team),
                self.cost.labels(model, key, team),
            )  # fmt: skip
        return found

    def finished(self, record: RequestRecord) -> None:
        self._in_flight_of(record.route).dec()
        requests, latency, ttft, tokens_in, tokens_out, cost = self._children(record)
        requests.inc()
        if record.reason is not None:
            self.rejections.labels(record.route, record.reason).inc()
        if not record.model:
            return
        latency.observe(record.latency_seconds)
        first = record.ttft_seconds
        if first is not None:
            ttft.observe(first)
        if record.input_tokens:
            tokens_in.inc(record.input_tokens)
        if record.output_tokens:
            tokens_out.inc(record.output_tokens)
        if record.cost:
            cost.inc(record.cost)
        if record.retries:
            self.retries.labels(record.model).inc(record.retries)
        if record.fallbacks:
            self.fallbacks.labels(record.model).inc()
        if record.cache is not None:
            self.cache.labels(record.model, record.cache).inc()

    def _in_flight_of(self, route: str) -> Any:
        gauge = self._in_flight.get(route)
        if gauge is None:
            gauge = self._in_flight[route] = self.in_flight.labels(route)
        return gauge

    def upstream_failed(self, model: str, deployment: str, status: int | None, code: str | None) -> None:
        self.upstream_errors.labels(model, deployment, str(status or 0), code or "").inc()

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.shared:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        assert self.registry is not None
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
