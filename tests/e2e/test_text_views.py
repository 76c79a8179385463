"""One view of every text: a telephone number in each field the model reads, or the caller
receives, through every guardrail mode, every door (chat, Responses, Messages), stream or not, on a
native deployment and on one served through ``/openai/v1``. The guardrail says BLOCK: the number
must never reach the simulator (pre_call) nor the caller (post_call, during_call)."""

from __future__ import annotations

import json

import httpx
import pytest

from ocilm.gateway import create_app, parse_config
from ocilm.testing import BackgroundServer

MASTER = "sk-master-text-views-1"
AUTH = {"authorization": f"Bearer {MASTER}"}
PHONE = "+1 415 555 0100"
BLOCK = {"TELEPHONE_NUMBER": "BLOCK"}
UPSTREAMS = {"native": ("llama", "claude-native"), "openai_v1": ("gpt", "claude-v1")}


@pytest.fixture(scope="module")
def gateway(sim):
    signed, key = sim.credentials(), sim.api_key_credentials()
    guard = {"guardrail": "oci_guardrails", **signed, "pii_entities_config": BLOCK}
    config = {
        "model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **signed}},
                       {"model_name": "gpt", "litellm_params": {"model": "oci/xai.grok-3", **key}}],
        "guardrails": [{"guardrail_name": mode, "litellm_params": {**guard, "mode": mode}} for mode in ("pre_call", "post_call", "during_call")],
        "router_settings": {"model_group_alias": {"claude-native": "llama", "claude-v1": "gpt"}},
        "general_settings": {"master_key": MASTER},
    }  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as server:
        yield server


def _reached_model(sim, since: int) -> bool:
    """Whether the number is in any model call the simulator received since ``since``."""
    return any(PHONE in json.dumps(r.json) for r in sim.requests[since:] if r.json and "applyGuardrails" not in r.path)


SMS_TOOL = {"name": "send_sms", "description": "Sends a text message", "parameters": {"type": "object", "properties": {"to": {"type": "string"}}, "required": ["to"]}}  # fmt: skip
CALL = {"id": "call_1", "type": "function", "function": {"name": "send_sms", "arguments": json.dumps({"to": PHONE})}}


def _with_description(where: str) -> dict:
    tool = json.loads(json.dumps(SMS_TOOL))
    if where == "description":
        tool["description"] = f"Texts {PHONE}"
    elif where == "enum":
        tool["parameters"]["properties"]["to"]["enum"] = [PHONE]
    else:
        tool["parameters"]["properties"]["to"]["description"] = f"like {PHONE}"
    return tool


CHAT_REQUESTS = {
    "user text": {"messages": [{"role": "user", "content": f"call {PHONE}"}]},
    "user text part": {"messages": [{"role": "user", "content": [{"type": "text", "text": f"call {PHONE}"}]}]},
    "system": {"messages": [{"role": "system", "content": f"the boss is {PHONE}"}, {"role": "user", "content": "hi"}]},
    "tool-call arguments in history": {"messages": [{"role": "user", "content": "text Ana"}, {"role": "assistant", "content": None, "tool_calls": [CALL]},
                                                    {"role": "tool", "tool_call_id": "call_1", "content": "sent"}]},
    "tool output": {"messages": [{"role": "user", "content": "text Ana"}, {"role": "assistant", "content": None, "tool_calls": [{**CALL, "function": {"name": "send_sms", "arguments": "{}"}}]},
                                 {"role": "tool", "tool_call_id": "call_1", "content": f"Ana is {PHONE}"}]},
    **{f"tool {where}": {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": _with_description(where)}]}
       for where in ("description", "enum", "schema description")},
    "response_format schema": {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_schema", "json_schema": {
        "name": "card", "schema": {"type": "object", "properties": {"phone": {"type": "string", "description": f"as {PHONE}"}}}}}},
}  # fmt: skip


def _responses_tool(where: str) -> dict:
    return {"type": "function", **_with_description(where)}


