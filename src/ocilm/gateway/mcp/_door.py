"""The MCP door: ``/mcp`` (every server the caller may use, tools and prompts named
``<server>-<name>``), ``/mcp/{server}`` and LiteLLM's ``/{server}/mcp`` (one server, its own
names), the ``x-mcp-servers`` header (narrows, never grants), ``/mcp-rest/tools/list`` and
``/mcp-rest/tools/call``, and ``GET /v1/mcp/server``.

The server face is the official ``mcp`` package's low-level ``Server`` behind its
``StreamableHTTPSessionManager``, stateless (every POST stands alone, so any replica answers any
request and no session can pass from one key to another), mounted behind the gateway's one gate:
``guarded`` authenticates and records each HTTP request as for a model route, and each tool call
goes through ``Metered.side_call`` (rate limits, the budget hold at the tool's price, one
spend-log row: model the server, deployment ``mcp/<server>/<tool>``, ``tool_calls``
``{"<server>-<tool>": 1}``), as does every other call that fetches an upstream's content
(``prompts/get``, ``resources/read``, subscriptions: rate limits and a spend-log row, free);
listings are metadata, as ``GET /v1/models`` is. A tool's arguments and result pass the key's
guardrails (pre_call and post_call, through the ``mcp`` text view). ``Access`` decides every list
and every call alike; a refused call is a JSON-RPC error that never reaches the upstream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .._errors import GatewayError
from .._http import body_then, json_body
from .._metering import Metered, SideTarget
from ..governance._gate import Caller
from ..governance._policy import Price
from ._access import Access, combined, grant_of, prefixed, split
from ._config import McpServer
from ._upstream import UpstreamError, Upstreams

log = logging.getLogger("ocilm.gateway")
Handler = Callable[[Request], Awaitable[Response]]
PRUNE_EVERY = 60.0  # seconds between closing idle upstream sessions
MAX_PAGES = 20  # an upstream's list pages followed, at most
MAX_RESOURCE_HOMES = 10_000  # resource URIs remembered with the server that listed them (the oldest forgotten first)
INVALID_PARAMS, INTERNAL, GATEWAY_REFUSED = -32602, -32603, -32001


class McpDoor:
    """The servers, their aliases, the upstream pool and the one gate every MCP call passes."""

    def __init__(self, servers: dict[str, McpServer], aliases: dict[str, str], metered: Metered, *, allowed_fails: int = 3,
                 cooldown: float = 5.0) -> None:  # fmt: skip
        self.servers, self.aliases, self.metered = servers, aliases, metered
        self.upstreams = Upstreams(servers, allowed_fails=allowed_fails, cooldown=cooldown)
        self.resource_homes: OrderedDict[str, str] = OrderedDict()  # a resource's URI -> the server that listed it
        self.manager: Any = None

    # ------------------------------------------------------------------ who, where

    def resolve(self, name: str) -> str | None:
        name = self.aliases.get(name, name)
        return name if name in self.servers else None

    def access(self, request: Request) -> Access:
        """What this request's caller may reach (worked out once per request)."""
        found = getattr(request.state, "mcp_access", None)
        if found is None:
            caller: Caller = request.state.caller
            key, team = caller.object_permission
            found = request.state.mcp_access = Access(self.servers, combined(grant_of(key), grant_of(team)), master=caller.is_master)
        return found

    def _remember(self, uri: str, server: str) -> None:
        self.resource_homes[uri] = server
        self.resource_homes.move_to_end(uri)
        while len(self.resource_homes) > MAX_RESOURCE_HOMES:
            self.resource_homes.popitem(last=False)

    def scope(self, request: Request) -> tuple[list[str], bool]:
        """The servers this request addresses (those the caller may use) and whether names carry
        the ``<server>-`` prefix: ``/mcp`` (narrowed by ``x-mcp-servers``) or one server."""
        access = self.access(request)
        one = request.path_params.get("server")
        if one is not None:
            found = self.resolve(one)
            if found is None or not access.server(found):  # unknown and not allowed look the same
                raise GatewayError(404, f"no MCP server named {one[:64]!r} for this key; GET /v1/mcp/server lists yours",
                                   code="mcp_server_not_found")  # fmt: skip
            return [found], False
        visible = access.visible()
        narrowed = request.headers.get("x-mcp-servers")
        if narrowed:
            wanted = {self.resolve(n.strip()) for n in narrowed.split(",") if n.strip()}
            visible = [s for s in visible if s in wanted]
        return visible, True

    def forwarded(self, server: McpServer, request: Request) -> dict[str, str]:
        """The caller headers this server's ``extra_headers`` names, less any that carries the
        caller's gateway key (checked by value, whatever the header's name)."""
        if not server.extra_headers:
            return {}
        key = request.state.presented_key
        out = {}
        for name in server.extra_headers:
            value = request.headers.get(name)
            if value is not None and not (key and key in value):
                out[name] = value
        return out

    # ------------------------------------------------------------------ the operations

    async def list_of(self, request: Request, kind: str) -> list[tuple[str, Any]]:
        """(server, item) for every tool, prompt, resource or resource template the caller may
        see in this request's scope."""
        servers, _ = self.scope(request)
        access = self.access(request)
        found: list[tuple[str, Any]] = []
        for name in servers:
            items = await self._paged(request, name, kind)
            for item in items:
                if kind == "tools" and not access.tool(name, item.name):
                    continue
                if kind == "resources":
                    self._remember(str(item.uri), name)
                found.append((name, item))
        return found

    async def _paged(self, request: Request, server: str, kind: str) -> list[Any]:
        import mcp_types as types

        method = {"tools": "list_tools", "prompts": "list_prompts", "resources": "list_resources",
                  "resource_templates": "list_resource_templates"}[kind]  # fmt: skip
        items: list[Any] = []
        cursor = None
        for _ in range(MAX_PAGES):
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None

            async def page(session: Any, params: Any = params) -> Any:
                return await getattr(session, method)(params=params) if params else await getattr(session, method)()

            result = await self.upstreams.call(server, self.forwarded(self.servers[server], request), page)
            items += getattr(result, kind)
            cursor = getattr(result, "next_cursor", None)
            if not cursor:
                break
        return items

    def target(self, request: Request, name: str) -> tuple[str, str]:
        """(server, its own name) of a tool or prompt named in this request's scope."""
        servers, is_prefixed = self.scope(request)
        if not is_prefixed:
            return servers[0], name
        parts = split(name)
        server = self.resolve(parts[0]) if parts else None
        if parts is None or server is None or server not in servers:
            raise _Refused(f"Unknown tool or prompt: {name[:128]}")
        return server, parts[1]

    async def call_tool(self, request: Request, name: str, arguments: dict[str, Any] | None) -> Any:
        server, tool = self.target(request, name)
        if not self.access(request).tool(server, tool):  # refused exactly as if it did not exist: never reaches the upstream
            raise _Refused(f"Unknown tool: {name[:128]}")
        spec = self.servers[server]
        label = prefixed(server, tool)
        price = Price(0.0, 0.0, "mcp", per_tool_call=((label, spec.cost(tool)),))
        guards = self.metered.guards_for(request)
        guardrails, record = self.metered.guardrails, request.state.record

        async def work() -> Any:
            sent = arguments
            if guards:  # pre_call: what the tool reads, masked in place or refused before the upstream sees it
                sent, _ = await guardrails.check_request(guards, "mcp", dict(arguments or {}), {}, record)  # type: ignore[union-attr]
            return await self.upstreams.call(server, self.forwarded(spec, request), lambda session: session.call_tool(tool, sent))

        result, _ = await self.metered.side_call(request, "mcp", server, work, target=SideTarget(f"mcp/{server}/{tool}", price),
                                                 allowed=True, calls={label: 1}, watch=False)  # fmt: skip
        if guards:  # post_call: billed already (the tool ran), checked before the caller sees it
            shown = result.model_dump(by_alias=True, mode="json", exclude_none=True)
            await guardrails.check_tool_result(guards, shown, record)  # type: ignore[union-attr]
            result = type(result).model_validate(shown)
        return result

    async def _gated(self, request: Request, server: str, operation: str, work: Callable[[Any], Awaitable[Any]]) -> Any:
        """A free upstream call through the one gate: the key's rate limits and a spend-log row."""

        async def call() -> Any:
            return await self.upstreams.call(server, self.forwarded(self.servers[server], request), work)

        result, _ = await self.metered.side_call(request, "mcp", server, call, target=SideTarget(f"mcp/{server}/{operation}"), allowed=True,
                                                 watch=False)  # fmt: skip
        return result

    async def get_prompt(self, request: Request, name: str, arguments: dict[str, str] | None) -> Any:
        server, prompt = self.target(request, name)
        return await self._gated(request, server, "prompts/get", lambda session: session.get_prompt(prompt, arguments))

    async def read_resource(self, request: Request, uri: str) -> Any:
        home = await self._home_of(request, uri)
        return await self._gated(request, home, "resources/read", lambda session: session.read_resource(uri))

    async def subscription(self, request: Request, uri: str, subscribe: bool) -> Any:
        """A resource subscription passed to the server that lists the resource (its update
        notices are not relayed: the MCP face is stateless)."""
        home = await self._home_of(request, uri)
        method = "subscribe_resource" if subscribe else "unsubscribe_resource"

        async def work(session: Any) -> Any:
            with warnings.catch_warnings():  # removed as of 2026-07-28; servers on earlier revisions still offer it
                warnings.simplefilter("ignore")
                return await getattr(session, method)(uri)

        return await self._gated(request, home, f"resources/{method.split('_')[0]}", work)

    async def _home_of(self, request: Request, uri: str) -> str:
        """The server (among those this caller may use here) that listed the resource."""
        servers, _ = self.scope(request)
        home = self.resource_homes.get(uri)
        if home not in servers:
            home = None
            for server in servers:  # not listed by this process yet: ask the servers this caller may use
                listed = await self._paged(request, server, "resources")
                for item in listed:
                    self._remember(str(item.uri), server)
                if any(str(item.uri) == uri for item in listed):
                    home = server
                    break
            if home is None and len(servers) == 1:
                home = servers[0]  # a templated URI: its one server decides
        if home is None:
            raise _Refused(f"Unknown resource: {uri[:256]}")
        return home

    # ------------------------------------------------------------------ the server face

    async def tool_call_at_once(self, request: Request) -> tuple[Response | None, bytes | None]:
        """A POST that is one ``tools/call`` (the hot path) answered here, as the package's server
        answers it (its own validation of the request and its own shaping of the result for the
        protocol revision), without the ``ServerSession``, task group and memory streams it builds
        for each stateless POST: most of the door's added time (bench/mcp_overhead.py). Anything
        else, or anything unusual about this one, is the package's: (None, the body read, if any)."""
        from mcp.shared.exceptions import MCPError
        from mcp_types import methods
        from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
        from pydantic import ValidationError

        headers = request.headers
        version = headers.get("mcp-protocol-version")
        if version not in HANDSHAKE_PROTOCOL_VERSIONS:  # none (the package picks), or a later era's: the package routes it
            return None, None
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json" or not _accepts_json(headers.get("accept", "")):
            return None, None  # the package's 415 or 406
        body = await request.body()
        try:
            message = json.loads(body)
        except ValueError:
            return None, body
        if not isinstance(message, dict) or message.keys() != {"jsonrpc", "id", "method", "params"} or message["jsonrpc"] != "2.0" \
                or message["method"] != "tools/call" or isinstance(message["id"], bool) or not isinstance(message["id"], (str, int)):  # fmt: skip
            return None, body
        request_id, params = message["id"], message["params"]
        try:
            methods.validate_client_request("tools/call", version, params)
        except (ValidationError, KeyError, TypeError):
            return None, body  # the package's validation says what is wrong
        try:
            result = await _json_rpc(self.call_tool(request, params["name"], params.get("arguments")))
            shown = methods.serialize_server_result("tools/call", version, result.model_dump(by_alias=True, mode="json", exclude_none=True))
        except MCPError as exc:
            error = exc.error.model_dump(by_alias=True, mode="json", exclude_none=True)
            return JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": error}), body
        except Exception:  # as the package answers a handler's failure: a JSON-RPC error, the cause in the log
            log.exception("MCP tools/call failed in the gateway")
            return JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": {"code": INTERNAL, "message": "the gateway failed this tool call"}}), body
        return JSONResponse({"jsonrpc": "2.0", "id": request_id, "result": shown}), body

    def server(self) -> Any:
        import mcp_types as types
        from mcp.server.lowlevel import Server

        def request_of(ctx: Any) -> Request:
            return ctx.request

        async def named(ctx: Any, kind: str) -> list[Any]:
            """Tools or prompts, named ``<server>-<name>`` on ``/mcp``, as their server names them on one server's route."""
            request = request_of(ctx)
            _, is_prefixed = self.scope(request)
            return [item.model_copy(update={"name": prefixed(server, item.name)}) if is_prefixed else item
                    for server, item in await _json_rpc(self.list_of(request, kind))]  # fmt: skip

        async def list_tools(ctx: Any, params: Any) -> Any:
            return types.ListToolsResult(tools=await named(ctx, "tools"))

        async def call_tool(ctx: Any, params: Any) -> Any:
            return await _json_rpc(self.call_tool(request_of(ctx), params.name, params.arguments))

        async def list_prompts(ctx: Any, params: Any) -> Any:
            return types.ListPromptsResult(prompts=await named(ctx, "prompts"))

        async def get_prompt(ctx: Any, params: Any) -> Any:
            return await _json_rpc(self.get_prompt(request_of(ctx), params.name, params.arguments))

        async def list_resources(ctx: Any, params: Any) -> Any:
            return types.ListResourcesResult(resources=[r for _, r in await _json_rpc(self.list_of(request_of(ctx), "resources"))])

        async def list_templates(ctx: Any, params: Any) -> Any:
            found = await _json_rpc(self.list_of(request_of(ctx), "resource_templates"))
            return types.ListResourceTemplatesResult(resource_templates=[r for _, r in found])

        async def read_resource(ctx: Any, params: Any) -> Any:
            return await _json_rpc(self.read_resource(request_of(ctx), str(params.uri)))

        async def subscribe(ctx: Any, params: Any) -> Any:
            await _json_rpc(self.subscription(request_of(ctx), str(params.uri), True))
            return types.EmptyResult()

        async def unsubscribe(ctx: Any, params: Any) -> Any:
            await _json_rpc(self.subscription(request_of(ctx), str(params.uri), False))
            return types.EmptyResult()

        async def set_level(ctx: Any, params: Any) -> Any:
            return types.EmptyResult()  # the gateway sends no log notices, so every level is met

        with warnings.catch_warnings():  # logging/setLevel is deprecated as of 2026-07-28; earlier revisions still send it
            warnings.simplefilter("ignore")
            return Server("ocilm", version=_version(), on_list_tools=list_tools, on_call_tool=call_tool, on_list_prompts=list_prompts,
                          on_get_prompt=get_prompt, on_list_resources=list_resources, on_list_resource_templates=list_templates,
                          on_read_resource=read_resource, on_subscribe_resource=subscribe, on_unsubscribe_resource=unsubscribe,
                          on_set_logging_level=set_level)  # fmt: skip

    @contextlib.asynccontextmanager
    async def running(self) -> Any:
        """The session manager's lifetime (the app's lifespan), then the upstream pool closed."""
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
        from mcp.server.transport_security import TransportSecuritySettings

        # Host and Origin are the gateway's to check (its key authenticates every request)
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        self.manager = StreamableHTTPSessionManager(self.server(), json_response=True, stateless=True, security_settings=security)
        pruner = asyncio.ensure_future(self._prune_forever())
        try:
            async with self.manager.run():
                yield
        finally:
            pruner.cancel()
            await self.upstreams.close()

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY)
            try:
                await self.upstreams.prune()
            except Exception:  # one bad close never stops the pruning
                log.exception("closing idle MCP upstream sessions failed")

    # ------------------------------------------------------------------ routes

    def routes(self, guarded: Callable[..., Handler]) -> list[Route]:
        async def streamable(request: Request) -> Response:
            self.scope(request)  # an unknown or forbidden server is a 404 before any MCP work
            request.state.presented_key = _presented(request)
            if request.method == "POST":
                answered, body = await self.tool_call_at_once(request)
                if answered is not None:
                    return answered
                return _Exchange(self.manager, request.state.record, body)
            return _Exchange(self.manager, request.state.record)

        async def rest_list(request: Request) -> Response:
            request.state.presented_key = _presented(request)
            wanted = request.query_params.get("server_id")
            if wanted is not None:
                request.path_params["server"] = wanted
            found = await _rest(self.list_of(request, "tools"))
            tools = [{**t.model_dump(by_alias=True, exclude_none=True, mode="json"), "name": prefixed(s, t.name), "server_name": s,
                      "original_name": t.name} for s, t in found]  # fmt: skip
            return JSONResponse({"tools": tools})

        async def rest_call(request: Request) -> Response:
            request.state.presented_key = _presented(request)
            body = await json_body(request)
            name, arguments = body.get("name"), body.get("arguments")
            if not isinstance(name, str) or not name:
                raise GatewayError(400, "name: expected the tool's name, <server>-<tool> (or the tool's own name with server_id)", param="name")
            if arguments is not None and not isinstance(arguments, dict):
                raise GatewayError(400, "arguments: expected an object", param="arguments")
            server_id = body.get("server_id")
            if server_id is not None:
                if not isinstance(server_id, str):
                    raise GatewayError(400, "server_id: expected a server's name", param="server_id")
                request.path_params["server"] = server_id
            result = await _rest(self.call_tool(request, name, arguments))
            return JSONResponse(result.model_dump(by_alias=True, exclude_none=True, mode="json"))

        async def servers(request: Request) -> Response:
            access = self.access(request)
            listed = [{"server_id": name, "server_name": name, "alias": next((a for a, t in self.aliases.items() if t == name), None),
                       "description": self.servers[name].description, "transport": self.servers[name].transport,
                       "allow_all_keys": self.servers[name].allow_all_keys} for name in access.visible()]  # fmt: skip
            return JSONResponse(listed)

        methods = ["GET", "POST", "DELETE"]
        return [
            Route("/mcp", guarded(streamable), methods=methods),
            Route("/mcp/", guarded(streamable), methods=methods),
            Route("/mcp-rest/tools/list", guarded(rest_list), methods=["GET"]),
            Route("/mcp-rest/tools/call", guarded(rest_call), methods=["POST"]),
            Route("/v1/mcp/server", guarded(servers), methods=["GET"]),
            Route("/mcp/{server}", guarded(streamable), methods=methods),
            Route("/{server}/mcp", guarded(streamable), methods=methods),
        ]


