"""The agent front doors end to end: the official openai and anthropic SDKs in strict mode ->
``ocilm serve``'s app -> the simulator, for every OCI family, streamed and not; each raw stream
is also checked by the event-grammar checkers."""

from __future__ import annotations

import json

import httpx
import pytest

from ocilm.gateway import create_app, parse_config
from ocilm.testing import BackgroundServer, Fault

from ..sse_grammar import check_messages, check_responses

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
KEY = "sk-door-test-key-1"
FAMILIES = {
    "llama": "oci/meta.llama-3.3-70b-instruct",   # GENERIC
    "gemini": "oci/google.gemini-2.5-flash",       # GENERIC, Google: tool calls without ids
    "gpt": "oci/openai.gpt-4.1",                   # GENERIC, OpenAI: maxCompletionTokens, fragmented tool calls
    "grok": "oci/xai.grok-4",                      # GENERIC, rejects reasoningEffort
    "command-r": "oci/cohere.command-r-08-2024",   # COHERE
    "command-a": "oci/cohere.command-a-03-2025",   # COHEREV2
}  # fmt: skip
WEATHER = {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}}, "required": ["city"]}
HI = "Hello there"


@pytest.fixture
def oci_simulator(module_oci_simulator):  # this module's gateway lives as long as the module: its own view
    return module_oci_simulator


@pytest.fixture(scope="module")
def gateway(module_simulator):
    creds = module_simulator.credentials()
    config = {
        "model_list": [{"model_name": name, "litellm_params": {"model": model, **creds}} for name, model in FAMILIES.items()]
        # one throttled deployment per test that meets it: a 429 with Retry-After cools its deployment, and a
        # later test meeting the cooling one would read the time left (2 s) instead of OCI's 3
        + [{"model_name": name, "litellm_params": {"model": FAMILIES["llama"], **creds, "max_retries": 0,
            "extra_headers": {"x-ocilm-sim-fault": Fault(status=429, retry_after="3", times=None).header()}}}
           for name in ("throttled", "throttled-messages")]
        + [{"model_name": "overloaded", "litellm_params": {"model": FAMILIES["llama"], **creds, "max_retries": 0,
            "extra_headers": {"x-ocilm-sim-fault": Fault(status=503, times=None).header()}}}],
        "router_settings": {"model_group_alias": {"gpt-5*": "llama", "claude-sonnet-4-5": "llama", "claude-haiku-*": "command-a"}},
        "general_settings": {"master_key": KEY},
    }  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as server:
        yield server


@pytest.fixture(scope="module")
def oa(gateway):
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=KEY, max_retries=0, _strict_response_validation=True) as client:
        yield client


@pytest.fixture(scope="module")
def an(gateway):
    with anthropic.Anthropic(base_url=gateway.base_url, api_key=KEY, max_retries=0, _strict_response_validation=True) as client:
        yield client


class OpenAIText:
    @staticmethod
    def of(gateway, model: str) -> str:
        r = httpx.post(f"{gateway.base_url}/v1/responses", headers={"authorization": f"Bearer {KEY}"}, json={"model": model, "input": HI})
        assert r.status_code == 200, r.text
        return r.json()["output"][0]["content"][0]["text"]


def raw_stream(gateway, path: str, body: dict, headers: dict | None = None) -> bytes:
    with httpx.stream("POST", f"{gateway.base_url}{path}", json={**body, "stream": True}, timeout=30,
                      headers={"authorization": f"Bearer {KEY}", **(headers or {})}) as r:  # fmt: skip
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        return r.read()


# ---------------------------------------------------------------- /v1/responses


