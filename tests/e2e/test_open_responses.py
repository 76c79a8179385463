"""The Responses door against the Open Responses specification: its compliance suite's
scenarios (a basic response, a streamed one, a system prompt, tool calling, image input, a
multi-turn conversation, assistant phases; compaction and the WebSocket mode in their own modules,
test_responses_compaction and test_responses_websocket), streamed and not, on every OCI family, through ``ocilm serve``'s app to
the simulator; every object and event checked by ``tests/open_responses.py`` and, where the
openai SDK reads it, by openai-python's types too. The Messages door is held to the anthropic
SDK's declared types the same way."""

from __future__ import annotations

import base64

import httpx
import pytest

from ocilm.gateway import create_app, parse_config
from ocilm.testing import BackgroundServer

from ..open_responses import SPEC_VERSION, SpecViolation, check_event, check_response
from ..sse_grammar import check_responses, frames

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
KEY = "sk-open-responses-1"
FAMILIES = {
    "llama": "oci/meta.llama-3.3-70b-instruct",
    "llama4": "oci/meta.llama-4-maverick-17b-128e-instruct-fp8",
    "gemini": "oci/google.gemini-2.5-flash",
    "gpt": "oci/openai.gpt-4.1",
    "grok": "oci/xai.grok-4",
    "command-r": "oci/cohere.command-r-08-2024",
    "command-a": "oci/cohere.command-a-03-2025",
}  # fmt: skip
VISION = ("llama4", "gemini", "gpt", "grok")
PIXEL = "data:image/png;base64," + base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")).decode()  # fmt: skip
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}  # fmt: skip
SCENARIOS = {
    "basic": {"input": "Say hello in one word."},
    "system prompt": {"instructions": "You are a pirate. Answer briefly.", "input": "Hello there"},
    "tool calling": {"input": "What is the weather in Paris?", "tools": [WEATHER]},
    "image input": {"input": [{"role": "user", "content": [{"type": "input_text", "text": "What is in this image?"},
                                                           {"type": "input_image", "image_url": PIXEL}]}]},
    "multi-turn": {"input": [{"role": "user", "content": "My name is Ana."}, {"role": "assistant", "content": "Hello Ana!"},
                             {"role": "user", "content": "What is my name?"}]},
    # assistant messages of earlier turns carry their phase (commentary, final_answer), as newer clients send them back
    "assistant phase": {"input": [{"role": "user", "content": "Plan, then answer."},
                                  {"type": "message", "role": "assistant", "phase": "commentary", "content": [{"type": "output_text", "text": "Planning."}]},
                                  {"type": "message", "role": "assistant", "phase": "final_answer", "content": [{"type": "output_text", "text": "Done."}]},
                                  {"role": "user", "content": "Again, please."}]},
}  # fmt: skip
CASES = [(family, scenario) for family in FAMILIES for scenario in SCENARIOS if scenario != "image input" or family in VISION]


@pytest.fixture
def oci_simulator(module_oci_simulator):  # this module's gateway lives as long as the module: its own view
    return module_oci_simulator


@pytest.fixture(scope="module")
def gateway(module_simulator):
    creds = module_simulator.credentials()
    config = {"model_list": [{"model_name": name, "litellm_params": {"model": model, **creds}} for name, model in FAMILIES.items()],
              "general_settings": {"master_key": KEY}}  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as server:
        yield server


def _post(gateway, body: dict) -> httpx.Response:
    return httpx.post(f"{gateway.base_url}/v1/responses", headers={"authorization": f"Bearer {KEY}"}, json=body, timeout=60)


