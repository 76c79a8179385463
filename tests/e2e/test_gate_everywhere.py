"""Every call to OCI passes the gate (the December 7 review's M2, H4, H5): each route that calls
OCI or does per-item work is authenticated, rate limited, budgeted and logged through the same
stages, counts are capped where they enter, and billing follows the usage (a background
response is billed when its usage appears, never at $0)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from ocilm.gateway import create_app, parse_config
from ocilm.testing import BackgroundServer

MASTER = "sk-master-gate-everywhere-1"
ADMIN = {"authorization": f"Bearer {MASTER}"}
PRICE = {"input_cost_per_token": 0.0001, "output_cost_per_token": 0.0003}


@pytest.fixture(scope="module")
def mcp_upstream():
    """An MCP server (the official package) behind the gateway's MCP door, counting its tool calls."""
    mcpserver = pytest.importorskip("mcp.server.mcpserver")
    server = mcpserver.MCPServer("tools")
    calls: list[str] = []

    @server.tool()
    def ping(text: str) -> str:
        """Answers pong."""
        calls.append(text)
        return "pong"

    @server.prompt()
    def greet(name: str) -> str:
        calls.append(name)
        return f"Hello {name}"

    with BackgroundServer(server.streamable_http_app(json_response=True)) as running:
        running.calls = calls
        yield running


@pytest.fixture(scope="module")
def gateway(sim, tmp_path_factory, mcp_upstream):
    signed, key = sim.credentials(), sim.api_key_credentials()
    config = {
        "model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **signed, **PRICE}},
                       {"model_name": "gpt", "litellm_params": {"model": "oci/xai.grok-3", **key, **PRICE}},
                       {"model_name": "embed", "litellm_params": {"model": "oci/cohere.embed-english-v3.0", **signed, **PRICE}},
                       {"model_name": "rerank", "litellm_params": {"model": "oci/cohere.rerank-v3.5", **signed, **PRICE}}],
        "guardrails": [{"guardrail_name": "safety", "litellm_params": {"guardrail": "oci_guardrails", **signed, "prompt_injection": "BLOCK",
                                                                       "input_cost_per_token": 0.00001}}],
        "router_settings": {"model_group_alias": {"claude-x": "llama"}},
        "litellm_settings": {"cache": True},
        "mcp_servers": {"tools": {"url": f"{mcp_upstream.base_url}/mcp", "transport": "http", "allow_all_keys": True,
                                  "mcp_info": {"mcp_server_cost_info": {"default_cost_per_query": 0.01}}}},
        "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path_factory.mktemp('gate') / 'g.db'}"},
    }  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as server:
        yield server


