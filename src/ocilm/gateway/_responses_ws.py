"""The Responses door's WebSocket mode (OpenAI's, which Codex uses with ``supports_websockets``):
one connection, a ``response.create`` text frame per response, the stream's events sent back as
JSON text frames, responses one after another.

One more door onto the same stages, not a copy: each frame becomes an HTTP-shaped request to the
very endpoint ``POST /v1/responses`` runs (authentication, limits, budgets, guardrails, routing,
metering, the spend log and the access line), with ``stream: true``; the SSE events it produces
are re-framed (each ``data:`` payload is one text frame), never parsed and encoded again. A caller
that leaves cancels the upstream call as it does over HTTP. What the connection adds is its own
memory: a response made on it can be continued by ``previous_response_id`` with ``store: false``
(kept for this connection only, and forgotten when a continuation of it fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from types import SimpleNamespace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from ._errors import GatewayError
from ._http import MAX_BODY_BYTES, body_then

MAX_FRAME_BYTES = MAX_BODY_BYTES + 64 * 1024  # a frame is bounded as a body is (what uvicorn accepts at most)
IDLE_SECONDS = 300.0  # a connection with no frame for this long is closed
LIFETIME_SECONDS = 3600.0  # OpenAI's limit: a connection older than this is closed after its current response
MAX_QUEUED = 8  # frames waiting behind the running response
MAX_REMEMBERED = 64  # responses a connection keeps for previous_response_id
MAX_REMEMBERED_CHARS = 32 * 1024 * 1024
# What ``ocilm serve`` asks of uvicorn for this mode: a frame bounded as an HTTP body is, and no
# permessage-deflate. Compressing each event cost more CPU than the rest of the turn's relay
# (bench/websocket_turn.py: +58% over the same turn as SSE with it, +10% without); the events go
# out as the SSE stream's bytes do, uncompressed.
WEBSOCKET_SERVER_OPTIONS = {"ws_max_size": MAX_FRAME_BYTES, "ws_per_message_deflate": False}
MAX_CONNECTIONS_PER_KEY = 32  # open WebSocket connections a key (or the master key) may hold on one worker

Endpoint = Callable[[Request], Awaitable[Response]]


class ConnectionMemory:
    """What one connection keeps for ``previous_response_id``: each response's conversation (the
    translated door's chat history, or the pass-through's input and output items), the most recent
    first to stay, bounded by count and size."""

    def __init__(self) -> None:
        self._turns: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self.chars = 0

    def __contains__(self, response_id: object) -> bool:
        return isinstance(response_id, str) and response_id in self._turns

    def get(self, response_id: Any) -> Any:
        found = self._turns.get(response_id)
        return None if found is None else found[0]

    def put(self, response_id: str, conversation: Any) -> None:
        size = len(json.dumps(conversation, default=str))
        self.evict(response_id)
        if size > MAX_REMEMBERED_CHARS:
            return
        self._turns[response_id] = (conversation, size)
        self.chars += size
        while len(self._turns) > MAX_REMEMBERED or self.chars > MAX_REMEMBERED_CHARS:
            self.evict(next(iter(self._turns)))

    def evict(self, response_id: Any) -> None:
        found = self._turns.pop(response_id, None)
        if found is not None:
            self.chars -= found[1]


def sse_payloads(chunk: bytes) -> Iterator[str]:
    """The ``data:`` payload of each SSE frame in ``chunk`` (a relay writes whole frames)."""
    for frame in chunk.split(b"\n\n"):
        start = frame.find(b"data: ")
        if start == 0 or (start > 0 and frame[start - 1 : start] == b"\n"):
            yield frame[start + 6 :].decode("utf-8")


def error_event(status: int, error: dict[str, Any]) -> str:
    """OpenAI's WebSocket error event: the HTTP status the request would have had, and its error."""
    return json.dumps({"type": "error", "status": status, "error": error}, separators=(",", ":"))


def _socket_error(payload: str) -> str:
    """A stream's own error event (SSE's shape: code and message at the top) in the socket's shape
    (the HTTP status and an ``error`` object); any other event as it is."""
    event = json.loads(payload)
    if event.get("type") != "error" or isinstance(event.get("error"), dict):
        return payload
    return error_event(int(event.get("status") or 500), {"type": "api_error", "code": event.get("code"), "message": event.get("message"),
                                                        "param": event.get("param")})  # fmt: skip


_FAILURES = ('"type":"response.failed"', '"type": "response.failed"', '"type":"error"', '"type": "error"')


def _failed(payload: str) -> bool:
    head = payload[:48]  # every event names its type first
    return any(kind in head for kind in _FAILURES)


