"""Hosted tools are money: each call OCI runs for a Responses request (file_search,
code_interpreter, mcp, web_search) is counted by type in the spend log and priced where the
operator gives ``model_info.<tool>_cost_per_call``; a budget's hold covers the most the request's
tools can cost (``max_tool_calls``, which the gateway sends when the caller gave none), so a budget
is never overshot by tool calls. Driven by the official openai SDK through ``ocilm serve``."""

from __future__ import annotations

import json

import httpx
import pytest

from ocilm.gateway import GatewayConfigError, create_app, parse_config
from ocilm.testing import BackgroundServer

openai = pytest.importorskip("openai")
MASTER = "sk-master-tool-billing"
ADMIN = {"authorization": f"Bearer {MASTER}"}
PER_TOKEN = 0.000001
FILE_SEARCH, CODE = 0.25, 0.5  # USD per call


@pytest.fixture(scope="module")
def gateway(sim, tmp_path_factory):
    config = {
        "model_list": [{"model_name": "gpt", "litellm_params": {"model": "oci/xai.grok-3", **sim.api_key_credentials()},
                        "model_info": {"input_cost_per_token": PER_TOKEN, "output_cost_per_token": PER_TOKEN,
                                       "file_search_cost_per_call": FILE_SEARCH, "code_interpreter_cost_per_call": CODE}}],
        "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path_factory.mktemp('tools') / 't.db'}",
                             "max_hosted_tool_calls": 4},
    }  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as server:
        yield server


def _key(gateway, **fields) -> dict:
    return httpx.post(f"{gateway.base_url}/key/generate", headers=ADMIN, json=fields, timeout=30).json()


def _client(gateway, key: str):
    return openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=key, max_retries=0, _strict_response_validation=True)


def _rows(gateway, token: str) -> list[dict]:
    return httpx.get(f"{gateway.base_url}/spend/logs", headers=ADMIN, params={"api_key": token}, timeout=30).json()


def _store(client) -> str:
    made = client.files.create(file=("notes.txt", b"The ledger uses sqlx for its database."), purpose="assistants")
    return client.vector_stores.create(name="notes", file_ids=[made.id]).id


def _sent(sim) -> dict:
    return json.loads(next(r for r in reversed(sim.requests) if r.path == "/openai/v1/responses").body)


@pytest.mark.parametrize("stream", [False, True], ids=["reply", "stream"])
def test_tool_calls_are_counted_by_type_and_priced(gateway, sim, stream):
    made = _key(gateway, max_budget=50)
    tools = [{"type": "file_search", "vector_store_ids": []}, {"type": "code_interpreter", "container": {"type": "auto"}}]
    with _client(gateway, made["key"]) as client:
        tools[0]["vector_store_ids"] = [_store(client)]
        if stream:
            with client.responses.stream(model="gpt", input="Which database library?", tools=tools) as events:
                reply = events.get_final_response()
        else:
            reply = client.responses.create(model="gpt", input="Which database library?", tools=tools)
    kinds = sorted(item.type for item in reply.output if item.type.endswith("_call"))
    assert kinds == ["code_interpreter_call", "file_search_call"]
    assert _sent(sim)["max_tool_calls"] == 4  # the gateway's bound, sent since the caller gave none
    row = next(r for r in _rows(gateway, made["token"]) if r["call_type"] == "responses")
    assert row["tool_calls"] == {"code_interpreter": 1, "file_search": 1}
    tokens = (row["prompt_tokens"] + row["completion_tokens"]) * PER_TOKEN
    assert row["spend"] == pytest.approx(tokens + FILE_SEARCH + CODE, abs=1e-8)
    info = httpx.get(f"{gateway.base_url}/key/info", headers=ADMIN, params={"key": made["token"]}, timeout=30).json()["info"]
    assert info["spend"] == pytest.approx(row["spend"], abs=1e-8)


def test_a_budget_hold_covers_what_the_tools_can_cost(gateway, sim):
    """Four calls at $0.50 is $2 more than the tokens: a key with $1.50 left is refused before
    anything reaches OCI, and the same request bounded to one call by the caller passes."""
    made = _key(gateway, max_budget=1.5)
    with _client(gateway, made["key"]) as client:
        tools = [{"type": "code_interpreter", "container": {"type": "auto"}}]
        before = len([r for r in sim.requests if r.path == "/openai/v1/responses"])
        with pytest.raises(openai.RateLimitError) as refused:
            client.responses.create(model="gpt", input="Add two and two.", tools=tools)
        assert "budget" in str(refused.value)
        assert len([r for r in sim.requests if r.path == "/openai/v1/responses"]) == before
        reply = client.responses.create(model="gpt", input="Add two and two.", tools=tools, max_tool_calls=1)
        assert reply.output[0].type == "code_interpreter_call"
    assert _sent(sim)["max_tool_calls"] == 1


def test_max_tool_calls_above_the_bound_or_malformed_is_a_400_naming_it(gateway):
    made = _key(gateway)
    with _client(gateway, made["key"]) as client:
        for bad in (5, 0, "2"):
            with pytest.raises(openai.BadRequestError) as refused:
                client.responses.create(model="gpt", input="x", tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
                                        max_tool_calls=bad)  # type: ignore[arg-type]  # fmt: skip
            assert refused.value.body["param"] == "max_tool_calls"


def test_the_bound_applies_only_where_tools_are_priced(gateway, sim):
    made = _key(gateway)
    with _client(gateway, made["key"]) as client:
        client.responses.create(model="gpt", input="Hello.")
    assert "max_tool_calls" not in _sent(sim)  # no hosted tool: nothing added


@pytest.mark.parametrize(("field", "value", "named"), [
    ("code_interpreter_cost_per_session", 0.03, "not supported"),
    ("search_context_cost_per_query", 0.01, "not supported"),
    ("file_search_cost_per_call", -1, "expected a number"),
    ("mcp_cost_per_call", "free", "expected a number"),
])  # fmt: skip
def test_a_tool_price_ocilm_cannot_honour_stops_start_up_naming_it(field, value, named):
    config = {"model_list": [{"model_name": "m", "litellm_params": {"model": "oci/xai.grok-3", "oci_api_key": "sk-test-not-real",
                                                                   "oci_region": "us-chicago-1"},
                              "model_info": {field: value}}]}  # fmt: skip
    with pytest.raises(GatewayConfigError) as refused:
        parse_config(config, check_credentials=False)
    assert f"model_list[0].model_info.{field}: {named}" in str(refused.value)
    assert str(value) not in str(refused.value).split(field)[0]  # the value is never echoed
