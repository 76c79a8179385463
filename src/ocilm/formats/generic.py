"""OpenAI chat ⇄ OCI GENERIC format (Meta, xAI, Google, OpenAI and other non-Cohere models)."""

from __future__ import annotations

from typing import Any

from .._capabilities import DEFAULT_MAX_TOKENS
from ._common import (
    REASONING_EFFORTS,
    ChatContext,
    PartBuilder,
    arguments_text,
    assistant_tool_calls,
    bad,
    chat_id,
    chunk_object,
    completion_object,
    content_parts,
    created_from,
    delta_object,
    expect,
    finish_reason,
    finish_request,
    image_url,
    integer,
    join_text,
    message_list,
    openai_usage,
    output_limit,
    request_params,
    sampling,
    tool_call_id,
    tool_functions,
)
from ._schema import sanitize_schema, tool_parameters

_ROLES = {"system": "SYSTEM", "developer": "DEVELOPER", "user": "USER", "assistant": "ASSISTANT", "tool": "TOOL"}
_MEDIA_PARTS = {"input_audio": ("AUDIO", "audioUrl"), "file": ("DOCUMENT", "documentUrl")}
# Sent as the content of an assistant turn that has tool calls but no text: the service
# has failed on such turns with empty content.
_PLACEHOLDER_TEXT = "."


# ------------------------------------------------------------------ request


def _audio_part(part: dict, at: str, ctx: ChatContext) -> dict:
    audio = part.get("input_audio")
    if not isinstance(audio, dict) or not audio.get("data"):
        raise bad(f"{at}.input_audio", "expected {'data': <base64>, 'format': 'wav'|'mp3'}")
    return {"type": "AUDIO", "audioUrl": {"url": f"data:audio/{audio.get('format', 'wav')};base64,{audio['data']}"}}


def _file_part(part: dict, at: str, ctx: ChatContext) -> dict:
    file = part.get("file")
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str) or not data.startswith("data:"):
        raise bad(f"{at}.file", "expected {'file_data': 'data:application/pdf;base64,...'} (uploaded file ids are not supported by OCI)")
    return {"type": "DOCUMENT", "documentUrl": {"url": data}}


_PARTS: dict[str, PartBuilder] = {
    "image_url": lambda part, at, ctx: {"type": "IMAGE", "imageUrl": image_url(part, at, ctx)},
    "input_audio": _audio_part,
    "file": _file_part,
}


def _content_parts(content: Any, where: str, ctx: ChatContext) -> list[dict]:
    return content_parts(content, where, ctx, _PARTS)


def _tool_calls(calls: Any, where: str) -> list[dict]:
    return [{"id": call_id, "type": "FUNCTION", "name": name, "arguments": arguments} for call_id, name, arguments in assistant_tool_calls(calls, where)]


def generic_messages(messages: list[dict], ctx: ChatContext) -> list[dict]:
    out = []
    for i, m in enumerate(message_list(messages)):
        where = f"messages[{i}]"
        role = _ROLES.get(m["role"])
        if role is None:
            raise bad(f"{where}.role", f"unsupported role {m['role']!r}; expected system, developer, user, assistant or tool")
        msg: dict[str, Any] = {"role": role}
        content = m.get("content")
        if role == "ASSISTANT":
            if content not in (None, "", []):
                msg["content"] = _content_parts(content, where, ctx)
            if m.get("tool_calls"):
                msg["toolCalls"] = _tool_calls(m["tool_calls"], where)
                msg.setdefault("content", [{"type": "TEXT", "text": _PLACEHOLDER_TEXT}])
            if m.get("refusal"):
                msg["refusal"] = m["refusal"]
        elif role == "TOOL":
            if not m.get("tool_call_id"):
                raise bad(f"{where}.tool_call_id", "a tool message needs the id of the tool call it answers")
            msg["content"] = _content_parts(content if content is not None else "", where, ctx)
            msg["toolCallId"] = m["tool_call_id"]
        else:
            if content is None:
                raise bad(f"{where}.content", "this message needs content")
            msg["content"] = _content_parts(content, where, ctx)
        if m.get("name") and role in ("SYSTEM", "USER", "ASSISTANT", "DEVELOPER"):
            msg["name"] = m["name"]
        out.append(msg)
    return out


def _tool_choice(choice: Any) -> dict:
    if isinstance(choice, str) and choice in ("none", "auto", "required"):
        return {"type": choice.upper()}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict) and choice["function"].get("name"):
        return {"type": "FUNCTION", "name": choice["function"]["name"]}
    raise bad("tool_choice", "expected 'none', 'auto', 'required' or {'type': 'function', 'function': {'name': ...}}")


def _response_format(fmt: Any, ctx: ChatContext) -> dict:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return {"type": "TEXT"}
    if kind == "json_object":
        return {"type": "JSON_OBJECT"}
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not spec.get("name"):
            raise bad("response_format.json_schema", "expected {'name': ..., 'schema': {...}, 'strict': bool}")
        out: dict[str, Any] = {"name": spec["name"]}
        if spec.get("description"):
            out["description"] = spec["description"]
        if spec.get("schema") is not None:
            out["schema"] = sanitize_schema(spec["schema"])
        if spec.get("strict") is not None:
            out["isStrict"] = bool(spec["strict"])
        return {"type": "JSON_SCHEMA", "jsonSchema": out}
    raise bad("response_format", "expected {'type': 'text'}, {'type': 'json_object'} or {'type': 'json_schema', 'json_schema': {...}}")


