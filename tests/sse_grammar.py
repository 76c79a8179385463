"""Event-grammar checkers for the two agent doors' raw SSE (reference D1): frame shape, event order,
index continuity, no deltas outside an open item or block, exactly one terminal event."""

from __future__ import annotations

import json


def frames(raw: bytes | str) -> list[tuple[str, dict]]:
    """(event name, data) of each frame; every frame must have both, and ``data.type == event``."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    assert "[DONE]" not in text, "no data: [DONE] on the agent doors"
    out = []
    for block in filter(None, text.replace("\r\n", "\n").split("\n\n")):
        lines = block.split("\n")
        event = [line[7:] for line in lines if line.startswith("event: ")]
        data = [line[6:] for line in lines if line.startswith("data: ")]
        assert len(event) == 1 and len(data) == 1, f"a frame needs one event: and one data: line: {block!r}"
        payload = json.loads(data[0])
        assert payload["type"] == event[0], f"event {event[0]!r} carries type {payload['type']!r}"
        out.append((event[0], payload))
    return out


def check_responses(raw: bytes | str) -> dict:
    """Validate a /v1/responses stream; return its terminal response."""
    events = frames(raw)
    assert [e for e, _ in events[:2]] == ["response.created", "response.in_progress"], [e for e, _ in events[:3]]
    assert [p["sequence_number"] for _, p in events] == list(range(len(events)))
    items: list[dict] = []
    open_item: int | None = None
    parts: dict[int, int] = {}
    terminal = None
    for i, (event, p) in enumerate(events):
        assert terminal is None, f"{event} after the terminal event"
        if event == "response.output_item.added":
            assert open_item is None, "an item was added while another was open (items must not interleave)"
            assert p["output_index"] == len(items), "output_index must be the item's position"
            items.append(p["item"])
            open_item = p["output_index"]
            parts[open_item] = 0
        elif event == "response.content_part.added":
            kind = items[open_item]["type"] if open_item is not None else None
            assert p["output_index"] == open_item and (kind, p["part"]["type"]) in (("message", "output_text"), ("reasoning", "reasoning_text"))
            assert p["content_index"] == parts[open_item]
            parts[open_item] += 1
        elif event == "response.content_part.done":
            assert p["output_index"] == open_item and items[open_item]["type"] in ("message", "reasoning") and p["content_index"] < parts[open_item]
            assert p["item_id"] == items[open_item]["id"]
        elif event in ("response.output_text.delta", "response.output_text.done"):
            assert p["output_index"] == open_item and items[open_item]["type"] == "message" and p["content_index"] < parts[open_item]
            assert p["item_id"] == items[open_item]["id"]
        elif event in ("response.function_call_arguments.delta", "response.function_call_arguments.done"):
            assert p["output_index"] == open_item and items[open_item]["type"] == "function_call" and p["item_id"] == items[open_item]["id"]
        elif event in ("response.custom_tool_call_input.delta", "response.custom_tool_call_input.done"):
            assert p["output_index"] == open_item and items[open_item]["type"] == "custom_tool_call"
        elif event in ("response.reasoning_text.delta", "response.reasoning_text.done"):
            assert p["output_index"] == open_item and items[open_item]["type"] == "reasoning"
            assert p["content_index"] < parts[open_item], "reasoning text outside an opened reasoning_text part"
        elif event == "response.output_item.done":
            assert p["output_index"] == open_item, "output_item.done for an item that is not open"
            assert p["item"]["id"] == items[open_item]["id"]
            if p["item"]["type"] == "function_call":
                json.loads(p["item"]["arguments"] or "{}")
            items[open_item] = p["item"]
            open_item = None
        elif event in ("response.completed", "response.incomplete", "response.failed"):
            assert open_item is None or event == "response.failed", "the terminal event came with an item still open"
            terminal = p["response"]
            assert i == len(events) - 1, "the terminal event must be last"
        else:
            assert event in ("response.created", "response.in_progress"), f"unexpected event {event}"
    assert terminal is not None, "no terminal event"
    if terminal["status"] != "failed":
        assert [o["id"] for o in terminal["output"]] == [o["id"] for o in items], "the terminal event carries the full output"
        usage = terminal["usage"]
        for key in ("input_tokens", "output_tokens", "total_tokens"):
            assert isinstance(usage[key], int)
        assert isinstance(usage["input_tokens_details"]["cache_write_tokens"], int)
    return terminal


_DELTA_FOR = {"text": {"text_delta"}, "tool_use": {"input_json_delta"}, "thinking": {"thinking_delta", "signature_delta"}}


def check_messages(raw: bytes | str) -> list[dict]:
    """Validate a /v1/messages stream; return the blocks (with tool input parsed)."""
    events = [(e, p) for e, p in frames(raw) if e != "ping"]
    assert events[0][0] == "message_start" and sum(e == "message_start" for e, _ in events) == 1
    blocks: list[dict] = []
    open_index: int | None = None
    partial = ""
    ended = False
    for event, p in events[1:]:
        assert not ended, f"{event} after message_stop"
        if event == "content_block_start":
            assert open_index is None, "a block started while another was open"
            assert p["index"] == len(blocks), "block indexes must be contiguous from 0"
            blocks.append(dict(p["content_block"]))
            open_index, partial = p["index"], ""
        elif event == "content_block_delta":
            assert p["index"] == open_index, "a delta for a block that is not open"
            kind = blocks[open_index]["type"]
            assert p["delta"]["type"] in _DELTA_FOR[kind], f"{p['delta']['type']} in a {kind} block"
            if p["delta"]["type"] == "input_json_delta":
                partial += p["delta"]["partial_json"]
            elif p["delta"]["type"] == "text_delta":
                blocks[open_index]["text"] += p["delta"]["text"]
            elif p["delta"]["type"] == "thinking_delta":
                blocks[open_index]["thinking"] += p["delta"]["thinking"]
        elif event == "content_block_stop":
            assert p["index"] == open_index
            if blocks[open_index]["type"] == "tool_use":
                blocks[open_index]["input"] = json.loads(partial) if partial else {}
                assert isinstance(blocks[open_index]["input"], dict), "tool input must be a JSON object at block stop"
            open_index = None
        elif event == "message_delta":
            assert open_index is None, "message_delta with a block still open"
            for key in ("output_tokens", "input_tokens"):
                assert isinstance(p["usage"][key], int), "message_delta usage is cumulative and carries input tokens"
        elif event == "message_stop":
            ended = True
        elif event == "error":
            return blocks
        else:
            raise AssertionError(f"unexpected event {event}")
    assert ended, "no message_stop"
    return blocks
