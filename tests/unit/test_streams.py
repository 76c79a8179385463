"""Stream translation: OCI events (each vendor's pattern) to OpenAI chunks."""

from __future__ import annotations

import pytest

from ocilm._capabilities import model_info
from ocilm._core import ChunkAssembler
from ocilm._errors import InternalServerError, RateLimitError
from ocilm.formats._common import ChatContext
from ocilm.formats.cohere import CohereStream
from ocilm.formats.generic import GenericStream


def ctx(model="meta.llama-3.3-70b-instruct", usage=False):
    return ChatContext(model=model, info=model_info(model), stream=True, include_usage=usage)


def run(state, events):
    chunks = [c for e in events for c in state.feed(e)] + state.close()
    return chunks


def deltas(chunks):
    return [c["choices"][0]["delta"] for c in chunks if c["choices"]]


def calls_of(chunks):
    calls = {}
    for d in deltas(chunks):
        for tc in d["tool_calls"] or []:
            call = calls.setdefault(tc["index"], {"id": None, "name": None, "arguments": ""})
            if "id" in tc:
                assert call["id"] is None, "a call is opened once"
                call.update(id=tc["id"], name=tc["function"]["name"])
            call["arguments"] += tc["function"]["arguments"]
    return [calls[i] for i in sorted(calls)]


def tc_event(*calls, index=0):
    return {"index": index, "message": {"role": "ASSISTANT", "toolCalls": list(calls)}}


def test_text_deltas_role_first_and_finish():
    chunks = run(GenericStream(ctx(), "REQ1/X/Y", 1), [
        {"index": 0, "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": "Hel"}]}},
        {"message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": "lo"}]}, "pad": "zz"},
        {"message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": ""}]}, "finishReason": "stop"},
        {"usage": {"promptTokens": 3, "completionTokens": 2, "totalTokens": 5}},
    ])
    d = deltas(chunks)
    assert d[0] == {"role": "assistant", "content": "Hel", "tool_calls": None}
    assert d[1]["content"] == "lo" and "role" not in d[1]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert {c["id"] for c in chunks} == {"chatcmpl-req1"}
    assert all("usage" not in c for c in chunks)  # not asked for


def test_usage_chunk_when_asked():
    chunks = run(GenericStream(ctx(usage=True), None, 1), [{"finishReason": "stop"}, {"usage": {"promptTokens": 3, "completionTokens": 2, "totalTokens": 5}}])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 5
    assert chunks[0]["usage"] is None