class _Connection:
    """One accepted socket: a reader that queues frames (and notices the caller leave), and the
    responses run one after another."""

    def __init__(self, websocket: WebSocket, endpoint: Endpoint, route_path: str) -> None:
        self.websocket, self.endpoint, self.route_path = websocket, endpoint, route_path
        self.frames: asyncio.Queue[str | None] = asyncio.Queue()
        self.gone = asyncio.Event()
        self.memory = ConnectionMemory()
        self.opened = time.monotonic()
        self.overflow = False

    async def read(self) -> None:
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    text = ""  # a binary frame: answered with an error, in order
                if self.frames.qsize() >= MAX_QUEUED:
                    self.overflow = True
                    break
                self.frames.put_nowait(text)
        finally:
            self.gone.set()
            self.frames.put_nowait(None)

    async def serve(self) -> None:
        while not self.gone.is_set() or not self.frames.empty():
            try:
                text = await asyncio.wait_for(self.frames.get(), IDLE_SECONDS)
            except asyncio.TimeoutError:
                await self._close(1000, "idle")
                return
            if text is None:
                if self.overflow:
                    await self._close(1008, f"at most {MAX_QUEUED} response.create frames may wait behind a running response")
                return
            await self.turn(text)
            if time.monotonic() - self.opened > LIFETIME_SECONDS:
                await self._close(1000, "connection lifetime reached; open a new one")
                return

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.websocket.close(code=code, reason=reason[:120])

    async def _send(self, text: str) -> None:
        if not self.gone.is_set():
            await self.websocket.send_text(text)

    async def turn(self, text: str) -> None:
        """One ``response.create``: the HTTP endpoint's stream, frame by frame."""
        if len(text.encode("utf-8")) > MAX_BODY_BYTES:
            await self._send(error_event(413, {"type": "invalid_request_error", "code": "frame_too_large", "param": None,
                                               "message": f"a frame is at most {MAX_BODY_BYTES} bytes"}))  # fmt: skip
            return
        try:
            frame = json.loads(text) if text else None
        except ValueError:
            frame = None
        if not isinstance(frame, dict) or frame.get("type") != "response.create":
            await self._send(error_event(400, {"type": "invalid_request_error", "code": "invalid_event", "param": "type",
                                               "message": "expected a JSON text frame {\"type\": \"response.create\", ...the create body}"}))  # fmt: skip
            return
        body = {k: v for k, v in frame.items() if k != "type"}
        if body.pop("background", None):
            await self._send(error_event(400, {"type": "invalid_request_error", "code": "invalid_value", "param": "background",
                                               "message": "background: not available in WebSocket mode; responses stream on the socket"}))  # fmt: skip
            return
        body.pop("stream", None)  # always streamed back on the socket
        body["stream"] = True
        previous = body.get("previous_response_id")
        response = await self.endpoint(self._request(json.dumps(body).encode("utf-8")))
        failed = await self._relay(response)
        if failed and previous in self.memory:
            self.memory.evict(previous)  # a continuation that failed: the client sends the whole input next time

    def _request(self, body: bytes) -> Request:
        scope = self.websocket.scope
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        http_scope = {
            "type": "http", "asgi": scope.get("asgi", {}), "http_version": "1.1", "method": "POST",
            "scheme": "https" if scope.get("scheme") == "wss" else "http", "path": scope["path"], "raw_path": scope.get("raw_path"),
            "query_string": b"", "root_path": scope.get("root_path", ""), "headers": headers, "client": scope.get("client"),
            "server": scope.get("server"), "app": scope.get("app"), "route": SimpleNamespace(path=self.route_path),
            "state": {**scope.get("state", {}), "connection": self.memory, "transport": "websocket"},
        }  # fmt: skip
        async def when_gone() -> dict[str, Any]:
            await self.gone.wait()
            return {"type": "http.disconnect"}

        return Request(http_scope, body_then(body, when_gone))

    async def _relay(self, response: Response) -> bool:
        """Send what the endpoint answered; True when the turn failed."""
        if not isinstance(response, StreamingResponse):
            try:
                answer = json.loads(bytes(response.body))
            except ValueError:
                answer = {}
            error = answer.get("error") if isinstance(answer, dict) else None
            if response.status_code >= 400 or isinstance(error, dict):
                await self._send(error_event(response.status_code, error if isinstance(error, dict) else {"message": "request failed"}))
                return True
            await self._send(json.dumps(answer, separators=(",", ":")))
            return False
        failed = False

        async def pump() -> None:
            nonlocal failed
            async for chunk in response.body_iterator:
                for payload in sse_payloads(chunk if isinstance(chunk, bytes) else str(chunk).encode()):
                    if _failed(payload):
                        failed = True
                        payload = _socket_error(payload)
                    await self.websocket.send_text(payload)

        sending = asyncio.ensure_future(pump())
        leaving = asyncio.ensure_future(self.gone.wait())
        try:
            await asyncio.wait({sending, leaving}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            leaving.cancel()
            if not sending.done():  # the caller left: the stream is cancelled (and billed for what it sent), as over HTTP
                sending.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError):
                await sending
        return failed


def websocket_endpoint(endpoint: Endpoint, route_path: str, open_per_key: dict[str, int]) -> Callable[[WebSocket], Awaitable[None]]:
    """The WebSocket mode of a Responses route whose HTTP endpoint is ``endpoint``; ``open_per_key``
    counts each key's open connections, shared by every path the mode is served on."""

    async def serve(websocket: WebSocket) -> None:
        gate = websocket.app.state.gate
        try:
            caller = await gate.caller(websocket.headers)
        except GatewayError as err:  # refused at the handshake, as the HTTP door refuses (401, 503)
            await _deny(websocket, err)
            return
        owner = caller.token or "master"
        if open_per_key.get(owner, 0) >= MAX_CONNECTIONS_PER_KEY:
            await _deny(websocket, GatewayError(429, f"at most {MAX_CONNECTIONS_PER_KEY} WebSocket connections a key on one worker",
                                                kind="rate_limit_error", code="too_many_connections", headers={"retry-after": "1"}))  # fmt: skip
            return
        open_per_key[owner] = open_per_key.get(owner, 0) + 1
        try:
            await websocket.accept()
            connection = _Connection(websocket, endpoint, route_path)
            reader = asyncio.ensure_future(connection.read())
            try:
                await connection.serve()
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
        finally:
            open_per_key[owner] -= 1
            if not open_per_key[owner]:
                del open_per_key[owner]

    return serve


async def _deny(websocket: WebSocket, err: GatewayError) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(err.response())
    else:
        await websocket.close(code=1008, reason=err.message[:120])
