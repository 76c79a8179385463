"""OpenAI chat ⇄ OCI COHERE format (Cohere Command models).

Cohere takes the current user turn as ``message`` and earlier turns as ``chatHistory``.
A turn that ends in tool results is sent with those results in top-level ``toolResults``
and an empty ``message``, which is the form the service accepts.
"""

from __future__ import annotations

import json
from typing import Any

from .._capabilities import DEFAULT_MAX_TOKENS
from ._common import (
    ChatContext,
    SingleChoiceStream,
    bad,
    completion_object,
    created_from,
    expect,
    finish_reason,
    finish_request,
    message_list,
    openai_usage,
    output_limit,
    parse_arguments,
    request_params,
    sampling,
    text_content,
    tool_call_id,
    tool_functions,
)
from ._schema import sanitize_schema, tool_parameters

_JSON_TO_PY = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "array": "list", "object": "dict", "null": "NoneType"}


def cohere_tools(tools: Any, ctx: ChatContext) -> list[dict]:
    out = []
    for i, fn in enumerate(tool_functions(tools, ctx)):
        schema = tool_parameters(fn.get("parameters"))
        where = f"tools[{i}].function.parameters"
        if not isinstance(schema, dict) or not isinstance(schema.get("properties", {}), dict):
            raise bad(where, "expected a JSON Schema object with 'properties'")
        required = set(schema.get("required") or [])
        definitions = {}
        for name, prop in (schema.get("properties") or {}).items():
            if not isinstance(prop, dict):
                raise bad(f"{where}.properties.{name}", "expected a JSON Schema object")
            kind = prop.get("type", "string")
            if isinstance(kind, list):  # ["string", "null"]: the non-null one
                kind = next((k for k in kind if k != "null"), "string")
            if not isinstance(kind, str) or kind not in _JSON_TO_PY:
                raise bad(f"tools[{i}].function.parameters.properties.{name}.type", f"unsupported JSON type {kind!r}")
            definition: dict[str, Any] = {"type": _JSON_TO_PY[kind], "isRequired": name in required}
            if prop.get("description"):
                definition["description"] = prop["description"]
            definitions[name] = definition
        tool: dict[str, Any] = {"name": fn["name"], "description": fn.get("description") or ""}
        if definitions:
            tool["parameterDefinitions"] = definitions
        out.append(tool)
    return out


def _outputs(content: Any, where: str) -> list[dict]:
    text = text_content(content, where)
    try:
        value = json.loads(text)
    except ValueError:
        return [{"output": text}]
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    return [{"output": value}]


def cohere_response_format(fmt: Any) -> dict:
    """OpenAI's response_format in Cohere's terms (v1 and v2): no JSON_SCHEMA type, but
    JSON_OBJECT takes a schema."""
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return {"type": "TEXT"}
    if kind == "json_object":
        return {"type": "JSON_OBJECT"}
    if kind == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        schema = fmt["json_schema"].get("schema")
        return {"type": "JSON_OBJECT", **({"schema": sanitize_schema(schema)} if schema else {})}
    raise bad("response_format", "expected {'type': 'text'}, {'type': 'json_object'} or {'type': 'json_schema', 'json_schema': {...}}")


def cohere_conversation(messages: list[dict], ctx: ChatContext) -> dict:
    """``message``, ``chatHistory``, ``preambleOverride`` and ``toolResults`` for a conversation."""
    messages = message_list(messages)
    preamble: list[str] = []
    history: list[dict] = []
    calls_by_id: dict[str, dict] = {}
    pending_results: list[dict] = []
    start = 0
    while start < len(messages) and messages[start]["role"] in ("system", "developer"):
        preamble.append(text_content(messages[start].get("content"), f"messages[{start}]"))
        start += 1

    def flush_results() -> None:
        if pending_results:
            history.append({"role": "TOOL", "toolResults": list(pending_results)})
            pending_results.clear()

    last = len(messages) - 1
    trailing_tools = last
    while trailing_tools >= start and messages[trailing_tools]["role"] == "tool":
        trailing_tools -= 1
    ends_in_tools = trailing_tools < last
    if not ends_in_tools and messages[last]["role"] != "user":
        raise bad(f"messages[{last}]", "for Cohere models the conversation must end with a user message or tool results")
    body_end = trailing_tools + 1 if ends_in_tools else last

    for i in range(start, len(messages)):
        m = messages[i]
        where = f"messages[{i}]"
        role = m["role"]
        if role == "tool":
            call = calls_by_id.get(m.get("tool_call_id") or "")
            if call is None:
                raise bad(f"{where}.tool_call_id", f"{m.get('tool_call_id')!r} does not match a tool call of an earlier assistant message")
            pending_results.append({"call": call, "outputs": _outputs(m.get("content"), where)})
            continue
        flush_results()
        if i >= body_end and not ends_in_tools:
            break  # the final user turn becomes `message`
        if role == "user":
            history.append({"role": "USER", "message": text_content(m.get("content"), where)})
        elif role in ("system", "developer"):
            history.append({"role": "SYSTEM", "message": text_content(m.get("content"), where)})
        elif role == "assistant":
            entry: dict[str, Any] = {"role": "CHATBOT"}
            text = text_content(m.get("content"), where)
            if text:
                entry["message"] = text
            if m.get("tool_calls"):
                calls = []
                for k, call in enumerate(m["tool_calls"]):
                    fn = call.get("function") or {}
                    if not call.get("id") or not fn.get("name"):
                        raise bad(f"{where}.tool_calls[{k}]", "expected {'id': ..., 'function': {'name': ..., 'arguments': ...}}")
                    cohere_call = {"name": fn["name"], "parameters": parse_arguments(fn.get("arguments"), f"{where}.tool_calls[{k}].function.arguments")}
                    calls_by_id[call["id"]] = cohere_call
                    calls.append(cohere_call)
                entry["toolCalls"] = calls
            history.append(entry)
        else:
            raise bad(f"{where}.role", f"unsupported role {role!r}; expected system, developer, user, assistant or tool")
    out: dict[str, Any] = {}
    if ends_in_tools:
        out["message"] = ""
        out["toolResults"] = list(pending_results)
    else:
        out["message"] = text_content(messages[last].get("content"), f"messages[{last}]")
    if history:
        out["chatHistory"] = history
    if preamble:
        out["preambleOverride"] = "\n\n".join(preamble)
    return out


