"""The Responses API passed through to OCI's ``/openai/v1`` (a model whose deployments all use it):
the caller's request goes as it is (stored responses, ``previous_response_id``, background mode,
hosted tools), metered from the usage OCI reports; stored responses (retrieve, delete, input
items) reach the deployment that holds them, and only the key that made them.

Who made a stored response, and where it lives, is kept in the governance store when there is
one (every replica, every restart), else in this process.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .._errors import OCIError
from ..doors.responses import renamed_event
from ._config import Deployment
from ._errors import GatewayError
from ._metering import Metered, SideTarget, relay
from ._ownership import tenant_of
from ._routing import Router, gateway_error_for
from ._warm_up import as_items, warm_up_pass_through
from .governance._gate import Caller, Gate, unavailable
from .governance._outcomes import StoreUnavailable
from .governance._tool_calls import hosted_types

Handler = Callable[[Request], Awaitable[Response]]
MAX_REMEMBERED = 100_000  # stored responses one process remembers without a governance store


def passes_through(deployments: list[Deployment]) -> bool:
    """Whether a model's Responses requests go to /openai/v1 as they are: every deployment
    behind it uses that API (a mixed group is translated onto chat, which both APIs serve)."""
    return all(d.api_mode == "openai" for d in deployments)


def owner_of(caller: Caller) -> str:
    return f"key:{caller.token}" if caller.token else "master"


class ResponseHomes:
    """Where stored responses live and who made them: in the governance store, else in memory."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self._local: OrderedDict[str, tuple[str, str]] = OrderedDict()

    async def remember(self, response_id: str, owner: str, deployment: str) -> None:
        if self.gate.store is None:
            self._local[response_id] = (owner, deployment)
            while len(self._local) > MAX_REMEMBERED:
                self._local.popitem(last=False)
            return
        try:
            await self.gate.store.record_response(response_id, owner, deployment)
        except StoreUnavailable:
            raise unavailable() from None

    async def find(self, response_id: Any, owner: str) -> str:
        """The deployment holding ``response_id`` if ``owner`` made it; else a 404 as if it did not exist."""
        home = None
        if isinstance(response_id, str) and 0 < len(response_id) <= 128:
            if self.gate.store is None:
                home = self._local.get(response_id)
            else:
                try:
                    home = await self.gate.store.response_home(response_id)
                except StoreUnavailable:
                    raise unavailable() from None
        if home is None or home[0] != owner:
            raise GatewayError(404, f"no response {str(response_id)[:128]!r}", param="response_id", code="previous_response_not_found")
        return home[1]

    async def forget(self, response_id: str) -> None:
        if self.gate.store is None:
            self._local.pop(response_id, None)
        else:
            try:
                await self.gate.store.forget_response(response_id)
            except StoreUnavailable:
                raise unavailable() from None


class _EventFraming:
    """OCI's Responses events relayed as they came (``event:`` and ``data:``); the response is
    remembered as soon as it exists (``response.created``); a failure after the start is an
    ``error`` event."""

    def __init__(self, on_created: Callable[[str], None], on_completed: Callable[[dict], None] = lambda response: None,
                 event_names: str = "openai") -> None:  # fmt: skip
        self.on_created, self.on_completed, self.event_names = on_created, on_completed, event_names
        self.sequence = 0

    def start(self) -> bytes:
        return b""

    def batch(self, chunks: list[Any]) -> bytes:
        out = []
        for event in chunks:
            kind = event.get("type")
            if kind == "response.created":
                response = event.get("response") or {}
                if isinstance(response.get("id"), str) and response.get("store") is not False:
                    self.on_created(response["id"])
            elif kind == "response.completed" and isinstance(event.get("response"), dict):
                self.on_completed(event["response"])
            elif self.event_names != "openai" and isinstance(kind, str) and kind.startswith("response.reasoning_text."):
                kind = renamed_event(kind, self.event_names)
                event = {**event, "type": kind}
            self.sequence = max(self.sequence, int(event.get("sequence_number") or 0))
            out.append(b"event: " + str(kind).encode() + b"\ndata: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n")
        return b"".join(out)

    def finish(self) -> bytes:
        return b""

    def fail(self, err: GatewayError, exc: OCIError | None) -> bytes:
        event = {"type": "error", "code": err.code or "server_error", "message": err.message, "param": None,
                 "sequence_number": self.sequence + 1, "status": err.status}  # fmt: skip
        return b"event: error\ndata: " + json.dumps(event).encode() + b"\n\n"


