"""The gateway in front of OCI's OpenAI-compatible API: deployments with a Generative AI API key
(or ``oci_api_mode: openai``), driven by the official SDKs over HTTP, metered from the usage
``/openai/v1`` reports; stored responses that only their owner can reach."""

from __future__ import annotations

import time

import httpx
import pytest

from ocilm.gateway import GatewayConfigError, create_app, parse_config
from ocilm.testing import BackgroundServer

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
MASTER = "sk-master-openai-v1-1"
ADMIN = {"authorization": f"Bearer {MASTER}"}
PRICE = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}


@pytest.fixture
def gateway(sim, tmp_path):
    key = sim.api_key_credentials()
    signed = {**sim.credentials(), "oci_api_mode": "openai"}
    config = {
        "model_list": [
            {"model_name": "grok", "litellm_params": {"model": "oci/xai.grok-4", **key, **PRICE}},
            {"model_name": "gpt-pro", "litellm_params": {"model": "oci/openai.gpt-oss-120b", **key, **PRICE}},
            {"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **signed, **PRICE}},
        ],
        "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path / 'g.db'}"},
    }  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as server:
        server.api_key = key["oci_api_key"]
        yield server


def _key(gateway, **fields) -> dict:
    r = httpx.post(f"{gateway.base_url}/key/generate", headers=ADMIN, json=fields, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _spend_logs(gateway, token: str) -> list[dict]:
    return httpx.get(f"{gateway.base_url}/spend/logs", headers=ADMIN, params={"api_key": token}, timeout=30).json()


def test_chat_through_an_api_key_deployment_is_metered(gateway, sim):
    made = _key(gateway, max_budget=10)
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=made["key"], max_retries=0, _strict_response_validation=True) as oa:
        reply = oa.chat.completions.create(model="grok", messages=[{"role": "user", "content": "Hello there"}], max_tokens=20)
        chunks = list(oa.chat.completions.create(model="llama", messages=[{"role": "user", "content": "Hi"}], max_tokens=20, stream=True))
    assert reply.choices[0].message.content and chunks
    sent = [r for r in sim.requests if r.path.startswith("/openai/v1/chat/completions")]
    assert len(sent) >= 2 and sent[-2].headers["authorization"] == f"Bearer {gateway.api_key}"
    assert sent[-1].headers["authorization"].startswith("Signature ") and "opc-compartment-id" in sent[-1].headers
    logs = _spend_logs(gateway, made["token"])
    usage = reply.usage
    billed = next(row for row in logs if row["model"] == "grok")
    assert (billed["prompt_tokens"], billed["completion_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert billed["spend"] == pytest.approx(usage.prompt_tokens * 0.001 + usage.completion_tokens * 0.002)
    assert next(row for row in logs if row["model"] == "llama")["completion_tokens"] > 0


def test_the_messages_door_on_an_api_key_deployment(gateway):
    made = _key(gateway)
    with anthropic.Anthropic(base_url=gateway.base_url, api_key=made["key"], max_retries=0, _strict_response_validation=True) as an:
        message = an.messages.create(model="grok", max_tokens=50, messages=[{"role": "user", "content": "Hello there"}])
    assert any(block.type == "text" and block.text for block in message.content) and message.usage.output_tokens > 0


def test_the_api_key_never_reaches_a_reply_or_a_log(gateway, caplog):
    made = _key(gateway)
    replies = [httpx.post(f"{gateway.base_url}/v1/chat/completions", headers={"authorization": f"Bearer {made['key']}"},
                          json={"model": "grok", "messages": [{"role": "user", "content": "hi"}]}, timeout=30),
               httpx.get(f"{gateway.base_url}/v1/models", headers=ADMIN, timeout=30),
               httpx.get(f"{gateway.base_url}/health/readiness", timeout=30)]  # fmt: skip
    assert all(gateway.api_key not in r.text for r in replies)
    assert gateway.api_key not in caplog.text


@pytest.mark.parametrize(("params", "field"), [
    ({"model": "oci/cohere.command-a-03-2025", "oci_api_key": "sk-x" * 12}, "model"),
    ({"model": "oci/cohere.embed-v4.0", "oci_api_key": "sk-x" * 12}, "model"),
    ({"model": "oci/xai.grok-4", "oci_api_key": "sk-x" * 12, "oci_api_mode": "native"}, "oci_api_mode"),
])  # fmt: skip
def test_the_config_refuses_what_the_api_key_cannot_reach(params, field):
    with pytest.raises(GatewayConfigError) as refused:
        parse_config({"model_list": [{"model_name": "m", "litellm_params": params}]})
    assert f"model_list[0].litellm_params.{field}" in str(refused.value) and "sk-x" not in str(refused.value)


# ---------------------------------------------------------------- the Responses API passed through


def test_responses_pass_through_with_the_openai_sdk(gateway, sim):
    made = _key(gateway, max_budget=100)  # a reply without max_output_tokens holds 4,000 tokens, and as many for reasoning
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=made["key"], max_retries=0, _strict_response_validation=True) as oa:
        first = oa.responses.create(model="gpt-pro", input="My name is Ana.", max_output_tokens=50)
        second = oa.responses.create(model="gpt-pro", input="What is my name?", previous_response_id=first.id)
        with oa.responses.stream(model="gpt-pro", input="Say hi") as stream:
            final = stream.get_final_response()
        got = oa.responses.retrieve(first.id)
        assert oa.responses.retrieve(final.id).id == final.id  # a streamed response is remembered too
        items = oa.responses.input_items.list(first.id)
        queued = oa.responses.create(model="gpt-pro", input="slowly", background=True)
        oa.responses.delete(first.id)
        with pytest.raises(openai.NotFoundError):
            oa.responses.retrieve(first.id)
    assert first.output_text and second.usage.input_tokens > first.usage.input_tokens and final.output_text
    assert got.id == first.id and items.data[0].content[0].text == "My name is Ana." and queued.status == "queued"
    sent = [r for r in sim.requests if r.path == "/openai/v1/responses"]
    assert sent[0].json["input"] == "My name is Ana." and sent[0].json["max_output_tokens"] == 50  # as the caller sent it
    deadline = time.monotonic() + 15
    while True:  # the background response is billed once its usage appears (the gateway polls it), never at $0 when queued
        logs = _spend_logs(gateway, made["token"])
        if sum(row["call_type"] == "responses" for row in logs) == 4 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    billed = next(row for row in logs if row["call_type"] == "responses" and row["prompt_tokens"] == first.usage.input_tokens)
    assert billed["completion_tokens"] == first.usage.output_tokens and billed["spend"] > 0
    responses = [row for row in logs if row["call_type"] == "responses"]
    assert len(responses) == 4 and all(row["spend"] > 0 for row in responses)  # two replies, one stream, one background
    assert {row["call_type"] for row in logs} >= {"responses.get", "responses.input_items", "responses.delete"}


def test_stored_responses_are_invisible_to_other_keys(gateway):
    mine, theirs = _key(gateway)["key"], _key(gateway)["key"]
    made = httpx.post(f"{gateway.base_url}/v1/responses", headers={"authorization": f"Bearer {mine}"},
                      json={"model": "gpt-pro", "input": "secret"}, timeout=30).json()  # fmt: skip
    for method, path in (("GET", f"/v1/responses/{made['id']}"), ("GET", f"/v1/responses/{made['id']}/input_items"),
                         ("DELETE", f"/v1/responses/{made['id']}")):  # fmt: skip
        refused = httpx.request(method, f"{gateway.base_url}{path}", headers={"authorization": f"Bearer {theirs}"}, timeout=30)
        assert refused.status_code == 404, (method, path, refused.text)
    chained = httpx.post(f"{gateway.base_url}/v1/responses", headers={"authorization": f"Bearer {theirs}"},
                         json={"model": "gpt-pro", "input": "what was it?", "previous_response_id": made["id"]}, timeout=30)  # fmt: skip
    assert chained.status_code == 404 and chained.json()["error"]["code"] == "previous_response_not_found"
    assert httpx.get(f"{gateway.base_url}/v1/responses/{made['id']}", headers={"authorization": f"Bearer {mine}"}, timeout=30).status_code == 200


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"input": [{"type": "item_reference", "id": "msg_abc"}]}, 400, "input"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-abc"}]}]}, 404, "file_id"),
    ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_abc"]}]}, 404, "vector_store_id"),
    ({"tools": [{"type": "code_interpreter", "container": "cntr_abc"}]}, 404, "container_id"),
    ({"conversation": "conv_abc"}, 404, "conversation_id"),
])  # fmt: skip
def test_an_id_the_gateway_cannot_attribute_never_reaches_oci(gateway, sim, body, status, param):
    """Every tenant shares the gateway's API key at OCI, so an object named by id (a file, a vector
    store, a container, a conversation, an item) could be another tenant's: one the key's tenant does
    not own is a 404, and an item_reference, whose owner the gateway does not record, is refused;
    neither is sent."""
    made = _key(gateway)
    before = len(sim.requests)
    r = httpx.post(f"{gateway.base_url}/v1/responses", headers={"authorization": f"Bearer {made['key']}"}, timeout=30,
                   json={"model": "gpt-pro", "input": "hi", **body})  # fmt: skip
    assert r.status_code == status and r.json()["error"]["param"] == param, r.text
    assert len(sim.requests) == before
