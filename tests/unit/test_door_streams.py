"""The reference's fake-backend scenarios (D2), each a regression some translator shipped: scripted
chat chunks fed to both doors' stream state machines, every output checked by the grammar checkers."""

from __future__ import annotations

import json

import pytest

from ocilm.doors import messages as anthropic
from ocilm.doors import responses
from ocilm.doors._common import new_id

from ..sse_grammar import check_messages, check_responses


def chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None) -> dict:
    return {"id": new_id("chatcmpl"), "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [] if delta is None and finish is None else [{"index": 0, "delta": {"content": None, "tool_calls": None, **(delta or {})},
                                                                     "finish_reason": finish, "logprobs": None}],
            **({"usage": usage} if usage else {})}  # fmt: skip


def call_delta(index: int, call_id: str | None = None, name: str | None = None, arguments: str = "") -> dict:
    tc: dict = {"index": index, "function": {"arguments": arguments}}
    if call_id:
        tc["id"] = call_id
    if name:
        tc["function"]["name"] = name
        tc["type"] = "function"
    return {"tool_calls": [tc]}


USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17, "prompt_tokens_details": {"cached_tokens": 2},
         "completion_tokens_details": {"reasoning_tokens": 1}}  # fmt: skip

SCENARIOS = {
    "text only": [chunk({"role": "assistant", "content": "Hel"}), chunk({"content": "lo"}), chunk(finish="stop"), chunk(usage=USAGE)],
    "text then a tool call": [chunk({"content": "Let me look."}), chunk(call_delta(0, "call_1", "get_weather", '{"city":')),
                              chunk(call_delta(0, arguments=' "Paris"}')), chunk(finish="tool_calls"), chunk(usage=USAGE)],
    "two parallel calls": [chunk(call_delta(0, "c1", "get_weather", '{"city": "Paris"}')), chunk(call_delta(1, "c2", "get_weather", '{"city": "Rome"}')),
                           chunk(finish="tool_calls")],
    "name and full arguments in one chunk": [chunk(call_delta(0, "c1", "get_weather", '{"city": "Paris"}')), chunk(finish="stop")],
    "new id on every fragment, finish stop": [chunk(call_delta(0, "id-1", "get_weather", '{"ci')), chunk(call_delta(0, "id-2", None, 'ty": ')),
                                               chunk(call_delta(0, "id-3", None, '"Paris"}')), chunk(finish="stop"), chunk(usage=USAGE)],
    "tool call without an id (Cohere)": [chunk(call_delta(0, None, "get_weather", '{"city": "Paris"}')), chunk(finish="tool_calls")],
    "trailing usage-only chunk": [chunk({"content": "Hi"}), chunk(finish="stop"), chunk(usage=USAGE)],
    "length cut mid-arguments": [chunk(call_delta(0, "c1", "get_weather", '{"city": "Par')), chunk(finish="length")],
    "content filter": [chunk({"content": "I can"}), chunk(finish="content_filter")],
    "reasoning before text": [chunk({"reasoning_content": "Think"}), chunk({"reasoning_content": "ing."}), chunk({"content": "Answer"}), chunk(finish="stop")],
    "empty deltas": [chunk({"content": ""}), chunk({"content": "x"}), chunk({"content": ""}), chunk(finish="stop")],
}  # fmt: skip


def run_responses(chunks: list[dict], tools: list | None = None) -> tuple[bytes, dict]:
    call = responses.parse_request({"model": "m", "input": "hi", "tools": tools or [], "stream": True}, lambda _: None)
    machine = responses.ResponsesStream(call)
    raw = b"".join(machine.start()) + b"".join(f for c in chunks for f in machine.feed(c)) + b"".join(machine.finish())
    return raw, check_responses(raw)


