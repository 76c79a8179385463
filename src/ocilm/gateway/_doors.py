"""The agent front doors' routes: ``/v1/responses`` (Codex, the Agents SDK) and ``/v1/messages``
(Claude Code, the Anthropic SDK). Thin: read the body, map it with ``ocilm.doors``, call the chat
path through the one metered path (so every OCI family, retries, fallbacks, deadlines, limits and
budgets apply), map the reply back. Upstream failures before the first byte are HTTP errors in
each door's envelope; after it, the door's own failure event.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute

from .._errors import OCIError, ServiceUnavailableError
from ..doors import messages as anthropic
from ..doors import responses as openai_responses
from ..doors._common import estimate_tokens
from ._compaction import MAX_SUMMARY_TOKENS, SUMMARY_PROMPT, Sealer, compaction_object, expand
from ._conversations import Conversations
from ._errors import GatewayError
from ._http import check_keys, json_body
from ._metering import Metered, Upstream, relay
from ._responses_api import ResponseHomes, pass_through, passes_through, stored_response_routes
from ._responses_ws import ConnectionMemory, websocket_endpoint
from ._routing import Router, gateway_error_for
from ._warm_up import as_items
from ._warm_up import warm_up as _warm_up

Handler = Callable[[Request], Awaitable[Response]]
COMPACT_KEYS = frozenset({"model", "input", "instructions", "previous_response_id", "guardrails"})


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
    if getattr(request.state, "cache_asked", None) is not None:  # the door's own body says what the cache may do
        params["cache"] = request.state.cache_asked
    route = "responses" if request.url.path.endswith("responses") else "messages"
    return await metered.call(request, route, model, "completion", messages, params, stream=stream, door=True)


def _owner(request: Request) -> str:
    """Who a stored response belongs to: the caller's team, or its key (the master key its own)."""
    caller = request.state.caller
    return f"team:{caller.team_id}" if caller.team_id else f"key:{caller.token or '(master)'}"


class _DoorFraming:
    """How ``relay`` writes a door's stream: the door's stream machine frames each chunk; the
    door says how it finishes and how it reports a failure after the start."""

    def __init__(self, machine: Any, finish: Callable[[], list[bytes]], fail: Callable[[GatewayError, OCIError | None], list[bytes]]) -> None:
        self.machine, self._finish, self._fail = machine, finish, fail

    def start(self) -> bytes:
        return b"".join(self.machine.start())

    def batch(self, chunks: list[Any]) -> bytes:
        feed = self.machine.feed
        return b"".join([frame for chunk in chunks for frame in feed(chunk)])

    def finish(self) -> bytes:
        return b"".join(self._finish())

    def fail(self, err: GatewayError, exc: OCIError | None) -> bytes:
        return b"".join(self._fail(err, exc))


def _responses_framing(machine: openai_responses.ResponsesStream) -> _DoorFraming:
    def fail(err: GatewayError, exc: OCIError | None) -> list[bytes]:
        return machine.fail("rate_limit_exceeded" if err.status == 429 else "server_error", err.message)

    return _DoorFraming(machine, machine.finish, fail)


def _messages_framing(machine: anthropic.MessagesStream) -> _DoorFraming:
    def fail(err: GatewayError, exc: OCIError | None) -> list[bytes]:
        mapped = _anthropic_status(exc) if exc is not None else err
        return machine.fail(mapped.status, mapped.message)

    return _DoorFraming(machine, machine.finish_events, fail)


