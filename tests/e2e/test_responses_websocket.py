"""The Responses door's WebSocket mode over a real socket (the `websockets` client), in front of the
simulator: one connection, `response.create` frames, events as JSON text frames; the same gate,
guardrails, limits and spend log as the HTTP door; continuation on the connection with
`store: false`; Codex's `generate: false` warm-up; a caller who leaves cancels the upstream call."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from ocilm.gateway import create_app, parse_config
from ocilm.testing import BackgroundServer, Fault

websockets_sync = pytest.importorskip("websockets.sync.client")
MASTER = "sk-master-ws-tests-1"
ADMIN = {"authorization": f"Bearer {MASTER}"}
ENDS = ("response.completed", "response.incomplete", "response.failed", "error")
PRICE = {"input_cost_per_token": 0.0001, "output_cost_per_token": 0.0003}


def _config(sim, tmp_path, **general) -> dict:
    signed, key = sim.credentials(), sim.api_key_credentials()
    return {
        "model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **signed, **PRICE}},
                       {"model_name": "grok4", "litellm_params": {"model": "oci/xai.grok-4", **signed, **PRICE}},
                       {"model_name": "slow", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **signed, **PRICE,
                        "extra_headers": {"x-ocilm-sim-fault": Fault(events=400, event_delay=0.02, times=None).header()}}},
                       {"model_name": "gpt", "litellm_params": {"model": "oci/xai.grok-3", **key, **PRICE}}],
        "guardrails": [{"guardrail_name": "pii", "litellm_params": {"guardrail": "oci_guardrails", **signed, "mode": "pre_call",
                                                                    "pii_entities_config": {"TELEPHONE_NUMBER": "BLOCK"}}}],
        "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path / 'ws.db'}", **general},
    }  # fmt: skip


@pytest.fixture(scope="module")
def gateway(sim, tmp_path_factory):
    with BackgroundServer(create_app(parse_config(_config(sim, tmp_path_factory.mktemp("ws"))))) as server:
        yield server


def _connect(gateway, key: str = MASTER, path: str = "/v1/responses"):
    return websockets_sync.connect(gateway.base_url.replace("http://", "ws://") + path, additional_headers={"authorization": f"Bearer {key}"},
                                   max_size=None, open_timeout=10)  # fmt: skip


def _turn(ws, **body) -> list[dict]:
    ws.send(json.dumps({"type": "response.create", **body}))
    events = []
    while True:
        event = json.loads(ws.recv(timeout=30))
        events.append(event)
        if event["type"] in ENDS:
            return events


def _chats(sim, since: int) -> list[dict]:
    return [r.json["chatRequest"] for r in sim.requests[since:] if r.path.endswith("/actions/chat")]


def test_a_conversation_on_one_connection_with_store_false(gateway, sim):
    since = len(sim.requests)
    with _connect(gateway) as ws:
        first = _turn(ws, model="llama", input="My name is Ana", store=False)
        assert [e["type"] for e in first[:2]] == ["response.created", "response.in_progress"] and first[-1]["type"] == "response.completed"
        assert [e["sequence_number"] for e in first] == list(range(len(first)))
        rid = first[-1]["response"]["id"]
        second = _turn(ws, model="llama", input=[{"role": "user", "content": "What is my name?"}], previous_response_id=rid, store=False)
    assert second[-1]["type"] == "response.completed"
    sent = _chats(sim, since)[-1]["messages"]
    assert sent[0]["content"][0]["text"] == "My name is Ana" and len(sent) == 3  # the connection carried the history
    # store: false: nothing was kept beyond the connection
    assert httpx.post(f"{gateway.base_url}/v1/responses", headers=ADMIN, timeout=30,
                      json={"model": "llama", "input": "again", "previous_response_id": rid}).status_code == 404  # fmt: skip


def test_an_unknown_previous_response_is_an_error_event_and_the_connection_goes_on(gateway):
    with _connect(gateway) as ws:
        events = _turn(ws, model="llama", input="hi", previous_response_id="resp_unknown")
        assert events == [events[-1]] and events[-1]["type"] == "error" and events[-1]["status"] == 404
        assert events[-1]["error"]["code"] == "previous_response_not_found"
        ws.send("not json")
        bad = json.loads(ws.recv(timeout=30))
        assert bad["type"] == "error" and bad["error"]["param"] == "type"
        assert _turn(ws, model="llama", input="still here")[-1]["type"] == "response.completed"


@pytest.mark.parametrize("model", ["llama", "gpt"], ids=["translated", "openai_v1"])
def test_generate_false_warms_up_without_calling_the_model(gateway, sim, model):
    since = len(sim.requests)
    with _connect(gateway) as ws:
        warm = _turn(ws, model=model, input=[{"role": "user", "content": "Remember: the code is 42"}], generate=False, store=False)
        assert warm[-1]["type"] == "response.completed" and warm[-1]["response"]["output"] == []
        assert not [r for r in sim.requests[since:] if "chat" in r.path or r.path.endswith("/responses")]  # no model call
        follow = _turn(ws, model=model, input=[{"role": "user", "content": "What is the code?"}], previous_response_id=warm[-1]["response"]["id"],
                       store=False)  # fmt: skip
    assert follow[-1]["type"] == "response.completed"
    sent = [r.json for r in sim.requests[since:] if r.json and ("chat" in r.path or r.path.endswith("/responses"))][-1]
    assert "the code is 42" in json.dumps(sent) and "previous_response_id" not in sent  # the connection's items, sent again


def test_the_same_gate_guardrails_and_spend_log(gateway, sim):
    made = httpx.post(f"{gateway.base_url}/key/generate", headers=ADMIN, json={"rpm_limit": 2, "max_budget": 10}, timeout=30).json()
    with _connect(gateway, made["key"]) as ws:
        blocked = _turn(ws, model="llama", input="call +1 415 555 0100", guardrails=["pii"], max_output_tokens=50)
        assert blocked[-1]["type"] == "error" and blocked[-1]["error"]["code"] == "guardrail_violation"
        ok = _turn(ws, model="llama", input="hello", max_output_tokens=50)
        assert ok[-1]["type"] == "response.completed", ok[-1]
        limited = _turn(ws, model="llama", input="hello again", max_output_tokens=50)  # the blocked request counted too
    assert limited[-1]["type"] == "error" and limited[-1]["status"] == 429
    rows = httpx.get(f"{gateway.base_url}/spend/logs", headers=ADMIN, params={"api_key": made["token"]}, timeout=30).json()
    assert sorted((r["call_type"], r["status"]) for r in rows) == [("responses", 200), ("responses", 400)]
    assert next(r for r in rows if r["status"] == 200)["spend"] > 0


def test_a_bad_key_is_refused_at_the_handshake(gateway):
    with pytest.raises(Exception) as refused, _connect(gateway, "sk-wrong-key-123"):
        pass
    assert "401" in str(refused.value) or "1008" in str(refused.value)


def test_a_caller_who_leaves_cancels_the_upstream_call(gateway, sim):
    since = len(sim.requests)
    with _connect(gateway) as ws:
        ws.send(json.dumps({"type": "response.create", "model": "slow", "input": "go on"}))
        while json.loads(ws.recv(timeout=30))["type"] != "response.output_text.delta":
            pass
    deadline = time.monotonic() + 10
    while True:  # the simulator sees its stream's client go (it would take 8 s to finish)
        streams = [r for r in sim.requests[since:] if r.path.endswith("/actions/chat")]
        if streams and streams[-1].disconnected_at is not None:
            break
        assert time.monotonic() < deadline, "the upstream stream was not cancelled"
        time.sleep(0.05)
    assert streams[-1].events_sent < 400


def test_open_responses_event_names(sim, tmp_path):
    with BackgroundServer(create_app(parse_config(_config(sim, tmp_path, responses_event_names="open_responses")))) as gateway:
        with _connect(gateway) as ws:
            events = _turn(ws, model="grok4", input="think first")
        http = httpx.post(f"{gateway.base_url}/v1/responses", headers=ADMIN, timeout=30, json={"model": "grok4", "input": "think", "stream": True})
    kinds = [e["type"] for e in events]
    assert "response.reasoning.delta" in kinds and not any(k.startswith("response.reasoning_text") for k in kinds)
    assert "event: response.reasoning.delta" in http.text and "response.reasoning_text." not in http.text  # never both names in a stream


def test_an_unknown_event_names_setting_is_refused(sim, tmp_path):
    from ocilm.gateway import GatewayConfigError

    with pytest.raises(GatewayConfigError, match="responses_event_names"):
        parse_config(_config(sim, tmp_path, responses_event_names="both"))


@pytest.mark.parametrize("transport", ["http", "websocket"])
def test_a_continuation_may_carry_only_the_tool_output(gateway, sim, transport):
    """What Codex sends after a tool ran: previous_response_id and only the function_call_output.
    The output answers the previous response's call (it used to be refused: no call precedes it)."""
    tools = [{"type": "function", "name": "run_shell", "description": "Runs a command",
              "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}]  # fmt: skip
    first_body = {"model": "llama", "input": "please run_shell Pwd", "tools": tools, "store": transport == "http"}
    if transport == "http":
        first = httpx.post(f"{gateway.base_url}/v1/responses", headers=ADMIN, json=first_body, timeout=30).json()
    else:
        ws = _connect(gateway).__enter__()
        first = _turn(ws, **first_body)[-1]["response"]
    call = next(item for item in first["output"] if item["type"] == "function_call")
    follow_body = {"model": "llama", "previous_response_id": first["id"], "tools": tools, "store": transport == "http",
                   "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "/home/ana"}]}  # fmt: skip
    if transport == "http":
        follow = httpx.post(f"{gateway.base_url}/v1/responses", headers=ADMIN, json=follow_body, timeout=30).json()
    else:
        follow = _turn(ws, **follow_body)[-1]["response"]
        ws.close()
    assert follow["status"] == "completed" and "/home/ana" in json.dumps(follow["output"])


def test_ocilm_serve_answers_turns_without_compressing_each_event(sim, tmp_path):
    """permessage-deflate is declined (a client that offers it gets plain frames): compressing each
    event cost more CPU than relaying it (bench/websocket_turn.py)."""
    import yaml

    from tests.servers import serve

    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(_config(sim, tmp_path)))
    proc, base = serve(str(path))
    try:
        with websockets_sync.connect(base.replace("http://", "ws://") + "/v1/responses", additional_headers={"authorization": f"Bearer {MASTER}"},
                                     compression="deflate", open_timeout=10) as ws:  # fmt: skip
            assert ws.protocol.extensions == []
            events = _turn(ws, model="llama", input="hello", store=False)
        assert events[-1]["type"] == "response.completed" and events[-1]["response"]["output"]
    finally:
        proc.kill()
        proc.wait(10)