@pytest.mark.parametrize("family", list(FAMILIES))
def test_responses_text_every_family(oa, gateway, family):
    r = oa.responses.create(model=family, input=HI, instructions="Be brief.", metadata={"run": "t"})
    assert r.output_text.endswith(f"You said: {HI}") and r.status == "completed" and r.metadata == {"run": "t"}
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    with oa.responses.stream(model=family, input=HI) as stream:
        final = stream.get_final_response()
    assert final.output_text == r.output_text
    terminal = check_responses(raw_stream(gateway, "/v1/responses", {"model": family, "input": HI}))
    assert terminal["output"][-1]["content"][0]["text"] == r.output_text


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("stream", [False, True])
def test_responses_function_tool_round_trip_every_family(oa, gateway, family, stream):
    tools = [{"type": "function", "name": "get_weather", "description": "Current weather", "parameters": WEATHER, "strict": False}]
    question = [{"role": "user", "content": "What is the weather in Paris?"}]
    if stream:
        with oa.responses.stream(model=family, input=question, tools=tools) as s:
            first = s.get_final_response()
        check_responses(raw_stream(gateway, "/v1/responses", {"model": family, "input": question, "tools": tools}))
    else:
        first = oa.responses.create(model=family, input=question, tools=tools)
    calls = [o for o in first.output if o.type == "function_call"]
    assert calls and calls[0].name == "get_weather" and json.loads(calls[0].arguments) == {"city": "Paris"}
    follow = [*question, {"type": "function_call", "call_id": calls[0].call_id, "name": "get_weather", "arguments": calls[0].arguments},
              {"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"tempC": 21}'}]  # fmt: skip
    answer = oa.responses.create(model=family, input=follow, tools=tools)
    assert "21" in answer.output_text


def test_responses_custom_tool_round_trips_raw_text(oa, gateway, oci_simulator):
    patch = "*** Begin Patch\n*** Add File: hello.txt\n+Hi\n*** End Patch"
    tools = [{"type": "custom", "name": "apply_patch", "description": "Apply a patch",
              "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}]  # fmt: skip
    r = oa.responses.create(model="llama", input=f"Use apply_patch with this Patch: {patch}", tools=tools, tool_choice="required")
    call = next(o for o in r.output if o.type == "custom_tool_call")
    assert call.name == "apply_patch" and isinstance(call.input, str) and not call.input.startswith("{")  # unwrapped, never JSON
    sent_tool = oci_simulator.requests[-1].json["chatRequest"]["tools"][0]
    assert sent_tool["parameters"]["required"] == ["input"] and "grammar" in sent_tool["description"]
    history = [{"role": "user", "content": "patch it"},
               {"type": "custom_tool_call", "call_id": call.call_id, "name": "apply_patch", "input": patch},
               {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done!"}]  # fmt: skip
    final = oa.responses.create(model="llama", input=history, tools=tools)
    assert final.output_text == "The tool said: Done!"
    sent = oci_simulator.requests[-1].json["chatRequest"]["messages"]
    assert json.loads(sent[1]["toolCalls"][0]["arguments"]) == {"input": patch}
    terminal = check_responses(raw_stream(gateway, "/v1/responses", {"model": "llama", "input": "apply_patch please", "tools": tools,
                                                                      "tool_choice": "required"}))  # fmt: skip
    item = next(o for o in terminal["output"] if o["type"] == "custom_tool_call")
    assert isinstance(item["input"], str) and not item["input"].startswith("{")


def test_responses_namespace_tools_flattened_and_restored(oa, oci_simulator):
    tools = [{"type": "namespace", "name": "mcp__weather__", "description": "Weather server",
              "tools": [{"type": "function", "name": "get_weather", "parameters": WEATHER}]}]  # fmt: skip
    r = oa.responses.create(model="llama", input="What is the weather in Paris?", tools=tools)
    call = next(o for o in r.output if o.type == "function_call")
    assert (call.namespace, call.name) == ("mcp__weather__", "get_weather")
    assert oci_simulator.requests[-1].json["chatRequest"]["tools"][0]["name"] == "mcp__weather__get_weather"
    follow = oa.responses.create(model="llama", tools=tools, input=[
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": call.call_id, "name": "get_weather", "namespace": "mcp__weather__", "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])  # fmt: skip
    assert follow.output_text == "The tool said: sunny"


def test_responses_hosted_tools_skipped_and_codex_history(oa, oci_simulator):
    tools = [{"type": "web_search"}, {"type": "function", "name": "shell", "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}]
    history = [  # Codex-style: developer message, reasoning, a call, an assistant message echoed before the output
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list files"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": None},
        {"type": "function_call", "call_id": "call_A", "name": "shell", "arguments": '{"command": "ls"}'},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Running ls."}]},
        {"type": "function_call_output", "call_id": "call_A", "output": "a.txt"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
    ]  # fmt: skip
    r = oa.responses.create(model="llama", input=history, tools=tools, include=["reasoning.encrypted_content"], store=False,
                            prompt_cache_key="thread-1", reasoning={"effort": "low", "summary": "auto"})  # fmt: skip
    assert r.output_text == "The tool said: a.txt"
    sent = oci_simulator.requests[-1].json["chatRequest"]
    assert [t["name"] for t in sent["tools"]] == ["shell"]
    assert [m["role"] for m in sent["messages"]] == ["SYSTEM", "USER", "ASSISTANT", "TOOL"]
    assert "reasoningEffort" not in sent  # Llama takes no reasoning effort: dropped for it, not refused


def test_responses_reasoning_effort_only_where_accepted(oa, oci_simulator):
    oa.responses.create(model="grok", input=HI, reasoning={"effort": "high"})  # Grok 4 refuses reasoningEffort
    assert "reasoningEffort" not in oci_simulator.requests[-1].json["chatRequest"]
    oa.responses.create(model="gpt", input=HI, reasoning={"effort": "xhigh"})
    assert oci_simulator.requests[-1].json["chatRequest"]["reasoningEffort"] == "HIGH"


def test_responses_previous_response_id(oa, oci_simulator):
    first = oa.responses.create(model="llama", input="Remember Paris")
    second = oa.responses.create(model="llama", input="And now?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    messages = oci_simulator.requests[-1].json["chatRequest"]["messages"]
    assert [m["role"] for m in messages] == ["USER", "ASSISTANT", "USER"]
    with pytest.raises(openai.NotFoundError) as err:
        oa.responses.create(model="llama", input="x", previous_response_id="resp_unknown")
    assert err.value.code == "previous_response_not_found"


def test_responses_length_cut_is_incomplete(oa, gateway):
    body = {"model": "llama", "input": "one two three four five six seven", "max_output_tokens": 3}
    r = oa.responses.create(**body)
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    terminal = check_responses(raw_stream(gateway, "/v1/responses", body))
    assert terminal["status"] == "incomplete"
    with oa.responses.stream(**body) as s, pytest.raises(RuntimeError, match="response.completed"):
        s.get_final_response()


def test_responses_json_schema_output(oa):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}
    r = oa.responses.create(model="llama", input="Weather in Paris", text={"format": {"type": "json_schema", "name": "w", "schema": schema, "strict": True}})
    assert json.loads(r.output_text) == {"city": "Paris"}


def test_responses_error_classes(gateway, oa):
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="wrong-key-123", max_retries=0) as bad, pytest.raises(openai.AuthenticationError):
        bad.responses.create(model="llama", input=HI)
    with pytest.raises(openai.NotFoundError):
        oa.responses.create(model="no-such-model", input=HI)
    with pytest.raises(openai.RateLimitError) as err:
        oa.responses.create(model="throttled", input=HI)
    assert err.value.response.headers["retry-after"] == "3"
    with pytest.raises(openai.BadRequestError, match="input_file"):
        oa.responses.create(model="llama", input=[{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}])


# ---------------------------------------------------------------- /v1/messages


@pytest.mark.parametrize("family", list(FAMILIES))
def test_messages_text_every_family(an, gateway, family):
    m = an.messages.create(model=family, max_tokens=16000, system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
                           messages=[{"role": "user", "content": HI}])  # fmt: skip
    assert m.content[-1].text.endswith(f"You said: {HI}") and m.stop_reason == "end_turn"
    with an.messages.stream(model=family, max_tokens=1000, messages=[{"role": "user", "content": HI}]) as s:
        final = s.get_final_message()
    assert final.content[-1].text == m.content[-1].text and final.usage.output_tokens > 0
    blocks = check_messages(raw_stream(gateway, "/v1/messages", {"model": family, "max_tokens": 100, "messages": [{"role": "user", "content": HI}]}))
    assert blocks[-1]["text"] == m.content[-1].text


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("stream", [False, True])
def test_messages_tool_round_trip_every_family(an, gateway, family, stream):
    tools = [{"name": "get_weather", "description": "Current weather", "input_schema": WEATHER}]
    question = [{"role": "user", "content": "What is the weather in Paris?"}]
    if stream:
        with an.messages.stream(model=family, max_tokens=500, tools=tools, messages=question) as s:
            first = s.get_final_message()
        check_messages(raw_stream(gateway, "/v1/messages", {"model": family, "max_tokens": 500, "tools": tools, "messages": question}))
    else:
        first = an.messages.create(model=family, max_tokens=500, tools=tools, messages=question)
    use = next(b for b in first.content if b.type == "tool_use")
    assert first.stop_reason == "tool_use" and use.input == {"city": "Paris"}
    final = an.messages.create(model=family, max_tokens=500, tools=tools, messages=[
        *question, {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": [{"type": "text", "text": "tempC 21"}]}]}])  # fmt: skip
    assert "21" in final.content[-1].text


def test_messages_claude_code_style_request(an, oci_simulator, gateway):
    tools = [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}},
              "required": ["command"], "$schema": "http://json-schema.org/draft-07/schema#", "additionalProperties": False}},
             {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]  # fmt: skip
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Run the tests", "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig"},
                                          {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "pytest"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "is_error": True, "content": "exit 1"},
                                     {"type": "text", "text": "<system-reminder>keep going</system-reminder>Go on"}]},
    ]  # fmt: skip
    r = an.beta.messages.create(model="claude-sonnet-4-5", max_tokens=16000, tools=tools, messages=messages,
                                system=[{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1; cch=1;"},
                                        {"type": "text", "text": "You are Claude Code."}],
                                metadata={"user_id": json.dumps({"device": "d"})}, thinking={"type": "enabled", "budget_tokens": 4000},
                                betas=["claude-code-20250219", "interleaved-thinking-2025-05-14", "some-future-beta-2099-01-01"])  # fmt: skip
    assert r.content[-1].text.endswith("You said: Go on")
    sent = oci_simulator.requests[-1].json["chatRequest"]
    assert [m["role"] for m in sent["messages"]] == ["SYSTEM", "USER", "ASSISTANT", "TOOL", "USER"]
    assert sent["messages"][0]["content"][0]["text"] == "You are Claude Code."  # the billing block is not sent
    assert sent["messages"][3]["content"][0]["text"] == "ERROR: exit 1"
    assert [t["name"] for t in sent["tools"]] == ["Bash"] and "$schema" not in sent["tools"][0]["parameters"]
    assert sent["maxTokens"] == 4000  # clamped to the deployment's output limit
    assert an.beta.messages.count_tokens(model="claude-sonnet-4-5", messages=messages, tools=tools[:1]).input_tokens > 10
    assert httpx.head(gateway.base_url + "/").status_code == 200 and httpx.head(gateway.base_url + "/api/hello").status_code == 200


def test_messages_thinking_from_a_reasoning_model(an, gateway):
    m = an.messages.create(model="gpt", max_tokens=500, messages=[{"role": "user", "content": HI}], output_config={"effort": "high"})
    assert m.content[-1].type == "text"
    r = httpx.post(f"{gateway.base_url}/v1/messages", headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
                   json={"model": "grok", "max_tokens": 100, "messages": [{"role": "user", "content": HI}], "thinking": {"type": "enabled", "budget_tokens": 20000}})  # fmt: skip
    body = r.json()
    assert r.status_code == 200 and body["content"][0]["type"] == "thinking" and body["content"][0]["signature"]
    blocks = check_messages(raw_stream(gateway, "/v1/messages", {"model": "grok", "max_tokens": 100, "messages": [{"role": "user", "content": HI}]}))
    assert [b["type"] for b in blocks] == ["thinking", "text"]


def test_messages_errors_use_anthropics_envelope(gateway, an):
    with anthropic.Anthropic(base_url=gateway.base_url, api_key="wrong-key-123", max_retries=0) as bad, pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="llama", max_tokens=10, messages=[{"role": "user", "content": HI}])
    with pytest.raises(anthropic.NotFoundError):
        an.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": HI}])
    with pytest.raises(anthropic.RateLimitError) as err:
        an.messages.create(model="throttled-messages", max_tokens=10, messages=[{"role": "user", "content": HI}])
    assert err.value.response.headers["retry-after"] == "3"
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        an.messages.create(model="overloaded", max_tokens=10, messages=[{"role": "user", "content": HI}])
    assert overloaded.value.status_code == 529 and overloaded.value.body["error"]["type"] == "overloaded_error"
    r = httpx.post(f"{gateway.base_url}/v1/messages", headers={"x-api-key": KEY}, json={"model": "llama", "messages": [{"role": "user", "content": HI}]})
    assert r.status_code == 400 and r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in r.json()["error"]["message"]


def test_anthropic_model_list_and_aliases(gateway, an):
    ids = [m.id for m in an.models.list()]
    assert "claude-sonnet-4-5" in ids and "llama" in ids
    m = an.messages.create(model="claude-haiku-4-5-20251001", max_tokens=100, messages=[{"role": "user", "content": HI}])
    assert "cohere.command-a-03-2025" in m.content[0].text and m.model == "claude-haiku-4-5-20251001"  # a pattern alias
    assert "Hello from meta.llama" in OpenAIText.of(gateway, "gpt-5.1-codex")
