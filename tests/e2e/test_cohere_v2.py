"""COHEREV2 requests (Command A and later): built by the client, checked by the simulator's
schema and rules, and read back, streamed and not."""

from __future__ import annotations

import json

import pytest

import ocilm
from ocilm._capabilities import model_info
from ocilm.formats._common import ChatContext
from ocilm.formats.cohere_v2 import CohereV2Stream

WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}  # fmt: skip
IMAGE = "data:image/png;base64,iVBORw0KGgo="


def collect(stream) -> dict:
    out: dict = {"text": "", "reasoning": "", "calls": {}, "finish": None, "usage": None}
    for chunk in stream:
        if chunk.usage:
            out["usage"] = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            out["text"] += delta.content or ""
            out["reasoning"] += delta.reasoning_content or ""
            for tc in delta.tool_calls or []:
                entry = out["calls"].setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                entry["id"] = tc.id or entry["id"]
                entry["name"] += tc.function.name or ""
                entry["arguments"] += tc.function.arguments or ""
            out["finish"] = choice.finish_reason or out["finish"]
    return out


def test_command_a_speaks_v2_by_default_older_models_v1(creds, oci_simulator):
    r = ocilm.completion("oci/cohere.command-a-03-2025", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], **creds)
    assert r.choices[0].message.content == "Hello from cohere.command-a-03-2025! You said: Hi"
    sent = oci_simulator.requests[-1].json["chatRequest"]
    assert sent["apiFormat"] == "COHEREV2"
    assert sent["messages"] == [{"role": "SYSTEM", "content": [{"type": "TEXT", "text": "Be brief."}]},
                                {"role": "USER", "content": [{"type": "TEXT", "text": "Hi"}]}]  # fmt: skip
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    ocilm.completion("oci/cohere.command-r-08-2024", [{"role": "user", "content": "Hi"}], **creds)
    assert oci_simulator.requests[-1].json["chatRequest"]["apiFormat"] == "COHERE"
    ocilm.completion("oci/cohere.command-a-03-2025", [{"role": "user", "content": "Hi"}], oci_api_format="COHERE", **creds)
    assert oci_simulator.requests[-1].json["chatRequest"]["apiFormat"] == "COHERE"


@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip_keeps_call_ids(creds, oci_simulator, stream):
    model = "oci/cohere.command-a-03-2025"
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    if stream:
        got = collect(ocilm.completion(model, messages, tools=[WEATHER_TOOL], stream=True, **creds))
        assert got["finish"] == "tool_calls" and len(got["calls"]) == 1
        call = got["calls"][0]
        call_id, name, arguments = call["id"], call["name"], call["arguments"]
    else:
        r = ocilm.completion(model, messages, tools=[WEATHER_TOOL], **creds)
        assert r.choices[0].finish_reason == "tool_calls" and r.choices[0].message.content is None
        tc = r.choices[0].message.tool_calls[0]
        call_id, name, arguments = tc.id, tc.function.name, tc.function.arguments
    assert name == "get_weather" and json.loads(arguments) == {"city": "Paris"}
    sent = oci_simulator.requests[-1].json["chatRequest"]
    assert sent["tools"] == [{"type": "FUNCTION", "function": {"name": "get_weather", "description": "Current weather for a city",
                                                               "parameters": WEATHER_TOOL["function"]["parameters"]}}]  # fmt: skip
    call_id_from_service = call_id
    messages += [{"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
                 {"role": "tool", "tool_call_id": call_id, "content": '{"tempC": 21}'}]  # fmt: skip
    final = ocilm.completion(model, messages, tools=[WEATHER_TOOL], **creds)
    assert final.choices[0].message.content == 'The tool said: {"tempC": 21}'
    sent = oci_simulator.requests[-1].json["chatRequest"]["messages"]
    assert sent[1]["toolCalls"][0]["id"] == call_id_from_service and sent[2] == {
        "role": "TOOL", "toolCallId": call_id, "content": [{"type": "TEXT", "text": '{"tempC": 21}'}]}


def test_stream_text_and_usage(creds):
    got = collect(ocilm.completion("oci/cohere.command-a-03-2025", [{"role": "user", "content": "Tell me more"}], stream=True,
                                   stream_options={"include_usage": True}, **creds))  # fmt: skip
    assert got["text"] == "Hello from cohere.command-a-03-2025! You said: Tell me more"
    assert got["finish"] == "stop" and got["usage"].completion_tokens > 0


def test_images_on_the_vision_model(creds, oci_simulator):
    content = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": IMAGE, "detail": "high"}}]
    r = ocilm.completion("oci/cohere.command-a-vision-07-2025", [{"role": "user", "content": content}], **creds)
    assert r.choices[0].message.content
    assert oci_simulator.requests[-1].json["chatRequest"]["messages"][0]["content"][1] == {
        "type": "IMAGE_URL", "imageUrl": {"url": IMAGE, "detail": "HIGH"}}
    with pytest.raises(ocilm.BadRequestError, match="does not accept images"):
        ocilm.completion("oci/cohere.command-a-03-2025", [{"role": "user", "content": content}], **creds)


def test_thinking_on_the_reasoning_model(creds, oci_simulator):
    model = "oci/cohere.command-a-reasoning-08-2025"
    r = ocilm.completion(model, [{"role": "user", "content": "Think"}], reasoning_effort="low", **creds)
    assert r.choices[0].message.reasoning_content == "Thinking it through."
    assert oci_simulator.requests[-1].json["chatRequest"]["thinking"] == {"type": "ENABLED", "tokenBudget": 1024}
    got = collect(ocilm.completion(model, [{"role": "user", "content": "Think"}], reasoning_effort="high", stream=True, **creds))
    assert got["reasoning"] == "Thinking it through." and got["text"].endswith("You said: Think")
    ocilm.completion(model, [{"role": "user", "content": "Think"}], reasoning_effort="none", **creds)
    assert oci_simulator.requests[-1].json["chatRequest"]["thinking"] == {"type": "DISABLED"}
    with pytest.raises(ocilm.UnsupportedParamsError, match="reasoning_effort"):
        ocilm.completion("oci/cohere.command-a-03-2025", [{"role": "user", "content": "Think"}], reasoning_effort="low", **creds)


def test_tool_choice_and_response_format(creds, oci_simulator):
    r = ocilm.completion("oci/cohere.command-a-03-2025", [{"role": "user", "content": "Hi"}], tools=[WEATHER_TOOL], tool_choice="required", **creds)
    assert oci_simulator.requests[-1].json["chatRequest"]["toolsChoice"] == "REQUIRED" and r.choices[0].message.tool_calls
    with pytest.raises(ocilm.UnsupportedParamsError, match="tool_choice"):
        ocilm.completion("oci/cohere.command-a-03-2025", [{"role": "user", "content": "Hi"}], tools=[WEATHER_TOOL],
                         tool_choice={"type": "function", "function": {"name": "get_weather"}}, **creds)  # fmt: skip
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    r = ocilm.completion("oci/cohere.command-a-03-2025", [{"role": "user", "content": "Weather in Paris"}],
                         response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}}, **creds)  # fmt: skip
    assert json.loads(r.choices[0].message.content) == {"city": "Paris"}
    assert oci_simulator.requests[-1].json["chatRequest"]["responseFormat"] == {"type": "JSON_OBJECT", "schema": schema}


