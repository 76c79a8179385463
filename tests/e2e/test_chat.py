"""Chat completions over HTTP against the simulator, for every model family."""

from __future__ import annotations

import json
import time

import pytest

import ocilm
from ocilm import AsyncClient, Client, UnsupportedParamsError
from ocilm.testing import MODELS


def _retired(model_id: str) -> bool:
    from ocilm.testing._catalog import LIFECYCLE

    return model_id in LIFECYCLE and LIFECYCLE[model_id].retired(False, time.time())


# gpt-5.5-pro: Responses only; a retired model is refused (tests/e2e/test_model_lifecycle.py)
CHAT_MODELS = sorted(m.id for m in MODELS.values() if m.kind == "chat" and not m.responses_only and not _retired(m.id))
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}}, "required": ["city"]},
}}  # fmt: skip


def collect(chunks) -> dict:
    """Reassemble a stream the way OpenAI clients do."""
    text, calls, finish, usage, ids = "", {}, None, None, set()
    for chunk in chunks:
        ids.add(chunk.id)
        assert chunk.object == "chat.completion.chunk"
        if chunk.get("usage"):
            usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            text += delta.content or ""
            for tc in delta.tool_calls or []:
                call = calls.setdefault(tc["index"], {"id": None, "name": "", "arguments": ""})
                if tc.get("id"):
                    assert call["id"] in (None, tc["id"]), "one stable id per call"
                    call["id"] = tc["id"]
                    call["name"] = tc["function"]["name"]
                call["arguments"] += tc["function"].get("arguments") or ""
            if choice.finish_reason:
                finish = choice.finish_reason
    assert len(ids) == 1, "one id for the whole stream"
    return {"text": text, "calls": [calls[i] for i in sorted(calls)], "finish": finish, "usage": usage}


async def acollect(stream) -> dict:
    return collect([chunk async for chunk in stream])


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_every_model_sync(creds, model):
    r = ocilm.completion(f"oci/{model}", [{"role": "user", "content": "Ping"}], **creds)
    assert r.choices[0].message.content == f"Hello from {model}! You said: Ping"
    assert r.choices[0].finish_reason == "stop"
    assert r.model == model and r.id.startswith("chatcmpl-") and r.created > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    stream = collect(ocilm.completion(f"oci/{model}", [{"role": "user", "content": "Ping"}], stream=True, **creds))
    assert stream["text"] == f"Hello from {model}! You said: Ping"
    assert stream["finish"] == "stop"


@pytest.mark.usefixtures("async_backend")
@pytest.mark.parametrize("model", ["meta.llama-3.3-70b-instruct", "xai.grok-4", "cohere.command-a-03-2025", "google.gemini-2.5-pro", "openai.gpt-5"])
async def test_every_family_async(creds, model):
    r = await ocilm.acompletion(f"oci/{model}", [{"role": "user", "content": "Ping"}], **creds)
    assert r.choices[0].message.content == f"Hello from {model}! You said: Ping"
    stream = await ocilm.acompletion(f"oci/{model}", [{"role": "user", "content": "Ping"}], stream=True,
                                     stream_options={"include_usage": True}, **creds)
    got = await acollect(stream)
    assert got["text"] == f"Hello from {model}! You said: Ping"
    assert got["usage"]["total_tokens"] > 0


def test_api_format_follows_family_and_default_token_limit(creds, oci_simulator):
    ocilm.completion("oci/cohere.command-r-08-2024", [{"role": "user", "content": "a"}], **creds)
    ocilm.completion("meta.llama-3.1-405b-instruct", [{"role": "user", "content": "a"}], **creds)  # prefix optional
    ocilm.completion("oci/openai.gpt-4.1", [{"role": "user", "content": "a"}], **creds)
    cohere, meta, openai = (r.json["chatRequest"] for r in oci_simulator.requests)
    assert cohere["apiFormat"] == "COHERE" and cohere["maxTokens"] == 4000
    assert meta["apiFormat"] == "GENERIC" and meta["maxTokens"] == 4000
    assert "maxTokens" not in openai and openai["maxCompletionTokens"] == 4000


