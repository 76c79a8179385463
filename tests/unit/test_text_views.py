"""The text views and the stream guard as pure pieces: masks land where a naive masker puts them,
every field a stream event can carry is seen, restating events are made to agree with what was
released, and windows overlap so a boundary never hides an entity."""

from __future__ import annotations

import asyncio
import random
import re

import pytest

from ocilm.gateway._errors import GatewayError
from ocilm.gateway._guardrails import TAIL_CHARS, WINDOW_CHARS, Guardrails, GuardrailSpec
from ocilm.gateway._texts import (
    delta_slots,
    masked_pieces,
    merged_spans,
    reply_slots,
    request_slots,
)

PHONE = re.compile(r"\+?\d[\d ().-]{7,}\d")


def _naive(text: str, spans: list[tuple[int, int, str]]) -> str:
    out, cursor = [], 0
    for start, end, label in spans:
        out.append(text[cursor:start] + f"[{label}]")
        cursor = end
    return "".join(out) + text[cursor:]


@pytest.mark.parametrize("seed", range(40))
def test_masked_pieces_agree_with_masking_the_joined_text(seed):
    rng = random.Random(seed)
    text = "".join(rng.choice("ab 12") for _ in range(rng.randint(1, 300)))
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(0, 20)))) if len(text) > 1 else []
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    starts = [0, *cuts]
    raw = [{"offset": rng.randrange(len(text)), "length": rng.randint(1, 12), "label": rng.choice("XY")} for _ in range(rng.randint(0, 8))]
    spans = [(a, min(b, len(text)), label) for a, b, label in merged_spans(raw)]
    assert "".join(masked_pieces(pieces, starts, spans)) == _naive(text, spans)


def test_request_view_names_every_text_the_model_reads():
    box = {"first": [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "u"}, {"type": "image_url", "image_url": {"url": "data:x"}}]},
                     {"role": "assistant", "content": None, "reasoning_content": "r", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "a"}}]},
                     {"role": "tool", "tool_call_id": "c", "content": "o"}],
           "params": {"tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {"x": {"type": "string", "enum": ["e"]}}}}}],
                      "documents": [{"text": "doc"}], "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"description": "sd"}}}}}  # fmt: skip
    seen = sorted(holder[key] for holder, key in request_slots("completion", box))
    assert seen == sorted(["s", "u", "r", "a", "o", "d", "e", "doc", "sd"])
    responses = {"first": [{"role": "user", "content": "i"}, {"type": "function_call", "call_id": "c", "name": "f", "arguments": "a"},
                           {"type": "function_call_output", "call_id": "c", "output": "o"}, {"type": "custom_tool_call_output", "call_id": "d", "output": [{"type": "input_text", "text": "co"}]},
                           {"type": "reasoning", "summary": [{"type": "summary_text", "text": "rs"}]}],
                 "params": {"instructions": "ins", "tools": [{"type": "function", "name": "f", "description": "td"}], "text": {"format": {"type": "json_schema", "schema": {"description": "fd"}}}}}  # fmt: skip
    assert sorted(holder[key] for holder, key in request_slots("responses", responses)) == sorted(["i", "a", "o", "co", "rs", "ins", "td", "fd"])


def test_reply_view_names_every_text_the_caller_receives():
    chat = {"choices": [{"message": {"content": "c", "refusal": "no", "reasoning_content": "r", "tool_calls": [{"function": {"name": "f", "arguments": "a"}}]}}]}
    assert sorted(h[k] for h, k in reply_slots(chat)) == ["a", "c", "no", "r"]
    response = {"output": [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "s"}], "content": [{"type": "reasoning_text", "text": "r"}]},
                           {"type": "message", "content": [{"type": "output_text", "text": "t"}, {"type": "refusal", "refusal": "no"}]},
                           {"type": "function_call", "name": "f", "arguments": "a"}]}  # fmt: skip
    assert sorted(h[k] for h, k in reply_slots(response)) == ["a", "no", "r", "s", "t"]
    chunk = {"choices": [{"index": 0, "delta": {"content": "c", "reasoning_content": "r", "tool_calls": [{"index": 1, "function": {"arguments": "a"}}]}}]}
    assert sorted(key for key, _ in delta_slots(chunk)) == sorted([("c", 0, "content"), ("c", 0, "reasoning_content"), ("c", 0, "tool", 1)])


class _FakeOCI:
    """ApplyGuardrails over the simulator's rule (telephone numbers), counting calls and characters."""

    def __init__(self) -> None:
        self.calls = 0
        self.chars = 0

    async def apply_guardrails(self, text: str, **params):
        self.calls += 1
        self.chars += len(text)
        spans = [{"offset": m.start(), "length": m.end() - m.start(), "label": "TELEPHONE_NUMBER"} for m in PHONE.finditer(text)]
        return {"results": {"personallyIdentifiableInformation": spans}}


def _guard(action: str, mode: str = "during_call"):
    oci = _FakeOCI()
    spec = GuardrailSpec("g", frozenset({mode}), pii={"TELEPHONE_NUMBER": action})
    return Guardrails([spec], oci, None).stream_guard([spec], None), oci


