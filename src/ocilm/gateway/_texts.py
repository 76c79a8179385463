"""One view of every text, per wire shape: what the model reads, what the caller receives.

Guardrails (every mode, stream or not), and anything else that must see a request's or a reply's
words, read them here and nowhere else. A view is a list of *slots*: ``(holder, key)`` pairs
where ``holder[key]`` is a string, so a mask is written back in place, whatever the field.

Shapes:
- ``completion``: OpenAI chat (the agent doors map Responses and Messages onto it before any stage
  sees them, so every Messages block and translated Responses item is read here as chat);
- ``responses``: the Responses API passed through to OCI's ``/openai/v1`` (its bodies, its
  output items and its stream events);
- ``mcp``: a tool call through the MCP door: every string of its ``arguments``, and of its
  result, the text of its content (text parts, embedded resources) and its ``structuredContent``.

Left out on purpose: identifiers (tool names, ids, ``call_id``, ``type``), which OpenAI restricts
to ``[A-Za-z0-9_-]`` and which no mask may rename, and images or files (no text).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Slot = tuple[Any, Any]  # (holder, key): holder[key] is a string
Channel = tuple[Any, ...]  # which run of deltas a stream text belongs to

# Keys inside tool definitions and schemas that are structure, never words the model reads as text.
_STRUCTURAL = frozenset({"type", "name", "$ref", "format", "strict", "additionalProperties"})


def _strings(value: Any, out: list[Slot], skip: frozenset[str] = _STRUCTURAL) -> None:
    """Every string inside ``value`` (descriptions, enums, defaults, examples ...), iteratively."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if key in skip:
                    continue
                if isinstance(child, str):
                    if child:
                        out.append((item, key))
                elif isinstance(child, (dict, list)):
                    stack.append(child)
        elif isinstance(item, list):
            for index, child in enumerate(item):
                if isinstance(child, str):
                    if child:
                        out.append((item, index))
                elif isinstance(child, (dict, list)):
                    stack.append(child)


def _text(holder: Any, key: Any, out: list[Slot]) -> None:
    if isinstance(holder, dict) and isinstance(holder.get(key), str) and holder[key]:
        out.append((holder, key))


def _parts(content: Any, out: list[Slot]) -> None:
    """A content list's texts (``text`` of text parts, ``refusal`` of refusal parts)."""
    for index, part in enumerate(content if isinstance(content, list) else ()):
        if isinstance(part, dict):
            _text(part, "text", out)
            _text(part, "refusal", out)
        elif isinstance(part, str) and part:
            out.append((content, index))


def _content(holder: Any, key: str, out: list[Slot]) -> None:
    value = holder.get(key) if isinstance(holder, dict) else None
    if isinstance(value, str):
        _text(holder, key, out)
    else:
        _parts(value, out)


def _chat_message(message: Any, out: list[Slot]) -> None:
    """A chat message's texts: content (or its text parts), refusal, reasoning, tool-call arguments."""
    if not isinstance(message, dict):
        return
    _content(message, "content", out)
    _text(message, "refusal", out)
    _text(message, "reasoning_content", out)
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if isinstance(call, dict):
            _text(call.get("function"), "arguments", out)


# ------------------------------------------------------------------------- what the model reads


def request_slots(method: str, box: dict[str, Any]) -> list[Slot]:
    """Every text of a request the model reads. ``box``: ``{"first": messages or input,
    "params": the other parameters}`` (so a string ``input`` can be written back too)."""
    out: list[Slot] = []
    params: dict[str, Any] = box["params"] if isinstance(box.get("params"), dict) else {}
    if method == "mcp":  # a tool's arguments: every string, whatever its key (they are the tool's, not a schema)
        _strings(box.get("first"), out, frozenset())
        return out
    if method == "responses":
        first = box.get("first")
        if isinstance(first, str):
            _text(box, "first", out)
        else:
            _response_items(first, out)
        instructions = params.get("instructions")
        if isinstance(instructions, str):
            _text(params, "instructions", out)
        else:
            _response_items(instructions, out)
        tools = params.get("tools")
        for tool in tools if isinstance(tools, list) else ():
            _tool(tool, out)
        text = params.get("text")
        if isinstance(text, dict) and isinstance(text.get("format"), dict):
            _strings(text["format"], out)
        return out
    messages = box.get("first")
    for message in messages if isinstance(messages, list) else ():
        _chat_message(message, out)
    tools = params.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        _tool(tool.get("function") if isinstance(tool, dict) and isinstance(tool.get("function"), dict) else tool, out)
    for name in ("documents", "response_format"):
        if params.get(name) is not None:
            _strings(params[name], out)
    return out


# What of a tool definition the model reads. A hosted tool's configuration (an MCP server's
# ``headers`` and ``server_url``, a container, vector store ids) is not prompt text: it may hold a
# secret, and a mask there would break the tool.
_TOOL_TEXTS = ("description", "parameters", "input_schema", "format", "server_description")


