"""The gateway: OpenAI's HTTP API in front of OCI models, as a small Starlette app.

This module assembles the app from small pieces, each with one job: ``_http`` (bodies, the
caller's presence), ``governance`` (who calls, limits, budgets), ``_routing`` (which deployment
answers), ``_metering`` (the one metered path and stream relay every model route takes),
``_chat_stream`` (OpenAI's stream framing), ``_doors`` (Responses and Messages), ``_admin``
and ``console``. Routes depend downward only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .._client import AsyncClient
from .._errors import OCIError
from ..doors._common import DoorError
from ..formats._common import CHAT_PARAMS
from . import _pool
from ._cache import ResponseCache
from ._chat_stream import ChatFraming
from ._config import GatewayConfig, is_pattern
from ._errors import GatewayError
from ._guardrails import MAX_MODERATION_CHARS, Guardrails, moderate
from ._http import ClientGone, check_keys, json_body, request_id_header
from ._metering import Metered, SideTarget, relay
from ._routing import Router, check_health_forever, gateway_error_for
from ._startup import (
    LOOPBACK_HOSTS,
    limits_for,
    limits_refused,
    open_store,
    store_counts_limits,
    tracing_for,
)
from .governance._gate import Caller, Gate
from .governance._policy import Price
from .observability import Observer, RequestRecord

log = logging.getLogger("ocilm.gateway")
CHAT_REQUEST_KEYS = (CHAT_PARAMS - {"extra_body"}) | {"model", "messages", "stream", "stream_options", "fallbacks", "num_retries",
                                                      "disable_fallbacks", "guardrails", "cache"}
EMBED_REQUEST_KEYS = frozenset({"model", "input", "encoding_format", "dimensions", "user", "input_type", "truncate", "cache"})
MAX_EMBEDDING_INPUTS = 2048
RERANK_REQUEST_KEYS = frozenset({"model", "query", "documents", "top_n", "return_documents", "max_chunks_per_doc", "max_tokens_per_doc", "cache"})


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
    from ._ownership import ObjectHomes
    from ._platform import platform_routes
    from .console import console_routes
    from .console._sso import no_sso_session

    upstream = client or AsyncClient()
    limits = limits_for(config)
    router = Router(config, upstream, limits)
    created = int(time.time())
    settings = config.governance
    gate = Gate(config.master_key, hold_seconds=settings.hold_seconds if settings else 600.0, strict=settings.strict if settings else True,
                limits=limits, limits_refused=limits_refused(config, workers), leases=settings.leases if settings else True)  # fmt: skip
    seen = config.observability
    observer = Observer(metrics=seen.metrics, access_log=seen.access_log, log_prompts=seen.log_prompts, tracing=tracing_for(seen.otel),
                        access_stream=access_stream)  # fmt: skip
    gate.observer = observer
    limits.on_unlimited = lambda: observer.health(served_unlimited=1)
    if seen.budget_alert_webhooks:
        from .observability._alerts import BudgetAlerts

        gate.alerts = BudgetAlerts(seen.budget_alert_webhooks, seen.budget_alert_thresholds)
    guardrails = Guardrails(config.guardrails, upstream, observer) if config.guardrails else None
    cache = ResponseCache(config.cache, observer=observer) if config.cache is not None else None
    metered = Metered(gate, router, observer, guardrails, cache)
    from ._model_catalog import ModelCatalog

    catalog = metered.catalog = ModelCatalog(config, upstream)  # OCI's ListModels: /v1/models' dates, on_retirement
    objects = ObjectHomes(gate)  # who owns each file and vector store: platform routes and the Responses pass-through alike
    sso = None
    if config.ui_sso is not None:
        from .console._sso import Sso

        sso = Sso(config.ui_sso)
    mcp_door = None
    if config.mcp_servers:
        from .mcp._door import McpDoor

        mcp_door = McpDoor(config.mcp_servers, config.mcp_aliases, metered, allowed_fails=config.routing.allowed_fails,
                           cooldown=config.routing.cooldown_time)  # fmt: skip
    router.observer = observer

    def guarded(handler: Callable[[Request], Awaitable[Response]], render: Callable[[GatewayError], Response] = GatewayError.response,
                map_error: Callable[[OCIError], GatewayError] = gateway_error_for) -> Callable[[Request], Awaitable[Response]]:  # fmt: skip
        """Authenticate, run, and answer every failure as an error body: ``map_error`` picks the
        status for an upstream failure, ``render`` the envelope (OpenAI's by default). Every
        request's record is closed when its reply ends (a stream's, at its last event)."""

        async def endpoint(request: Request) -> Response:
            route = request.scope["route"].path.removeprefix("/v1").lstrip("/")
            record = request.state.record = observer.start(route, request.method)
            record.transport = request.scope.get("state", {}).get("transport", "http")
            try:
                response = await answer(request, record)
            finally:
                observer.leave(record)
            record.status = record.status or response.status_code
            response.headers["x-litellm-call-id"] = record.request_id  # the id of its spend-log row and access line
            if not isinstance(response, StreamingResponse):
                observer.finish(record)
            elif not record.closes_itself:
                response.body_iterator = observer.follow(record, response.body_iterator)
            return response

        async def answer(request: Request, record: RequestRecord) -> Response:
            try:
                request.state.caller = await gate.caller(request.headers)
                request.state.tags = header_tags(request.headers.get("x-litellm-tags"))
                return await handler(request)
            except GatewayError as err:
                record.refused(err.code)
                return render(err)
            except DoorError as err:
                return render(GatewayError(err.status, err.message, param=err.param, code=err.code))
            except ClientGone:
                record.status = 499
                return Response(status_code=499)  # nobody is listening; uvicorn drops it
            except OCIError as exc:
                mapped = map_error(exc)
                if mapped.status >= 500:
                    log.warning("%s %s -> %d: %s", request.method, request.url.path, mapped.status, exc)
                return render(mapped)
            except Exception:  # a bug: answered in the route's envelope, logged once, its record closed
                log.exception("%s %s failed", request.method, request.url.path)
                record.status = 500
                return render(GatewayError(500, "the gateway failed on this request; see its log", kind="server_error",
                                           code="internal_error"))  # fmt: skip

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
        payload = await json_body(request)
        check_keys(payload, CHAT_REQUEST_KEYS, "chat")
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
        metadata = payload.get("metadata")
        if isinstance(metadata, dict) and "tags" in metadata:  # LiteLLM's routing tags: the router's, not OCI's metadata
            metadata = dict(metadata)
            request.state.tags = checked_tags(metadata.pop("tags"))
            payload["metadata"] = metadata or None
            if payload["metadata"] is None:
                del payload["metadata"]
        request.state.guardrails_asked = payload.pop("guardrails", None)
        retries = payload.pop("num_retries", None)
        if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10):
            raise GatewayError(400, "num_retries: expected a whole number from 0 to 10", param="num_retries")
        request.state.num_retries = retries
        disable = payload.pop("disable_fallbacks", False)
        if not isinstance(disable, bool):
            raise GatewayError(400, "disable_fallbacks: expected true or false", param="disable_fallbacks")
        fallbacks = payload.pop("fallbacks", None)
        if fallbacks is not None and not (isinstance(fallbacks, list) and len(fallbacks) <= 16 and all(
                isinstance(f, str) and config.resolve(f) in config.deployments for f in fallbacks)):  # fmt: skip
            raise GatewayError(400, "fallbacks: expected a list of at most 16 model names this gateway serves", param="fallbacks")
        chosen = [] if disable else [config.resolve(f) for f in fallbacks] if fallbacks is not None else None
        reply = await metered.call(request, "chat", name, "completion", messages, payload, stream=stream, fallbacks=chosen)
        result = reply.result
        if not stream:
            result["model"] = name
            return JSONResponse(result, headers={**request_id_header(result.opc_request_id), **reply.headers})
        return StreamingResponse(relay(reply, ChatFraming(name), name), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", **request_id_header(result.opc_request_id), **reply.headers})  # fmt: skip

    async def embeddings(request: Request) -> Response:
        payload = await json_body(request)
        check_keys(payload, EMBED_REQUEST_KEYS, "embeddings")
        name = payload.pop("model", None)
        router.deployments(name)
        if "input" not in payload:
            raise GatewayError(400, "input: required, a string or a list of strings", param="input")
        inputs = payload.pop("input")
        if isinstance(inputs, list) and len(inputs) > MAX_EMBEDDING_INPUTS:  # capped where it enters: per-input work follows
            raise GatewayError(400, f"input: at most {MAX_EMBEDDING_INPUTS} inputs per request (OpenAI's limit); got {len(inputs)}",
                               param="input", code="invalid_value")  # fmt: skip
        reply = await metered.call(request, "embeddings", name, "embedding", inputs, payload)
        result = reply.result
        result["model"] = name
        return JSONResponse(result, headers={**request_id_header(result.opc_request_id), **reply.headers})

    async def moderations(request: Request) -> Response:
        """OpenAI's moderations, answered by a guardrail (``model`` names it; else the first)."""
        payload = await json_body(request)
        check_keys(payload, frozenset({"model", "input"}), "moderations")
        if guardrails is None:
            raise GatewayError(404, "no guardrails are configured: /v1/moderations needs a guardrails: entry with guardrail: oci_guardrails",
                               code="not_found")  # fmt: skip
        name = payload.get("model")
        spec = guardrails.specs.get(name) if name is not None else next(iter(guardrails.specs.values()))
        if spec is None:
            raise GatewayError(404, f"model: no guardrail named {str(name)[:64]!r}; this gateway has: {', '.join(guardrails.specs)}",
                               param="model", code="model_not_found")  # fmt: skip
        inputs = payload.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if isinstance(inputs, list):
            inputs = [i.get("text") if isinstance(i, dict) and i.get("type") == "text" else i for i in inputs]
        if not isinstance(inputs, list) or not 1 <= len(inputs) <= 32 or not all(isinstance(i, str) and i for i in inputs):
            raise GatewayError(400, "input: expected a string, or a list of 1 to 32 strings or {type: text} parts", param="input")
        if any(len(i) > MAX_MODERATION_CHARS for i in inputs):
            raise GatewayError(400, f"input: each input is at most {MAX_MODERATION_CHARS} characters", param="input", code="invalid_value")
        caller: Caller = request.state.caller
        # a key restricted to models may use the guardrails it is given (its own, its team's, default_on) or names
        allowed = not caller.models or spec.name in caller.models or spec.name in caller.guardrails or spec.default_on
        price = Price(spec.input_cost_per_token or 0.0, 0.0, "config")
        tokens = sum(-(-len(i) // 4) for i in inputs)  # about four characters a token
        results, headers = await metered.side_call(request, "moderations", spec.name, lambda: moderate(guardrails, spec, inputs, request.state.record),
                                                   target=SideTarget(f"guardrail:{spec.name}", price), input_tokens=tokens, allowed=allowed)  # fmt: skip
        return JSONResponse({"id": f"modr-{uuid.uuid4().hex}", "model": spec.name, "results": results}, headers=headers)

    async def rerank(request: Request) -> Response:
        """LiteLLM's and Cohere's rerank (``/v1/rerank``, ``/rerank``, ``/v2/rerank``) on OCI's rerankText."""
        payload = await json_body(request)
        check_keys(payload, RERANK_REQUEST_KEYS, "rerank")
        name = payload.pop("model", None)
        router.deployments(name)
        for field in ("query", "documents"):
            if field not in payload:
                raise GatewayError(400, f"{field}: required", param=field)
        query = payload.pop("query")
        documents = payload.pop("documents")
        if not isinstance(documents, list) or not 1 <= len(documents) <= 1000:
            raise GatewayError(400, "documents: expected a list of 1 to 1000 strings or {text} objects", param="documents")
        reply = await metered.call(request, "rerank", name, "rerank", [query, documents], payload)
        result = dict(reply.result)
        result["model"] = name
        return JSONResponse(result, headers={**request_id_header(reply.result.opc_request_id), **reply.headers})

    def model_card(name: str) -> dict[str, Any]:
        card: dict[str, Any] = {"id": name, "object": "model", "created": created, "owned_by": "oci"}
        found = catalog.card(config.deployments.get(config.resolve(name)) or [])
        if found is not None:
            card["oci"] = found  # what OCI's catalogue says: its lifecycle and retirement dates
        return card

    def may_use(caller: Caller, name: str) -> bool:
        return not caller.models or name in caller.models or config.resolve(name) in caller.models

    async def models(request: Request) -> Response:
        caller: Caller = request.state.caller
        names = [name for name in config.model_names if may_use(caller, name)]  # a restricted key sees its own models
        if request.headers.get("anthropic-version"):  # an Anthropic client: its list shape
            from ..doors.messages import model_list

            named = [a for a in config.aliases if not is_pattern(a) and may_use(caller, a)]  # patterns are no model ids
            return JSONResponse(model_list(names + named, created))
        return JSONResponse({"object": "list", "data": [model_card(name) for name in names]})

    async def model(request: Request) -> Response:
        name = request.path_params["model"]
        router.deployments(name)  # 404 for a name it does not serve
        if not may_use(request.state.caller, name):  # as unknown as a name it does not serve
            raise GatewayError(404, f"model {name!r} not found; GET /v1/models lists the models this key may use",
                               param="model", code="model_not_found")  # fmt: skip
        return JSONResponse(model_card(name))

    async def deployments_health(request: Request) -> Response:
        """Each deployment's routing state (master key): in flight, cooling and until when,
        recent latency, failures this minute, the last error's kind."""
        if not request.state.caller.is_master:
            raise GatewayError(403, "GET /health/deployments needs the master key", kind="permission_error", code="admin_only")
        now = time.monotonic()
        out = []
        for group in config.deployments.values():
            for deployment in group:
                state = router.state.of(deployment.id)
                latency = state.mean_latency(now, config.routing.latency_ttl, False)
                out.append({"model_name": deployment.model_name, "model_id": deployment.id, "model": deployment.model, "place": deployment.place,
                            "order": deployment.order, "weight": deployment.weight, "in_flight": state.in_flight,
                            "cooling_down": state.cooling(now), "cooldown_remaining_s": round(max(0.0, state.cooldown_until - now), 3),
                            "cooldowns_in_a_row": state.cooldowns_in_a_row,
                            "recent_latency_ms": None if latency is None else round(latency * 1000, 3),
                            "failures_this_minute": len(state.failures), "last_error": state.last_error or None})  # fmt: skip
        return JSONResponse({"strategy": config.routing.strategy, "deployments": out})

    async def liveliness(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readiness(request: Request) -> Response:
        """Ready when the store answers (a stalled one within its deadline counts as down)."""
        store = None
        if gate.store is not None:
            up = await gate.store.ping()
            gate.store_answered(up)
            store = {"reachable": up}
        ready = store is None or store["reachable"]
        return JSONResponse({"status": "ready" if ready else "unavailable", "models": len(config.deployments), "store": store,
                             "rate_limits": limits.status()}, status_code=200 if ready else 503)  # fmt: skip

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # aiohttp closes a pooled connection as soon as its peer does; httpx needs the pruner.
        if settings is not None:
            gate.store = await open_store(settings)
            if store_counts_limits(config, workers):
                limits.limiter = gate.store.rate_limiter(config.rate_limit_window_seconds)
        shared = None
        if config.redis_url:  # the router's cooldowns and load, shared by replicas
            from ._routing_shared import SharedRouting

            shared = SharedRouting(config.redis_url, router.state)
            shared.start()
        await catalog.first_read()  # bounded: a catalogue that cannot be read changes nothing
        catalog_refresh = asyncio.ensure_future(catalog.refresh_forever())
        pruner = asyncio.ensure_future(_pool.prune_forever(lambda: _pool.httpx_client_of(upstream), _pool.PRUNE_EVERY))
        retention = None
        if gate.store is not None and settings is not None and settings.retention_seconds:
            from .governance._retention import sweep_forever

            retention = asyncio.ensure_future(sweep_forever(gate.store, settings.retention_seconds, settings.retention_interval))
        checks = asyncio.ensure_future(check_health_forever(router, config.health_check_interval)) if config.health_check_interval else None
        try:
            async with mcp_door.running() if mcp_door is not None else contextlib.nullcontext():
                yield
        finally:
            pruner.cancel()
            catalog_refresh.cancel()
            if retention is not None:
                retention.cancel()
            if checks is not None:
                checks.cancel()
            if shared is not None:
                await shared.close()
            await metered.background.close()  # background responses still running: settled at their worst case
            await gate.drain()  # spend of cancelled streams is still being written
            await limits.close()
            observer.close()
            if gate.alerts is not None:
                await gate.alerts.close()
            if cache is not None:
                await cache.close()
            if gate.store is not None:
                await gate.store.close()
            if client is None:  # ours to close; an injected client belongs to its caller
                await upstream.aclose()

    routes = [
        Route("/v1/chat/completions", guarded(chat_completions), methods=["POST"]),
        Route("/chat/completions", guarded(chat_completions), methods=["POST"]),
        Route("/v1/embeddings", guarded(embeddings), methods=["POST"]),
        Route("/embeddings", guarded(embeddings), methods=["POST"]),
        Route("/v1/moderations", guarded(moderations), methods=["POST"]),
        Route("/moderations", guarded(moderations), methods=["POST"]),
        Route("/v1/rerank", guarded(rerank), methods=["POST"]),
        Route("/rerank", guarded(rerank), methods=["POST"]),
        Route("/v2/rerank", guarded(rerank), methods=["POST"]),
        Route("/v1/models", guarded(models), methods=["GET"]),
        Route("/models", guarded(models), methods=["GET"]),
        Route("/metrics", _plain_errors(metrics), methods=["GET"]),
        Route("/v1/models/{model:path}", guarded(model), methods=["GET"]),
        Route("/models/{model:path}", guarded(model), methods=["GET"]),
        *door_routes(router, guarded, metered, config.responses_event_names, config.master_key, objects),
        *platform_routes(router, guarded, metered, objects, config.file_storage_quota_bytes),
        *admin_routes(gate, router, sso),
        *(sso.routes() if sso is not None else [Route("/ui/session", no_sso_session, methods=["GET"])]),
        *console_routes(),
        Route("/health/deployments", guarded(deployments_health), methods=["GET"]),
        Route("/health/liveliness", liveliness, methods=["GET"]),
        Route("/health/readiness", readiness, methods=["GET"]),
        *(mcp_door.routes(guarded) if mcp_door is not None else ()),
    ]
    middleware = []
    if sso is not None and config.master_key is not None:
        from starlette.middleware.sessions import SessionMiddleware

        from .console._sso import session_secret

        # a signed cookie (itsdangerous): the same secret on every replica, HttpOnly, SameSite=Lax
        middleware.append(Middleware(SessionMiddleware, secret_key=session_secret(config.master_key), session_cookie="ocilm_session",
                                     max_age=int(config.ui_sso.session_hours * 3600), same_site="lax", https_only=config.ui_sso.cookie_secure))  # fmt: skip
    if config.master_key is None:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts or LOOPBACK_HOSTS)))
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                    exception_handlers={404: _not_found, 405: _not_allowed})  # fmt: skip
    app.state.router = router
    app.state.gate = gate
    return app


def header_tags(value: str | None) -> tuple[str, ...]:
    """``x-litellm-tags: a,b`` (LiteLLM's header for routing tags)."""
    if not value:
        return ()
    return checked_tags([part.strip() for part in value.split(",") if part.strip()])


def checked_tags(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > 32 or not all(isinstance(t, str) and 0 < len(t) <= 64 and t.isprintable() for t in value):
        raise GatewayError(400, "tags: expected at most 32 tags, each a string of 1 to 64 printable characters", param="tags")
    return tuple(value)


def _plain_errors(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except GatewayError as err:
            return err.response()

    return endpoint


async def _not_found(request: Request, exc: Exception) -> Response:
    return GatewayError(404, f"no route {request.method} {request.url.path}; see /v1/models", code="not_found").response()


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return GatewayError(405, f"{request.method} is not allowed on {request.url.path}", code="method_not_allowed").response()