def generic_request(messages: list[dict], params: dict, ctx: ChatContext) -> dict:
    """The ``chatRequest`` object for OCI's GENERIC format."""
    p = request_params(params, ctx)
    req: dict[str, Any] = {"apiFormat": "GENERIC", "messages": generic_messages(messages, ctx)}
    limit = output_limit(p)
    # maxCompletionTokens bounds visible and reasoning tokens together: sent for OpenAI's models,
    # and whenever the caller asked for that bound by its name
    bounded = ctx.info.uses_max_completion_tokens or p.get("max_completion_tokens") is not None
    req["maxCompletionTokens" if bounded else "maxTokens"] = limit or DEFAULT_MAX_TOKENS
    sampling(p, req, penalties=(-2, 2), top_k_low=-1, stop_field="stop")
    if (n := integer(p, "n", 1)) is not None and n != 1:
        req["numGenerations"] = n
    if p.get("logprobs"):
        top = integer(p, "top_logprobs", 0)
        req["logProbs"] = max(1, top or 1)
    elif p.get("top_logprobs") is not None:
        raise bad("top_logprobs", "needs logprobs=True")
    if (bias := expect(p, "logit_bias", (dict,), "an object of token id -> bias")) is not None:
        req["logitBias"] = {str(k): v for k, v in bias.items()}
    if p.get("tools") is not None:
        req["tools"] = [
            {"type": "FUNCTION", "name": fn["name"], **({"description": fn["description"]} if fn.get("description") else {}),
             **({"parameters": tool_parameters(fn["parameters"])} if fn.get("parameters") is not None else {})}
            for fn in tool_functions(p["tools"], ctx)
        ]
    if p.get("tool_choice") is not None:
        req["toolChoice"] = _tool_choice(p["tool_choice"])
        named = req["toolChoice"].get("name")
        if named is not None and named not in {t["name"] for t in req.get("tools", ())}:
            raise bad("tool_choice", f"names the function {named!r}, which is not among the tools")
    if p.get("parallel_tool_calls") is not None:
        req["isParallelToolCalls"] = bool(p["parallel_tool_calls"])
    if p.get("response_format") is not None:
        req["responseFormat"] = _response_format(p["response_format"], ctx)
    if p.get("reasoning_effort") is not None:
        effort = str(p["reasoning_effort"]).lower()
        if effort not in REASONING_EFFORTS:
            raise bad("reasoning_effort", f"expected one of {', '.join(REASONING_EFFORTS)}, got {p['reasoning_effort']!r}")
        req["reasoningEffort"] = effort.upper()
    if p.get("verbosity") is not None:
        if str(p["verbosity"]).lower() not in ("low", "medium", "high"):
            raise bad("verbosity", "expected low, medium or high")
        req["verbosity"] = str(p["verbosity"]).upper()
    if p.get("service_tier") is not None:
        if str(p["service_tier"]).lower() not in ("auto", "default", "priority"):
            raise bad("service_tier", "expected auto, default or priority")
        req["serviceTier"] = str(p["service_tier"]).upper()
    if p.get("metadata") is not None:
        req["metadata"] = expect(p, "metadata", (dict,), "an object of string pairs")
    if p.get("prediction") is not None:
        pred = p["prediction"]
        if not isinstance(pred, dict) or pred.get("type") != "content":
            raise bad("prediction", "expected {'type': 'content', 'content': ...}")
        req["prediction"] = {"type": "CONTENT", "content": _content_parts(pred.get("content", ""), "prediction", ctx)}
    if p.get("web_search_options") is not None:
        req["webSearchOptions"] = _web_search(p["web_search_options"])
    if p.get("documents") is not None:
        ctx.unsupported("documents", "documents are a Cohere feature")
    return finish_request(req, p, ctx)


def _web_search(options: Any) -> dict:
    if not isinstance(options, dict):
        raise bad("web_search_options", "expected an object")
    out: dict[str, Any] = {}
    if options.get("search_context_size"):
        out["searchContextSize"] = str(options["search_context_size"]).upper()
    user_location = options.get("user_location")
    location = user_location.get("approximate") if isinstance(user_location, dict) else None
    if isinstance(location, dict):
        out["userLocation"] = {k: v for k, v in location.items() if k in ("city", "region", "country", "timezone")}
    return out


# ------------------------------------------------------------------ response


def _openai_tool_calls(calls: list[dict], seed: str, choice: int) -> list[dict]:
    return [
        {
            "id": call.get("id") or tool_call_id(seed, choice, k),
            "type": "function",
            "function": {"name": call.get("name", ""), "arguments": arguments_text(call.get("arguments"))},
        }
        for k, call in enumerate(calls)
    ]