def _tool(tool: Any, out: list[Slot]) -> None:
    if not isinstance(tool, dict):
        return
    for name in _TOOL_TEXTS:
        value = tool.get(name)
        if isinstance(value, str):
            _text(tool, name, out)
        elif isinstance(value, (dict, list)):
            _strings(value, out)


def _response_items(items: Any, out: list[Slot]) -> None:
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message":
            _content(item, "content", out)
        elif kind in ("function_call", "mcp_call"):
            _text(item, "arguments", out)
            _content(item, "output", out)
        elif kind in ("function_call_output", "custom_tool_call_output", "mcp_call_output"):
            _content(item, "output", out)
        elif kind == "custom_tool_call":
            _text(item, "input", out)
        elif kind == "reasoning":
            _parts(item.get("summary"), out)
            _parts(item.get("content"), out)
        elif kind == "file_search_call":
            for result in item.get("results") or () if isinstance(item.get("results"), list) else ():
                _text(result, "text", out)
        elif kind == "code_interpreter_call":
            _text(item, "code", out)
            for output in item.get("outputs") or () if isinstance(item.get("outputs"), list) else ():
                _text(output, "logs", out)


# ------------------------------------------------------------------------ what the caller receives


def reply_slots(reply: Any) -> list[Slot]:
    """Every text of a reply the caller receives: a chat completion's messages (content,
    refusal, reasoning, tool-call arguments) or a Responses object's output items."""
    out: list[Slot] = []
    for choice in dict.get(reply, "choices") or ():
        _chat_message(dict.get(choice, "message"), out)
    _response_items(dict.get(reply, "output"), out)
    _text(reply, "output_text", out)
    return out


def tool_result_slots(result: Any) -> list[Slot]:
    """Every text of an MCP tool's result the caller receives (OpenAI's wire names, by alias)."""
    out: list[Slot] = []
    for part in dict.get(result, "content") or () if isinstance(result, dict) else ():
        if not isinstance(part, dict):
            continue
        _text(part, "text", out)
        if isinstance(part.get("resource"), dict):
            _text(part["resource"], "text", out)
    if isinstance(result, dict) and isinstance(result.get("structuredContent"), (dict, list)):
        _strings(result["structuredContent"], out, frozenset())
    return out


_RESPONSES_DELTAS = {
    "response.output_text.delta": "text", "response.refusal.delta": "refusal", "response.reasoning_text.delta": "reasoning",
    "response.reasoning.delta": "reasoning", "response.reasoning_summary_text.delta": "summary",
    "response.function_call_arguments.delta": "arguments", "response.custom_tool_call_input.delta": "input",
    "response.mcp_call_arguments.delta": "arguments",
}  # fmt: skip


