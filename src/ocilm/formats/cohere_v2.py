"""OpenAI chat ⇄ OCI COHEREV2 format (Cohere Command A and later: images, thinking, tool call ids).

Unlike COHERE, the v2 format takes the whole conversation as ``messages`` with content parts,
as OpenAI does, so the mapping is close to one-to-one.

Streams in v2 are only loosely documented. The decoder assumes, and tolerates departures from:
- deltas carry ``message.content`` parts: ``TEXT`` (``text``) and ``THINKING`` (``thinking``),
  each appended; ``message.toolCalls`` entries open a call when they carry an ``id`` not seen
  before, and otherwise add ``function.arguments`` text to the call last opened;
- ``message.toolPlan`` (the model's plan before calling tools) is not shown to the caller;
- the event with ``finishReason`` ends the stream and carries ``usage``; if it restates the
  reply, the restated text and calls are not sent twice (text only if no text came before,
  calls only if their id is new);
- ``apiFormat`` may or may not be on each event.
"""

from __future__ import annotations

import json
from typing import Any

from .._capabilities import DEFAULT_MAX_TOKENS
from .._errors import InternalServerError
from ._common import (
    ChatContext,
    PartBuilder,
    SingleChoiceStream,
    arguments_text,
    assistant_tool_calls,
    bad,
    completion_object,
    content_parts,
    created_from,
    expect,
    finish_reason,
    finish_request,
    image_url,
    join_text,
    message_list,
    openai_usage,
    output_limit,
    request_params,
    sampling,
    text_content,
    tool_call_id,
    tool_functions,
)
from ._schema import tool_parameters
from .cohere import cohere_response_format

# reasoning_effort -> Cohere's thinking switch and token budget (None: the model's own limit).
_THINKING = {"none": None, "minimal": 1024, "low": 1024, "medium": 4096, "high": None}


# ------------------------------------------------------------------ request


_PARTS: dict[str, PartBuilder] = {"image_url": lambda part, at, ctx: {"type": "IMAGE_URL", "imageUrl": image_url(part, at, ctx)}}


def _user_content(content: Any, where: str, ctx: ChatContext) -> list[dict]:
    return content_parts(content, where, ctx, _PARTS, " for a Cohere model")


def _tool_calls(calls: Any, where: str) -> list[dict]:
    return [{"id": call_id, "type": "FUNCTION", "function": {"name": name, "arguments": arguments}} for call_id, name, arguments in assistant_tool_calls(calls, where)]


