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
from ._app import (
    GatewayError,
    Metered,
    Router,
    Upstream,
    _json_body,
    _settle_quietly,
    gateway_error_for,
)

log = logging.getLogger("ocilm.gateway")
Handler = Callable[[Request], Awaitable[Response]]


def _anthropic_error(err: GatewayError) -> Response:
    return JSONResponse(anthropic.error_body(err.status, err.message), status_code=err.status, headers=err.headers)


def _anthropic_status(exc: OCIError) -> GatewayError:
    """The gateway's mapping, with Anthropic's 529 for an overloaded upstream."""
    mapped = gateway_error_for(exc)
    if isinstance(exc, ServiceUnavailableError):
        mapped.status = 529
    return mapped


async def _door_call(metered: Metered, request: Request, model: str, chat: dict[str, Any], stream: bool) -> Upstream:
    """The chat call behind a door request (a stream asks for usage: both doors report it)."""
    params = dict(chat)
    messages = params.pop("messages")
    if stream:
        params["stream_options"] = {"include_usage": True}
    route = "responses" if request.url.path.endswith("responses") else "messages"
    return await metered.call(request, route, model, "completion", messages, params, stream=stream, door=True)


async def _relay(upstream: Upstream, model: str, start: list[bytes], feed: Callable[[Any], list[bytes]], finish: Callable[[], list[bytes]],
                 fail: Callable[[OCIError], list[bytes]], done: Callable[[], None]) -> AsyncIterator[bytes]:  # fmt: skip
    """A door's stream: its opening frames, one write per upstream read, its closing frames; an
    upstream failure after the start becomes the door's failure frames. Closes the upstream and
    settles what the stream cost (also when the client leaves early)."""
    stream, watch = upstream.result, upstream.watch
    try:
        yield b"".join(start)
        async for batch in stream._batches(plain=True):
            if watch is not None:
                watch.see(batch)
            frames = [frame for chunk in batch for frame in feed(chunk)]
            if frames:
                yield b"".join(frames)
        if watch is not None:
            await watch.finish()
        yield b"".join(finish())
        done()
    except OCIError as exc:
        log.warning("door stream for %s failed after it started: %s", model, exc)
        if watch is not None:
            await _settle_quietly(watch, gateway_error_for(exc).status)
        yield b"".join(fail(exc))
    except GatewayError as err:  # the spend could not be recorded: the store is down
        yield b"".join(fail(ServiceUnavailableError(err.message)))
    finally:
        if watch is not None:
            watch.abandon()
        await stream.aclose()
        if watch is not None:
            watch.ended()


def door_routes(router: Router, guarded: Callable[..., Handler], metered: Metered) -> list[Route]:
    store = openai_responses.ResponseStore()

    async def responses(request: Request) -> Response:
        body = await _json_body(request)
        call = openai_responses.parse_request(body, store.get)
        router.deployments(call.model)  # 404 before anything else
        keep = body.get("store") is not False  # store: false means the response is not kept
        upstream = await _door_call(metered, request, call.model, call.chat, call.stream)
        reply = upstream.result
        if not call.stream:
            if keep:
                store.put(call.response_id, openai_responses.history_after(call, reply))
            return JSONResponse(openai_responses.from_completion(call, reply), headers=upstream.headers)
        machine = openai_responses.ResponsesStream(call)

        def stored() -> None:
            if keep:
                store.put(call.response_id, openai_responses.history_after(call, machine.completion()))

        def failed(exc: OCIError) -> list[bytes]:
            err = gateway_error_for(exc)
            return machine.fail("rate_limit_exceeded" if err.status == 429 else "server_error", err.message)

        events = _relay(upstream, call.model, machine.start(), machine.feed, machine.finish, failed, stored)
        return StreamingResponse(events, media_type="text/event-stream", headers={"cache-control": "no-cache", **upstream.headers})

    async def messages(request: Request) -> Response:
        body = await _json_body(request)
        call = anthropic.parse_request(body)
        router.deployments(call.model)
        headers = {"request-id": call.message_id.replace("msg_", "req_", 1)}
        upstream = await _door_call(metered, request, call.model, call.chat, call.stream)
        if not call.stream:
            return JSONResponse(anthropic.from_completion(call, upstream.result), headers={**headers, **upstream.headers})
        machine = anthropic.MessagesStream(call)

        def failed(exc: OCIError) -> list[bytes]:
            err = _anthropic_status(exc)
            return machine.fail(err.status, err.message)

        events = _relay(upstream, call.model, machine.start(), machine.feed, machine.finish_events, failed, lambda: None)
        return StreamingResponse(events, media_type="text/event-stream", headers={"cache-control": "no-cache", **headers, **upstream.headers})

    async def count_tokens(request: Request) -> Response:
        body = await _json_body(request)
        counted = anthropic.count_tokens(body)
        router.deployments(body.get("model"))
        return JSONResponse(counted)

    async def hello(request: Request) -> Response:
        return Response(status_code=200)

    return [
        Route("/v1/responses", guarded(responses), methods=["POST"]),
        Route("/responses", guarded(responses), methods=["POST"]),
        Route("/v1/messages", guarded(messages, _anthropic_error, _anthropic_status), methods=["POST"]),
        Route("/v1/messages/count_tokens", guarded(count_tokens, _anthropic_error, _anthropic_status), methods=["POST"]),
        Route("/", hello, methods=["HEAD", "GET"]),
        Route("/api/hello", hello, methods=["HEAD", "GET"]),
    ]