def test_long_reply_is_not_cut_at_the_service_default(creds):
    prompt = "word " * 60
    r = ocilm.completion("oci/meta.llama-3.3-70b-instruct", [{"role": "user", "content": prompt}], **creds)
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.content.count("word") == 60


def test_truncation_gives_length(creds):
    for model in ("meta.llama-3.3-70b-instruct", "google.gemini-2.5-flash", "cohere.command-latest"):
        r = ocilm.completion(f"oci/{model}", [{"role": "user", "content": "tell me more"}], max_tokens=2, **creds)
        assert r.choices[0].finish_reason == "length", model
        assert r.choices[0].message.content == "Hello from "
        got = collect(ocilm.completion(f"oci/{model}", [{"role": "user", "content": "more"}], max_tokens=2, stream=True, **creds))
        assert got["finish"] == "length" and got["text"] == "Hello from "


def test_n_choices_and_usage_details(creds):
    r = ocilm.completion("oci/openai.gpt-oss-120b", [{"role": "system", "content": "You are a helpful bot"}, {"role": "user", "content": "Hi"}], n=3, **creds)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert r.choices[2].message.content.endswith("(choice 3)")
    assert r.usage.prompt_tokens_details.cached_tokens == 5  # the five words of the system prompt
    assert r.usage.completion_tokens_details.reasoning_tokens == 16
    assert r.opc_request_id and len(r.opc_request_id.split("/")) == 3


def test_response_object_access_and_json(creds):
    r = ocilm.completion("oci/meta.llama-3.3-70b-instruct", [{"role": "user", "content": "Hi"}], **creds)
    assert r.choices[0].message.content == r["choices"][0]["message"]["content"]
    assert json.loads(json.dumps(r))["choices"][0]["message"]["role"] == "assistant"
    assert json.loads(r.model_dump_json())["object"] == "chat.completion"
    assert r.model_dump()["usage"]["total_tokens"] == r.usage.total_tokens
    assert "Hello from" in str(r) and "ChatCompletion(" in repr(r)
    with pytest.raises(AttributeError):
        r.no_such_field  # noqa: B018


@pytest.mark.parametrize("model", ["openai.gpt-4.1", "xai.grok-3", "google.gemini-2.5-flash", "meta.llama-3.3-70b-instruct"])
def test_tool_call_round_trip_generic(creds, oci_simulator, model):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = ocilm.completion(f"oci/{model}", messages, tools=[WEATHER_TOOL], tool_choice="auto", **creds)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"  # even where the model says "stop" (Gemini)
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert call.id.startswith("call_")

    streamed = collect(ocilm.completion(f"oci/{model}", messages, tools=[WEATHER_TOOL], stream=True, **creds))
    assert streamed["finish"] == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in streamed["calls"]] == [("get_weather", {"city": "Paris"})]

    messages += [choice.message.model_dump(), {"role": "tool", "tool_call_id": call.id, "content": '{"tempC": 21}'}]
    final = ocilm.completion(f"oci/{model}", messages, tools=[WEATHER_TOOL], **creds)
    assert final.choices[0].message.content == 'The tool said: {"tempC": 21}'
    sent = oci_simulator.requests[-1].json["chatRequest"]["messages"]
    assert sent[1]["role"] == "ASSISTANT" and sent[1]["toolCalls"][0]["id"] == call.id
    assert sent[2] == {"role": "TOOL", "content": [{"type": "TEXT", "text": '{"tempC": 21}'}], "toolCallId": call.id}


