"""The MCP gateway, end to end over loopback: real MCP servers built on the official ``mcp``
package upstream, ``ocilm serve``'s app in front, driven by the official MCP client. The
authorization matrix asserts on what the upstream servers received: no refused call and no
gateway credential ever arrives; each upstream gets only its own credential."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import httpx
import pytest

from ocilm.gateway import GatewayConfigError, create_app, parse_config
from ocilm.testing import BackgroundServer

from ..servers import recording_headers

mcpserver = pytest.importorskip("mcp.server.mcpserver")
httpx2 = pytest.importorskip("httpx2")
from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

MASTER = "sk-master-mcp-gateway"
ADMIN = {"authorization": f"Bearer {MASTER}"}
ALPHA_TOKEN, BETA_STATIC, OAUTH_SECRET = "alpha-upstream-secret", "beta-static-secret", "gamma-client-secret"
ECHO_COST = 0.25


class Upstream:
    """A Streamable HTTP MCP server recording each request's headers and each tool call."""

    def __init__(self, name: str) -> None:
        self.server = mcpserver.MCPServer(name)
        self.headers: list[dict[str, str]] = []
        self.calls: list[tuple[str, dict]] = []
        self.running: BackgroundServer | None = None

    def asgi(self):
        return recording_headers(self.server.streamable_http_app(json_response=True), self.headers)


def _alpha() -> Upstream:
    up = Upstream("alpha")

    @up.server.tool()
    def echo(text: str) -> str:
        """Says the text back."""
        up.calls.append(("echo", {"text": text}))
        return f"alpha says {text}"

    @up.server.tool()
    def wipe(target: str) -> str:
        """A dangerous tool."""
        up.calls.append(("wipe", {"target": target}))
        return "wiped"

    @up.server.prompt()
    def greet(name: str) -> str:
        return f"Hello {name} from alpha"

    @up.server.resource("memo://alpha/notes")
    def notes() -> str:
        return "alpha's notes"

    return up


def _beta() -> Upstream:
    up = Upstream("beta")

    @up.server.tool()
    def add(a: int, b: int) -> int:
        """Adds two numbers."""
        up.calls.append(("add", {"a": a, "b": b}))
        return a + b

    return up


def _gamma() -> Upstream:
    up = Upstream("gamma")

    @up.server.tool()
    def whoami() -> str:
        """Names the caller's upstream credential kind."""
        up.calls.append(("whoami", {}))
        return "gamma"

    return up