def _run(guard, events):
    async def go():
        out = []
        for event in events:
            out += await guard.see([event])
        return out + await guard.finish()

    return asyncio.run(go())


def _responses_events(text: str, kind: str = "response.output_text.delta", size: int = 5) -> list[dict]:
    deltas = [{"type": kind, "output_index": 0, "content_index": 0, "delta": text[i : i + size]} for i in range(0, len(text), size)]
    done = {"type": "response.output_text.done", "output_index": 0, "content_index": 0, "text": text}
    completed = {"type": "response.completed", "response": {"output": [{"type": "message", "content": [{"type": "output_text", "text": text}]}]}}
    return [*deltas, done, completed]


@pytest.mark.parametrize("pad", range(WINDOW_CHARS - 40, WINDOW_CHARS + 40, 3))
def test_masks_hold_across_every_window_boundary_and_restating_events_agree(pad):
    text = "a" * pad + " +1 415 555 0100 " + "b" * 300 + " +44 20 7946 0958 end"
    guard, _ = _guard("MASK")
    out = _run(guard, _responses_events(text))
    released = "".join(e["delta"] for e in out if e["type"].endswith(".delta"))
    assert released == PHONE.sub("[TELEPHONE_NUMBER]", text)
    done = next(e for e in out if e["type"] == "response.output_text.done")
    completed = next(e for e in out if e["type"] == "response.completed")
    assert done["text"] == released == completed["response"]["output"][0]["content"][0]["text"]


@pytest.mark.parametrize("kind", ["response.reasoning_text.delta", "response.function_call_arguments.delta", "response.refusal.delta",
                                  "response.reasoning_summary_text.delta"])  # fmt: skip
def test_every_delta_kind_is_checked(kind):
    guard, _ = _guard("BLOCK")
    with pytest.raises(GatewayError, match="guardrail_violation|TELEPHONE"):
        _run(guard, _responses_events("x" * 500 + " +1 415 555 0100", kind)[:-2])


def test_a_text_only_restated_is_checked_too():
    guard, _ = _guard("BLOCK")
    with pytest.raises(GatewayError):
        _run(guard, [{"type": "response.output_item.done", "output_index": 3, "item": {"type": "function_call", "name": "f", "arguments": '{"to": "+1 415 555 0100"}'}}])


def test_post_call_on_a_stream_releases_nothing_before_the_end():
    guard, oci = _guard("BLOCK", "post_call")

    async def go():
        for event in _responses_events("y" * 2000)[:-2]:
            assert await guard.see([event]) == []
        return await guard.finish()

    assert len(asyncio.run(go())) == 400 and oci.calls == 1


def test_checking_is_linear_in_the_text():
    """M5: a long reply full of entities costs ApplyGuardrails characters in proportion to its size
    (each window checked about once, plus its overlap), and masking touches each piece once."""
    for size in (10_000, 40_000):
        guard, oci = _guard("MASK")
        text = "call +1 415 555 0100 now " * (size // 25)
        out = _run(guard, _responses_events(text, size=7)[:-2])
        assert "".join(e["delta"] for e in out) == PHONE.sub("[TELEPHONE_NUMBER]", text)
        assert oci.chars <= 2 * size * WINDOW_CHARS / (WINDOW_CHARS - TAIL_CHARS)


def test_a_hosted_tools_configuration_is_not_prompt_text():
    """An MCP tool's headers (a service token) and URL never go to a guardrail, nor get masked."""
    secret = "Bearer svc-token-415-555-0100"
    box = {"first": "hi", "params": {"tools": [
        {"type": "mcp", "server_label": "orders", "server_url": "https://orders.internal/mcp", "headers": {"authorization": secret},
         "server_description": "Orders desk"},
        {"type": "function", "name": "f", "description": "d", "parameters": {"type": "object", "properties": {"x": {"description": "px"}}}}]}}  # fmt: skip
    seen = [holder[key] for holder, key in request_slots("responses", box)]
    assert sorted(seen) == ["Orders desk", "d", "hi", "px"] and secret not in seen
    chat = {"first": [{"role": "user", "content": "hi"}], "params": {"tools": [{"type": "function", "function": {"name": "f", "description": "d"}}]}}
    assert sorted(holder[key] for holder, key in request_slots("completion", chat)) == ["d", "hi"]


def test_the_mcp_view_names_every_string_of_a_tools_arguments_and_result():
    from ocilm.gateway._texts import tool_result_slots

    box = {"first": {"to": "a", "type": "b", "name": "c", "nested": {"list": ["d", {"deep": "e"}], "n": 3}}, "params": {}}
    assert sorted(holder[key] for holder, key in request_slots("mcp", box)) == ["a", "b", "c", "d", "e"]  # a tool's "type" is its data
    result = {"content": [{"type": "text", "text": "t"}, {"type": "image", "data": "AAAA", "mimeType": "image/png"},
                          {"type": "resource", "resource": {"uri": "memo://x", "text": "r"}}],
              "structuredContent": {"result": "s", "items": ["i"]}, "isError": False}  # fmt: skip
    assert sorted(holder[key] for holder, key in tool_result_slots(result)) == ["i", "r", "s", "t"]