@pytest.mark.parametrize("model", ["openai.gpt-4.1", "xai.grok-3", "google.gemini-2.5-flash", "meta.llama-4-scout-17b-16e-instruct"])
def test_parallel_tool_calls_stream(creds, model):
    got = collect(ocilm.completion(f"oci/{model}", [{"role": "user", "content": "Weather in Paris and Tokyo?"}],
                                   tools=[WEATHER_TOOL], stream=True, **creds))
    assert [json.loads(c["arguments"]) for c in got["calls"]] == [{"city": "Paris"}, {"city": "Tokyo"}]
    assert len({c["id"] for c in got["calls"]}) == 2
    single = ocilm.completion(f"oci/{model}", [{"role": "user", "content": "Weather in Paris and Tokyo?"}],
                              tools=[WEATHER_TOOL], parallel_tool_calls=False, **creds)
    assert len(single.choices[0].message.tool_calls) == 1


def test_forced_tool_choice(creds, oci_simulator):
    r = ocilm.completion("oci/meta.llama-3.3-70b-instruct", [{"role": "user", "content": "Hello Rome"}], tools=[WEATHER_TOOL],
                         tool_choice={"type": "function", "function": {"name": "get_weather"}}, **creds)
    assert r.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert oci_simulator.requests[-1].json["chatRequest"]["toolChoice"] == {"type": "FUNCTION", "name": "get_weather"}


def test_cohere_tool_round_trip(creds, oci_simulator):
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is the weather in Paris?"}]
    r = ocilm.completion("oci/cohere.command-r-08-2024", messages, tools=[WEATHER_TOOL], **creds)
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    sent_tools = oci_simulator.requests[-1].json["chatRequest"]["tools"]
    assert sent_tools == [{"name": "get_weather", "description": "Current weather for a city",
                           "parameterDefinitions": {"city": {"type": "str", "isRequired": True, "description": "City name"}}}]

    messages += [r.choices[0].message.model_dump(), {"role": "tool", "tool_call_id": call.id, "content": '{"tempC": 21}'}]
    final = ocilm.completion("oci/cohere.command-r-08-2024", messages, tools=[WEATHER_TOOL], **creds)
    assert final.choices[0].message.content == 'The tool said: [{"tempC": 21}]'
    sent = oci_simulator.requests[-1].json["chatRequest"]
    assert sent["message"] == ""
    assert sent["toolResults"] == [{"call": {"name": "get_weather", "parameters": {"city": "Paris"}}, "outputs": [{"tempC": 21}]}]
    assert sent["chatHistory"][-1] == {"role": "CHATBOT", "toolCalls": [{"name": "get_weather", "parameters": {"city": "Paris"}}]}
    assert sent["preambleOverride"] == "You are terse."

    # The conversation goes on after the tool turn: the results move into chatHistory.
    messages += [final.choices[0].message.model_dump(), {"role": "user", "content": "Thanks"}]
    after = ocilm.completion("oci/cohere.command-r-08-2024", messages, tools=[WEATHER_TOOL], **creds)
    assert after.choices[0].message.content.endswith("You said: Thanks")
    history = oci_simulator.requests[-1].json["chatRequest"]["chatHistory"]
    assert [h["role"] for h in history] == ["USER", "CHATBOT", "TOOL", "CHATBOT"]


def test_cohere_stream_tool_calls_not_duplicated(creds):
    got = collect(ocilm.completion("oci/cohere.command-latest", [{"role": "user", "content": "Weather in Paris?"}],
                                   tools=[WEATHER_TOOL], stream=True, **creds))
    assert len(got["calls"]) == 1 and got["finish"] == "tool_calls"
    text = collect(ocilm.completion("oci/cohere.command-latest", [{"role": "user", "content": "Hi"}], stream=True, **creds))
    assert text["text"] == "Hello from cohere.command-latest! You said: Hi"  # the terminal restatement is not appended