@pytest.fixture(scope="module")
def token_endpoint():
    """An OAuth 2 token endpoint (client credentials), counting the tokens it issues."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    issued: list[str] = []

    async def token(request):
        form = await request.form()
        if form.get("grant_type") != "client_credentials" or form.get("client_secret") != OAUTH_SECRET:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        issued.append(f"oauth-token-{len(issued)}")
        return JSONResponse({"access_token": issued[-1], "token_type": "Bearer", "expires_in": 3600})

    with BackgroundServer(Starlette(routes=[Route("/token", token, methods=["POST"])])) as server:
        server.issued = issued
        yield server


@pytest.fixture(scope="module")
def upstreams():
    alpha, beta, gamma = _alpha(), _beta(), _gamma()
    with BackgroundServer(alpha.asgi()) as a, BackgroundServer(beta.asgi()) as b, BackgroundServer(gamma.asgi()) as g:
        alpha.running, beta.running, gamma.running = a, b, g
        yield {"alpha": alpha, "beta": beta, "gamma": gamma}


def _config(upstreams, token_endpoint, tmp_path, **more) -> dict:
    return {
        "model_list": [],
        "mcp_servers": {
            "alpha": {"url": f"{upstreams['alpha'].running.base_url}/mcp", "transport": "http", "auth_type": "bearer_token",
                      "authentication_token": ALPHA_TOKEN, "description": "alpha tools",
                      "mcp_info": {"mcp_server_cost_info": {"default_cost_per_query": 0.0, "tool_name_to_cost_per_query": {"echo": ECHO_COST}}}},
            "beta": {"url": f"{upstreams['beta'].running.base_url}/mcp", "transport": "http", "allow_all_keys": True,
                     "static_headers": {"x-beta-auth": BETA_STATIC}, "extra_headers": ["x-tenant"]},
            "gamma": {"url": f"{upstreams['gamma'].running.base_url}/mcp", "transport": "http", "auth_type": "oauth2",
                      "client_id": "gw", "client_secret": OAUTH_SECRET, "token_url": f"{token_endpoint.base_url}/token"},
        },
        "litellm_settings": {"mcp_aliases": {"a": "alpha"}},
        "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path / 'mcp.db'}"},
        **more,
    }  # fmt: skip


@pytest.fixture(scope="module")
def gateway(upstreams, token_endpoint, tmp_path_factory):
    config = _config(upstreams, token_endpoint, tmp_path_factory.mktemp("mcp"))
    with BackgroundServer(create_app(parse_config(config, check_credentials=False))) as server:
        yield server


def _admin(gateway, path: str, body: dict) -> dict:
    reply = httpx.post(f"{gateway.base_url}{path}", headers=ADMIN, json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


@pytest.fixture(scope="module")
def keys(gateway):
    """Team A grants alpha and gamma; its keys: one granting alpha (gets alpha), one with no grant
    (gets the team's); team B grants alpha's echo only: a key of it with no grant, one granting
    gamma (the intersection is empty); a teamless key granted only alpha's echo; a key with no team
    and no grant; the master key."""
    team = _admin(gateway, "/team/new", {"team_alias": "a", "object_permission": {"mcp_servers": ["alpha", "gamma"]}})["team_id"]
    other = _admin(gateway, "/team/new", {"team_alias": "b", "object_permission": {"mcp_tool_permissions": {"alpha": ["echo"]}}})["team_id"]
    return {
        "team_b": _admin(gateway, "/key/generate", {"team_id": other})["key"],
        "team_b_asks_gamma": _admin(gateway, "/key/generate", {"team_id": other, "object_permission": {"mcp_servers": ["gamma"]}})["key"],
        "alpha_only": _admin(gateway, "/key/generate", {"team_id": team, "object_permission": {"mcp_servers": ["a"]}})["key"],
        "team_grant": _admin(gateway, "/key/generate", {"team_id": team})["key"],
        "echo_only": _admin(gateway, "/key/generate", {"object_permission": {"mcp_tool_permissions": {"alpha": ["echo"]}}})["key"],
        "nothing": _admin(gateway, "/key/generate", {})["key"],
        "master": MASTER,
    }


@contextlib.asynccontextmanager
async def _session(url: str, key: str, **headers: str):
    async with httpx2.AsyncClient(headers={"authorization": f"Bearer {key}", **headers}, timeout=30) as http, \
            streamable_http_client(url, http_client=http) as streams, \
            ClientSession(streams[0], streams[1], read_timeout_seconds=30) as session:  # fmt: skip
        await session.initialize()
        yield session


def _run(work):
    return asyncio.run(work)


async def _tools(url: str, key: str, **headers: str) -> list[str]:
    async with _session(url, key, **headers) as session:
        return sorted(t.name for t in (await session.list_tools()).tools)


def _no_gateway_key_arrived(upstreams, keys) -> None:
    secrets = set(keys.values())
    for up in upstreams.values():
        for seen in up.headers:
            assert not any(secret in value for secret in secrets for value in seen.values()), f"a gateway key reached {up.server.name}"


EXPECTED_TOOLS = {
    "team_b": ["alpha-echo", "beta-add"],  # a second team, granted one tool of alpha
    "team_b_asks_gamma": ["beta-add"],  # the key and its team both grant, and agree on nothing: only allow_all_keys is left
    "alpha_only": ["alpha-echo", "alpha-wipe", "beta-add"],
    "team_grant": ["alpha-echo", "alpha-wipe", "beta-add", "gamma-whoami"],
    "echo_only": ["alpha-echo", "beta-add"],
    "nothing": ["beta-add"],
    "master": ["alpha-echo", "alpha-wipe", "beta-add", "gamma-whoami"],
}


@pytest.mark.parametrize("who", list(EXPECTED_TOOLS))
def test_tools_list_shows_exactly_what_tools_call_allows(gateway, upstreams, keys, who):
    url = f"{gateway.base_url}/mcp"
    listed = _run(_tools(url, keys[who]))
    assert listed == EXPECTED_TOOLS[who]
    every = ["alpha-echo", "alpha-wipe", "beta-add", "gamma-whoami"]
    args = {"alpha-echo": {"text": "hi"}, "alpha-wipe": {"target": "prod"}, "beta-add": {"a": 1, "b": 2}, "gamma-whoami": {}}

    async def call_all():
        outcomes = {}
        async with _session(url, keys[who]) as session:
            for name in every:
                before = sum(len(up.calls) for up in upstreams.values())
                try:
                    result = await session.call_tool(name, args[name])
                    outcomes[name] = not result.is_error
                except MCPError as exc:
                    assert "Unknown tool" in exc.error.message and exc.error.code == -32602
                    assert sum(len(up.calls) for up in upstreams.values()) == before  # refused: the upstream never saw it
                    outcomes[name] = False
        return outcomes

    outcomes = _run(call_all())
    assert sorted(n for n, ok in outcomes.items() if ok) == EXPECTED_TOOLS[who]
    _no_gateway_key_arrived(upstreams, keys)


def test_each_upstream_gets_its_own_credential_and_only_named_caller_headers(gateway, upstreams, keys, token_endpoint):
    async def go():
        async with _session(f"{gateway.base_url}/mcp", keys["master"], **{"x-tenant": "acme", "x-other": "private"}) as session:
            await session.call_tool("alpha-echo", {"text": "x"})
            await session.call_tool("beta-add", {"a": 2, "b": 3})
            await session.call_tool("gamma-whoami", {})

    _run(go())
    alpha = upstreams["alpha"].headers[-1]
    assert alpha.get("authorization") == f"Bearer {ALPHA_TOKEN}" and "x-tenant" not in alpha and "x-beta-auth" not in alpha
    beta = upstreams["beta"].headers[-1]
    assert beta.get("x-beta-auth") == BETA_STATIC and beta.get("x-tenant") == "acme" and "x-other" not in beta
    assert "authorization" not in beta  # beta has no credential of its own: the caller's never goes there
    gamma = upstreams["gamma"].headers[-1]
    assert gamma.get("authorization", "").startswith("Bearer oauth-token-") and token_endpoint.issued
    _no_gateway_key_arrived(upstreams, keys)


def test_a_key_sent_in_a_forwarded_header_is_not_forwarded(gateway, upstreams, keys):
    async def go():
        async with _session(f"{gateway.base_url}/mcp", keys["nothing"], **{"x-tenant": f"copy of {keys['nothing']}"}) as session:
            await session.call_tool("beta-add", {"a": 1, "b": 1})

    _run(go())
    assert "x-tenant" not in upstreams["beta"].headers[-1]
    _no_gateway_key_arrived(upstreams, keys)


def test_one_server_routes_use_its_own_names_and_an_alias(gateway, keys):
    for path in ("/mcp/alpha", "/alpha/mcp", "/mcp/a", "/a/mcp"):
        assert _run(_tools(f"{gateway.base_url}{path}", keys["echo_only"])) == ["echo"]
    reply = httpx.post(f"{gateway.base_url}/mcp/gamma", headers={"authorization": f"Bearer {keys['echo_only']}"},
                       json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=30)  # fmt: skip
    assert reply.status_code == 404 and "gamma" in reply.json()["error"]["message"]  # not granted: as if it did not exist


def test_x_mcp_servers_narrows_and_never_grants(gateway, keys):
    url = f"{gateway.base_url}/mcp"
    assert _run(_tools(url, keys["master"], **{"x-mcp-servers": "beta"})) == ["beta-add"]
    assert _run(_tools(url, keys["nothing"], **{"x-mcp-servers": "alpha,gamma,beta"})) == ["beta-add"]


def test_prompts_and_resources_follow_the_same_access(gateway, keys, upstreams):
    async def go(key):
        async with _session(f"{gateway.base_url}/mcp", key) as session:
            prompts = sorted(p.name for p in (await session.list_prompts()).prompts)
            resources = sorted(str(r.uri) for r in (await session.list_resources()).resources)
            got = None
            if "alpha-greet" in prompts:
                got = (await session.get_prompt("alpha-greet", {"name": "Ana"})).messages[0].content.text
                read = await session.read_resource("memo://alpha/notes")
                assert read.contents[0].text == "alpha's notes"
            else:
                with pytest.raises(MCPError):
                    await session.get_prompt("alpha-greet", {"name": "Ana"})
                with pytest.raises(MCPError):
                    await session.read_resource("memo://alpha/notes")
            return prompts, resources, got

    prompts, resources, got = _run(go(keys["echo_only"]))
    assert prompts == ["alpha-greet"] and resources == ["memo://alpha/notes"] and got == "Hello Ana from alpha"
    prompts, resources, got = _run(go(keys["nothing"]))
    assert prompts == [] and resources == [] and got is None


def test_rest_routes_list_and_call_with_the_same_rule(gateway, keys, upstreams):
    headers = {"x-litellm-api-key": f"Bearer {keys['echo_only']}"}
    listed = httpx.get(f"{gateway.base_url}/mcp-rest/tools/list", headers=headers, timeout=30).json()["tools"]
    assert sorted((t["name"], t["server_name"], t["original_name"]) for t in listed) == [("alpha-echo", "alpha", "echo"), ("beta-add", "beta", "add")]
    called = httpx.post(f"{gateway.base_url}/mcp-rest/tools/call", headers=headers, json={"name": "alpha-echo", "arguments": {"text": "rest"}},
                        timeout=30)  # fmt: skip
    assert called.status_code == 200 and called.json()["content"][0]["text"] == "alpha says rest"
    same = httpx.post(f"{gateway.base_url}/mcp-rest/tools/call", headers=headers, json={"server_id": "alpha", "name": "echo", "arguments": {"text": "id"}},
                      timeout=30)  # fmt: skip
    assert same.status_code == 200 and same.json()["content"][0]["text"] == "alpha says id"
    before = len(upstreams["alpha"].calls)
    refused = httpx.post(f"{gateway.base_url}/mcp-rest/tools/call", headers=headers, json={"name": "alpha-wipe", "arguments": {"target": "x"}},
                         timeout=30)  # fmt: skip
    assert refused.status_code == 404 and len(upstreams["alpha"].calls) == before
    bad = httpx.post(f"{gateway.base_url}/mcp-rest/tools/call", headers=headers, json={"name": 5}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "name"
    servers = httpx.get(f"{gateway.base_url}/v1/mcp/server", headers=headers, timeout=30).json()
    assert sorted(s["server_id"] for s in servers) == ["alpha", "beta"]
    assert not any(secret in json.dumps(servers) for secret in (ALPHA_TOKEN, BETA_STATIC, OAUTH_SECRET))


def test_a_tool_call_is_billed_logged_and_held_against_the_budget(gateway, keys, upstreams):
    key = _admin(gateway, "/key/generate", {"max_budget": 0.3, "object_permission": {"mcp_servers": ["alpha"]}})

    async def call(name, args):
        async with _session(f"{gateway.base_url}/mcp", key["key"]) as session:
            try:
                return await session.call_tool(name, args)
            except MCPError as exc:
                return exc

    assert not _run(call("alpha-echo", {"text": "paid"})).is_error
    rows = httpx.get(f"{gateway.base_url}/spend/logs", headers=ADMIN, params={"api_key": key["token"]}, timeout=30).json()
    assert len(rows) == 1 and rows[0]["model"] == "alpha" and rows[0]["tool_calls"] == {"alpha-echo": 1}
    assert rows[0]["spend"] == pytest.approx(ECHO_COST)
    before = len(upstreams["alpha"].calls)
    refused = _run(call("alpha-echo", {"text": "over"}))  # 0.25 spent of 0.30: another 0.25 cannot be held
    assert isinstance(refused, MCPError) and "budget" in refused.error.message and refused.error.data["status"] == 429
    assert len(upstreams["alpha"].calls) == before
    assert not _run(call("alpha-wipe", {"target": "free"})).is_error  # a free tool still fits


def test_blocked_and_unknown_keys_are_refused_before_any_mcp_work(gateway, keys):
    key = _admin(gateway, "/key/generate", {"object_permission": {"mcp_servers": ["alpha"]}})
    _admin(gateway, "/key/block", {"key": key["key"]})
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for headers in ({"authorization": f"Bearer {key['key']}"}, {"authorization": "Bearer sk-nope"}, {}):
        reply = httpx.post(f"{gateway.base_url}/mcp", headers={**headers, "accept": "application/json, text/event-stream"}, json=body, timeout=30)
        assert reply.status_code == 401


def test_protocol_revisions_are_answered(gateway, keys):
    headers = {"authorization": f"Bearer {keys['master']}", "accept": "application/json, text/event-stream"}
    for version in ("2025-06-18", "2025-11-25"):
        init = httpx.post(f"{gateway.base_url}/mcp", headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}, timeout=30)  # fmt: skip
        assert init.status_code == 200 and init.json()["result"]["protocolVersion"] == version
    modern = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
              "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}}  # fmt: skip
    listed = httpx.post(f"{gateway.base_url}/mcp", headers={**headers, "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/list"},
                        json={"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": modern}}, timeout=30)  # fmt: skip
    assert listed.status_code == 200, listed.text
    assert "beta-add" in [t["name"] for t in listed.json()["result"]["tools"]]


def test_a_tool_call_is_answered_at_once_exactly_as_the_packages_server_answers_it(gateway, keys, monkeypatch):
    """A POST that is one tools/call skips the package's per-request server session (the door's
    largest cost): it never reaches the session manager, and its answer (a result, a refused tool,
    an unknown one) is byte for byte what the manager gives when the fast path steps aside.
    Anything unusual goes to the manager, which names the problem."""
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    from ocilm.gateway.mcp._door import McpDoor

    handled = []
    original = StreamableHTTPSessionManager.handle_request

    async def counting(self, scope, receive, send):
        handled.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(StreamableHTTPSessionManager, "handle_request", counting)
    headers = {"authorization": f"Bearer {keys['team_b']}", "accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}

    def call(params: dict, rid: object = 7) -> httpx.Response:
        return httpx.post(f"{gateway.base_url}/mcp", headers=headers, json={"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params},
                          timeout=30)  # fmt: skip

    cases = [{"name": "alpha-echo", "arguments": {"text": "hi"}}, {"name": "alpha-wipe", "arguments": {"target": "all"}},
             {"name": "nowhere-tool", "arguments": {}}, {"name": "alpha-echo", "arguments": {"text": "x"}, "_meta": {"progressToken": 3}}]  # fmt: skip
    fast = [call(params, rid) for params, rid in zip(cases, (7, "s-1", 9, 10), strict=True)]
    assert handled == [] and [r.status_code for r in fast] == [200] * 4
    assert fast[0].json()["result"]["content"][0]["text"] == "alpha says hi" and fast[1].json()["error"]["code"] == -32602

    async def step_aside(self, request):
        return None, await request.body()

    monkeypatch.setattr(McpDoor, "tool_call_at_once", step_aside)
    slow = [call(params, rid) for params, rid in zip(cases, (7, "s-1", 9, 10), strict=True)]
    assert len(handled) == 4 and [r.json() for r in slow] == [r.json() for r in fast]
    assert slow[0].headers["content-type"] == fast[0].headers["content-type"] == "application/json"
    monkeypatch.undo()
    handled.clear()
    monkeypatch.setattr(StreamableHTTPSessionManager, "handle_request", counting)
    odd = call({"name": 42})  # not the fast path's to judge: the package's validation answers
    assert handled == ["/mcp"] and odd.status_code in (200, 400) and "error" in odd.json()


def test_a_dead_upstream_is_a_clear_error_and_its_breaker_opens(upstreams, token_endpoint, tmp_path):
    from tests.servers import free_port

    config = _config(upstreams, token_endpoint, tmp_path)
    config["mcp_servers"]["beta"]["url"] = f"http://127.0.0.1:{free_port()}/mcp"  # nothing listens there
    config["router_settings"] = {"allowed_fails": 2, "cooldown_time": 30}

    async def call():
        async with _session(f"{server.base_url}/mcp/alpha", MASTER) as session:
            await session.call_tool("echo", {"text": "alive"})  # another server is unaffected
        messages = []
        for _ in range(3):
            async with _session(f"{server.base_url}/mcp/beta", MASTER) as session:
                with pytest.raises(MCPError) as failed:
                    await session.list_tools()
                messages.append(failed.value.error.message)
        return messages

    with BackgroundServer(create_app(parse_config(config, check_credentials=False))) as server:
        messages = _run(call())
    assert "beta is unreachable" in messages[0] and "beta is cooling down" in messages[2]
    assert not any("Traceback" in m or "127.0.0.1" in m for m in messages)


@pytest.mark.parametrize(("server", "named"), [
    ({"url": "http://x/mcp", "transport": "http", "spec_path": "/o.json"}, "mcp_servers.s.spec_path: not supported"),
    ({"url": "http://x/mcp", "transport": "http", "auth_type": "true_passthrough"}, "mcp_servers.s.auth_type: true_passthrough"),
    ({"url": "http://x/mcp", "transport": "http", "auth_type": "bearer_token"}, "mcp_servers.s.authentication_token: required"),
    ({"url": "http://x/mcp", "transport": "http", "extra_headers": ["Authorization"]}, "mcp_servers.s.extra_headers: authorization"),
    ({"url": "ftp://x", "transport": "http"}, "mcp_servers.s.url"),
    ({"transport": "stdio"}, "mcp_servers.s.command"),
    ({"url": "http://x/mcp", "transport": "websocket"}, "mcp_servers.s.transport"),
    ({"url": "http://x/mcp", "transport": "http", "bogus": 1}, "mcp_servers.s.bogus: unknown setting"),
    ({"url": "http://x/mcp", "transport": "http", "mcp_info": {"mcp_server_cost_info": {"default_cost_per_query": -1}}},
     "default_cost_per_query"),
])  # fmt: skip
def test_a_bad_or_unsupported_server_setting_is_refused_by_name(server, named):
    with pytest.raises(GatewayConfigError) as refused:
        parse_config({"model_list": [], "mcp_servers": {"s": server}}, check_credentials=False)
    assert named in str(refused.value)


def test_a_server_name_that_cannot_prefix_a_tool_is_refused_and_secrets_are_not_echoed():
    with pytest.raises(GatewayConfigError) as refused:
        parse_config({"model_list": [], "mcp_servers": {"my-server": {"url": "http://x/mcp", "transport": "http"},
                                                        "ok": {"url": "http://x/mcp", "transport": "http", "auth_type": "oauth2",
                                                               "client_secret": "hunter2-oauth"}}}, check_credentials=False)  # fmt: skip
    assert "mcp_servers.my-server: a server's name" in str(refused.value) and "hunter2-oauth" not in str(refused.value)
    config = parse_config({"model_list": [], "mcp_servers": {"ok": {"url": "http://x/mcp", "transport": "http", "auth_type": "bearer_token",
                                                                     "authentication_token": "hunter2-bearer"}}}, check_credentials=False)  # fmt: skip
    assert "hunter2-bearer" not in repr(config.mcp_servers) and "mcp_servers" not in " ".join(config.warnings)


def test_object_permission_is_checked_by_name(gateway):
    for body, named in (({"object_permission": {"mcp_servers": ["zeta"]}}, "object_permission.mcp_servers"),
                        ({"object_permission": {"mcp_servers": "alpha"}}, "object_permission.mcp_servers"),
                        ({"object_permission": {"mcp_tool_permissions": {"alpha": "echo"}}}, "object_permission.mcp_tool_permissions"),
                        ({"object_permission": {"vector_stores": ["vs_1"]}}, "object_permission.vector_stores"),
                        ({"object_permission": ["alpha"]}, "object_permission")):  # fmt: skip
        reply = httpx.post(f"{gateway.base_url}/key/generate", headers=ADMIN, json=body, timeout=30)
        assert reply.status_code == 400 and reply.json()["error"]["param"] == named, reply.text


STDIO_SERVER = """
from mcp.server.mcpserver import MCPServer