async def test_async_v2(creds):
    r = await ocilm.acompletion("oci/cohere.command-a-03-2025", [{"role": "user", "content": "Hi"}], **creds)
    assert r.choices[0].message.content.endswith("You said: Hi")


# ---------------------------------------------------------------- the stream decoder's assumptions


def _stream() -> CohereV2Stream:
    ctx = ChatContext(model="cohere.command-a-03-2025", info=model_info("cohere.command-a-03-2025"), stream=True, include_usage=True)
    return CohereV2Stream(ctx, "RID", 1)


def _deltas(chunks: list[dict]) -> list[dict]:
    return [c["choices"][0]["delta"] for c in chunks if c["choices"]]


def test_decoder_tolerates_a_terminal_restatement():
    s = _stream()
    out = s.feed({"message": {"content": [{"type": "TEXT", "text": "Hel"}]}})  # no apiFormat
    out += s.feed({"message": {"content": [{"type": "TEXT", "text": "lo"}]}})
    call = {"id": "c1", "type": "FUNCTION", "function": {"name": "f", "arguments": '{"a": 1}'}}
    out += s.feed({"message": {"toolCalls": [call]}})
    out += s.feed({"message": {"content": [{"type": "TEXT", "text": "Hello"}], "toolCalls": [call]}, "finishReason": "TOOL_CALL",
                   "usage": {"promptTokens": 3, "completionTokens": 2, "totalTokens": 5}})  # fmt: skip
    deltas = _deltas(out)
    assert "".join(d["content"] or "" for d in deltas) == "Hello"
    assert [tc["id"] for d in deltas for tc in d["tool_calls"] or []] == ["c1"]
    assert out[-2]["choices"][0]["finish_reason"] == "tool_calls" and out[-1]["usage"]["total_tokens"] == 5


def test_decoder_joins_id_less_argument_fragments_and_text_only_on_the_terminal_event():
    s = _stream()
    out = s.feed({"message": {"toolCalls": [{"id": "c1", "function": {"name": "f", "arguments": '{"a"'}}]}})
    out += s.feed({"message": {"toolCalls": [{"function": {"arguments": ": 1}"}}]}})
    out += s.feed({"message": {"toolCalls": [{"id": "c2", "function": {"name": "g", "arguments": {"b": 2}}}]}})
    out += s.feed({"finishReason": "COMPLETE", "message": {"content": [{"type": "TEXT", "text": "only here"}]}})
    deltas = _deltas(out)
    args: dict[int, str] = {}
    for d in deltas:
        for tc in d["tool_calls"] or []:
            args[tc["index"]] = args.get(tc["index"], "") + tc["function"]["arguments"]
    assert args == {0: '{"a": 1}', 1: '{"b": 2}'}
    assert "".join(d["content"] or "" for d in deltas) == "only here"


def test_decoder_raises_on_error_finish():
    with pytest.raises(ocilm.InternalServerError, match="overloaded"):
        _stream().feed({"finishReason": "ERROR", "errorMessage": "overloaded"})