def test_images(creds, oci_simulator):
    image = "data:image/png;base64,iVBORw0KGgo="
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": image},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}},
    ]}]  # fmt: skip
    r = ocilm.completion("oci/meta.llama-3.2-90b-vision-instruct", messages, **creds)
    assert r.choices[0].message.content.endswith("What is in this picture?")
    parts = oci_simulator.requests[-1].json["chatRequest"]["messages"][0]["content"]
    assert parts[1] == {"type": "IMAGE", "imageUrl": {"url": image}}
    assert parts[2] == {"type": "IMAGE", "imageUrl": {"url": "https://example.com/cat.png", "detail": "HIGH"}}
    with pytest.raises(ocilm.BadRequestError, match=r"messages\[0\]\.content\[1\].*does not accept images"):
        ocilm.completion("oci/meta.llama-3.3-70b-instruct", messages, **creds)
    with pytest.raises(ocilm.BadRequestError, match="can only carry text"):
        ocilm.completion("oci/cohere.command-latest", messages, **creds)


def test_json_schema_and_json_object(creds, oci_simulator):
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}}, "required": ["city", "population"]}
    r = ocilm.completion("oci/openai.gpt-4.1", [{"role": "user", "content": "Biggest city in Japan Tokyo 14000000"}],
                         response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": True}}, **creds)
    assert json.loads(r.choices[0].message.content) == {"city": "Japan", "population": 14000000}
    sent = oci_simulator.requests[-1].json["chatRequest"]["responseFormat"]
    assert sent == {"type": "JSON_SCHEMA", "jsonSchema": {"name": "city", "schema": schema, "isStrict": True}}
    r = ocilm.completion("oci/cohere.command-latest", [{"role": "user", "content": "Hi"}], response_format={"type": "json_object"}, **creds)
    assert json.loads(r.choices[0].message.content) == {"answer": "Hi"}


def test_sampling_parameters_are_mapped(creds, oci_simulator):
    ocilm.completion("oci/meta.llama-3.3-70b-instruct", [{"role": "developer", "content": "d"}, {"role": "user", "content": "Hi"}],
                     temperature=0.2, top_p=0.9, top_k=5, stop="END", seed=7, frequency_penalty=0.1, presence_penalty=0.2,
                     logprobs=True, top_logprobs=2, logit_bias={6395: 2}, max_completion_tokens=55, **creds)
    sent = oci_simulator.requests[-1].json["chatRequest"]
    assert sent["messages"][0]["role"] == "DEVELOPER"
    # max_completion_tokens keeps its meaning: OCI's maxCompletionTokens (visible and reasoning tokens together)
    assert {k: sent[k] for k in ("temperature", "topP", "topK", "stop", "seed", "frequencyPenalty", "presencePenalty", "logProbs", "logitBias",
                                 "maxCompletionTokens")} == {
        "temperature": 0.2, "topP": 0.9, "topK": 5, "stop": ["END"], "seed": 7, "frequencyPenalty": 0.1,
        "presencePenalty": 0.2, "logProbs": 2, "logitBias": {"6395": 2}, "maxCompletionTokens": 55}
    assert "maxTokens" not in sent
    r = ocilm.completion("oci/xai.grok-3-mini", [{"role": "user", "content": "Hi"}], reasoning_effort="low", logprobs=True, **creds)
    assert oci_simulator.requests[-1].json["chatRequest"]["reasoningEffort"] == "LOW"
    assert r.choices[0].logprobs.content[0].token == "Hello "


def test_unsupported_params_error_or_drop(creds, oci_simulator):
    with pytest.raises(UnsupportedParamsError, match=r"reasoning_effort is not supported by model 'xai.grok-4'") as err:
        ocilm.completion("oci/xai.grok-4", [{"role": "user", "content": "Hi"}], reasoning_effort="high", **creds)
    assert err.value.param == "reasoning_effort"
    assert not oci_simulator.requests  # refused before any network call
    r = ocilm.completion("oci/xai.grok-4", [{"role": "user", "content": "Hi"}], reasoning_effort="high", stop=["x"], drop_params=True, **creds)
    assert r.choices[0].message.content.startswith("Hello")
    assert "reasoningEffort" not in oci_simulator.requests[-1].json["chatRequest"]
    with pytest.raises(UnsupportedParamsError, match="n is not supported by model 'cohere.command-latest'"):
        ocilm.completion("oci/cohere.command-latest", [{"role": "user", "content": "Hi"}], n=2, **creds)
    with pytest.raises(UnsupportedParamsError, match="frobnicate"):
        ocilm.completion("oci/meta.llama-3.3-70b-instruct", [{"role": "user", "content": "Hi"}], frobnicate=1, **creds)
    with pytest.raises(UnsupportedParamsError, match="tool_choice"):
        ocilm.completion("oci/cohere.command-latest", [{"role": "user", "content": "Hi"}], tools=[WEATHER_TOOL], tool_choice="required", **creds)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"temperature": "hot"}, "temperature: expected a number"),
    ({"temperature": 5}, "temperature: must be between 0 and 2"),
    ({"n": 0}, "n: must be at least 1"),
    ({"stop": 3}, "stop: expected a string or a list of strings"),
    ({"tool_choice": "sometimes", "tools": [WEATHER_TOOL]}, "tool_choice: expected 'none'"),
    ({"response_format": {"type": "xml"}}, "response_format: expected"),
    ({"stream_options": {"include_usage": True}}, "stream_options: only allowed with stream=True"),
    ({"reasoning_effort": "max"}, "reasoning_effort: expected one of none, minimal, low, medium, high"),
    ({"timeout": -1}, "timeout: expected a positive, finite number"),
    ({"extra_headers": {"Authorization": "x"}}, "extra_headers: cannot set Authorization"),
])
def test_bad_parameters_are_clear(creds, oci_simulator, kwargs, message):
    with pytest.raises(ocilm.BadRequestError, match=message) as err:
        ocilm.completion("oci/openai.gpt-oss-120b", [{"role": "user", "content": "Hi"}], **kwargs, **creds)
    assert not str(err.value).startswith("[HTTP")  # raised here, not by OCI
    assert not oci_simulator.requests