@pytest.mark.parametrize(("family", "scenario"), CASES)
def test_a_reply_meets_the_specification(gateway, family, scenario):
    reply = _post(gateway, {"model": family, **SCENARIOS[scenario]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    check_response(body)
    assert body["status"] == "completed" and body["output"]
    if scenario == "tool calling":
        assert any(item["type"] == "function_call" and item["name"] == "get_weather" for item in body["output"])
    openai.types.responses.Response.model_validate(body)  # openai-python's types too


@pytest.mark.parametrize(("family", "scenario"), CASES)
def test_a_stream_meets_the_specification(gateway, family, scenario):
    with httpx.stream("POST", f"{gateway.base_url}/v1/responses", headers={"authorization": f"Bearer {KEY}"}, timeout=60,
                      json={"model": family, "stream": True, **SCENARIOS[scenario]}) as reply:  # fmt: skip
        assert reply.status_code == 200
        raw = reply.read()
    events = [payload for _, payload in frames(raw)]
    for event in events:
        check_event(event)
    terminal = check_responses(raw)
    assert terminal["status"] == "completed" and events[0]["response"]["completed_at"] is None
    assert terminal["completed_at"] >= terminal["created_at"]


@pytest.fixture(scope="module")
def spec_gateway(module_simulator):
    """The specification's event names, with a family served through /openai/v1 beside the native ones."""
    creds, key = module_simulator.credentials(), module_simulator.api_key_credentials()
    config = {"model_list": [{"model_name": name, "litellm_params": {"model": model, **creds}} for name, model in FAMILIES.items()]
              + [{"model_name": "grok-v1", "litellm_params": {"model": "oci/xai.grok-4", **key}}],
              "general_settings": {"master_key": KEY, "responses_event_names": "open_responses"}}  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as server:
        yield server


SPEC_CASES = [*CASES, *((("grok-v1", s)) for s in SCENARIOS)]


@pytest.mark.parametrize("transport", ["sse", "websocket"])
@pytest.mark.parametrize(("family", "scenario"), SPEC_CASES)
def test_the_specifications_event_names_on_every_family_and_transport(spec_gateway, family, scenario, transport):
    """Every scenario, streamed over SSE and over the WebSocket mode, with responses_event_names:
    open_responses: every event meets the specification, and never both names in one stream."""
    import json

    if transport == "sse":
        with httpx.stream("POST", f"{spec_gateway.base_url}/v1/responses", headers={"authorization": f"Bearer {KEY}"}, timeout=60,
                          json={"model": family, "stream": True, **SCENARIOS[scenario]}) as reply:  # fmt: skip
            assert reply.status_code == 200
            events = [payload for _, payload in frames(reply.read())]
    else:
        from websockets.sync.client import connect

        url = spec_gateway.base_url.replace("http://", "ws://") + "/v1/responses"
        with connect(url, additional_headers={"authorization": f"Bearer {KEY}"}, open_timeout=10) as ws:
            ws.send(json.dumps({"type": "response.create", "model": family, **SCENARIOS[scenario]}))
            events = []
            while not events or events[-1]["type"] not in ("response.completed", "response.incomplete", "response.failed", "error"):
                events.append(json.loads(ws.recv(timeout=60)))
    for event in events:
        check_event(event)
    kinds = {event["type"] for event in events}
    assert events[-1]["type"] == "response.completed" and not any(kind.startswith("response.reasoning_text.") for kind in kinds)
    assert [event["sequence_number"] for event in events] == sorted(event["sequence_number"] for event in events)


def test_the_response_echoes_the_requests_settings(gateway):
    body = _post(gateway, {"model": "llama", "input": "hi", "temperature": 0.3, "top_p": 0.9, "presence_penalty": 0.5,
                           "frequency_penalty": 0.25, "max_output_tokens": 40, "max_tool_calls": 2, "store": False,
                           "safety_identifier": "user-7", "prompt_cache_key": "k1", "metadata": {"run": "1"},
                           "reasoning": {"effort": "low"}, "text": {"format": {"type": "json_schema", "name": "o",
                                                                               "schema": {"type": "object"}}}}).json()  # fmt: skip
    check_response(body)
    assert (body["temperature"], body["top_p"], body["presence_penalty"], body["frequency_penalty"]) == (0.3, 0.9, 0.5, 0.25)
    assert (body["max_output_tokens"], body["max_tool_calls"], body["store"]) == (40, 2, False)
    assert (body["safety_identifier"], body["prompt_cache_key"], body["metadata"]) == ("user-7", "k1", {"run": "1"})
    assert body["reasoning"] == {"effort": "low", "summary": None}
    assert body["text"]["format"]["strict"] is False and body["text"]["format"]["description"] is None
    defaults = _post(gateway, {"model": "llama", "input": "hi"}).json()
    assert (defaults["temperature"], defaults["top_p"], defaults["store"], defaults["background"]) == (1.0, 1.0, True, False)


def test_the_checker_refuses_what_the_specification_refuses():
    base = {"id": "resp_1", "object": "response", "created_at": 1, "completed_at": None, "status": "in_progress",
            "incomplete_details": None, "model": "m", "previous_response_id": None, "instructions": None, "output": [],
            "error": None, "tools": [], "tool_choice": "auto", "truncation": "disabled", "parallel_tool_calls": True,
            "text": {"format": {"type": "text"}}, "top_p": 1, "presence_penalty": 0, "frequency_penalty": 0, "top_logprobs": 0,
            "temperature": 1, "reasoning": None, "usage": None, "max_output_tokens": None, "max_tool_calls": None,
            "store": True, "background": False, "service_tier": "default", "metadata": {}, "safety_identifier": None,
            "prompt_cache_key": None}  # fmt: skip
    check_response(base)
    for broken in ({k: v for k, v in base.items() if k != "presence_penalty"}, {**base, "top_p": None},
                   {**base, "output": [{"type": "message", "id": "m", "role": "assistant", "content": []}]},
                   {**base, "tools": [{"type": "function", "name": "f"}]}):  # fmt: skip
        with pytest.raises(SpecViolation):
            check_response(broken)
    assert SPEC_VERSION == "2026-04-24"


# ---------------------------------------------------------------- the Messages door and the anthropic SDK's types


def _required(model: type) -> set[str]:
    return {name for name, field in model.model_fields.items() if field.is_required()}


def test_messages_objects_carry_every_field_the_anthropic_sdk_requires(gateway):
    from anthropic.types import Message, RawMessageDeltaEvent, RawMessageStartEvent

    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    body = {"model": "llama", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    message = httpx.post(f"{gateway.base_url}/v1/messages", headers=headers, json=body, timeout=30).json()
    assert _required(Message) <= set(message) and message["stop_reason"] in ("end_turn", "max_tokens", "stop_sequence", "tool_use",
                                                                              "pause_turn", "refusal")  # fmt: skip
    Message.model_validate(message)
    with httpx.stream("POST", f"{gateway.base_url}/v1/messages", headers=headers, json={**body, "stream": True}, timeout=30) as r:
        events = [payload for _, payload in frames(r.read())]
    start = next(e for e in events if e["type"] == "message_start")
    delta = next(e for e in events if e["type"] == "message_delta")
    assert _required(RawMessageStartEvent) <= set(start) and _required(Message) <= set(start["message"])
    assert _required(RawMessageDeltaEvent) <= set(delta) and {"stop_reason", "stop_sequence"} <= set(delta["delta"])