RESPONSES_REQUESTS = {
    "input string": {"input": f"call {PHONE}"},
    "input text part": {"input": [{"role": "user", "content": [{"type": "input_text", "text": f"call {PHONE}"}]}]},
    "instructions": {"input": "hi", "instructions": f"the boss is {PHONE}"},
    "function_call arguments": {"input": [{"role": "user", "content": "text Ana"},
                                          {"type": "function_call", "call_id": "call_1", "name": "send_sms", "arguments": json.dumps({"to": PHONE})},
                                          {"type": "function_call_output", "call_id": "call_1", "output": "sent"}], "tools": [{"type": "function", **SMS_TOOL}]},
    "function_call_output": {"input": [{"role": "user", "content": "text Ana"},
                                       {"type": "function_call", "call_id": "call_1", "name": "send_sms", "arguments": "{}"},
                                       {"type": "function_call_output", "call_id": "call_1", "output": f"Ana is {PHONE}"}], "tools": [{"type": "function", **SMS_TOOL}]},
    **{f"tool {where}": {"input": "hi", "tools": [_responses_tool(where)]} for where in ("description", "enum", "schema description")},
    "text.format schema": {"input": "hi", "text": {"format": {"type": "json_schema", "name": "card",
                                                              "schema": {"type": "object", "properties": {"phone": {"type": "string", "description": f"as {PHONE}"}}}}}},
}  # fmt: skip


def _messages_tool(where: str) -> dict:
    tool = _with_description(where)
    return {"name": tool["name"], "description": tool["description"], "input_schema": tool["parameters"]}


MESSAGES_REQUESTS = {
    "user text": {"messages": [{"role": "user", "content": f"call {PHONE}"}]},
    "system": {"system": f"the boss is {PHONE}", "messages": [{"role": "user", "content": "hi"}]},
    "system block": {"system": [{"type": "text", "text": f"the boss is {PHONE}"}], "messages": [{"role": "user", "content": "hi"}]},
    "tool_use input in history": {"messages": [{"role": "user", "content": "text Ana"},
                                               {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "send_sms", "input": {"to": PHONE}}]},
                                               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sent"}]}],
                                  "tools": [_messages_tool("description") | {"description": "Sends a text"}]},
    "tool_result": {"messages": [{"role": "user", "content": "text Ana"},
                                 {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "send_sms", "input": {}}]},
                                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": f"Ana is {PHONE}"}]}],
                    "tools": [_messages_tool("description") | {"description": "Sends a text"}]},
    **{f"tool {where}": {"messages": [{"role": "user", "content": "hi"}], "tools": [_messages_tool(where)]}
       for where in ("description", "enum", "schema description")},
}  # fmt: skip

REQUEST_CASES = ([("chat", field, body) for field, body in CHAT_REQUESTS.items()]
                 + [("responses", field, body) for field, body in RESPONSES_REQUESTS.items()]
                 + [("responses-ws", field, body) for field, body in RESPONSES_REQUESTS.items()]
                 + [("messages", field, body) for field, body in MESSAGES_REQUESTS.items()])  # fmt: skip


def _send(gateway, door: str, upstream: str, body: dict, guardrail: str, stream: bool) -> httpx.Response:
    model, claude = UPSTREAMS[upstream]
    body = {**body, "guardrails": [guardrail], "stream": stream}
    if door == "chat":
        return httpx.post(f"{gateway.base_url}/v1/chat/completions", headers=AUTH, json={"model": model, "max_tokens": 60, **body}, timeout=30)
    if door == "responses":
        return httpx.post(f"{gateway.base_url}/v1/responses", headers=AUTH, json={"model": model, "max_output_tokens": 60, **body}, timeout=30)
    if door == "responses-ws":  # the WebSocket mode: its events as an SSE body, its error event as the HTTP error
        return _over_websocket(gateway, {"model": model, "max_output_tokens": 60, **body})
    return httpx.post(f"{gateway.base_url}/v1/messages", headers={**AUTH, "anthropic-version": "2023-06-01"},
                      json={"model": claude, "max_tokens": 60, **body}, timeout=30)  # fmt: skip


@pytest.mark.parametrize("upstream", list(UPSTREAMS))
@pytest.mark.parametrize("door,field,body", REQUEST_CASES, ids=[f"{d}:{f}" for d, f, _ in REQUEST_CASES])
@pytest.mark.parametrize("stream", [False, True], ids=["reply", "stream"])
def test_pre_call_reads_every_text_the_model_reads(gateway, sim, door, field, body, upstream, stream):
    since = len(sim.requests)
    r = _send(gateway, door, upstream, body, "pre_call", stream)
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert "guardrail" in r.text and "TELEPHONE_NUMBER" in r.text and PHONE not in r.text
    assert not _reached_model(sim, since)