def test_bad_messages_are_clear(creds):
    for messages, message in [
        ([], "messages: expected a non-empty list"),
        ([{"content": "x"}], r"messages\[0\]: each message must be an object with a 'role'"),
        ([{"role": "wizard", "content": "x"}], r"messages\[0\]\.role: unsupported role 'wizard'"),
        ([{"role": "tool", "content": "x"}], r"messages\[0\]\.tool_call_id"),
    ]:
        with pytest.raises(ocilm.BadRequestError, match=message):
            ocilm.completion("oci/meta.llama-3.3-70b-instruct", messages, **creds)
    with pytest.raises(ocilm.BadRequestError, match="must end with a user message or tool results"):
        ocilm.completion("oci/cohere.command-latest", [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], **creds)


def test_invalid_serving_mode_and_missing_compartment(creds):
    with pytest.raises(ocilm.ConfigurationError, match="oci_serving_mode is not valid"):
        ocilm.completion("oci/meta.llama-3.3-70b-instruct", [{"role": "user", "content": "x"}], **{**creds, "oci_serving_mode": "SPOT"})
    no_compartment = {k: v for k, v in creds.items() if k != "oci_compartment_id"}
    with pytest.raises(ocilm.ConfigurationError, match="oci_compartment_id is required"):
        ocilm.completion("oci/meta.llama-3.3-70b-instruct", [{"role": "user", "content": "x"}], **no_compartment)


def test_oci_api_format_override(creds, oci_simulator):
    oci_simulator.add_endpoint("ocid1.generativeaiendpoint.oc1..finetunedcohere", "cohere.command-r-08-2024")
    r = ocilm.completion("oci/ocid1.generativeaiendpoint.oc1..finetunedcohere", [{"role": "user", "content": "Hi"}],
                         oci_serving_mode="DEDICATED", oci_api_format="COHERE", **creds)
    assert r.choices[0].message.content.endswith("You said: Hi")
    assert oci_simulator.requests[-1].json["chatRequest"]["apiFormat"] == "COHERE"


