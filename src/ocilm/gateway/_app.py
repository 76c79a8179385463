"""The gateway: OpenAI's HTTP API in front of OCI models, as a small Starlette app.

A route handler reads and checks the body, then runs the upstream call under two guards:
the caller's deadline (the deployment's ``timeout``, all retries and fallbacks included)
and the caller's presence (a client that disconnects cancels the upstream call at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .._capabilities import DEFAULT_MAX_TOKENS
from .._client import AsyncClient
from .._core import DEFAULT_TIMEOUT, call_deadline
from .._errors import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    InternalServerError,
    NotFoundError,
    OCIError,
    PermissionDeniedError,
    RateLimitError,
)
from .._retry import retry_listener
from ..doors._common import DoorError
from ..formats._common import CHAT_PARAMS
from . import _pool
from ._config import Deployment, GatewayConfig, GovernanceSettings, is_pattern
from ._errors import GatewayError
from .governance._gate import (
    Caller,
    Gate,
    StreamWatch,
    cost_header,
    limits_unavailable,
    output_token_ceiling,
    rate_limited,
)
from .governance._limits import (
    Limit,
    LimiterUnavailable,
    Limits,
    MemoryLimiter,
    RateLimited,
    Ticket,
)
from .governance._policy import input_token_ceiling, text_chars
from .observability import Observer, RequestRecord

log = logging.getLogger("ocilm.gateway")
MAX_BODY_BYTES = 8 * 1024 * 1024
CHAT_REQUEST_KEYS = (CHAT_PARAMS - {"extra_body"}) | {"model", "messages", "stream", "stream_options"}
EMBED_REQUEST_KEYS = frozenset({"model", "input", "encoding_format", "dimensions", "user", "input_type", "truncate"})
_FALLBACK_ERRORS = (RateLimitError, InternalServerError, APIConnectionError, APIResponseValidationError)
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def _support_note(exc: OCIError) -> str:
    return f" (opc-request-id {exc.opc_request_id})" if exc.opc_request_id else ""


def gateway_error_for(exc: OCIError) -> GatewayError:
    """Map an ocilm error to the status an OpenAI client should see.

    Failures of the gateway's own upstream (5xx, its credentials, its config) get a generic
    message with OCI's request id: the detail, which can name private hosts, paths and
    profiles, goes to the gateway's log, not to the caller.
    """
    upstream = exc.code is not None or exc.opc_request_id is not None
    note = _support_note(exc)
    if isinstance(exc, APITimeoutError):
        return GatewayError(504, f"upstream OCI did not answer in time{note}", kind="timeout_error", code="upstream_timeout")
    if isinstance(exc, (APIConnectionError, APIResponseValidationError)):
        return GatewayError(502, f"upstream OCI failed{note}; see the gateway log", kind="api_error", code="upstream_error")
    if isinstance(exc, RateLimitError):
        headers = {"retry-after": str(max(1, math.ceil(exc.retry_after)))} if exc.retry_after is not None else {}
        return GatewayError(429, f"OCI is rate limiting this model; try again later{note}", kind="rate_limit_error", code="rate_limited", headers=headers)
    if isinstance(exc, ConfigurationError):
        return GatewayError(500, "the gateway's OCI configuration is not usable; see the gateway log", kind="server_error", code="gateway_configuration")
    if isinstance(exc, (AuthenticationError, PermissionDeniedError)) and upstream:
        return GatewayError(502, f"OCI refused the gateway's credentials{note}; see the gateway log", kind="api_error", code="upstream_auth")
    if isinstance(exc, NotFoundError) and upstream:
        return GatewayError(502, f"OCI could not find the model behind this name{note}", kind="api_error", code="upstream_not_found")
    if exc.status_code is not None and exc.status_code >= 500:
        return GatewayError(502, f"upstream OCI error{note}; see the gateway log", kind="api_error", code="upstream_error")
    status = exc.status_code if exc.status_code and 400 <= exc.status_code < 500 else 400
    return GatewayError(status, exc.message, param=exc.param, code=exc.code)


class Router:
    """Picks deployments for a model name: shuffled, falling back to the next on failure.

    The first deployment's ``timeout`` (``stream_timeout`` for a stream's first chunk) is the
    caller's deadline for the whole call. A throttled or failing deployment is left at once
    for the next; only the last one retries, and only while the deadline allows.
    """

    def __init__(self, config: GatewayConfig, client: AsyncClient, limits: Limits | None = None) -> None:
        self.config = config
        self.client = client
        self.limits = limits  # for the deployments' own rpm/tpm

    def deployments(self, name: Any) -> list[Deployment]:
        if not isinstance(name, str) or not name:
            raise GatewayError(400, "model: required, the name of a model this gateway serves", param="model")
        found = self.config.deployments.get(self.config.resolve(name))
        if not found:
            raise GatewayError(404, f"model {name!r} not found; this gateway serves: {', '.join(self.config.model_names)}",
                               param="model", code="model_not_found")  # fmt: skip
        return random.sample(found, len(found))

    async def call(self, name: Any, method: str, *args: Any, stream: bool = False, door: bool = False,
                   tried: list[Deployment] | None = None, tokens: int = 0, failed: Callable[[Deployment, OCIError], None] | None = None,
                   traced: Callable[[Deployment], Any] | None = None, **params: Any) -> Any:  # fmt: skip
        """Call the deployments for ``name`` in turn. ``door``: the request came through an agent
        door, whose clients send what their own vendor's models take: parameters a deployment's
        model cannot take are dropped for it, and the output limit is clamped to its maximum.
        ``tried``: each deployment is appended as it is called (the last one answered)."""
        deployments = self.deployments(name)
        budget = deployments[0].deadline_seconds(stream) or DEFAULT_TIMEOUT
        stream_args = {"stream": stream} if method == "completion" else {}
        token = call_deadline.set(time.monotonic() + budget)
        try:
            async with _time_limit(budget):
                last: OCIError | None = None
                full: list[RateLimited] = []
                for position, deployment in enumerate(deployments):
                    failover = {"max_retries": 0} if position < len(deployments) - 1 else {}
                    own = _door_params(deployment, params) if door else params
                    try:
                        ticket = await self._admit(deployment, tokens)
                    except RateLimited as exc:
                        log.info("%s: %s is at its %s limit, trying the next deployment", name, deployment.place, exc.kind)
                        full.append(exc)
                        continue
                    if tried is not None:
                        tried.append(deployment)
                    result = None
                    try:
                        with traced(deployment) if traced is not None else contextlib.nullcontext():
                            result = await getattr(self.client, method)(
                                deployment.model, *args, **stream_args, **{**deployment.params, **own, **failover}
                            )
                        return result
                    except OCIError as exc:
                        if failed is not None:
                            failed(deployment, exc)
                        if not isinstance(exc, _FALLBACK_ERRORS):
                            raise
                        log.warning("%s: %s failed (%s: %s), trying the next deployment", name, deployment.place, type(exc).__name__, exc)
                        last = exc
                    finally:
                        if ticket is not None:
                            await self._release(ticket, result, stream)
                if last is None:  # every deployment was at its own limit
                    raise rate_limited(min(full, key=lambda exc: exc.retry_after))
                raise last
        except TimeoutError:
            raise APITimeoutError(f"{name}: no reply within {budget:g} s (the deployment's timeout)") from None
        finally:
            call_deadline.reset(token)


    async def _admit(self, deployment: Deployment, tokens: int) -> Ticket | None:
        if self.limits is None or not (deployment.rpm or deployment.tpm):
            return None
        limit = Limit("deployment", f"deployment:{deployment.model_name}:{deployment.place}", deployment.rpm, deployment.tpm)
        try:
            return await self.limits.admit(f"dep-{uuid.uuid4().hex}", (limit,), tokens)
        except LimiterUnavailable:
            raise limits_unavailable() from None

    async def _release(self, ticket: Ticket, result: Any, stream: bool) -> None:
        usage = dict.get(result, "usage") if isinstance(result, dict) and not stream else None
        used = int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0) if usage else (0 if result is None else None)
        assert self.limits is not None
        await self.limits.finish(ticket, used)


def _door_params(deployment: Deployment, params: dict[str, Any]) -> dict[str, Any]:
    """A door request's parameters for one deployment: what its model cannot take is dropped
    (``drop_params``, the capability table decides), and the output limit is clamped."""
    ceiling = deployment.max_output_tokens or DEFAULT_MAX_TOKENS
    if isinstance(params.get("max_tokens"), int) and params["max_tokens"] > ceiling:
        params = {**params, "max_tokens": ceiling}  # Claude Code asks for 32,000 and more; OCI's on-demand cap is far lower
    return {**params, "drop_params": True}


@dataclass
class Upstream:
    """An upstream call's result, with what governance adds: the cost header of a settled
    reply, or the watch that settles a stream when it ends."""

    result: Any
    headers: dict[str, str]
    watch: StreamWatch | None


class Metered:
    """The upstream call every model route makes: the key may use the model, its worst case is
    reserved against its budgets, the call runs while the client is connected, and the actual
    cost is settled (at once, or by the stream's watch)."""

    def __init__(self, gate: Gate, router: Router, observer: Observer) -> None:
        self.gate, self.router, self.observer = gate, router, observer

    async def call(self, request: Request, route: str, name: Any, method: str, first: Any, params: dict[str, Any],
                   *, stream: bool = False, door: bool = False) -> Upstream:  # fmt: skip
        caller: Caller = request.state.caller
        deployments = self.router.deployments(name)
        self.gate.allow(caller, name, self.router.config.resolve(name))
        counted: list[int] = []  # the prompt's ceiling, counted once (a long agent context is walked once, not per deployment)

        def worst_case(deployment: Deployment) -> tuple[int, int]:  # input and output tokens at most; counted only when needed
            if not counted:
                counted.append(input_token_ceiling(first) if method == "completion" else text_chars(first) + 8)
            if method == "completion":
                asked = params.get("max_completion_tokens", params.get("max_tokens"))
                return counted[0], output_token_ceiling(asked, deployment, DEFAULT_MAX_TOKENS)
            return counted[0], 0

        record: RequestRecord = request.state.record
        record.model, record.key, record.team, record.stream = name, caller.token, caller.team_id, stream
        if self.observer.log_prompts:
            record.prompt = first
        meter = await self.gate.meter(caller, route, name, deployments, worst_case, record.request_id)
        asked_usage = bool((params.get("stream_options") or {}).get("include_usage")) if stream else False
        if stream:
            params = {**params, "stream_options": {"include_usage": True}}  # tokens and cost come from OCI's usage
        tried: list[Deployment] = []
        extra = {"stream": stream} if method == "completion" else {}

        def failed(deployment: Deployment, exc: OCIError) -> None:
            self.observer.upstream_failed(record, name, deployment.model, exc)

        def traced(deployment: Deployment) -> Any:
            return self.observer.upstream_span(record, deployment.model, "chat" if method == "completion" else method)

        counting = retry_listener.set(lambda _: _count_retry(record))
        try:
            tokens = max(sum(worst_case(d)) for d in deployments) if self.router.config.deployment_limits else 0
            result = await _while_connected(request, lambda: self.router.call(name, method, first, door=door, tried=tried, tokens=tokens,
                                                                              failed=failed, traced=traced, **extra, **params))  # fmt: skip
        except _ClientGone:
            await meter.settle(deployment=tried[-1] if tried else None, status=499)
            raise
        except OCIError as exc:
            await meter.settle(deployment=tried[-1] if tried else None, status=gateway_error_for(exc).status)
            raise
        except GatewayError as err:  # every deployment at its own limit: release the hold now, not at its expiry
            await meter.settle(deployment=tried[-1] if tried else None, status=err.status)
            raise
        finally:
            retry_listener.reset(counting)
            if tried:
                record.deployment, record.fallbacks = tried[-1].model, len(tried) - 1
        record.opc_request_id = getattr(result, "opc_request_id", None)
        if not stream:
            usage = dict.get(result, "usage")
            record.usage(usage)
            record.cost = cost = await meter.settle(deployment=tried[-1], usage=usage)
            return Upstream(result, {**meter.rate_headers, **cost_header(cost)}, None)
        watch = StreamWatch(self.gate, meter, tried[-1], first, keep_usage=door or asked_usage, record=record,
                            on_end=lambda: self.observer.finish(record))  # fmt: skip
        record.closes_itself = True  # the relay closes it at its end (no wrapper around every event)
        return Upstream(result, meter.rate_headers, watch)  # a stream's headers go before its first byte


def _count_retry(record: RequestRecord) -> None:
    record.retries += 1


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def _json_body(request: Request) -> dict:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        # Browsers send text/plain and forms cross-site without asking first; JSON they do not.
        raise GatewayError(415, "content-type: the body must be JSON, sent as 'content-type: application/json'", param="content-type")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise GatewayError(413, f"request body too large: at most {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > MAX_BODY_BYTES:
            raise GatewayError(413, f"request body too large: at most {MAX_BODY_BYTES} bytes")
    try:
        payload = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise GatewayError(400, "request body is nested too deeply") from None
    except ValueError as exc:
        raise GatewayError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise GatewayError(400, "request body must be a JSON object")
    return payload


def _check_keys(payload: dict, allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise GatewayError(400, f"unknown {what} parameter(s): {', '.join(unknown)}", param=unknown[0])


class _ClientGone(Exception):
    """The caller disconnected while the gateway waited on the upstream call."""


if sys.version_info >= (3, 11):
    _time_limit = asyncio.timeout  # anyio.fail_after took 5.6% of the gateway's CPU under load (py-spy)
else:  # pragma: no cover - Python 3.10

    @contextlib.asynccontextmanager
    async def _time_limit(seconds: float) -> AsyncIterator[None]:
        with anyio.fail_after(seconds):
            yield


async def _while_connected(request: Request, work: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``work`` (the upstream call) unless the caller disconnects first: then it is
    cancelled at once, which closes its upstream connection.

    A watcher task reads the ASGI channel (where only ``http.disconnect`` can still come, the
    body having been read) and cancels this task if the caller leaves. Plain asyncio: the anyio
    task group this replaced took about 6% of the gateway's CPU under load (py-spy).
    """
    task = asyncio.current_task()
    assert task is not None
    working, gone = True, False

    async def watch() -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        if working:  # the watcher runs only while work() awaits: it never cancels a finished call
            gone = True
            task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await work()
    except asyncio.CancelledError:
        if not gone:
            raise  # cancelled from outside: not ours to swallow
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+: leave no cancellation pending
        if uncancel is not None:
            uncancel()
        raise _ClientGone from None
    finally:
        working = False
        watcher.cancel()


def create_app(config: GatewayConfig, *, client: AsyncClient | None = None, allowed_hosts: list[str] | None = None,
               workers: int = 1, access_stream: Any = None) -> Starlette:  # fmt: skip
    """The gateway as an ASGI app (one pooled upstream client per process).

    ``access_stream``: a binary stream for the JSON access lines (``ocilm serve`` gives
    standard output); without one they go to the ``ocilm.access`` logger.

    ``client``: an ``AsyncClient`` of your own, which the app uses and does not close.
    ``allowed_hosts``: the ``Host`` names it answers to when there is no master key (by
    default loopback names only, which defeats DNS rebinding); ``["*"]`` for any.
    """
    from ._admin import admin_routes
    from ._doors import door_routes
    from .console import console_routes

    upstream = client or AsyncClient()
    limits = _limits(config)
    router = Router(config, upstream, limits)
    created = int(time.time())
    settings = config.governance
    gate = Gate(config.master_key, hold_seconds=settings.hold_seconds if settings else 600.0, strict=settings.strict if settings else True,
                limits=limits, limits_refused=limits_refused(config, workers))  # fmt: skip
    seen = config.observability
    observer = Observer(metrics=seen.metrics, access_log=seen.access_log, log_prompts=seen.log_prompts, tracing=_tracing(seen.otel),
                        access_stream=access_stream)  # fmt: skip
    gate.observer = observer
    limits.on_unlimited = lambda: observer.health(served_unlimited=1)
    if seen.budget_alert_webhooks:
        from .observability._alerts import BudgetAlerts

        gate.alerts = BudgetAlerts(seen.budget_alert_webhooks, seen.budget_alert_thresholds)
    metered = Metered(gate, router, observer)

    def guarded(handler: Callable[[Request], Awaitable[Response]], render: Callable[[GatewayError], Response] = GatewayError.response,
                map_error: Callable[[OCIError], GatewayError] = gateway_error_for) -> Callable[[Request], Awaitable[Response]]:  # fmt: skip
        """Authenticate, run, and answer every failure as an error body: ``map_error`` picks the
        status for an upstream failure, ``render`` the envelope (OpenAI's by default). Every
        request's record is closed when its reply ends (a stream's, at its last event)."""

        async def endpoint(request: Request) -> Response:
            route = request.scope["route"].path.removeprefix("/v1").lstrip("/")
            record = request.state.record = observer.start(route, request.method)
            try:
                response = await answer(request, record)
            finally:
                observer.leave(record)
            record.status = record.status or response.status_code
            if not isinstance(response, StreamingResponse):
                observer.finish(record)
            elif not record.closes_itself:
                response.body_iterator = observer.follow(record, response.body_iterator)
            return response

        async def answer(request: Request, record: RequestRecord) -> Response:
            try:
                request.state.caller = await gate.caller(request.headers)
                return await handler(request)
            except GatewayError as err:
                record.refused(err.code)
                return render(err)
            except DoorError as err:
                return render(GatewayError(err.status, err.message, param=err.param, code=err.code))
            except _ClientGone:
                record.status = 499
                return Response(status_code=499)  # nobody is listening; uvicorn drops it
            except OCIError as exc:
                mapped = map_error(exc)
                if mapped.status >= 500:
                    log.warning("%s %s -> %d: %s", request.method, request.url.path, mapped.status, exc)
                return render(mapped)

        return endpoint

    async def metrics(request: Request) -> Response:
        if not seen.metrics_public and not (await gate.caller(request.headers)).is_master:
            raise GatewayError(403, "GET /metrics needs the master key", kind="permission_error", code="admin_only")
        if observer.metrics is None:
            raise GatewayError(404, "metrics are off (general_settings.metrics: false)", code="not_found")
        observer.health(limits=limits.status()["reachable"])
        body, media_type = observer.metrics.render()
        return Response(body, media_type=media_type)

    async def chat_completions(request: Request) -> Response:
        payload = await _json_body(request)
        _check_keys(payload, CHAT_REQUEST_KEYS, "chat")
        name = payload.pop("model", None)
        router.deployments(name)  # 404 before anything else
        messages = payload.pop("messages", None)
        stream = payload.pop("stream", False)
        if stream is None:
            stream = False
        if not isinstance(stream, bool):
            raise GatewayError(400, "stream: expected true or false", param="stream")
        if messages is None:
            raise GatewayError(400, "messages: required, a list of {role, content} objects", param="messages")
        reply = await metered.call(request, "chat", name, "completion", messages, payload, stream=stream)
        result = reply.result
        if not stream:
            result["model"] = name
            return JSONResponse(result, headers={**_request_id_header(result.opc_request_id), **reply.headers})
        return StreamingResponse(_event_stream(result, name, reply.watch), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", **_request_id_header(result.opc_request_id), **reply.headers})  # fmt: skip

    async def embeddings(request: Request) -> Response:
        payload = await _json_body(request)
        _check_keys(payload, EMBED_REQUEST_KEYS, "embeddings")
        name = payload.pop("model", None)
        router.deployments(name)
        if "input" not in payload:
            raise GatewayError(400, "input: required, a string or a list of strings", param="input")
        inputs = payload.pop("input")
        reply = await metered.call(request, "embeddings", name, "embedding", inputs, payload)
        result = reply.result
        result["model"] = name
        return JSONResponse(result, headers={**_request_id_header(result.opc_request_id), **reply.headers})

    def model_card(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": created, "owned_by": "oci"}

    async def models(request: Request) -> Response:
        if request.headers.get("anthropic-version"):  # an Anthropic client: its list shape
            from ..doors.messages import model_list

            named = [a for a in config.aliases if not is_pattern(a)]  # patterns are no model ids
            return JSONResponse(model_list(config.model_names + named, created))
        return JSONResponse({"object": "list", "data": [model_card(name) for name in config.model_names]})

    async def model(request: Request) -> Response:
        name = request.path_params["model"]
        router.deployments(name)  # 404 for a name it does not serve
        return JSONResponse(model_card(name))

    async def liveliness(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readiness(request: Request) -> Response:
        return JSONResponse({"status": "ready", "models": len(config.deployments), "rate_limits": limits.status()})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # aiohttp closes a pooled connection as soon as its peer does; httpx needs the pruner.
        if settings is not None:
            gate.store = await open_store(settings)
            if store_counts_limits(config, workers):
                limits.limiter = gate.store.rate_limiter(config.rate_limit_window_seconds)
        pruner = asyncio.ensure_future(_pool.prune_forever(lambda: _pool.httpx_client_of(upstream), _pool.PRUNE_EVERY))
        try:
            yield
        finally:
            pruner.cancel()
            await gate.drain()  # spend of cancelled streams is still being written
            await limits.close()
            observer.close()
            if gate.alerts is not None:
                await gate.alerts.close()
            if gate.store is not None:
                await gate.store.close()
            if client is None:  # ours to close; an injected client belongs to its caller
                await upstream.aclose()

    routes = [
        Route("/v1/chat/completions", guarded(chat_completions), methods=["POST"]),
        Route("/chat/completions", guarded(chat_completions), methods=["POST"]),
        Route("/v1/embeddings", guarded(embeddings), methods=["POST"]),
        Route("/embeddings", guarded(embeddings), methods=["POST"]),
        Route("/v1/models", guarded(models), methods=["GET"]),
        Route("/models", guarded(models), methods=["GET"]),
        Route("/metrics", _plain_errors(metrics), methods=["GET"]),
        Route("/v1/models/{model:path}", guarded(model), methods=["GET"]),
        Route("/models/{model:path}", guarded(model), methods=["GET"]),
        *door_routes(router, guarded, metered),
        *admin_routes(gate, router),
        *console_routes(),
        Route("/health/liveliness", liveliness, methods=["GET"]),
        Route("/health/readiness", readiness, methods=["GET"]),
    ]
    middleware = []
    if config.master_key is None:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts or LOOPBACK_HOSTS)))
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                    exception_handlers={404: _not_found, 405: _not_allowed})  # fmt: skip
    app.state.router = router
    app.state.gate = gate
    return app


def _plain_errors(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except GatewayError as err:
            return err.response()

    return endpoint


def _tracing(enabled: bool) -> Any:
    if not enabled:
        return None
    from .observability._tracing import Tracing

    return Tracing()


def _limits(config: GatewayConfig) -> Limits:
    if config.redis_url:
        from .governance._limits import RedisLimiter

        return Limits(RedisLimiter(config.redis_url, config.rate_limit_window_seconds), config.rate_limit_failure)
    return Limits(MemoryLimiter(config.rate_limit_window_seconds))


def _sqlite_store(config: GatewayConfig) -> bool:
    return config.governance is not None and config.governance.database_url.startswith("sqlite:///")


def store_counts_limits(config: GatewayConfig, workers: int) -> bool:
    """Several workers without Redis count in their shared SQLite file."""
    return not config.redis_url and workers > 1 and _sqlite_store(config)


def limits_refused(config: GatewayConfig, workers: int) -> str | None:
    """Why rate limits cannot be enforced exactly here, or None: counters in one process hold
    only for that process; several workers share them in their SQLite file, and replicas sharing a
    PostgreSQL store share them through Redis."""
    if config.redis_url or store_counts_limits(config, workers):
        return None
    if workers > 1:
        return (f"rate limits need general_settings.redis_url, or a sqlite:/// database_url, with --workers {workers} "
                "(each worker would count alone)")  # fmt: skip
    if config.governance is not None and config.governance.database_url.startswith(("postgresql://", "postgres://")):
        return "rate limits need general_settings.redis_url with a PostgreSQL store (its replicas would each count alone)"
    return None


async def open_store(settings: GovernanceSettings) -> Any:
    """The governance store, migrated. A database that cannot be reached stops the start with a
    message that names it without its password."""
    from .governance._store import Store, StoreUnavailable

    where = _without_password(settings.database_url)
    try:
        store = await Store.open(settings.database_url)
        store.synchronous_commit = settings.synchronous_commit
        if settings.auto_migrate:
            await store.upgrade()
        elif not await store.schema_is_current():
            await store.close()
            raise GatewayStartError(f"general_settings.database_url: the database at {where} has no ocilm tables or older ones; "
                                    "run 'ocilm db upgrade --config FILE' once (replicas do not migrate by themselves)")  # fmt: skip
    except StoreUnavailable as exc:
        raise GatewayStartError(f"general_settings.database_url: {exc} at {where}") from None
    return store


class GatewayStartError(RuntimeError):
    """The gateway cannot start (its database is unreachable, say)."""


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}@{host}"


def _request_id_header(request_id: str | None) -> dict[str, str]:
    return {"opc-request-id": request_id} if request_id else {}


async def _not_found(request: Request, exc: Exception) -> Response:
    return GatewayError(404, f"no route {request.method} {request.url.path}; see /v1/models", code="not_found").response()


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return GatewayError(405, f"{request.method} is not allowed on {request.url.path}", code="method_not_allowed").response()


async def _event_stream(stream: Any, name: str, watch: StreamWatch | None = None) -> AsyncIterator[bytes]:
    """An ocilm stream as OpenAI server-sent events, ending with ``data: [DONE]``.

    One write per upstream read. An upstream failure mid-stream becomes an error event (the
    status line has already gone). If the client disconnects, Starlette cancels this
    generator, and closing it closes the upstream response at once.
    """
    encode = _ChunkEncoder(name)
    try:
        async for batch in stream._batches(plain=True):
            if watch is not None:
                batch = watch.see(batch)
            yield b"".join([encode(chunk) for chunk in batch])
        if watch is not None:
            await watch.finish()  # billed before the client hears the end
        yield b"data: [DONE]\n\n"
    except (OCIError, GatewayError) as exc:
        err = gateway_error_for(exc) if isinstance(exc, OCIError) else exc
        log.warning("stream for %s failed after it started: %s", name, exc)
        if watch is not None and isinstance(exc, OCIError):
            await _settle_quietly(watch, err.status)
        yield b"data: " + json.dumps(err.body()).encode() + b"\n\n"
    finally:
        if watch is not None:
            watch.abandon()  # a client that left: what it used is billed
        await stream.aclose()
        if watch is not None:
            watch.ended()


async def _settle_quietly(watch: StreamWatch, status: int) -> None:
    try:
        await watch.finish(status)
    except GatewayError:
        pass  # the store is down: the hold expires; the error event already tells the client


class _ChunkEncoder:
    """Serialises a stream's chunks as SSE events under the gateway's model name.

    id, object, created and model are the same in every chunk of a stream, so their JSON is
    made once and only the changing fields are encoded per chunk.
    """

    _dumps = json.JSONEncoder(separators=(",", ":")).encode

    def __init__(self, name: str) -> None:
        self.name = name
        self.prefix: bytes | None = None
        self.text_prefix = b""
        self.stream_id: str | None = None

    def __call__(self, chunk: dict) -> bytes:
        if self.prefix is None or chunk["id"] != self.stream_id:
            self.stream_id = chunk["id"]
            head = {"id": chunk["id"], "object": chunk["object"], "created": chunk["created"], "model": self.name}
            self.prefix = b"data: " + self._dumps(head)[:-1].encode() + b',"choices":'
            self.text_prefix = self.prefix + b'[{"index":0,"delta":{"content":'
        choices = dict.__getitem__(chunk, "choices")
        usage_key = "usage" in chunk  # with include_usage every chunk carries "usage": null
        if len(choices) == 1 and (not usage_key or dict.__getitem__(chunk, "usage") is None):
            # Most chunks are one text delta: only the text needs encoding.
            choice = choices[0]
            delta = choice["delta"]
            if (choice["index"] == 0 and choice["finish_reason"] is None and choice["logprobs"] is None and len(delta) == 2
                    and delta["tool_calls"] is None and type(delta.get("content")) is str):  # fmt: skip
                return self.text_prefix + _encode_text(delta["content"]).encode() + (_TEXT_SUFFIX_USAGE if usage_key else _TEXT_SUFFIX)
        rest = self._dumps(choices)
        if "usage" in chunk:
            rest += ',"usage":' + self._dumps(dict.__getitem__(chunk, "usage"))
        return self.prefix + rest.encode() + b',"system_fingerprint":null}\n\n'


_encode_text = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
_TEXT_SUFFIX = b',"tool_calls":null},"finish_reason":null,"logprobs":null}],"system_fingerprint":null}\n\n'
_TEXT_SUFFIX_USAGE = b',"tool_calls":null},"finish_reason":null,"logprobs":null}],"usage":null,"system_fingerprint":null}\n\n'