server = MCPServer("local", log_level="WARNING")

@server.tool(description="Says it louder.")
def shout(text: str) -> str:
    return text.upper()

server.run("stdio")
"""


def test_stdio_and_sse_upstreams_are_reached_like_http_ones(tmp_path):
    """A stdio server (a process the gateway starts) and a legacy SSE server, behind the same door."""
    import sys

    script = tmp_path / "local_server.py"
    script.write_text(STDIO_SERVER)
    legacy = mcpserver.MCPServer("legacy", log_level="WARNING")

    @legacy.tool()
    def whisper(text: str) -> str:
        """Says it softer."""
        return text.lower()

    with BackgroundServer(legacy.sse_app()) as sse_server:
        config = {"mcp_servers": {"local": {"transport": "stdio", "command": sys.executable, "args": [str(script)], "allow_all_keys": True},
                                  "legacy": {"url": f"{sse_server.base_url}/sse", "allow_all_keys": True}},  # LiteLLM's default: sse
                  "general_settings": {"master_key": MASTER}}  # fmt: skip

        async def go(base_url):
            async with _session(f"{base_url}/mcp", MASTER) as session:
                names = sorted(t.name for t in (await session.list_tools()).tools)
                loud = await session.call_tool("local-shout", {"text": "hello"})
                soft = await session.call_tool("legacy-whisper", {"text": "HELLO"})
                return names, loud.content[0].text, soft.content[0].text

        with BackgroundServer(create_app(parse_config(config, check_credentials=False))) as gateway:
            names, loud, soft = _run(go(gateway.base_url))
    assert names == ["legacy-whisper", "local-shout"] and loud == "HELLO" and soft == "hello"


def test_an_oauth_token_is_renewed_when_it_expires_or_is_refused(tmp_path):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    issued: list[str] = []

    async def token(request):
        issued.append(f"vault-token-{len(issued)}")
        return JSONResponse({"access_token": issued[-1], "token_type": "Bearer", "expires_in": 31})  # kept 1 s (renewed 30 s early)

    vault = Upstream("vault")
    seen: list[str] = []
    revoked: set[str] = set()

    @vault.server.tool()
    def secret() -> str:
        """A secret."""
        return "s3"

    app = vault.server.streamable_http_app(json_response=True, stateless_http=True)

    async def checking(scope, receive, send):
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"").decode()
            seen.append(given)
            if given.removeprefix("Bearer ") in revoked:
                await Response(status_code=401)(scope, receive, send)
                return
        await app(scope, receive, send)

    async def call(base_url):
        async with _session(f"{base_url}/mcp/vault", MASTER) as session:
            return (await session.call_tool("secret", {})).content[0].text

    with BackgroundServer(Starlette(routes=[Route("/token", token, methods=["POST"])])) as tokens, BackgroundServer(checking) as upstream:
        config = {"mcp_servers": {"vault": {"url": f"{upstream.base_url}/mcp", "transport": "http", "auth_type": "oauth2", "client_id": "gw",
                                            "client_secret": "c", "token_url": f"{tokens.base_url}/token"}},
                  "general_settings": {"master_key": MASTER}}  # fmt: skip
        with BackgroundServer(create_app(parse_config(config, check_credentials=False))) as gateway:
            assert _run(call(gateway.base_url)) == "s3"
            first = len(issued)
            deadline = time.monotonic() + 10
            while len(issued) == first:  # the token's lifetime passes: the next call fetches a new one
                assert _run(call(gateway.base_url)) == "s3" and time.monotonic() < deadline
                time.sleep(0.2)
            revoked.add(issued[-1])  # revoked early: the upstream answers 401, the gateway renews and tries once more
            assert _run(call(gateway.base_url)) == "s3"
    assert seen[-1] == f"Bearer {issued[-1]}" and issued[-1] not in revoked and len(issued) >= 3


def test_a_hanging_upstream_times_out_and_others_stay_answered(tmp_path):
    slow = Upstream("slow")

    @slow.server.tool()
    async def stall() -> str:
        """Never answers in time."""
        await asyncio.sleep(30)
        return "late"

    quick = _beta()
    with BackgroundServer(slow.asgi()) as s, BackgroundServer(quick.asgi()) as q:
        config = {"mcp_servers": {"slow": {"url": f"{s.base_url}/mcp", "transport": "http", "timeout": 1},
                                  "beta": {"url": f"{q.base_url}/mcp", "transport": "http"}},
                  "general_settings": {"master_key": MASTER}}  # fmt: skip

        async def go(base_url):
            async def stalled():
                async with _session(f"{base_url}/mcp", MASTER) as session:
                    try:
                        await session.call_tool("slow-stall", {})
                    except MCPError as exc:
                        return exc.error.message
                    return "answered"

            async def quick_call():
                await asyncio.sleep(0.2)
                async with _session(f"{base_url}/mcp/beta", MASTER) as session:
                    started = time.monotonic()
                    result = await session.call_tool("add", {"a": 2, "b": 2})
                    return result.content[0].text, time.monotonic() - started

            return await asyncio.gather(stalled(), quick_call())

        with BackgroundServer(create_app(parse_config(config, check_credentials=False))) as gateway:
            message, (added, took) = _run(go(gateway.base_url))
    assert "slow did not answer within 1 s" in message
    assert added == "4" and took < 1.0  # answered while the other call was still hanging


def test_concurrent_priced_calls_never_overshoot_the_budget(gateway, upstreams):
    key = _admin(gateway, "/key/generate", {"max_budget": 1.0, "object_permission": {"mcp_servers": ["alpha"]}})
    before = len(upstreams["alpha"].calls)

    def call(i):
        return httpx.post(f"{gateway.base_url}/mcp-rest/tools/call", headers={"authorization": f"Bearer {key['key']}"},
                          json={"name": "alpha-echo", "arguments": {"text": f"n{i}"}}, timeout=60)  # fmt: skip

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(12) as pool:
        replies = list(pool.map(call, range(12)))
    answered = [r for r in replies if r.status_code == 200]
    assert {r.status_code for r in replies} <= {200, 429} and 1 <= len(answered) <= 4  # 4 x $0.25 fit a $1 budget
    assert len(upstreams["alpha"].calls) - before == len(answered)  # a refused call never reached the tool server
    info = httpx.get(f"{gateway.base_url}/key/info", headers=ADMIN, params={"key": key["token"]}, timeout=30).json()["info"]
    assert info["spend"] == pytest.approx(ECHO_COST * len(answered)) and info["spend"] <= 1.0 + 1e-9


@pytest.mark.parametrize("body", [
    {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x" * 100_000, "arguments": {}}},
    {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "nodash", "arguments": {}}},
    {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "alpha-echo", "arguments": "not an object"}},
    {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": 5}},
    {"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "file:///etc/passwd"}},
    {"jsonrpc": "2.0", "id": 1, "method": "prompts/get", "params": {"name": "-greet"}},
    {"jsonrpc": "2.0", "id": 1, "method": "no/such/method"},
    {"jsonrpc": "1.0", "id": 1, "method": "tools/list"},
])  # fmt: skip
def test_hostile_requests_get_a_json_rpc_error_never_a_500(gateway, keys, upstreams, body):
    before = sum(len(up.calls) for up in upstreams.values())
    headers = {"authorization": f"Bearer {keys['echo_only']}", "accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}
    reply = httpx.post(f"{gateway.base_url}/mcp", headers=headers, json=body, timeout=30)
    assert reply.status_code < 500, reply.text
    if reply.status_code == 200:
        assert "error" in reply.json() or reply.json()["result"].get("isError"), reply.text
    assert sum(len(up.calls) for up in upstreams.values()) == before


@pytest.mark.parametrize(("auth", "header", "expected"), [
    ({"auth_type": "api_key", "authentication_token": "delta-api-key"}, "x-api-key", "delta-api-key"),
    ({"auth_type": "basic", "authentication_token": "svc:pa55"}, "authorization", "Basic c3ZjOnBhNTU="),
    ({"auth_type": "authorization", "auth_value": "Token raw-value"}, "authorization", "Token raw-value"),
])  # fmt: skip
def test_each_upstream_auth_kind_arrives_as_configured_and_the_callers_key_never_does(auth, header, expected):
    up = _beta()
    with BackgroundServer(up.asgi()) as running:
        config = {"mcp_servers": {"delta": {"url": f"{running.base_url}/mcp", "transport": "http", "allow_all_keys": True, **auth}},
                  "general_settings": {"master_key": MASTER}}  # fmt: skip

        async def go(base_url):
            async with _session(f"{base_url}/mcp/delta", MASTER, **{"x-api-key": MASTER}) as session:
                return (await session.call_tool("add", {"a": 1, "b": 2})).content[0].text

        with BackgroundServer(create_app(parse_config(config, check_credentials=False))) as gateway:
            assert _run(go(gateway.base_url)) == "3"
    assert up.headers and all(seen.get(header) == expected for seen in up.headers)
    assert not any(MASTER in value for seen in up.headers for value in seen.values())


def test_any_worker_answers_any_mcp_request_and_no_session_is_needed(tmp_path):
    """``ocilm serve --workers 2``: the MCP face keeps no session, so a client's requests may land
    on either worker (as on replicas behind a balancer) and every one is answered."""
    import yaml

    from ..servers import serve

    up = _beta()
    with BackgroundServer(up.asgi()) as running:
        config = tmp_path / "mcp.yaml"
        config.write_text(yaml.safe_dump({"mcp_servers": {"beta": {"url": f"{running.base_url}/mcp", "transport": "http", "allow_all_keys": True}},
                                          "general_settings": {"master_key": MASTER}}))  # fmt: skip
        proc, base = serve(str(config), "--workers", "2")
        try:
            async def go():
                async with _session(f"{base}/mcp", MASTER) as session:  # one client, many POSTs, no session id kept
                    return [(await session.call_tool("beta-add", {"a": i, "b": 1})).content[0].text for i in range(12)]

            assert _run(go()) == [str(i + 1) for i in range(12)]
            headers = {"authorization": f"Bearer {MASTER}", "accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}
            init = httpx.post(f"{base}/mcp", headers=headers, timeout=30, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})  # fmt: skip
            assert init.status_code == 200 and "mcp-session-id" not in init.headers
        finally:
            proc.terminate()
            proc.wait(20)


def test_an_idle_upstream_session_is_closed_and_a_broken_one_reopened(upstreams):
    from ocilm.gateway.mcp._config import McpServer
    from ocilm.gateway.mcp._upstream import Upstreams

    server = McpServer(name="beta", url=f"{upstreams['beta'].running.base_url}/mcp")

    async def go():
        pool = Upstreams({"beta": server})
        add = lambda session: session.call_tool("add", {"a": 2, "b": 2})  # noqa: E731
        assert (await pool.call("beta", {}, add)).content[0].text == "4"
        (held,) = pool.held.values()
        held.used -= 10_000  # idle past IDLE_SECONDS
        await pool.prune()
        assert not pool.held and held.task.done()  # closed: its task (and connection) ended
        assert (await pool.call("beta", {}, add)).content[0].text == "4"  # opened again on the next call
        (again,) = pool.held.values()
        again.broken = True  # as after its transport failed
        assert (await pool.call("beta", {}, add)).content[0].text == "4"
        assert next(iter(pool.held.values())) is not again
        await pool.close()

    _run(go())


PHONE = "+1 415 555 0100"


@pytest.mark.parametrize("action", ["MASK", "BLOCK"])
def test_a_tools_arguments_and_result_pass_the_keys_guardrails(sim, action):
    """pre_call reads what the tool is sent, post_call what the caller gets back, as for a model."""
    up = Upstream("phone")
    sent: list[str] = []

    @up.server.tool()
    def repeat(text: str) -> str:
        """Says it back, with a number to call."""
        sent.append(text)
        return f"You said: {text}. Questions? Call {PHONE}."

    guard = {"guardrail": "oci_guardrails", **sim.credentials(), "pii_entities_config": {"TELEPHONE_NUMBER": action}, "default_on": True}
    with BackgroundServer(up.asgi()) as running:
        config = {"model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **sim.credentials()}}],
                  "mcp_servers": {"phone": {"url": f"{running.base_url}/mcp", "transport": "http", "allow_all_keys": True}},
                  "guardrails": [{"guardrail_name": f"pii-{mode}", "litellm_params": {**guard, "mode": mode}} for mode in ("pre_call", "post_call")],
                  "general_settings": {"master_key": MASTER}}  # fmt: skip

        async def go(base_url, text):
            async with _session(f"{base_url}/mcp/phone", MASTER) as session:
                try:
                    return (await session.call_tool("repeat", {"text": text})).content[0].text
                except MCPError as exc:
                    return exc

        with BackgroundServer(create_app(parse_config(config))) as gateway:
            clean = _run(go(gateway.base_url, "hello"))
            dirty = _run(go(gateway.base_url, f"ring me on {PHONE}"))
    if action == "MASK":
        assert PHONE not in clean and "[TELEPHONE_NUMBER]" in clean  # the result's number, masked before the caller saw it
        assert sent[-1] == "ring me on [TELEPHONE_NUMBER]" and PHONE not in dirty  # the argument's, before the tool saw it
    else:
        assert isinstance(clean, MCPError) and clean.error.data["status"] == 400 and "guardrail" in clean.error.message
        assert isinstance(dirty, MCPError) and sent == ["hello"]  # refused before the tool ran: it never saw the number


def test_callers_sending_ever_new_forwarded_headers_cannot_grow_the_pool(upstreams, monkeypatch):
    from ocilm.gateway.mcp import _upstream
    from ocilm.gateway.mcp._config import McpServer

    monkeypatch.setattr(_upstream, "POOLED_PER_SERVER", 3)
    server = McpServer(name="beta", url=f"{upstreams['beta'].running.base_url}/mcp", extra_headers=("x-tenant",))

    async def go():
        pool = _upstream.Upstreams({"beta": server})
        add = lambda session: session.call_tool("add", {"a": 1, "b": 1})  # noqa: E731
        for i in range(8):  # a new header value each time
            assert (await pool.call("beta", {"x-tenant": f"t{i}"}, add)).content[0].text == "2"
        pooled = len(pool.held)
        await pool.close()
        return pooled

    assert _run(go()) == 3  # the rest were served on sessions of their own, closed after their call