def cohere_v2_messages(messages: Any, ctx: ChatContext) -> list[dict]:
    out = []
    for i, m in enumerate(message_list(messages)):
        where = f"messages[{i}]"
        role, content = m["role"], m.get("content")
        if role in ("system", "developer"):
            out.append({"role": "SYSTEM", "content": [{"type": "TEXT", "text": text_content(content, where)}]})
        elif role == "user":
            if content is None:
                raise bad(f"{where}.content", "this message needs content")
            out.append({"role": "USER", "content": _user_content(content, where, ctx)})
        elif role == "assistant":
            # content is required by OCI's CohereMessageV2 even on a turn that only calls tools.
            text = text_content(content, where)
            msg: dict[str, Any] = {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": text}] if text else []}
            if m.get("tool_calls"):
                msg["toolCalls"] = _tool_calls(m["tool_calls"], where)
            out.append(msg)
        elif role == "tool":
            if not m.get("tool_call_id"):
                raise bad(f"{where}.tool_call_id", "a tool message needs the id of the tool call it answers")
            out.append({"role": "TOOL", "toolCallId": m["tool_call_id"], "content": [{"type": "TEXT", "text": text_content(content, where)}]})
        else:
            raise bad(f"{where}.role", f"unsupported role {role!r}; expected system, developer, user, assistant or tool")
    return out


def _tools(tools: Any, ctx: ChatContext) -> list[dict]:
    out = []
    for fn in tool_functions(tools, ctx):
        function: dict[str, Any] = {"name": fn["name"], "parameters": tool_parameters(fn.get("parameters"))}
        if fn.get("description"):
            function["description"] = fn["description"]
        out.append({"type": "FUNCTION", "function": function})
    return out


def cohere_v2_request(messages: Any, params: dict, ctx: ChatContext) -> dict:
    """The ``chatRequest`` object for OCI's COHEREV2 format."""
    p = request_params(params, ctx, ignore=frozenset({"metadata", "service_tier"}))
    req: dict[str, Any] = {"apiFormat": "COHEREV2", "messages": cohere_v2_messages(messages, ctx)}
    req["maxTokens"] = output_limit(p) or DEFAULT_MAX_TOKENS
    sampling(p, req, penalties=(0, 1), top_k_low=0, stop_field="stopSequences")
    choice = p.get("tool_choice")
    if p.get("tools") is not None:
        req["tools"] = _tools(p["tools"], ctx)
    if choice is not None:
        if choice in ("required", "none"):
            req["toolsChoice"] = choice.upper()
        elif choice != "auto":
            if isinstance(choice, dict):
                ctx.unsupported("tool_choice", "Cohere cannot be made to call one named function: use 'required', 'auto' or 'none'")
            else:
                raise bad("tool_choice", "expected 'none', 'auto' or 'required'")
    if p.get("parallel_tool_calls") is False:
        ctx.unsupported("parallel_tool_calls", "Cohere cannot be limited to one tool call per turn")
    if p.get("response_format") is not None:
        req["responseFormat"] = cohere_response_format(p["response_format"])
    if p.get("reasoning_effort") is not None:
        effort = str(p["reasoning_effort"]).lower()
        if effort not in _THINKING:
            raise bad("reasoning_effort", f"expected one of {', '.join(_THINKING)}, got {p['reasoning_effort']!r}")
        budget = _THINKING[effort]
        req["thinking"] = {"type": "DISABLED"} if effort == "none" else {"type": "ENABLED", **({"tokenBudget": budget} if budget else {})}
    if p.get("documents") is not None:
        docs = expect(p, "documents", (list,), "a list of objects such as {'title': ..., 'snippet': ...}")
        if not all(isinstance(d, (dict, str)) for d in docs):
            raise bad("documents", "each document must be a string or an object such as {'title': ..., 'snippet': ...}")
        req["documents"] = docs
    return finish_request(req, p, ctx)


# ------------------------------------------------------------------ response


def _thinking(parts: Any) -> str:
    return "".join(p.get("thinking", "") for p in parts or () if p.get("type") == "THINKING")


def _openai_calls(raw: Any, seed: str) -> list[dict]:
    calls = []
    for k, c in enumerate(raw or ()):
        fn = c.get("function") or {}
        calls.append({"id": c.get("id") or tool_call_id(seed, k), "type": "function",
                      "function": {"name": fn.get("name", ""), "arguments": arguments_text(fn.get("arguments"))}})  # fmt: skip
    return calls


def cohere_v2_response(result: dict, ctx: ChatContext, request_id: str | None) -> dict:
    chat = result.get("chatResponse") or {}
    message = chat.get("message") or {}
    if str(chat.get("finishReason") or "").upper() == "ERROR":
        raise InternalServerError(f"the model stopped with an error: {chat.get('errorMessage') or 'no detail given'}", opc_request_id=request_id)
    text = join_text(message.get("content"))
    calls = _openai_calls(message.get("toolCalls"), request_id or chat.get("id") or "")
    out: dict[str, Any] = {"role": "assistant", "content": text if (text or not calls) else None, "tool_calls": calls or None, "refusal": None}
    thinking = _thinking(message.get("content"))
    if thinking:
        out["reasoning_content"] = thinking
    if message.get("citations"):
        out["citations"] = message["citations"]
    choice = {"index": 0, "message": out, "finish_reason": finish_reason(chat.get("finishReason"), bool(calls)), "logprobs": None}
    return completion_object(ctx, request_id, created_from(None), [choice], openai_usage(chat.get("usage")))


class CohereV2Stream(SingleChoiceStream):
    """Turns OCI COHEREV2 stream events into OpenAI chunk dicts (pure, incremental)."""

    def _call_deltas(self, raw: Any) -> list[dict]:
        deltas = []
        for call in raw or ():
            fn = call.get("function") or {}
            call_id, arguments = call.get("id"), fn.get("arguments")
            text = arguments if isinstance(arguments, str) else (json.dumps(arguments) if arguments is not None else "")
            if call_id and call_id in self.calls:
                continue  # restated
            if call_id or fn.get("name") or not self.calls:
                call_id = call_id or tool_call_id(self.id, len(self.calls))
                deltas.append({"index": len(self.calls), "id": call_id, "type": "function", "function": {"name": fn.get("name", ""), "arguments": text}})
                self.calls.append(call_id)
            elif text:
                deltas.append({"index": len(self.calls) - 1, "function": {"arguments": text}})
        return deltas

    def feed(self, event: dict) -> list[dict]:
        terminal = event.get("finishReason") is not None
        message = event.get("message") or {}
        delta: dict[str, Any] = {}
        self._text(delta, join_text(message.get("content")), terminal)
        thinking = _thinking(message.get("content"))
        if thinking and not terminal:
            delta["reasoning_content"] = thinking
        return self._deliver(delta, self._call_deltas(message.get("toolCalls")), event, terminal)
