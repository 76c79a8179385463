"""The gateway: OpenAI's HTTP API in front of OCI models, as a small Starlette app."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._client import AsyncClient
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
from ..formats._common import CHAT_PARAMS
from ._config import Deployment, GatewayConfig

log = logging.getLogger("ocilm.gateway")
MAX_BODY_BYTES = 8 * 1024 * 1024
CHAT_REQUEST_KEYS = (CHAT_PARAMS - {"extra_body"}) | {"model", "messages", "stream", "stream_options"}
EMBED_REQUEST_KEYS = frozenset({"model", "input", "encoding_format", "dimensions", "user", "input_type", "truncate"})
_FALLBACK_ERRORS = (RateLimitError, InternalServerError, APIConnectionError, APIResponseValidationError)


class HTTPError(Exception):
    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code, self.headers = status, message, kind, param, code, headers or {}

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def http_error_for(exc: OCIError) -> HTTPError:
    """Map an ocilm error to the status an OpenAI client should see."""
    upstream = exc.code is not None or exc.opc_request_id is not None
    if isinstance(exc, APITimeoutError):
        return HTTPError(504, f"upstream OCI timed out: {exc.message}", kind="timeout_error", code="upstream_timeout")
    if isinstance(exc, (APIConnectionError, APIResponseValidationError)):
        return HTTPError(502, f"upstream OCI failed: {exc.message}", kind="api_error", code="upstream_error")
    if isinstance(exc, RateLimitError):
        headers = {"retry-after": str(max(1, round(exc.retry_after)))} if exc.retry_after is not None else {}
        return HTTPError(429, exc.message, kind="rate_limit_error", code="rate_limited", headers=headers)
    if isinstance(exc, ConfigurationError):
        return HTTPError(500, f"gateway configuration problem: {exc.message}", kind="server_error")
    if isinstance(exc, (AuthenticationError, PermissionDeniedError)) and upstream:
        return HTTPError(502, f"OCI refused the gateway's credentials: {exc.message}", kind="api_error", code="upstream_auth")
    if isinstance(exc, NotFoundError) and upstream:
        return HTTPError(502, f"OCI could not find the model behind this name: {exc.message}", kind="api_error", code="upstream_not_found")
    if exc.status_code is not None and exc.status_code >= 500:
        return HTTPError(502, f"upstream OCI error: {exc.message}", kind="api_error", code="upstream_error")
    status = exc.status_code if exc.status_code and 400 <= exc.status_code < 500 else 400
    return HTTPError(status, exc.message, param=exc.param, code=exc.code)


class Router:
    """Picks deployments for a model name: shuffled, falling back to the next on failure."""

    def __init__(self, config: GatewayConfig, client: AsyncClient) -> None:
        self.config = config
        self.client = client

    def deployments(self, name: Any) -> list[Deployment]:
        if not isinstance(name, str) or not name:
            raise HTTPError(400, "model: required, the name of a model this gateway serves", param="model")
        found = self.config.deployments.get(name)
        if not found:
            raise HTTPError(404, f"model {name!r} not found; this gateway serves: {', '.join(self.config.model_names)}",
                            param="model", code="model_not_found")  # fmt: skip
        return random.sample(found, len(found))

    async def call(self, name: Any, method: str, *args: Any, **params: Any) -> Any:
        last: OCIError | None = None
        for deployment in self.deployments(name):
            try:
                return await getattr(self.client, method)(deployment.model, *args, **{**deployment.params, **params})
            except _FALLBACK_ERRORS as exc:
                log.warning("%s: %s failed (%s), trying the next deployment", name, deployment.place, type(exc).__name__)
                last = exc
        assert last is not None
        raise last


def _authorized(request: Request, master_key: str | None) -> bool:
    if master_key is None:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(hashlib.sha256(given.strip().encode()).digest(), hashlib.sha256(master_key.encode()).digest())


async def _json_body(request: Request) -> dict:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise HTTPError(413, f"request body too large: at most {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > MAX_BODY_BYTES:
            raise HTTPError(413, f"request body too large: at most {MAX_BODY_BYTES} bytes")
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise HTTPError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise HTTPError(400, "request body must be a JSON object")
    return payload


def _check_keys(payload: dict, allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise HTTPError(400, f"unknown {what} parameter(s): {', '.join(unknown)}", param=unknown[0])


def create_app(config: GatewayConfig, *, client: AsyncClient | None = None) -> Starlette:
    """The gateway as an ASGI app (one pooled upstream client per process)."""
    upstream = client or AsyncClient()
    router = Router(config, upstream)
    created = int(time.time())

    def guarded(handler):
        async def endpoint(request: Request) -> Response | EventStreamResponse:
            if not _authorized(request, config.master_key):
                return HTTPError(401, "missing or wrong API key: send 'Authorization: Bearer <master key>'",
                                 kind="authentication_error", code="invalid_api_key").response()  # fmt: skip
            try:
                return await handler(request)
            except HTTPError as err:
                return err.response()
            except OCIError as exc:
                mapped = http_error_for(exc)
                if mapped.status >= 500:
                    log.warning("%s %s -> %d: %s", request.method, request.url.path, mapped.status, mapped.message)
                return mapped.response()

        return endpoint

    async def chat_completions(request: Request) -> Response | EventStreamResponse:
        payload = await _json_body(request)
        _check_keys(payload, CHAT_REQUEST_KEYS, "chat")
        name = payload.pop("model", None)
        router.deployments(name)  # 404 before anything else
        messages = payload.pop("messages", None)
        stream = payload.pop("stream", False)
        if not isinstance(stream, bool):
            raise HTTPError(400, "stream: expected true or false", param="stream")
        if messages is None:
            raise HTTPError(400, "messages: required, a list of {role, content} objects", param="messages")
        result = await router.call(name, "completion", messages, stream=stream, **payload)
        if not stream:
            result["model"] = name
            return JSONResponse(result, headers=_request_id_header(result.opc_request_id))
        return EventStreamResponse(result, name)

    async def embeddings(request: Request) -> Response:
        payload = await _json_body(request)
        _check_keys(payload, EMBED_REQUEST_KEYS, "embeddings")
        name = payload.pop("model", None)
        router.deployments(name)
        if "input" not in payload:
            raise HTTPError(400, "input: required, a string or a list of strings", param="input")
        result = await router.call(name, "embedding", payload.pop("input"), **payload)
        result["model"] = name
        return JSONResponse(result)

    async def models(request: Request) -> Response:
        data = [{"id": name, "object": "model", "created": created, "owned_by": "oci"} for name in config.model_names]
        return JSONResponse({"object": "list", "data": data})

    async def liveliness(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readiness(request: Request) -> Response:
        return JSONResponse({"status": "ready", "models": len(config.deployments)})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Objects made at start-up live as long as the process: keep the collector off them.
        gc.collect()
        gc.freeze()
        yield
        await upstream.aclose()

    routes = [
        Route("/v1/chat/completions", guarded(chat_completions), methods=["POST"]),
        Route("/chat/completions", guarded(chat_completions), methods=["POST"]),
        Route("/v1/embeddings", guarded(embeddings), methods=["POST"]),
        Route("/embeddings", guarded(embeddings), methods=["POST"]),
        Route("/v1/models", guarded(models), methods=["GET"]),
        Route("/models", guarded(models), methods=["GET"]),
        Route("/health/liveliness", liveliness, methods=["GET"]),
        Route("/health/readiness", readiness, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: _not_found, 405: _not_allowed})
    app.state.router = router
    return app


def _request_id_header(request_id: str | None) -> dict[str, str]:
    return {"opc-request-id": request_id} if request_id else {}


async def _not_found(request: Request, exc: Exception) -> Response:
    return HTTPError(404, f"no route {request.method} {request.url.path}; see /v1/models", code="not_found").response()


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return HTTPError(405, f"{request.method} is not allowed on {request.url.path}", code="method_not_allowed").response()


class EventStreamResponse:
    """Relays an ocilm stream as OpenAI server-sent events, ending with ``data: [DONE]``.

    Chunks go out as they arrive, one write per upstream read. A watcher task cancels the relay
    when the client disconnects, which closes the upstream call at once. An upstream failure
    mid-stream becomes an error event (the status line has already been sent).
    """

    def __init__(self, stream: Any, name: str) -> None:
        self.stream = stream
        self.encode = _ChunkEncoder(name)
        self.headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
        if stream.opc_request_id:
            self.headers.append((b"opc-request-id", stream.opc_request_id.encode("latin-1")))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        relay = asyncio.current_task()
        client_gone = False

        async def watch_disconnect() -> None:
            nonlocal client_gone
            while (await receive())["type"] != "http.disconnect":
                pass
            client_gone = True
            if relay is not None:
                relay.cancel()

        async def emit(batch: list) -> None:
            await send({"type": "http.response.body", "body": b"".join([self.encode(c) for c in batch]), "more_body": True})

        watcher = asyncio.ensure_future(watch_disconnect())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.headers})
            try:
                await self.stream.pump(emit)
                tail = b"data: [DONE]\n\n"
            except OCIError as exc:
                err = http_error_for(exc)
                payload = {"error": {"message": err.message, "type": err.kind, "param": None, "code": err.code}}
                tail = b"data: " + json.dumps(payload).encode() + b"\n\n"
            await send({"type": "http.response.body", "body": tail, "more_body": False})
        except asyncio.CancelledError:
            if not client_gone:
                raise
            if relay is not None and hasattr(relay, "uncancel"):
                relay.uncancel()  # the client left; there is no one to tell
        finally:
            watcher.cancel()
            await self.stream.aclose()


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
        if "usage" not in chunk and len(choices) == 1:
            # Most chunks are one text delta: only the text needs encoding.
            choice = choices[0]
            delta = choice["delta"]
            if (choice["index"] == 0 and choice["finish_reason"] is None and choice["logprobs"] is None and len(delta) == 2
                    and delta["tool_calls"] is None and type(delta.get("content")) is str):  # fmt: skip
                return self.text_prefix + _encode_text(delta["content"]).encode() + _TEXT_SUFFIX
        rest = self._dumps(choices)
        if "usage" in chunk:
            rest += ',"usage":' + self._dumps(dict.__getitem__(chunk, "usage"))
        return self.prefix + rest.encode() + b',"system_fingerprint":null}\n\n'


_encode_text = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
_TEXT_SUFFIX = b',"tool_calls":null},"finish_reason":null,"logprobs":null}],"system_fingerprint":null}\n\n'
