"""The agent front doors' routes: ``/v1/responses`` (Codex, the Agents SDK) and ``/v1/messages``
(Claude Code, the Anthropic SDK). Thin: read the body, map it with ``ocilm.doors``, call the chat
path through the router (so every OCI family, retries, fallbacks and deadlines apply), map the
reply back. Upstream failures before the first byte are HTTP errors in each door's envelope;
after it, the door's own failure event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .._errors import OCIError, ServiceUnavailableError
from ..doors import messages as anthropic
from ..doors import responses as openai_responses
from ._app import GatewayError, Router, _json_body, _while_connected, gateway_error_for

log = logging.getLogger("ocilm.gateway")
Handler = Callable[[Request], Awaitable[Response]]


def _anthropic_error(err: GatewayError) -> Response:
    headers = dict(err.headers)
    return JSONResponse(anthropic.error_body(err.status, err.message), status_code=err.status, headers=headers)


def _anthropic_status(exc: OCIError) -> GatewayError:
    mapped = gateway_error_for(exc)
    if isinstance(exc, ServiceUnavailableError):
        mapped.status = 529  # Anthropic's "overloaded"
    return mapped


def _failure_code(err: GatewayError) -> str:
    return {429: "rate_limit_exceeded", 504: "server_error"}.get(err.status, "server_error")


async def _relay(upstream: Any, model: str, start: list[bytes], feed: Callable[[Any], list[bytes]], finish: Callable[[], list[bytes]],
                 fail: Callable[[OCIError], list[bytes]], done: Callable[[], None]) -> AsyncIterator[bytes]:  # fmt: skip
    """A door's stream: its opening frames, one write per upstream read, its closing frames; an
    upstream failure after the start becomes the door's failure frames. Closes the upstream."""
    try:
        yield b"".join(start)
        async for batch in upstream._batches():
            frames = [frame for chunk in batch for frame in feed(chunk)]
            if frames:
                yield b"".join(frames)
        yield b"".join(finish())
        done()
    except OCIError as exc:
        log.warning("door stream for %s failed after it started: %s", model, exc)
        yield b"".join(fail(exc))
    finally:
        await upstream.aclose()


def door_routes(router: Router, guarded: Callable[..., Handler]) -> list[Route]:
    store = openai_responses.ResponseStore()

    async def responses(request: Request) -> Response:
        body = await _json_body(request)
        call = openai_responses.parse_request(body, store.get)
        router.deployments(call.model)  # 404 before anything else
        chat = dict(call.chat)
        messages = chat.pop("messages")
        if not call.stream:
            completion = await _while_connected(request, lambda: router.call(call.model, "completion", messages, stream=False, door=True, **chat))
            if body.get("store") is not False:
                store.put(call.response_id, openai_responses.history_after(call, completion))
            return JSONResponse(openai_responses.from_completion(call, completion))
        upstream = await _while_connected(request, lambda: router.call(call.model, "completion", messages, stream=True, door=True,
                                                                       stream_options={"include_usage": True}, **chat))  # fmt: skip
        machine = openai_responses.ResponsesStream(call)

        def stored() -> None:
            if body.get("store") is not False:
                store.put(call.response_id, openai_responses.history_after(call, machine.completion()))

        def failed(exc: OCIError) -> list[bytes]:
            err = gateway_error_for(exc)
            return machine.fail(_failure_code(err), err.message)

        events = _relay(upstream, call.model, machine.start(), machine.feed, machine.finish, failed, stored)
        return StreamingResponse(events, media_type="text/event-stream", headers={"cache-control": "no-cache"})

    async def messages(request: Request) -> Response:
        body = await _json_body(request)
        call = anthropic.parse_request(body)
        router.deployments(call.model)
        chat = dict(call.chat)
        chat_messages = chat.pop("messages")
        headers = {"request-id": call.message_id.replace("msg_", "req_", 1)}
        try:
            if not call.stream:
                completion = await _while_connected(request, lambda: router.call(call.model, "completion", chat_messages, stream=False, door=True, **chat))
                return JSONResponse(anthropic.from_completion(call, completion), headers=headers)
            upstream = await _while_connected(request, lambda: router.call(call.model, "completion", chat_messages, stream=True, door=True,
                                                                           stream_options={"include_usage": True}, **chat))  # fmt: skip
        except OCIError as exc:
            raise _AnthropicError(_anthropic_status(exc)) from None
        machine = anthropic.MessagesStream(call)

        def failed(exc: OCIError) -> list[bytes]:
            err = _anthropic_status(exc)
            return machine.fail(err.status, err.message)

        events = _relay(upstream, call.model, machine.start(), machine.feed, machine.finish_events, failed, lambda: None)
        return StreamingResponse(events, media_type="text/event-stream", headers={"cache-control": "no-cache", **headers})

    async def count_tokens(request: Request) -> Response:
        body = await _json_body(request)
        counted = anthropic.count_tokens(body)
        router.deployments(body.get("model"))
        return JSONResponse(counted)

    async def hello(request: Request) -> Response:
        return Response(status_code=200)

    def anthropic_guarded(handler: Handler) -> Handler:
        inner = guarded(handler, _anthropic_error)

        async def endpoint(request: Request) -> Response:
            try:
                return await inner(request)
            except _AnthropicError as err:
                return _anthropic_error(err.error)

        return endpoint

    return [
        Route("/v1/responses", guarded(responses), methods=["POST"]),
        Route("/responses", guarded(responses), methods=["POST"]),
        Route("/v1/messages", anthropic_guarded(messages), methods=["POST"]),
        Route("/v1/messages/count_tokens", anthropic_guarded(count_tokens), methods=["POST"]),
        Route("/", hello, methods=["HEAD", "GET"]),
        Route("/api/hello", hello, methods=["HEAD", "GET"]),
    ]


class _AnthropicError(Exception):
    """An upstream failure already mapped to Anthropic's status table (529 for overload)."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error