def _key(gateway, **fields) -> dict:
    r = httpx.post(f"{gateway.base_url}/key/generate", headers=ADMIN, json=fields, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _logs(gateway, token: str) -> list[dict]:
    return httpx.get(f"{gateway.base_url}/spend/logs", headers=ADMIN, params={"api_key": token}, timeout=30).json()


def _stored(gateway, key: str) -> str:
    r = httpx.post(f"{gateway.base_url}/v1/responses", headers={"authorization": f"Bearer {key}"}, json={"model": "gpt", "input": "keep me"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def _post(path: str, body: dict) -> Callable:
    def call(gateway, key: str, _: str | None) -> httpx.Response:
        return httpx.post(f"{gateway.base_url}{path}", headers={"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"}, json=body, timeout=30)

    return call


def _get(path: str) -> Callable:
    def call(gateway, key: str, _: str | None) -> httpx.Response:
        return httpx.get(f"{gateway.base_url}{path}", headers={"authorization": f"Bearer {key}"}, timeout=30)

    return call


def _stored_call(method: str, suffix: str) -> Callable:
    def call(gateway, key: str, response_id: str | None) -> httpx.Response:
        return httpx.request(method, f"{gateway.base_url}/v1/responses/{response_id}{suffix}", headers={"authorization": f"Bearer {key}"}, timeout=30)

    return call


def _websocket(body: dict) -> Callable:
    """A turn of the Responses door's WebSocket mode, answered as the HTTP door would be (an
    error event's status, or 200 for a completed response)."""

    def call(gateway, key: str, _: str | None) -> httpx.Response:
        import json

        from websockets.sync.client import connect

        url = gateway.base_url.replace("http://", "ws://") + "/v1/responses"
        with connect(url, additional_headers={"authorization": f"Bearer {key}"}, open_timeout=10) as ws:
            ws.send(json.dumps({"type": "response.create", **body}))
            while True:
                event = json.loads(ws.recv(timeout=30))
                if event["type"] == "error":
                    return httpx.Response(event["status"], json={"error": event["error"]})
                if event["type"] in ("response.completed", "response.failed", "response.incomplete"):
                    return httpx.Response(200, json=event["response"])

    return call


def _mcp_call(path: str, method: str = "tools/call") -> Callable:
    """A ``tools/call`` (or ``prompts/get``) on the MCP door (stateless: one POST), answered with the
    status the gate gave (a JSON-RPC error carries it in ``data.status``)."""

    def call(gateway, key: str, _: str | None) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}", "accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}
        name = ("tools-" if path == "/mcp" else "") + ("ping" if method == "tools/call" else "greet")
        params = {"name": name, "arguments": {"text": "hi"} if method == "tools/call" else {"name": "hi"}}
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        reply = httpx.post(f"{gateway.base_url}{path}", headers=headers, json=body, timeout=30)
        error = reply.json().get("error") if reply.status_code == 200 else None
        return httpx.Response((error.get("data") or {}).get("status", 500), json={"error": error}) if error else reply

    return call


# route name in the spend log: the call, and how many stored responses it needs made first
ROUTES = {
    "chat": (_post("/v1/chat/completions", {"model": "llama", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}), 0),
    "embeddings": (_post("/v1/embeddings", {"model": "embed", "input": ["one", "two"]}), 0),
    "rerank": (_post("/v1/rerank", {"model": "rerank", "query": "q", "documents": ["a", "b"]}), 0),
    "responses": (_post("/v1/responses", {"model": "gpt", "input": "hi", "max_output_tokens": 5}), 0),
    "responses over a websocket": (_websocket({"model": "llama", "input": "hi", "max_output_tokens": 5}), 0),
    "messages": (_post("/v1/messages", {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}), 0),
    "moderations": (_post("/v1/moderations", {"model": "safety", "input": "hello there"}), 0),
    "responses.get": (_stored_call("GET", ""), 1),
    "responses.input_items": (_stored_call("GET", "/input_items"), 1),
    "responses.delete": (_stored_call("DELETE", ""), 2),
    "files.list": (_get("/v1/files"), 0),
    "vector_stores.list": (_get("/v1/vector_stores"), 0),
    "vector_stores.create": (_post("/v1/vector_stores", {"name": "notes"}), 0),
    "conversations.create": (_post("/v1/conversations", {}), 0),
    "containers.list": (_get("/v1/containers"), 0),
    "mcp": (_mcp_call("/mcp"), 0),
    "mcp on one server's route": (_mcp_call("/mcp/tools"), 0),
    "mcp over REST": (_post("/mcp-rest/tools/call", {"name": "tools-ping", "arguments": {"text": "hi"}}), 0),
    "mcp prompts/get": (_mcp_call("/mcp", "prompts/get"), 0),
}  # fmt: skip


@pytest.mark.parametrize("route", list(ROUTES))
def test_every_route_that_calls_oci_meets_the_keys_rate_limit_and_is_logged(gateway, sim, mcp_upstream, route):
    call, stored = ROUTES[route]
    made = _key(gateway, rpm_limit=stored + 1, max_budget=5)
    ids = [_stored(gateway, made["key"]) for _ in range(stored)] or [None]
    first = call(gateway, made["key"], ids[0])
    assert first.status_code == 200, first.text
    calls, tool_calls = len(sim.requests), len(mcp_upstream.calls)
    second = call(gateway, made["key"], ids[-1])
    assert second.status_code == 429, (second.status_code, second.text[:200])
    assert len(sim.requests) == calls and len(mcp_upstream.calls) == tool_calls  # refused before anything reached OCI or a tool server
    logged_as = "responses" if route == "responses over a websocket" else "mcp" if route.startswith("mcp") else route
    assert any(row["call_type"] == logged_as and row["status"] == 200 for row in _logs(gateway, made["token"]))


@pytest.mark.parametrize("route", ["moderations", "responses.get"])
def test_a_key_restricted_to_models_reaches_only_what_it_was_given(gateway, sim, route):
    owner = _key(gateway)
    response_id = _stored(gateway, owner["key"])
    httpx.post(f"{gateway.base_url}/key/update", headers=ADMIN, json={"key": owner["key"], "models": ["embed"]}, timeout=30)
    time.sleep(0.6)  # the key cache's lifetime: the narrowed key is read again
    calls = len(sim.requests)
    refused = ROUTES[route][0](gateway, owner["key"], response_id)
    assert refused.status_code == 403 and len(sim.requests) == calls


def test_a_moderation_is_priced_and_capped(gateway):
    made = _key(gateway, max_budget=5)
    r = _post("/v1/moderations", {"model": "safety", "input": ["a" * 400, "b" * 400]})(gateway, made["key"], None)
    assert r.status_code == 200 and float(r.headers["x-litellm-response-cost"]) == pytest.approx(200 * 0.00001)
    huge = _post("/v1/moderations", {"model": "safety", "input": "x" * 100_001})(gateway, made["key"], None)
    assert huge.status_code == 400 and huge.json()["error"]["param"] == "input"


def test_embedding_inputs_are_capped_before_any_per_input_work(gateway, sim):
    calls = len(sim.requests)
    r = _post("/v1/embeddings", {"model": "embed", "input": ["x"] * 2049})(gateway, MASTER, None)
    assert r.status_code == 400 and r.json()["error"]["param"] == "input" and "2048" in r.text
    assert len(sim.requests) == calls
    ok = _post("/v1/embeddings", {"model": "embed", "input": [f"w{i}" for i in range(2048)]})(gateway, MASTER, None)
    assert ok.status_code == 200 and len(ok.json()["data"]) == 2048


def _wait_for(check: Callable[[], object], seconds: float = 15.0) -> object:
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


@pytest.mark.parametrize("read", [True, False], ids=["a GET sees it end", "the gateway polls"])
def test_a_background_response_is_billed_when_its_usage_appears(gateway, read):
    made = _key(gateway, max_budget=5)
    auth = {"authorization": f"Bearer {made['key']}"}
    body = {"model": "gpt", "input": "tell me something", "max_output_tokens": 40}
    foreground = httpx.post(f"{gateway.base_url}/v1/responses", headers=auth, json=body, timeout=30).json()
    queued = httpx.post(f"{gateway.base_url}/v1/responses", headers=auth, json={**body, "background": True}, timeout=30)
    assert queued.status_code == 200 and queued.json()["status"] == "queued"
    if read:
        _wait_for(lambda: httpx.get(f"{gateway.base_url}/v1/responses/{queued.json()['id']}", headers=auth, timeout=30).json()["status"] == "completed")
    rows = _wait_for(lambda: [r for r in _logs(gateway, made["token"]) if r["call_type"] == "responses" and r["prompt_tokens"]] if len(
        [r for r in _logs(gateway, made["token"]) if r["call_type"] == "responses"]) == 2 else None)  # fmt: skip
    assert len(rows) == 2 and rows[0]["spend"] == pytest.approx(rows[1]["spend"]) and rows[0]["spend"] > 0
    assert foreground["usage"]["input_tokens"] in {r["prompt_tokens"] for r in rows}
    info = httpx.get(f"{gateway.base_url}/key/info", headers=ADMIN, params={"key": made["key"]}, timeout=30).json()
    spend = info.get("info", info).get("spend")
    assert spend == pytest.approx(sum(r["spend"] for r in rows))


def test_a_background_response_running_at_shutdown_is_billed_at_its_worst_case(sim, tmp_path):
    """A graceful stop settles what is still running at its worst case, at once: never $0, and the
    stop does not wait out a poller."""
    config = {"model_list": [{"model_name": "gpt", "litellm_params": {"model": "oci/xai.grok-3", **sim.api_key_credentials(), **PRICE}}],
              "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path / 'bg.db'}"}}  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as first:
        made = _key(first, max_budget=5)
        queued = _post("/v1/responses", {"model": "gpt", "input": "slow work", "background": True, "max_output_tokens": 40})(first, made["key"], None)
        assert queued.json()["status"] == "queued"
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 10
    with BackgroundServer(create_app(parse_config(config))) as second:
        rows = [r for r in _logs(second, made["token"]) if r["call_type"] == "responses"]
    assert len(rows) == 1 and rows[0]["completion_tokens"] == 40 and rows[0]["spend"] > 0  # its worst case: every output token it could use