def test_openai_pattern_idless_fragments():
    chunks = run(GenericStream(ctx("openai.gpt-4.1"), "r", 1), [
        tc_event({"type": "FUNCTION", "id": "call_A", "name": "f", "arguments": ""}),
        tc_event({"arguments": '{"x":'}), tc_event({"arguments": "1}"}),
        tc_event({"type": "FUNCTION", "id": "call_B", "name": "g", "arguments": ""}),
        tc_event({"arguments": "{}"}),
        {"finishReason": "tool_calls", "serviceTier": "default"},
    ])
    assert calls_of(chunks) == [{"id": "call_A", "name": "f", "arguments": '{"x":1}'}, {"id": "call_B", "name": "g", "arguments": "{}"}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_grok_pattern_resent_opening_and_id_keyed_fragments():
    chunks = run(GenericStream(ctx("xai.grok-3"), "r", 1), [
        tc_event({"type": "FUNCTION", "id": "c1", "name": "f", "arguments": ""}),
        tc_event({"id": "c1", "arguments": '{"a"'}),
        tc_event({"type": "FUNCTION", "id": "c1", "name": "f", "arguments": ""}),
        tc_event({"id": "c1", "arguments": ": 1}"}),
        tc_event({"type": "FUNCTION", "id": "c2", "name": "f", "arguments": "{}"}),
        {"index": 0, "finishReason": "stop"},
    ])
    assert calls_of(chunks) == [{"id": "c1", "name": "f", "arguments": '{"a": 1}'}, {"id": "c2", "name": "f", "arguments": "{}"}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"  # detected by presence


def test_gemini_pattern_whole_calls_without_ids():
    state = GenericStream(ctx("google.gemini-2.5-flash"), "r", 1)
    chunks = run(state, [
        tc_event({"type": "FUNCTION", "name": "f", "arguments": '{"a": 1}'}),
        tc_event({"type": "FUNCTION", "name": "f", "arguments": '{"a": 2}'}),
        {"finishReason": "stop"},
    ])
    got = calls_of(chunks)
    assert [c["arguments"] for c in got] == ['{"a": 1}', '{"a": 2}']
    assert got[0]["id"] != got[1]["id"] and all(c["id"].startswith("call_") for c in got)
    again = calls_of(run(GenericStream(ctx("google.gemini-2.5-flash"), "r", 1), [tc_event({"type": "FUNCTION", "name": "f", "arguments": "{}"})]))
    assert again[0]["id"] == got[0]["id"]  # stable for the same request id


def test_multiple_choices_and_missing_finish():
    chunks = run(GenericStream(ctx(), "r", 1), [
        {"index": 0, "message": {"content": [{"type": "TEXT", "text": "a"}]}},
        {"index": 1, "message": {"content": [{"type": "TEXT", "text": "b"}]}},
        {"index": 0, "finishReason": "length"},
    ])
    finishes = {c["choices"][0]["index"]: c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]}
    assert finishes == {0: "length", 1: "stop"}


def test_cohere_terminal_restatement_not_duplicated():
    chunks = run(CohereStream(ctx("cohere.command-latest", usage=True), "r", 1), [
        {"apiFormat": "COHERE", "text": "Hi"}, {"apiFormat": "COHERE", "text": " there"},
        {"apiFormat": "COHERE", "text": "Hi there", "finishReason": "COMPLETE", "usage": {"promptTokens": 1, "completionTokens": 2, "totalTokens": 3}},
    ])
    assert "".join(d["content"] or "" for d in deltas(chunks)) == "Hi there"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["usage"]["total_tokens"] == 3


def test_cohere_text_only_on_terminal_is_used():
    chunks = run(CohereStream(ctx("cohere.command-latest"), "r", 1), [{"apiFormat": "COHERE", "text": "All at once", "finishReason": "MAX_TOKENS"}])
    assert deltas(chunks)[0]["content"] == "All at once"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_cohere_tool_calls_deduplicated():
    call = {"name": "f", "parameters": {"q": 1}}
    chunks = run(CohereStream(ctx("cohere.command-latest"), "r", 1), [
        {"apiFormat": "COHERE", "toolCalls": [call]},
        {"apiFormat": "COHERE", "text": "", "finishReason": "COMPLETE", "toolCalls": [call]},
    ])
    assert [c["arguments"] for c in calls_of(chunks)] == ['{"q": 1}']
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_cohere_error_finish_raises():
    state = CohereStream(ctx("cohere.command-latest"), "r", 1)
    state.feed({"apiFormat": "COHERE", "text": "partial"})
    with pytest.raises(InternalServerError, match="overloaded"):
        state.feed({"apiFormat": "COHERE", "finishReason": "ERROR", "errorMessage": "model overloaded"})


def test_assembler_error_event_mid_stream_and_done():
    asm = ChunkAssembler(GenericStream(ctx(), "r", 1), "r")
    assert len(asm.feed(b'data: {"message": {"content": [{"type": "TEXT", "text": "a"}]}}\n\n')) == 1
    with pytest.raises(RateLimitError, match="after 1 chunk"):
        asm.feed(b'data: {"code": "429", "message": "slow down"}\n\n')
    done = ChunkAssembler(GenericStream(ctx(), "r", 1), "r")
    done.feed(b'data: {"finishReason": "stop"}\n\ndata: [DONE]\n\ndata: {"message": {"content": [{"type": "TEXT", "text": "late"}]}}\n\n')
    assert done.done and done.close() == []


def test_assembler_reports_torn_stream():
    from ocilm._errors import APIResponseValidationError

    asm = ChunkAssembler(GenericStream(ctx(), "r", 1), "r")
    asm.feed(b'data: {"message": \n')
    with pytest.raises(APIResponseValidationError, match="malformed stream"):
        asm.close()


def test_gateway_chunk_encoder_matches_plain_json():
    import json

    from ocilm._types import ChatCompletionChunk
    from ocilm.gateway._chat_stream import ChunkEncoder as _ChunkEncoder

    encode = _ChunkEncoder("public-name")
    state = GenericStream(ctx(usage=True), "REQ", 123)
    chunks = [c for e in ({"message": {"content": [{"type": "TEXT", "text": 'He said "hi" – ok'}]}}, {"finishReason": "stop"},
                          {"usage": {"promptTokens": 1, "completionTokens": 2, "totalTokens": 3}}) for c in state.feed(e)]
    for chunk in chunks:
        wire = encode(ChatCompletionChunk(chunk))
        assert wire.startswith(b"data: ") and wire.endswith(b"\n\n")
        assert json.loads(wire[6:]) == {**chunk, "model": "public-name"}


def test_cohere_identical_calls_are_both_kept():
    """Two genuine identical calls (review C13): only the terminal restatement is dropped."""
    roll = {"name": "roll_die", "parameters": {}}
    for events in (
        [{"apiFormat": "COHERE", "toolCalls": [roll, roll]}, {"apiFormat": "COHERE", "toolCalls": [roll, roll], "finishReason": "COMPLETE"}],
        [{"apiFormat": "COHERE", "toolCalls": [roll]}, {"apiFormat": "COHERE", "toolCalls": [roll]},
         {"apiFormat": "COHERE", "toolCalls": [roll, roll], "finishReason": "COMPLETE"}],
        [{"apiFormat": "COHERE", "toolCalls": [roll, roll], "finishReason": "COMPLETE"}],  # only on the terminal event
    ):  # fmt: skip
        chunks = run(CohereStream(ctx("cohere.command-latest"), "r", 1), events)
        calls = [tc for c in chunks for tc in (c["choices"][0]["delta"]["tool_calls"] or [])]
        assert [tc["index"] for tc in calls] == [0, 1] and len({tc["id"] for tc in calls}) == 2