def stored_response_routes(router: Router, guarded: Callable[..., Handler], metered: Metered, homes: ResponseHomes) -> list[Route]:
    """GET/DELETE /v1/responses/{id} and GET /v1/responses/{id}/input_items."""

    def deployment_at(place: str) -> Deployment:
        for group in router.config.deployments.values():
            for deployment in group:
                if deployment.place == place:
                    return deployment
        raise GatewayError(404, "the deployment that stored this response is no longer configured", code="previous_response_not_found")

    async def stored(request: Request, what: str) -> Response:
        caller: Caller = request.state.caller
        response_id = request.path_params["response_id"]
        deployment = deployment_at(await homes.find(response_id, owner_of(caller)))
        query = {k: v for k, v in request.query_params.items() if k in ("limit", "after", "before", "order")}
        call = {"get": metered.router.client.get_responses, "delete": metered.router.client.delete_responses,
                "input_items": metered.router.client.list_input_items, "cancel": metered.router.client.cancel_responses}[what]  # fmt: skip
        # the key may use the model that stored it; the read counts against its rate limits and is logged
        allowed = not caller.models or deployment.model_name in caller.models
        try:
            result, headers = await metered.side_call(request, f"responses.{what}", deployment.model_name,
                                                      lambda: call(response_id, **deployment.params, **query),
                                                      target=SideTarget(deployment.model), allowed=allowed)  # fmt: skip
        except OCIError as exc:
            raise gateway_error_for(exc) from None
        if what == "delete":
            await homes.forget(response_id)
        elif what in ("get", "cancel"):
            await metered.background.seen(response_id, dict(result))  # a background response that ended is settled now
        return JSONResponse(dict(result), headers=headers)

    async def get(request: Request) -> Response:
        return await stored(request, "get")

    async def delete(request: Request) -> Response:
        return await stored(request, "delete")

    async def input_items(request: Request) -> Response:
        return await stored(request, "input_items")

    async def cancel(request: Request) -> Response:
        return await stored(request, "cancel")

    return [
        Route("/v1/responses/{response_id}", guarded(get), methods=["GET"]),
        Route("/v1/responses/{response_id}", guarded(delete), methods=["DELETE"]),
        Route("/v1/responses/{response_id}/input_items", guarded(input_items), methods=["GET"]),
        Route("/v1/responses/{response_id}/cancel", guarded(cancel), methods=["POST"]),
        Route("/responses/{response_id}/cancel", guarded(cancel), methods=["POST"]),
    ]


async def unowned_reference(first: Any, params: dict[str, Any], objects: Any, owner: str | None) -> tuple[str, str] | None:
    """An id in a Responses request naming an object OCI keeps under the gateway's one credential
    (shared by every tenant) that the caller does not own: files (``file_id`` of an input part),
    vector stores (a ``file_search`` tool's) and a ``conversation`` are checked against their
    owners (``objects``: a 404 for another tenant's); an ``item_reference`` and a container named by
    id have no owner recorded yet, and are refused. (param, what) of the first refused, or None.
    Nothing is sent for an id the caller does not own. ``previous_response_id`` is checked apart."""
    named = params.get("conversation")
    if named is not None:
        conversation_id = named.get("id") if isinstance(named, dict) else named
        if objects is None or not isinstance(conversation_id, str):
            return "conversation", "conversation"
        await objects.find(conversation_id, "conversation", owner)
    for item in first if isinstance(first, list) else ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "item_reference":
            return "input", "item_reference"
        content = item.get("content")
        for part in content if isinstance(content, list) else ():
            if isinstance(part, dict) and part.get("file_id") is not None:
                if objects is None or not isinstance(part["file_id"], str):
                    return "input", "file_id"
                await objects.find(part["file_id"], "file", owner)
    tools = params.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "file_search":
            ids = tool.get("vector_store_ids")
            if objects is None or not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                return "tools", "file_search vector_store_ids"
            for store_id in ids:
                await objects.find(store_id, "vector_store", owner)
        if tool.get("type") == "code_interpreter" and isinstance(tool.get("container"), str):
            if objects is None:
                return "tools", "code_interpreter container"
            await objects.find(tool["container"], "container", owner)
    return None


def bound_hosted_calls(params: dict[str, Any], priced: frozenset[str], most: int) -> None:
    """A request offering a hosted tool some deployment prices (``priced``: a fallback may be the
    one that answers) makes at most ``most`` calls
    (``general_settings.max_hosted_tool_calls``): ``max_tool_calls`` is sent as that when the caller
    gave none, so that its budget hold bounds what its tools can cost; more is a 400."""
    offered = hosted_types(params.get("tools"))
    asked = params.get("max_tool_calls")
    if asked is not None and (isinstance(asked, bool) or not isinstance(asked, int) or asked < 1):
        raise GatewayError(400, "max_tool_calls: expected a whole number of at least 1", param="max_tool_calls", code="invalid_value")
    if not offered & priced:
        return
    if asked is None:
        params["max_tool_calls"] = most
    elif asked > most:
        raise GatewayError(400, f"max_tool_calls: at most {most} on this gateway for a request whose hosted tools are priced "
                           "(general_settings.max_hosted_tool_calls)", param="max_tool_calls", code="invalid_value")  # fmt: skip