def cohere_request(messages: list[dict], params: dict, ctx: ChatContext) -> dict:
    # metadata and service_tier are OpenAI bookkeeping that COHERE has no field for.
    p = request_params(params, ctx, ignore=frozenset({"metadata", "service_tier"}))
    req: dict[str, Any] = {"apiFormat": "COHERE", **cohere_conversation(messages, ctx)}
    req["maxTokens"] = output_limit(p) or DEFAULT_MAX_TOKENS
    sampling(p, req, penalties=(0, 1), top_k_low=0, stop_field="stopSequences")
    choice = p.get("tool_choice")
    if choice is not None and choice not in ("auto", "none"):
        ctx.unsupported("tool_choice", "Cohere chooses tools itself: only 'auto' and 'none' can be honoured")
    if p.get("tools") is not None and choice != "none":  # 'none' = offer no tools
        req["tools"] = cohere_tools(p["tools"], ctx)
    if p.get("parallel_tool_calls") is False:
        ctx.unsupported("parallel_tool_calls", "Cohere cannot be limited to one tool call per turn")
    fmt = p.get("response_format")
    if fmt is not None:
        req["responseFormat"] = cohere_response_format(fmt)
    if p.get("documents") is not None:
        docs = expect(p, "documents", (list,), "a list of objects such as {'title': ..., 'snippet': ...}")
        if not all(isinstance(d, dict) for d in docs):
            raise bad("documents", "each document must be an object such as {'title': ..., 'snippet': ...}")
        req["documents"] = docs
    return finish_request(req, p, ctx)


# ------------------------------------------------------------------ response


def _calls(raw: list[dict] | None, seed: str) -> list[dict]:
    return [
        {"id": tool_call_id(seed, k, c.get("name")), "type": "function",
         "function": {"name": c.get("name", ""), "arguments": json.dumps(c.get("parameters") or {})}}
        for k, c in enumerate(raw or [])
    ]  # fmt: skip


def cohere_response(result: dict, ctx: ChatContext, request_id: str | None) -> dict:
    chat = result.get("chatResponse") or {}
    calls = _calls(chat.get("toolCalls"), request_id or chat.get("text", ""))
    message: dict[str, Any] = {
        "role": "assistant",
        "content": chat.get("text") if (chat.get("text") or not calls) else None,
        "tool_calls": calls or None,
        "refusal": None,
    }
    if chat.get("citations"):
        message["citations"] = chat["citations"]
    if chat.get("documents"):
        message["documents"] = chat["documents"]
    choice = {"index": 0, "message": message, "finish_reason": finish_reason(chat.get("finishReason"), bool(calls)), "logprobs": None}
    return completion_object(ctx, request_id, created_from(None), [choice], openai_usage(chat.get("usage")))


def _same_call(a: dict, b: dict) -> bool:
    return a.get("name") == b.get("name") and (a.get("parameters") or {}) == (b.get("parameters") or {})


class CohereStream(SingleChoiceStream):
    """Turns OCI COHERE stream events into OpenAI chunk dicts (pure, incremental).

    The terminal event (the one with ``finishReason``) may restate the whole reply and its
    tool calls; text from it is used only if no text deltas came before, and tool calls are
    de-duplicated, so nothing reaches the caller twice.
    """

    def __init__(self, ctx: ChatContext, request_id: str | None, created: int) -> None:
        super().__init__(ctx, request_id, created)
        self._sent_calls: list[dict] = []

    def _call_deltas(self, raw: list[dict] | None, terminal: bool) -> list[dict]:
        """Deltas for the calls not yet sent. The terminal event restates the calls that came
        before it, in order: those are matched by position, never by content, so two genuine
        identical calls both reach the caller."""
        calls = list(raw or [])
        if terminal:
            restated = 0
            while restated < min(len(calls), len(self._sent_calls)) and _same_call(calls[restated], self._sent_calls[restated]):
                restated += 1
            calls = calls[restated:]
        deltas = []
        for call in calls:
            self._sent_calls.append(call)
            position = len(self.calls)
            call_id = tool_call_id(self.id, position, call.get("name"))
            self.calls.append(call_id)
            deltas.append({"index": position, "id": call_id, "type": "function",
                           "function": {"name": call.get("name", ""), "arguments": json.dumps(call.get("parameters") or {})}})
        return deltas

    def feed(self, event: dict) -> list[dict]:
        terminal = event.get("finishReason") is not None
        delta: dict[str, Any] = {}
        self._text(delta, event.get("text"), terminal)
        return self._deliver(delta, self._call_deltas(event.get("toolCalls"), terminal), event, terminal)