def door_routes(router: Router, guarded: Callable[..., Handler], metered: Metered, event_names: str = "openai",
                master_key: str | None = None, objects: Any = None) -> list[BaseRoute]:  # fmt: skip
    conversations = Conversations(metered.gate)
    homes = ResponseHomes(metered.gate)
    sealer = Sealer(master_key)  # compaction items, sealed under a key derived from the master key

    async def history_of(request: Request, previous: Any, owner: str) -> list[dict] | None:
        """A previous response's conversation: the connection's own (WebSocket mode), else the store's."""
        local: ConnectionMemory | None = getattr(request.state, "connection", None)
        if local is not None and previous in local:
            return local.get(previous)  # type: ignore[no-any-return]
        return await conversations.get(previous, owner) if previous is not None else None

    async def conversation_of(request: Request, body: dict[str, Any]) -> tuple[openai_responses.ResponsesCall, bool]:
        """The request's conversation as chat (compaction items opened, a previous response's
        history first), and whether its model is served through /openai/v1."""
        owner = _owner(request)
        if "input" in body:
            body["input"] = expand(body["input"], sealer, owner)
        through = passes_through(router.deployments(body.get("model")))
        previous = body.get("previous_response_id")
        local: ConnectionMemory | None = getattr(request.state, "connection", None)
        if through and previous is not None:  # the pass-through's own items are Responses items: sent again as input
            if local is None or previous not in local:
                raise GatewayError(400, "previous_response_id: a response kept by OCI cannot be read back here; send its input",
                                   param="previous_response_id")  # fmt: skip
            body = {**body, "input": [*local.get(previous), *as_items(body.get("input", []))], "previous_response_id": None}
            previous = None
        history = await history_of(request, previous, owner) if previous is not None else None
        call = openai_responses.parse_request(body, lambda response_id: history if response_id == previous else None)
        return call, through

    async def compact(request: Request) -> Response:
        """POST /v1/responses/compact: the conversation summarised by its model (billed as any call),
        returned as one sealed compaction item."""
        body = await json_body(request)
        check_keys(body, COMPACT_KEYS, "compact")
        request.state.guardrails_asked = body.pop("guardrails", None)
        body.setdefault("input", [])
        call, _ = await conversation_of(request, body)
        messages = [*call.chat["messages"], {"role": "user", "content": SUMMARY_PROMPT}]
        upstream = await metered.call(request, "responses.compact", call.model, "completion", messages, {"max_tokens": MAX_SUMMARY_TOKENS},
                                      door=True)  # fmt: skip
        reply = upstream.result
        summary = ((dict.get(reply, "choices") or [{}])[0].get("message") or {}).get("content") or ""
        sealed = sealer.seal(_owner(request), call.model, summary)
        usage = openai_responses.usage_object(dict.get(reply, "usage"))
        return JSONResponse(compaction_object(call.response_id, call.created_at, sealed, usage), headers=upstream.headers)

    async def input_tokens(request: Request) -> Response:
        """POST /v1/responses/input_tokens: the request's input counted locally, as the Messages
        door's count_tokens counts (OCI has no tokenizer endpoint); no model is called."""
        body = await json_body(request)
        for name in ("stream", "background", "store", "generate", "guardrails", "cache"):
            body.pop(name, None)
        call, _ = await conversation_of(request, body)
        deployments = router.deployments(call.model)
        request.app.state.gate.allow(request.state.caller, call.model, deployments[0].model_name)
        counted = estimate_tokens(json.dumps(call.chat["messages"])) + (estimate_tokens(json.dumps(call.chat["tools"])) if call.chat.get("tools") else 0)
        return JSONResponse({"object": "response.input_tokens", "input_tokens": counted})

    async def responses(request: Request) -> Response:
        body = await json_body(request)
        request.state.guardrails_asked = body.pop("guardrails", None)
        request.state.cache_asked = body.pop("cache", None)
        generate = body.pop("generate", True)  # WebSocket mode's warm-up: false makes a response without calling the model
        if not isinstance(generate, bool):
            raise GatewayError(400, "generate: expected true or false", param="generate")
        if "input" in body:  # a compaction item sent back: opened (checked) into the summary it seals
            body["input"] = expand(body["input"], sealer, _owner(request))
        if passes_through(router.deployments(body.get("model"))):
            return await pass_through(request, body, metered, homes, generate=generate, event_names=event_names, objects=objects)
        owner = _owner(request)
        local: ConnectionMemory | None = getattr(request.state, "connection", None)  # a WebSocket connection's own responses
        previous = body.get("previous_response_id")
        history = await history_of(request, previous, owner)
        call = openai_responses.parse_request(body, lambda response_id: history if response_id == previous else None)
        router.deployments(call.model)  # 404 before anything else
        keep = body.get("store") is not False  # store: false means the response is not kept (but for its connection)
        if not generate:
            return await _warm_up(metered, request, call, local, lambda: conversations.put(call.response_id, owner, call.history) if keep else None)
        upstream = await _door_call(metered, request, call.model, call.chat, call.stream)
        reply = upstream.result
        if not call.stream:
            if keep:
                await conversations.put(call.response_id, owner, openai_responses.history_after(call, reply))
            if local is not None:
                local.put(call.response_id, openai_responses.history_after(call, reply))
            return JSONResponse(openai_responses.from_completion(call, reply), headers=upstream.headers)
        machine = openai_responses.ResponsesStream(call, event_names)

        async def stored() -> None:
            after = openai_responses.history_after(call, machine.completion())
            if local is not None:
                local.put(call.response_id, after)
            if keep:
                await conversations.put(call.response_id, owner, after)

        events = relay(upstream, _responses_framing(machine), call.model, stored)
        return StreamingResponse(events, media_type="text/event-stream", headers={"cache-control": "no-cache", **upstream.headers})

    async def messages(request: Request) -> Response:
        body = await json_body(request)
        request.state.guardrails_asked = body.pop("guardrails", None)
        request.state.cache_asked = body.pop("cache", None)
        call = anthropic.parse_request(body)
        router.deployments(call.model)
        headers = {"request-id": call.message_id.replace("msg_", "req_", 1)}
        upstream = await _door_call(metered, request, call.model, call.chat, call.stream)
        if not call.stream:
            return JSONResponse(anthropic.from_completion(call, upstream.result), headers={**headers, **upstream.headers})
        events = relay(upstream, _messages_framing(anthropic.MessagesStream(call)), call.model)
        return StreamingResponse(events, media_type="text/event-stream", headers={"cache-control": "no-cache", **headers, **upstream.headers})

    async def count_tokens(request: Request) -> Response:
        body = await json_body(request)
        counted = anthropic.count_tokens(body)
        name = body.get("model")
        deployments = router.deployments(name)
        request.app.state.gate.allow(request.state.caller, name, deployments[0].model_name)
        return JSONResponse(counted)

    async def hello(request: Request) -> Response:
        return Response(status_code=200)

    create = guarded(responses)  # the HTTP door and each WebSocket frame run this one endpoint
    sockets: dict[str, int] = {}  # each key's open WebSocket connections, whichever path
    return [
        Route("/v1/responses/compact", guarded(compact), methods=["POST"]),
        Route("/responses/compact", guarded(compact), methods=["POST"]),
        Route("/v1/responses/input_tokens", guarded(input_tokens), methods=["POST"]),
        Route("/responses/input_tokens", guarded(input_tokens), methods=["POST"]),
        Route("/v1/responses", create, methods=["POST"]),
        WebSocketRoute("/v1/responses", websocket_endpoint(create, "/v1/responses", sockets)),
        *stored_response_routes(router, guarded, metered, homes),
        Route("/responses", create, methods=["POST"]),
        WebSocketRoute("/responses", websocket_endpoint(create, "/responses", sockets)),
        Route("/v1/messages", guarded(messages, _anthropic_error, _anthropic_status), methods=["POST"]),
        Route("/v1/messages/count_tokens", guarded(count_tokens, _anthropic_error, _anthropic_status), methods=["POST"]),
        Route("/", hello, methods=["HEAD", "GET"]),
        Route("/api/hello", hello, methods=["HEAD", "GET"]),
    ]