def _delivered(door: str, raw: str) -> tuple[str, bool]:
    """Every text a streamed caller received (joined, so a number split over events shows) and
    whether the stream ended as a success."""
    texts, ended_well = [], False
    for line in raw.splitlines():
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            ended_well = True
            continue
        event = json.loads(line[6:])
        for choice in event.get("choices") or ():
            delta = choice.get("delta") or {}
            texts.append(delta.get("content") or "")
            texts += [(c.get("function") or {}).get("arguments") or "" for c in delta.get("tool_calls") or ()]
        kind = event.get("type", "")
        if kind.endswith(".delta"):
            delta = event.get("delta")
            texts.append(delta if isinstance(delta, str) else json.dumps(delta))
        elif kind.endswith(".done") or kind in ("response.completed", "message_start", "content_block_start"):
            if isinstance(event.get("response"), dict):  # it echoes the request (the caller's own tools): its output is the reply
                event = event["response"].get("output")
            texts.append("\n" + json.dumps(event))
        ended_well = ended_well or kind in ("response.completed", "message_stop")
    return "".join(texts), ended_well


REPLY_CASES = {
    "content": ({"chat": {"messages": [{"role": "user", "content": f"say {PHONE}"}]}, "responses": {"input": f"say {PHONE}"},
                 "responses-ws": {"input": f"say {PHONE}"},
                 "messages": {"messages": [{"role": "user", "content": f"say {PHONE}"}]}}),
    "tool-call arguments": ({"chat": {"messages": [{"role": "user", "content": "please send_sms now"}], "tools": [{"type": "function", "function": _with_description("enum")}]},
                             "responses": {"input": "please send_sms now", "tools": [_responses_tool("enum")]},
                             "responses-ws": {"input": "please send_sms now", "tools": [_responses_tool("enum")]},
                             "messages": {"messages": [{"role": "user", "content": "please send_sms now"}], "tools": [_messages_tool("enum")]}}),
}  # fmt: skip


def _over_websocket(gateway, body: dict) -> httpx.Response:
    from websockets.sync.client import connect

    with connect(gateway.base_url.replace("http://", "ws://") + "/v1/responses", additional_headers=AUTH, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "response.create", **{k: v for k, v in body.items() if k != "stream"}}))
        frames = []
        while True:
            event = json.loads(ws.recv(timeout=30))
            if event["type"] == "error" and not frames:
                return httpx.Response(event["status"], json={"error": event["error"]})
            frames.append(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n")
            if event["type"] in ("error", "response.completed", "response.failed", "response.incomplete"):
                return httpx.Response(200, text="".join(frames))


@pytest.mark.parametrize("upstream", list(UPSTREAMS))
@pytest.mark.parametrize("door", ["chat", "responses", "responses-ws", "messages"])
@pytest.mark.parametrize("field", list(REPLY_CASES))
@pytest.mark.parametrize("mode", ["post_call", "during_call"])
@pytest.mark.parametrize("stream", [False, True], ids=["reply", "stream"])
def test_replies_are_read_whole_whatever_the_mode(gateway, sim, door, field, mode, upstream, stream):
    r = _send(gateway, door, upstream, REPLY_CASES[field][door], mode, stream)
    stream = stream or door == "responses-ws"  # a socket always streams
    if not stream or r.status_code != 200:  # refused before any event (a held stream, or a socket's first event an error)
        assert r.status_code == 400 and "guardrail" in r.text and PHONE not in r.text, (r.status_code, r.text[:300])
        return
    assert r.status_code == 200
    delivered, ended_well = _delivered(door, r.text)
    assert PHONE not in delivered
    assert not ended_well and "guardrail" in r.text


@pytest.mark.parametrize("upstream", list(UPSTREAMS))
def test_a_window_boundary_never_cuts_an_entity_out_of_sight(gateway, sim, upstream):
    """H2: wherever a window ends, the number is seen whole; paddings that put every window
    boundary inside it."""
    model = UPSTREAMS[upstream][0]
    for pad in range(160, 200, 3):
        prompt = "a " * pad + PHONE + " b" * 20
        r = httpx.post(f"{gateway.base_url}/v1/chat/completions", headers=AUTH, timeout=30,
                       json={"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True, "guardrails": ["during_call"]})  # fmt: skip
        delivered, ended_well = _delivered("chat", r.text)
        assert PHONE not in delivered and not ended_well, pad
        assert delivered.startswith("Hello") or not delivered  # what went out before the number did go out