def run_messages(chunks: list[dict]) -> list[dict]:
    call = anthropic.parse_request({"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], "stream": True})
    machine = anthropic.MessagesStream(call)
    raw = b"".join(machine.start()) + b"".join(f for c in chunks for f in machine.feed(c)) + b"".join(machine.finish_events())
    return check_messages(raw)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenario_keeps_both_grammars(name):
    chunks = SCENARIOS[name]
    _, final = run_responses(chunks)
    blocks = run_messages(chunks)
    calls = [o for o in final["output"] if o["type"] == "function_call"]
    uses = [b for b in blocks if b["type"] == "tool_use"]
    assert len(calls) == len(uses)
    if name == "new id on every fragment, finish stop":
        assert calls[0]["call_id"] == "id-1" and uses[0]["id"] == "id-1"  # the first id is kept
        assert json.loads(calls[0]["arguments"]) == uses[0]["input"] == {"city": "Paris"}
        assert final["status"] == "completed"
    if name == "two parallel calls":
        assert [json.loads(c["arguments"])["city"] for c in calls] == ["Paris", "Rome"]
    if name == "tool call without an id (Cohere)":
        assert calls[0]["call_id"] and uses[0]["id"]
    if name == "length cut mid-arguments":
        assert final["status"] == "incomplete" and final["incomplete_details"] == {"reason": "max_output_tokens"}
    if name == "content filter":
        assert final["incomplete_details"] == {"reason": "content_filter"}
    if name == "reasoning before text":
        assert [o["type"] for o in final["output"]] == ["reasoning", "message"] and [b["type"] for b in blocks] == ["thinking", "text"]
        assert final["output"][0]["content"][0]["text"] == blocks[0]["thinking"] == "Thinking."
    if name == "trailing usage-only chunk":
        assert final["usage"]["input_tokens"] == 12 and final["usage"]["input_tokens_details"]["cached_tokens"] == 2


def test_messages_usage_is_cumulative_and_stop_reasons_map():
    call = anthropic.parse_request({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
    for chunks, reason in ((SCENARIOS["text only"], "end_turn"), (SCENARIOS["name and full arguments in one chunk"], "tool_use"),
                           (SCENARIOS["length cut mid-arguments"], "max_tokens"), (SCENARIOS["content filter"], "refusal")):  # fmt: skip
        machine = anthropic.MessagesStream(call)
        frames = b"".join(machine.start()) + b"".join(f for c in chunks for f in machine.feed(c)) + b"".join(machine.finish_events())
        delta = next(json.loads(line[6:]) for line in frames.decode().split("\n") if line.startswith("data: ") and '"message_delta"' in line)
        assert delta["delta"]["stop_reason"] == reason
    machine = anthropic.MessagesStream(call)
    frames = b"".join(f for c in SCENARIOS["text only"] for f in machine.feed(c)) + b"".join(machine.finish_events())
    delta = next(json.loads(line[6:]) for line in frames.decode().split("\n") if '"message_delta"' in line)
    assert delta["usage"] == {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2}


def test_upstream_failure_after_three_chunks():
    call = responses.parse_request({"model": "m", "input": "hi", "stream": True}, lambda _: None)
    machine = responses.ResponsesStream(call)
    raw = b"".join(machine.start()) + b"".join(f for c in SCENARIOS["text only"][:3] for f in machine.feed(c))
    raw += b"".join(machine.fail("server_error", "upstream OCI failed"))
    final = check_responses(raw)
    assert final["status"] == "failed" and final["error"]["code"] == "server_error"
    m_call = anthropic.parse_request({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
    m = anthropic.MessagesStream(m_call)
    raw = b"".join(m.start()) + b"".join(f for c in SCENARIOS["text only"][:2] for f in m.feed(c)) + b"".join(m.fail(529, "Overloaded"))
    check_messages(raw)
    assert b'"overloaded_error"' in raw


def test_custom_tool_input_unwrapped_in_the_stream():
    tools = [{"type": "custom", "name": "apply_patch"}]
    patch = "*** Begin Patch\n*** End Patch"
    arguments = json.dumps({"input": patch})
    chunks = [chunk(call_delta(0, "c1", "apply_patch", arguments[:10])), chunk(call_delta(0, None, None, arguments[10:])), chunk(finish="tool_calls")]
    raw, final = run_responses(chunks, tools)
    item = final["output"][0]
    assert item["type"] == "custom_tool_call" and item["input"] == patch
    assert b"function_call_arguments.delta" not in raw  # the JSON wrapping is never shown to the client


def test_codex_history_ordering_rules():
    table: dict = {}
    messages = responses.map_input([
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": "a", "name": "shell", "arguments": "{}"},
        {"type": "function_call", "call_id": "b", "name": "shell", "arguments": "{}"},  # merged into the same turn
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "working"}]},  # folded in
        {"type": "function_call_output", "call_id": "a", "output": "A"},
        {"role": "user", "content": "next"},  # b never got an output: synthesised
    ], table)  # fmt: skip
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "user"]
    assert [tc["id"] for tc in messages[1]["tool_calls"]] == ["a", "b"] and messages[1]["content"] == "working"
    assert messages[3] == {"role": "tool", "tool_call_id": "b", "content": "(no output)"}


def test_schema_sanitised_for_tools_reaching_oci():
    from ocilm._capabilities import model_info
    from ocilm.formats._common import ChatContext
    from ocilm.formats.generic import generic_request

    schema = {"type": "object", "$defs": {"P": {"type": "object", "properties": {"x": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}},
              "properties": {"p": {"$ref": "#/$defs/P"}}, "title": "Args"}  # fmt: skip
    ctx = ChatContext(model="meta.llama-3.3-70b-instruct", info=model_info("meta.llama-3.3-70b-instruct"))
    req = generic_request([{"role": "user", "content": "x"}], {"tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}]}, ctx)
    assert req["tools"][0]["parameters"] == {"type": "object", "properties": {"p": {"type": "object", "properties": {"x": {"type": "string"}}}}}


def test_text_and_a_tool_call_in_one_chunk_are_both_kept():
    """The fast path for text deltas must not swallow a tool call riding on the same chunk."""
    chunks = [chunk({"content": "Let me "}), chunk({"content": "check.", **call_delta(0, "c1", "f", "{}")}), chunk(finish="tool_calls")]
    _, final = run_responses(chunks)
    assert [o["type"] for o in final["output"]] == ["message", "function_call"]
    assert final["output"][0]["content"][0]["text"] == "Let me check."
    assert [b["type"] for b in run_messages(chunks)] == ["text", "tool_use"]


def test_local_shell_tool_and_items():
    tools = [{"type": "local_shell"}]
    call = responses.parse_request({"model": "m", "tools": tools, "input": [
        {"role": "user", "content": "list"},
        {"type": "local_shell_call", "call_id": "s1", "id": "lsh_1", "status": "completed",
         "action": {"type": "exec", "command": ["ls", "-l"], "env": {}, "working_directory": "/tmp"}},
        {"type": "local_shell_call_output", "call_id": "s1", "output": "a.txt"}]}, lambda _: None)  # fmt: skip
    sent = call.chat["messages"]
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"command": ["ls", "-l"], "workdir": "/tmp"}
    assert sent[2] == {"role": "tool", "tool_call_id": "s1", "content": "a.txt"}
    reply = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c9", "type": "function", "function": {"name": "local_shell", "arguments": '{"command": ["pwd"], "timeout_ms": 500}'}}]}}]}  # fmt: skip
    item = responses.from_completion(call, reply)["output"][0]
    assert item["type"] == "local_shell_call" and item["action"] == {"type": "exec", "command": ["pwd"], "env": {}, "timeout_ms": 500}


def test_messages_documents_and_images():
    from ocilm.doors._common import DoorError

    call = anthropic.parse_request({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [
        {"type": "document", "title": "Notes", "source": {"type": "text", "media_type": "text/plain", "data": "line one"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
        {"type": "text", "text": "summarise"}]}]})  # fmt: skip
    content = call.chat["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "Notes\n\nline one"} and content[1]["image_url"]["url"] == "data:image/png;base64,iVBO"
    with pytest.raises(DoorError, match="only text documents"):
        anthropic.parse_request({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}}]}]})  # fmt: skip
