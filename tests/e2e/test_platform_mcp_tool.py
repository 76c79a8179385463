"""The `mcp` hosted tool passed through the gateway to an `/openai/v1` deployment: the simulator, as
OCI does, really calls a remote MCP server on loopback (one built on the official `mcp` package);
the tool's output is a text the caller receives, which guardrails read; the caller's gateway key
never reaches the MCP server."""

from __future__ import annotations

import pytest

from ocilm.gateway import create_app, parse_config
from ocilm.testing import BackgroundServer

from ..servers import recording_headers

openai = pytest.importorskip("openai")
MASTER = "sk-master-mcp-tool-1"
PHONE = "+1 415 555 0100"


@pytest.fixture(scope="module")
def mcp_server():
    """A Streamable HTTP MCP server with one tool, recording what reached it."""
    mcpserver = pytest.importorskip("mcp.server.mcpserver")
    server = mcpserver.MCPServer("orders")
    seen: list[dict] = []

    @server.tool()
    def lookup_order(order_id: str) -> str:
        """The status of an order."""
        seen.append({"order_id": order_id})
        return f"Order {order_id} ships on Friday; call {PHONE} with questions."

    headers_seen: list[dict] = []
    with BackgroundServer(recording_headers(server.streamable_http_app(json_response=True), headers_seen)) as running:
        running.seen, running.headers_seen = seen, headers_seen
        yield running


@pytest.fixture(scope="module")
def gateway(sim):
    key = sim.api_key_credentials()
    config = {
        "model_list": [{"model_name": "gpt", "litellm_params": {"model": "oci/xai.grok-3", **key}}],
        "guardrails": [{"guardrail_name": "pii", "litellm_params": {"guardrail": "oci_guardrails", **sim.credentials(), "mode": "post_call",
                                                                    "pii_entities_config": {"TELEPHONE_NUMBER": "MASK"}}}],
        "general_settings": {"master_key": MASTER},
    }  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as server:
        yield server


def _tool(mcp_server, **extra) -> dict:
    return {"type": "mcp", "server_label": "orders", "server_url": f"{mcp_server.base_url}/mcp", "require_approval": "never",
            "headers": {"authorization": "Bearer orders-service-token"}, **extra}  # fmt: skip


def test_the_mcp_tool_calls_the_remote_server_and_its_output_is_guarded(gateway, mcp_server):
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=MASTER, max_retries=0) as client:
        reply = client.responses.create(model="gpt", input="Please lookup_order for order Z42", tools=[_tool(mcp_server)])
        masked = client.responses.create(model="gpt", input="Please lookup_order for order Z42", tools=[_tool(mcp_server)],
                                         extra_body={"guardrails": ["pii"]})  # fmt: skip
    kinds = [item.type for item in reply.output]
    assert kinds[:2] == ["mcp_list_tools", "mcp_call"] and reply.output[0].tools[0].name == "lookup_order"
    assert "ships on Friday" in reply.output[1].output and mcp_server.seen  # the remote server really answered
    assert PHONE not in str(masked.model_dump()) and "[TELEPHONE_NUMBER]" in masked.output[1].output  # post_call read the tool's text
    sent = [h.get("authorization") for h in mcp_server.headers_seen]
    assert set(sent) == {"Bearer orders-service-token"} and MASTER not in str(mcp_server.headers_seen)


def test_a_tool_that_needs_approval_is_asked_not_called(gateway, mcp_server):
    calls = len(mcp_server.seen)
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=MASTER, max_retries=0) as client:
        reply = client.responses.create(model="gpt", input="lookup_order Z7", tools=[_tool(mcp_server, require_approval="always")])
    assert [item.type for item in reply.output][:2] == ["mcp_list_tools", "mcp_approval_request"] and len(mcp_server.seen) == calls