class _Refused(Exception):
    """A name the caller may not reach (or that does not exist: the two look the same)."""


async def _json_rpc(work: Awaitable[Any]) -> Any:
    """Inside the MCP server: every failure a JSON-RPC error with a clear message."""
    from mcp.shared.exceptions import MCPError

    try:
        return await work
    except _Refused as exc:
        raise MCPError(INVALID_PARAMS, str(exc)) from None
    except UpstreamError as exc:
        if exc.jsonrpc is not None:
            raise MCPError(exc.jsonrpc[0], exc.jsonrpc[1]) from None
        raise MCPError(INTERNAL, str(exc)) from None
    except GatewayError as err:  # the gate's answer (rate limit, budget, store down): its status and code in data
        raise MCPError(GATEWAY_REFUSED, err.message, {"status": err.status, "code": err.code}) from None


async def _rest(work: Awaitable[Any]) -> Any:
    """On the REST routes: every failure an HTTP error in OpenAI's envelope."""
    try:
        return await work
    except _Refused as exc:
        raise GatewayError(404, str(exc), param="name", code="mcp_tool_not_found") from None
    except UpstreamError as exc:
        headers = {"retry-after": str(max(1, round(exc.retry_after)))} if exc.retry_after else None
        raise GatewayError(502 if exc.jsonrpc is None else 400, str(exc), code="mcp_upstream_error", headers=headers) from None


def _presented(request: Request) -> str:
    from ..governance._gate import presented_key

    return presented_key(request.headers)


def _version() -> str:
    from ... import __version__

    return __version__


def _accepts_json(accept: str) -> bool:
    kinds = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return bool(kinds & {"application/json", "application/*", "*/*"})


class _Exchange(StreamingResponse):
    """Hands the HTTP exchange to the MCP session manager; the request's record stays open until
    the exchange ends (its tool call is settled inside it) and gets the status it answered. A body
    already read (to see whether it was a tool call) is given to the manager as the request's."""

    def __init__(self, manager: Any, record: Any, body: bytes | None = None) -> None:
        super().__init__(_nothing())
        self.manager, self.record, self.body_read = manager, record, body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items() if k.startswith("x-litellm")]
        if self.body_read is not None:
            receive = body_then(self.body_read, receive)  # then the client's own (a disconnect)

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.status_code = self.record.status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.manager.handle_request(scope, receive, sending)
        finally:
            async for _ in self.body_iterator:  # the gate's follower closes the record here
                pass


async def _nothing() -> Any:
    return
    yield  # an async generator with nothing in it