def delta_slots(event: Any) -> Iterator[tuple[Channel, Slot]]:
    """The text pieces a stream event adds, each with its channel (one choice's content, one
    tool call's arguments, one output item's text ...), for a chat chunk or a Responses event."""
    kind = dict.get(event, "type")
    if kind is not None:
        what = _RESPONSES_DELTAS.get(kind)
        if what is not None and isinstance(dict.get(event, "delta"), str) and event["delta"]:
            index = event.get("summary_index") if what == "summary" else event.get("content_index")
            yield ("r", event.get("output_index"), what, index), (event, "delta")
        return
    for choice in dict.get(event, "choices") or ():
        delta = dict.get(choice, "delta")
        if not isinstance(delta, dict):
            continue
        at = dict.get(choice, "index", 0)
        for field in ("content", "reasoning_content", "refusal"):
            if isinstance(delta.get(field), str) and delta[field]:
                yield ("c", at, field), (delta, field)
        for call in delta.get("tool_calls") or () if isinstance(delta.get("tool_calls"), list) else ():
            function = dict.get(call, "function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str) and function["arguments"]:
                yield ("c", at, "tool", call.get("index", 0)), (function, "arguments")


_RESTATING = frozenset({
    "response.output_text.done", "response.refusal.done", "response.reasoning_text.done", "response.reasoning.done",
    "response.reasoning_summary_text.done", "response.function_call_arguments.done", "response.custom_tool_call_input.done",
    "response.mcp_call_arguments.done", "response.content_part.done", "response.reasoning_summary_part.done",
    "response.output_item.done", "response.completed", "response.incomplete", "response.failed",
})  # fmt: skip


def restates(event: Any) -> bool:
    """A Responses event that carries whole texts again (a ``.done`` event, the final response)."""
    return dict.get(event, "type") in _RESTATING


def restated_slots(event: Any) -> Iterator[tuple[Channel | None, Slot]]:
    """The whole texts a restating event carries, each with the channel its deltas came on
    (None where no delta channel names it: such a text is checked on its own)."""
    kind = event.get("type")
    at = event.get("output_index")
    if kind in ("response.output_text.done", "response.reasoning_text.done", "response.reasoning.done"):
        what = "text" if kind == "response.output_text.done" else "reasoning"
        if isinstance(event.get("text"), str):
            yield ("r", at, what, event.get("content_index")), (event, "text")
    elif kind == "response.refusal.done":
        if isinstance(event.get("refusal"), str):
            yield ("r", at, "refusal", event.get("content_index")), (event, "refusal")
    elif kind == "response.reasoning_summary_text.done":
        if isinstance(event.get("text"), str):
            yield ("r", at, "summary", event.get("summary_index")), (event, "text")
    elif kind in ("response.function_call_arguments.done", "response.mcp_call_arguments.done"):
        if isinstance(event.get("arguments"), str):
            yield ("r", at, "arguments", None), (event, "arguments")
    elif kind == "response.custom_tool_call_input.done":
        if isinstance(event.get("input"), str):
            yield ("r", at, "input", None), (event, "input")
    elif kind == "response.content_part.done":
        yield from _part_slots(event.get("part"), at, event.get("content_index"), "text")
    elif kind == "response.reasoning_summary_part.done":
        yield from _part_slots(event.get("part"), at, event.get("summary_index"), "summary")
    elif kind == "response.output_item.done":
        yield from _item_slots(event.get("item"), at)
    else:  # the final response object
        response = event.get("response")
        for index, item in enumerate(dict.get(response, "output") or () if isinstance(response, dict) else ()):
            yield from _item_slots(item, index)


def _part_slots(part: Any, at: Any, index: Any, what: str) -> Iterator[tuple[Channel | None, Slot]]:
    if not isinstance(part, dict):
        return
    kind = part.get("type")
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        yield ("r", at, "refusal", index), (part, "refusal")
    elif isinstance(part.get("text"), str):
        name = "reasoning" if kind == "reasoning_text" else what
        yield ("r", at, name, index), (part, "text")


def _item_slots(item: Any, at: Any) -> Iterator[tuple[Channel | None, Slot]]:
    if not isinstance(item, dict):
        return
    kind = item.get("type")
    if kind == "message":
        for index, part in enumerate(item.get("content") or () if isinstance(item.get("content"), list) else ()):
            yield from _part_slots(part, at, index, "text")
    elif kind == "reasoning":
        for index, part in enumerate(item.get("summary") or () if isinstance(item.get("summary"), list) else ()):
            yield from _part_slots(part, at, index, "summary")
        for index, part in enumerate(item.get("content") or () if isinstance(item.get("content"), list) else ()):
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield ("r", at, "reasoning", index), (part, "text")
    elif kind in ("function_call", "mcp_call"):
        if isinstance(item.get("arguments"), str):
            yield ("r", at, "arguments", None), (item, "arguments")
        others: list[Slot] = []
        _content(item, "output", others)
        for slot in others:
            yield None, slot
    elif kind == "custom_tool_call":
        if isinstance(item.get("input"), str):
            yield ("r", at, "input", None), (item, "input")
    else:
        others = []
        _response_items([item], others)
        for slot in others:
            yield None, slot


# ------------------------------------------------------------------------------- masking


def merged_spans(spans: list[dict]) -> list[tuple[int, int, str]]:
    """Detected spans as sorted, non-overlapping ``(start, end, label)`` (an overlap keeps the
    first span's label and covers both)."""
    ordered = sorted((max(0, int(s["offset"])), max(0, int(s["offset"])) + max(0, int(s["length"])), str(s.get("label"))) for s in spans)
    out: list[tuple[int, int, str]] = []
    for start, end, label in ordered:
        if out and start < out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end, out[-1][2])
            continue
        out.append((start, end, label))
    return out


def masked_pieces(pieces: list[str], starts: list[int], spans: list[tuple[int, int, str]]) -> list[str]:
    """Each piece (a text at offset ``starts[i]`` of a joined text) with the spans replaced by
    ``[LABEL]``: a span's label goes where it starts, the rest of it is removed from every piece it
    covers. One sweep over pieces and spans: linear in their sizes."""
    out: list[str] = []
    first = 0  # the first span that may still overlap a piece
    for text, start in zip(pieces, starts, strict=True):
        end = start + len(text)
        while first < len(spans) and spans[first][1] <= start:
            first += 1
        cursor, chunks, k = start, [], first
        while k < len(spans) and spans[k][0] < end:
            span_start, span_end, label = spans[k]
            if span_start > cursor:
                chunks.append(text[cursor - start : span_start - start])
            if span_start >= start:
                chunks.append(f"[{label}]")
            cursor = max(cursor, min(end, span_end))
            k += 1
        if k == first or spans[first][0] >= end:  # no span touches this piece
            out.append(text)
            continue
        chunks.append(text[cursor - start :])
        out.append("".join(chunks))
    return out