def _logprobs(raw: dict | None) -> dict | None:
    if not raw:
        return None
    tops = raw.get("topLogprobs") or []
    content = []
    for k, (token, logprob) in enumerate(zip(raw.get("tokens") or [], raw.get("tokenLogprobs") or [], strict=False)):
        alternatives = tops[k] if k < len(tops) else {}
        content.append({
            "token": token, "logprob": logprob, "bytes": list(token.encode()),
            "top_logprobs": [{"token": t, "logprob": float(lp), "bytes": list(t.encode())} for t, lp in alternatives.items()],
        })  # fmt: skip
    return {"content": content, "refusal": None}


def generic_response(result: dict, ctx: ChatContext, request_id: str | None) -> dict:
    chat = result.get("chatResponse") or {}
    seed = request_id or chat.get("timeCreated") or ""
    choices = []
    for position, choice in enumerate(chat.get("choices") or []):
        index = choice.get("index", position)
        message = choice.get("message") or {}
        text = join_text(message.get("content"))
        tool_calls = _openai_tool_calls(message.get("toolCalls") or [], seed, index)
        out_message: dict[str, Any] = {
            "role": "assistant",
            "content": text if (text or not tool_calls) else None,
            "tool_calls": tool_calls or None,
            "refusal": message.get("refusal"),
        }
        if message.get("reasoningContent"):
            out_message["reasoning_content"] = message["reasoningContent"]
        if message.get("annotations"):
            out_message["annotations"] = message["annotations"]
        choices.append({
            "index": index,
            "message": out_message,
            "finish_reason": finish_reason(choice.get("finishReason"), bool(tool_calls)),
            "logprobs": _logprobs(choice.get("logprobs")),
        })  # fmt: skip
    return completion_object(ctx, request_id, created_from(chat.get("timeCreated")), choices, openai_usage(chat.get("usage")))


# ------------------------------------------------------------------ stream


class _ChoiceState:
    __slots__ = ("by_id", "calls", "current", "finished", "started")

    def __init__(self) -> None:
        self.started = False
        self.finished = False
        self.calls: list[str] = []  # tool call ids by OpenAI index
        self.by_id: dict[str, int] = {}
        self.current: int | None = None


class GenericStream:
    """Turns OCI GENERIC stream events into OpenAI chunk dicts (pure, incremental)."""

    def __init__(self, ctx: ChatContext, request_id: str | None, created: int) -> None:
        self.ctx = ctx
        self.id = chat_id(request_id)
        self.created = created
        self.choices: dict[int, _ChoiceState] = {}

    def _chunk(self, index: int, delta: dict, finish: str | None = None) -> dict:
        state = self.choices.setdefault(index, _ChoiceState())
        if not state.started:
            delta = {"role": "assistant", **delta}
            state.started = True
        return chunk_object(self.ctx, self.id, self.created, [{"index": index, "delta": delta_object(delta), "finish_reason": finish, "logprobs": None}])

    def feed(self, event: dict) -> list[dict]:
        out: list[dict] = []
        index = event.get("index") or 0
        message = event.get("message")
        if isinstance(message, dict):
            text = join_text(message.get("content"))
            delta: dict[str, Any] = {}
            if text:
                delta["content"] = text
            if message.get("reasoningContent"):
                delta["reasoning_content"] = message["reasoningContent"]
            calls = self._tool_call_deltas(index, message.get("toolCalls") or [])
            if calls:
                delta["tool_calls"] = calls
            if delta:
                out.append(self._chunk(index, delta))
        if event.get("finishReason") is not None:
            state = self.choices.setdefault(index, _ChoiceState())
            state.finished = True
            out.append(self._chunk(index, {}, finish_reason(event["finishReason"], bool(state.calls))))
        if isinstance(event.get("usage"), dict) and message is None and self.ctx.include_usage:
            out.append(chunk_object(self.ctx, self.id, self.created, [], openai_usage(event["usage"])))
        return out

    def _tool_call_deltas(self, index: int, calls: list[dict]) -> list[dict]:
        state = self.choices.setdefault(index, _ChoiceState())
        deltas = []
        for call in calls:
            call_id, name, arguments = call.get("id"), call.get("name"), call.get("arguments") or ""
            if call_id and call_id in state.by_id:  # a re-sent or id-keyed fragment (xAI)
                position = state.current = state.by_id[call_id]
                if arguments:
                    deltas.append({"index": position, "function": {"arguments": arguments}})
            elif call_id or name or state.current is None:  # a new call
                position = state.current = len(state.calls)
                call_id = call_id or tool_call_id(self.id, index, position)
                state.calls.append(call_id)
                state.by_id[call_id] = position
                deltas.append({"index": position, "id": call_id, "type": "function", "function": {"name": name or "", "arguments": arguments}})
            elif arguments:  # an id-less fragment of the open call (OpenAI models)
                deltas.append({"index": state.current, "function": {"arguments": arguments}})
        return deltas

    def close(self) -> list[dict]:
        """End of stream: finish every choice the service left open."""
        if not self.choices:
            self.choices[0] = _ChoiceState()
        return [self._chunk(i, {}, finish_reason("stop", bool(s.calls))) for i, s in sorted(self.choices.items()) if not s.finished]