async def own_what_it_made(objects: Any, response: Any, owner: str | None, place: str) -> None:
    """The containers OCI made on its own for a response (``code_interpreter`` with ``{"type":
    "auto"}``) belong to the tenant whose request made them."""
    if objects is None or not isinstance(response, dict):
        return
    for item in response.get("output") or ():
        made = item.get("container_id") if isinstance(item, dict) and item.get("type") == "code_interpreter_call" else None
        if isinstance(made, str) and await objects.find(made, "container", None) is None:  # not recorded yet: this tenant's now
            await objects.remember(made, "container", owner or "master", place, 0)


async def pass_through(request: Request, body: dict[str, Any], metered: Metered, homes: ResponseHomes, *, generate: bool = True,
                       event_names: str = "openai", objects: Any = None) -> Response:  # fmt: skip
    """``POST /v1/responses`` for a model served through /openai/v1 (and each ``response.create``
    of a WebSocket connection, whose own responses continue with ``store: false``: the items they
    carried are sent again, in place of ``previous_response_id``, which OCI could not resolve)."""
    caller: Caller = request.state.caller
    owner = owner_of(caller)
    if getattr(request.state, "cache_asked", None) is not None:
        raise GatewayError(400, "cache: responses kept by OCI (this model's /openai/v1 deployments) are never cached; they carry "
                           "state a stored copy cannot", param="cache")  # fmt: skip
    params = dict(body)
    name = params.pop("model", None)
    stream = params.pop("stream", False)
    if not isinstance(stream, bool):
        raise GatewayError(400, "stream: expected true or false", param="stream")
    if "input" not in params:
        raise GatewayError(400, "input: required, a string or a list of input items", param="input")
    first = params.pop("input")
    unowned = await unowned_reference(first, params, objects, tenant_of(caller))
    if unowned is not None:
        param, what = unowned
        raise GatewayError(400, f"{param}: {what} names an object OCI keeps for every key of this gateway alike, which the gateway "
                           "cannot yet tell the owner of; it is refused rather than shared (previous_response_id works, per key)",
                           param=param, code="unsupported_reference")  # fmt: skip
    bound_hosted_calls(params, metered.router.config.priced_tools, metered.router.config.max_hosted_tool_calls)
    local = getattr(request.state, "connection", None)
    previous = params.get("previous_response_id")
    if local is not None and previous in local:
        first = [*local.get(previous), *as_items(first)]
        del params["previous_response_id"]
    if not generate:
        return await warm_up_pass_through(metered, request, name, as_items(first), stream, local)
    pinned = None
    if params.get("previous_response_id") is not None:
        pinned = await homes.find(params["previous_response_id"], owner)
    named = params.get("conversation")
    if named is not None and objects is not None:  # a conversation lives with the deployment that made it
        pinned = await objects.find(named.get("id") if isinstance(named, dict) else named, "conversation", tenant_of(caller)) or pinned
    upstream = await metered.call(request, "responses", name, "responses", first, params, stream=stream, pinned=pinned)
    sent = as_items(first)
    assert upstream.deployment is not None
    place = upstream.deployment.place
    if not stream:
        result = upstream.result
        if isinstance(result.get("id"), str) and params.get("store") is not False:
            await homes.remember(result["id"], owner, place)
        if local is not None and isinstance(result.get("id"), str):
            local.put(result["id"], [*sent, *(result.get("output") or [])])
        await own_what_it_made(objects, dict(result), tenant_of(caller), place)
        reply = dict(result)
        reply["model"] = name
        return JSONResponse(reply, headers=upstream.headers)

    def created(response_id: str) -> None:
        metered.gate.later(homes.remember(response_id, owner, place))

    def completed(response: dict) -> None:
        if local is not None and isinstance(response.get("id"), str):
            local.put(response["id"], [*sent, *(response.get("output") or [])])
        metered.gate.later(own_what_it_made(objects, response, tenant_of(caller), place))

    events = relay(upstream, _EventFraming(created, completed, event_names), name)
    return StreamingResponse(events, media_type="text/event-stream", headers={"cache-control": "no-cache", **upstream.headers})