def test_assistant_text_kept_with_tool_calls(creds, oci_simulator):
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_9", "content": "cold"},
    ]
    ocilm.completion("oci/meta.llama-3.3-70b-instruct", messages, tools=[WEATHER_TOOL], **creds)
    sent = oci_simulator.requests[-1].json["chatRequest"]["messages"][1]
    assert sent["content"] == [{"type": "TEXT", "text": "Let me check."}] and sent["toolCalls"][0]["id"] == "call_9"


def test_stream_closed_when_caller_stops_early(creds):
    with Client(**creds) as client:
        stream = client.completion("oci/meta.llama-3.3-70b-instruct", [{"role": "user", "content": "one two three four"}], stream=True)
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant"
        stream.close()
        assert stream.response.is_closed
        with client.completion("oci/meta.llama-3.3-70b-instruct", [{"role": "user", "content": "x"}], stream=True) as s2:
            for _ in s2:
                break
        assert s2.response.is_closed


@pytest.mark.usefixtures("async_backend")
async def test_async_client_stream_early_close(creds):
    async with AsyncClient(**creds) as client:
        stream = await client.completion("oci/xai.grok-3", [{"role": "user", "content": "a b c d"}], stream=True)
        async with stream:
            async for _chunk in stream:
                break
        assert stream.response.is_closed
        r = await client.acompletion("oci/xai.grok-3", [{"role": "user", "content": "again"}])
        assert r.choices[0].message.content.endswith("again")


def test_client_defaults_and_overrides(creds, oci_simulator):
    with Client(**creds, temperature=0.5, extra_headers={"x-proxy-key": "SECRET-proxy-key"}) as client:
        client.completion("oci/meta.llama-3.3-70b-instruct", [{"role": "user", "content": "a"}])
        client.completion("oci/meta.llama-3.3-70b-instruct", [{"role": "user", "content": "b"}], temperature=0.1)
        assert "oci_key" not in repr(client) and "BEGIN" not in repr(client) and "SECRET-proxy-key" not in repr(client)
    assert [r.json["chatRequest"]["temperature"] for r in oci_simulator.requests] == [0.5, 0.1]


def test_connections_are_reused_after_streams(creds, oci_simulator):
    """A finished stream hands its connection back to the pool (the body is read to its end)."""
    with Client(**creds) as client:
        for _ in range(5):
            list(client.completion("oci/meta.llama-3.3-70b-instruct", [{"role": "user", "content": "x"}], stream=True))
        client.completion("oci/cohere.command-latest", [{"role": "user", "content": "x"}])
    assert len({r.client for r in oci_simulator.requests}) == 1


@pytest.mark.usefixtures("async_backend")
async def test_async_connections_are_reused_after_streams(creds, oci_simulator):
    async with AsyncClient(**creds) as client:
        for _ in range(5):
            async for _chunk in await client.completion("oci/xai.grok-3", [{"role": "user", "content": "x"}], stream=True):
                pass
    assert len({r.client for r in oci_simulator.requests}) == 1


@pytest.mark.parametrize("model", ["oci/meta.llama-3.3-70b-instruct", "oci/cohere.command-latest"])
def test_strict_function_schemas_are_unsupported(creds, oci_simulator, model):
    strict_tool = {"type": "function", "function": {**WEATHER_TOOL["function"], "strict": True}}
    with pytest.raises(UnsupportedParamsError, match=r"tools\[0\]\.function\.strict is not supported"):
        ocilm.completion(model, [{"role": "user", "content": "Weather in Paris?"}], tools=[strict_tool], **creds)
    assert not oci_simulator.requests
    r = ocilm.completion(model, [{"role": "user", "content": "Weather in Paris?"}], tools=[strict_tool], drop_params=True, **creds)
    assert r.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert "strict" not in json.dumps(oci_simulator.requests[-1].json["chatRequest"]["tools"])
