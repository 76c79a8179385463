"""OpenAI's Responses API (``POST /v1/responses``, spoken by Codex and the Agents SDK) onto chat
completions, and chat completions back: request mapping, reply mapping and a stream state
machine fed chat chunks (pure; the gateway does the I/O).

Tools: ``function`` tools pass through; ``custom`` (freeform, such as Codex's ``apply_patch``)
become a function with one string parameter ``input``, and their calls come back as
``custom_tool_call`` items carrying the raw string; ``namespace`` tools are flattened to
``<namespace><name>`` functions and restored on the way back; ``local_shell`` becomes a function;
hosted tools (web search, file search, ...) are skipped, never refused.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._common import (
    MAX_TOOLS,
    DoorError,
    chat_usage,
    encode_text,
    json_arguments,
    json_size,
    new_id,
    read_chunk,
    safe_tool_id,
    sse,
    text_of,
)

log = logging.getLogger("ocilm.gateway")
MAX_OUTPUT_TOKENS = 2**31 - 1  # OCI's maxTokens is a 32-bit integer

REASONING_EFFORTS = {"none": "none", "minimal": "minimal", "low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_GRAMMAR_HINT_CHARS = 4000
# Request fields that are accepted and echoed, or accepted and not acted on (bookkeeping).
ACCEPTED = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens", "temperature",
    "top_p", "text", "reasoning", "store", "previous_response_id", "include", "metadata", "truncation", "user", "stream",
    "safety_identifier", "prompt_cache_key", "service_tier", "stream_options", "top_logprobs", "max_tool_calls",
    "background", "conversation", "prompt", "context_management", "client_metadata", "prompt_cache_retention",
    "presence_penalty", "frequency_penalty",
})  # fmt: skip


@dataclass
class ToolSpec:
    """A client-side tool behind a chat function name."""

    kind: str  # "function" | "custom" | "local_shell"
    name: str
    namespace: str | None = None


@dataclass
class ResponsesCall:
    """A Responses request mapped onto chat, and what mapping the reply back needs."""

    model: str
    stream: bool
    chat: dict[str, Any]  # messages and chat parameters (no model, no stream)
    tools: dict[str, ToolSpec]  # by chat function name
    echo: dict[str, Any]  # request settings echoed in the Response object
    history: list[dict]  # the conversation so far, for previous_response_id (no instructions)
    response_id: str = field(default_factory=lambda: new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))


# ------------------------------------------------------------------ request


def _chat_name(name: str, namespace: str | None, taken: dict[str, ToolSpec], next_suffix: dict[str, int] | None = None) -> str:
    """A chat-safe function name for a client tool, unique in ``taken``: names that flatten
    alike get ``_2``, ``_3``, ... ``next_suffix`` remembers where each flat name's count is, so
    that each name costs O(1) however many collide."""
    flat = _NAME_UNSAFE.sub("_", f"{namespace or ''}{name}")[:64] or "tool"
    counters = next_suffix if next_suffix is not None else {}
    candidate, n = flat, counters.get(flat, 2)
    while candidate in taken and (taken[candidate].name, taken[candidate].namespace) != (name, namespace):
        suffix = f"_{n}"
        candidate, n = flat[: 64 - len(suffix)] + suffix, n + 1
    if candidate != flat:
        counters[flat] = n
    return candidate


def _function(name: str, description: str | None, parameters: Any) -> dict:
    fn: dict[str, Any] = {"name": name, "parameters": parameters if isinstance(parameters, dict) else {"type": "object", "properties": {}}}
    if description:
        fn["description"] = description
    return {"type": "function", "function": fn}


def _custom_function(name: str, tool: dict) -> dict:
    description = tool.get("description") or ""
    fmt = tool.get("format") or {}
    if fmt.get("type") == "grammar" and fmt.get("definition"):
        description += (f"\n\nThe input must follow this {fmt.get('syntax', '')} grammar:\n"
                        f"{str(fmt['definition'])[:_GRAMMAR_HINT_CHARS]}")  # fmt: skip
    parameters = {"type": "object", "properties": {"input": {"type": "string", "description": "The raw input for the tool."}}, "required": ["input"]}
    return _function(name, description.strip() or None, parameters)


PLATFORM_TOOLS = frozenset({"file_search", "code_interpreter", "mcp", "image_generation", "computer_use_preview"})


def map_tools(raw: Any) -> tuple[list[dict], dict[str, ToolSpec], list[str]]:
    """(chat tools, chat name -> client tool, skipped hosted tool types)."""
    if raw is None:
        return [], {}, []
    if not isinstance(raw, list):
        raise DoorError("tools: expected a list of tools", param="tools")
    chat: list[dict] = []
    table: dict[str, ToolSpec] = {}
    skipped: list[str] = []
    suffixes: dict[str, int] = {}

    def add(tool: Any, where: str, namespace: str | None = None) -> None:
        if len(chat) >= MAX_TOOLS:
            raise DoorError(f"tools: at most {MAX_TOOLS} tools (namespaces' tools included)", param="tools")
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind in ("function", "custom"):
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                raise DoorError(f"{where}.name: a tool needs a name", param=f"{where}.name")
            chat_name = _chat_name(name, namespace, table, suffixes)
            table[chat_name] = ToolSpec(kind, name, namespace)
            chat.append(_function(chat_name, tool.get("description"), tool.get("parameters")) if kind == "function" else _custom_function(chat_name, tool))
        elif kind == "namespace" and namespace is None:
            ns = tool.get("name")
            if not isinstance(ns, str) or not isinstance(tool.get("tools"), list):
                raise DoorError(f"{where}: a namespace tool needs a name and tools", param=where)
            for j, child in enumerate(tool["tools"]):
                add(child, f"{where}.tools[{j}]", ns)
        elif kind == "local_shell":
            table["local_shell"] = ToolSpec("local_shell", "local_shell")
            chat.append(_function("local_shell", "Run a command on the user's machine.", {
                "type": "object", "required": ["command"], "properties": {
                    "command": {"type": "array", "items": {"type": "string"}, "description": "The program and its arguments."},
                    "workdir": {"type": "string"}, "timeout_ms": {"type": "integer"}}}))  # fmt: skip
        elif kind in PLATFORM_TOOLS:  # they act on objects OCI keeps: answering without them would be a silent lie
            raise DoorError(f"{where}: {kind} is a hosted tool OCI runs on its /openai/v1 API; serve this model through an "
                            "/openai/v1 deployment (oci_api_key, or oci_api_mode: openai) to use it", param=where)  # fmt: skip
        elif isinstance(kind, str):
            skipped.append(kind)  # other hosted tools (web search, which Codex always offers) are left out, with a warning
        else:
            raise DoorError(f"{where}: expected a tool object with a type", param=where)

    for i, tool in enumerate(raw):
        add(tool, f"tools[{i}]")
    if skipped:
        log.warning("responses: skipped tools OCI cannot run: %s", ", ".join(sorted(set(skipped))))
    return chat, table, skipped


def _find(table: dict[str, ToolSpec], name: Any, namespace: Any = None) -> str | None:
    for chat_name, spec in table.items():
        if spec.name == name and (namespace is None or spec.namespace == namespace):
            return chat_name
    return None


def map_tool_choice(choice: Any, table: dict[str, ToolSpec]) -> Any:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if not isinstance(choice, dict):
        raise DoorError("tool_choice: expected 'auto', 'none', 'required' or a tool choice object", param="tool_choice")
    kind = choice.get("type")
    if kind in ("function", "custom"):
        chat_name = _find(table, choice.get("name"), choice.get("namespace"))
        # A forced tool that is not offered (a skipped hosted tool, say): fail closed.
        return {"type": "function", "function": {"name": chat_name}} if chat_name else "none"
    if kind == "allowed_tools":
        return "required" if choice.get("mode") == "required" else "auto"
    return "none"  # a hosted tool forced: OCI cannot run it


def _parts(content: Any, where: str) -> Any:
    """Message content in chat's terms: a string, or text and image parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise DoorError(f"{where}.content: expected a string or a list of content parts", param=f"{where}.content")
    parts: list[dict] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "refusal":
            parts.append({"type": "text", "text": str(part.get("refusal", ""))})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise DoorError(f"{where}.content[{j}]: only images given by image_url (a URL or data URL) can reach OCI; file_id is not supported",
                                param=f"{where}.content[{j}].image_url")  # fmt: skip
            image: dict[str, Any] = {"url": url}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_file":
            raise DoorError(f"{where}.content[{j}]: input_file is not supported (OCI chat models take no files)", param=f"{where}.content[{j}]")
        else:
            raise DoorError(f"{where}.content[{j}]: unsupported content part {kind!r}", param=f"{where}.content[{j}].type")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


class _Conversation:
    """Builds chat messages from Responses input items, keeping chat's ordering rules: the tool
    calls of one turn in one assistant message, followed directly by their results."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.awaiting: list[str] = []  # call ids of the open assistant turn without a result yet
        self.images: list[dict] = []  # images returned by tools, sent after the results

    def _open_turn(self) -> dict | None:
        last = self.messages[-1] if self.messages else None
        return last if last is not None and last["role"] == "assistant" else None

    def close_turn(self) -> None:
        for call_id in self.awaiting:  # a call with no output: chat providers refuse orphaned calls
            self.messages.append({"role": "tool", "tool_call_id": call_id, "content": "(no output)"})
        self.awaiting = []
        if self.images:
            self.messages.append({"role": "user", "content": [{"type": "text", "text": "Images returned by the tools:"}, *self.images]})
            self.images = []

    def message(self, role: str, content: Any) -> None:
        if role == "assistant":
            turn = self._open_turn()
            if turn is not None and self.awaiting:  # text echoed between a call and its output: fold it in
                turn["content"] = ((turn.get("content") or "") + text_of(content)) or None
                return
            self.close_turn()
            self.messages.append({"role": "assistant", "content": content})
            return
        self.close_turn()
        self.messages.append({"role": "system" if role == "developer" else role, "content": content})

    def call(self, call_id: str, name: str, arguments: str) -> None:
        turn = self._open_turn()
        if turn is None:
            self.close_turn()
            turn = {"role": "assistant", "content": None}
            self.messages.append(turn)
        turn.setdefault("tool_calls", []).append({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
        self.awaiting.append(call_id)

    def result(self, call_id: str, output: Any, where: str) -> None:
        if call_id not in self.awaiting:
            raise DoorError(f"{where}.call_id: no tool call with this call_id precedes this output", param=f"{where}.call_id")
        self.awaiting.remove(call_id)
        if isinstance(output, list):
            self.images += [{"type": "image_url", "image_url": {"url": p["image_url"]}} for p in output
                            if isinstance(p, dict) and p.get("type") == "input_image" and isinstance(p.get("image_url"), str)]  # fmt: skip
            output = text_of(output)
        elif not isinstance(output, str):
            output = json.dumps(output)
        # Results go right after the turn's assistant message, before any text folded there.
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": output})


def map_input(value: Any, table: dict[str, ToolSpec], prior: list[dict] | None = None) -> list[dict]:
    """The conversation: ``prior`` (a previous response's, whose last tool calls may be answered
    by this input's outputs, as a continuation that sends only the new items does) and the input."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise DoorError("input: expected a string or a list of input items", param="input")
    conv = _Conversation()
    if prior:
        conv.messages = [dict(m) for m in prior]
        last = conv.messages[-1]
        if last.get("role") == "assistant" and last.get("tool_calls"):  # its calls' outputs may come now
            conv.awaiting = [str(call["id"]) for call in last["tool_calls"] if isinstance(call, dict) and call.get("id")]
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise DoorError(f"{where}: expected an object", param=where)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise DoorError(f"{where}.role: expected user, assistant, system or developer", param=f"{where}.role")
            conv.message(role, _parts(item.get("content", ""), where))
        elif kind in ("function_call", "custom_tool_call", "local_shell_call"):
            call_id = item.get("call_id") or item.get("id")
            if not isinstance(call_id, str) or not call_id:
                raise DoorError(f"{where}.call_id: required", param=f"{where}.call_id")
            if kind == "function_call":
                name = _find(table, item.get("name"), item.get("namespace")) or _chat_name(str(item.get("name", "")), item.get("namespace"), {})
                given = item.get("arguments")
                arguments = given if isinstance(given, str) else json.dumps(given or {})
            elif kind == "custom_tool_call":
                name = _find(table, item.get("name"), item.get("namespace")) or _chat_name(str(item.get("name", "")), item.get("namespace"), {})
                arguments = json.dumps({"input": item.get("input", "")})
            else:
                action = item.get("action") or {}
                name = "local_shell"
                arguments = json.dumps({k: v for k, v in (("command", action.get("command")), ("workdir", action.get("working_directory")),
                                                          ("timeout_ms", action.get("timeout_ms"))) if v is not None})  # fmt: skip
            conv.call(call_id, name, arguments)
        elif kind in ("function_call_output", "custom_tool_call_output", "local_shell_call_output"):
            call_id = item.get("call_id") or item.get("id")
            conv.result(str(call_id), item.get("output", ""), where)
        else:  # reasoning, web_search_call, compaction, item_reference, ...: nothing OCI can use
            log.debug("responses: input item %s of type %r dropped", where, kind)
    conv.close_turn()
    return conv.messages


def _response_format(text: Any) -> dict | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema":
        spec = {k: fmt[k] for k in ("name", "schema", "description", "strict") if k in fmt}
        return {"type": "json_schema", "json_schema": spec}
    raise DoorError("text.format.type: expected text, json_object or json_schema", param="text.format.type")


def parse_request(body: dict, history: Callable[[str], list[dict] | None]) -> ResponsesCall:
    """Map a Responses request; ``history`` finds the conversation of a previous response id."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise DoorError("model: required, the name of a model this gateway serves", param="model")
    unknown = sorted(set(body) - ACCEPTED)
    if unknown:
        raise DoorError(f"unknown parameter(s): {', '.join(unknown)}", param=unknown[0])
    if body.get("background"):
        raise DoorError("background: background responses are not supported by this gateway", param="background")
    if body.get("conversation") is not None:
        raise DoorError("conversation: stored conversations are not supported; send the input, or previous_response_id", param="conversation")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise DoorError("stream: expected true or false", param="stream")
    tools, table, _ = map_tools(body.get("tools"))
    prior: list[dict] = []
    previous = body.get("previous_response_id")
    if previous is not None:
        found = history(previous) if isinstance(previous, str) else None
        if found is None:
            raise DoorError(f"previous_response_id: no stored response {previous!r} on this gateway (it keeps recent responses in memory)",
                            param="previous_response_id", code="previous_response_not_found", status=404)  # fmt: skip
        prior = found
    if "input" not in body:
        raise DoorError("input: required", param="input")
    conversation = map_input(body.get("input"), table, prior)
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise DoorError("instructions: expected a string", param="instructions")
    chat: dict[str, Any] = {"messages": ([{"role": "system", "content": instructions}] if instructions else []) + conversation}
    if tools:
        chat["tools"] = tools
        choice = map_tool_choice(body.get("tool_choice"), table)
        if choice is not None:
            chat["tool_choice"] = choice
        if isinstance(body.get("parallel_tool_calls"), bool):
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    limit = body.get("max_output_tokens")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_OUTPUT_TOKENS:
            raise DoorError(f"max_output_tokens: expected a whole number from 1 to {MAX_OUTPUT_TOKENS}", param="max_output_tokens")
        chat["max_tokens"] = limit
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        if body.get(name) is not None:
            chat[name] = body[name]
    response_format = _response_format(body.get("text"))
    if response_format is not None and response_format["type"] != "text":
        chat["response_format"] = response_format
    effort = (body.get("reasoning") or {}).get("effort") if isinstance(body.get("reasoning"), dict) else None
    if effort is not None:
        if effort not in REASONING_EFFORTS:
            raise DoorError(f"reasoning.effort: expected one of {', '.join(REASONING_EFFORTS)}", param="reasoning.effort")
        chat["reasoning_effort"] = REASONING_EFFORTS[effort]
    echo = _echo(body, instructions, limit, previous)
    return ResponsesCall(model=model, stream=stream, chat=chat, tools=table, echo=echo, history=conversation)


def _number(value: Any, default: float) -> float:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _echo_tool(tool: Any) -> Any:
    """A function tool as the response object states it (Open Responses' FunctionTool requires
    description, parameters and strict, each possibly null); other tools as the client sent them."""
    if isinstance(tool, dict) and tool.get("type") == "function":
        return {"type": "function", "name": tool.get("name"), "description": tool.get("description"),
                "parameters": tool.get("parameters"), "strict": tool.get("strict"), **{k: v for k, v in tool.items()
                                                                                           if k not in ("type", "name", "description", "parameters", "strict")}}  # fmt: skip
    return tool


def _echo_text(text: Any) -> dict:
    """``text`` as stated back: a format always, a json_schema format with every field the spec
    requires (name, description, schema, strict)."""
    if not isinstance(text, dict):
        return {"format": {"type": "text"}}
    given = text.get("format")
    fmt: dict[str, Any] = given if isinstance(given, dict) else {"type": "text"}
    if fmt.get("type") == "json_schema":
        fmt = {"name": fmt.get("name") or "output", "description": fmt.get("description"), "schema": fmt.get("schema"),
               "strict": bool(fmt.get("strict")), **fmt}  # fmt: skip
    return {**text, "format": fmt}


def _echo(body: dict, instructions: Any, limit: Any, previous: Any) -> dict:
    """The request's settings as every response object states them back: each field the Open
    Responses specification requires, with the value the request implied (its own, or the
    default the call ran with; null where the specification allows it)."""
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else None
    return {
        "instructions": instructions if isinstance(instructions, str) else None, "metadata": body.get("metadata") or {},
        "temperature": _number(body.get("temperature"), 1.0), "top_p": _number(body.get("top_p"), 1.0),
        "presence_penalty": _number(body.get("presence_penalty"), 0.0), "frequency_penalty": _number(body.get("frequency_penalty"), 0.0),
        "top_logprobs": body.get("top_logprobs") if isinstance(body.get("top_logprobs"), int) else 0,
        "max_output_tokens": limit, "max_tool_calls": body.get("max_tool_calls") if isinstance(body.get("max_tool_calls"), int) else None,
        "previous_response_id": previous if isinstance(previous, str) else None,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")} if reasoning is not None else None,
        "text": _echo_text(body.get("text")), "truncation": body.get("truncation") or "disabled", "user": body.get("user"),
        "store": body.get("store") is not False, "background": False, "service_tier": "default",
        "safety_identifier": body.get("safety_identifier") if isinstance(body.get("safety_identifier"), str) else None,
        "prompt_cache_key": body.get("prompt_cache_key") if isinstance(body.get("prompt_cache_key"), str) else None,
        "tool_choice": body.get("tool_choice") or "auto", "tools": [_echo_tool(t) for t in body.get("tools") or []],
        "parallel_tool_calls": body.get("parallel_tool_calls") if isinstance(body.get("parallel_tool_calls"), bool) else True,
    }  # fmt: skip


# ------------------------------------------------------------------ reply


def usage_object(usage: Any) -> dict:
    prompt, cached, completion, reasoning = chat_usage(usage)
    total = int(usage.get("total_tokens") or prompt + completion) if isinstance(usage, dict) else prompt + completion
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning}, "total_tokens": total}  # fmt: skip


def _status(finish: str | None) -> tuple[str, dict | None]:
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def tool_item(call: ResponsesCall, call_id: str, chat_name: str, arguments: str, status: str = "completed") -> dict:
    """The output item for one chat tool call, as the client declared the tool."""
    spec = call.tools.get(chat_name) or ToolSpec("function", chat_name)
    if spec.kind == "custom":
        raw = json_arguments(arguments).get("input")
        item: dict[str, Any] = {"id": new_id("ctc"), "type": "custom_tool_call", "status": status, "call_id": call_id,
                                "name": spec.name, "input": raw if isinstance(raw, str) else arguments}  # fmt: skip
    elif spec.kind == "local_shell":
        args = json_arguments(arguments)
        action: dict[str, Any] = {"type": "exec", "command": [str(c) for c in args.get("command") or []], "env": {}}
        if args.get("workdir"):
            action["working_directory"] = str(args["workdir"])
        if isinstance(args.get("timeout_ms"), int):
            action["timeout_ms"] = args["timeout_ms"]
        return {"id": new_id("lsh"), "type": "local_shell_call", "status": status, "call_id": call_id, "action": action}
    else:
        item = {"id": new_id("fc"), "type": "function_call", "status": status, "call_id": call_id, "name": spec.name, "arguments": arguments}
    if spec.namespace:
        item["namespace"] = spec.namespace
    return item


def response_object(call: ResponsesCall, output: list[dict], status: str, incomplete: dict | None, usage: dict | None,
                    error: dict | None = None) -> dict:  # fmt: skip
    return {
        "id": call.response_id, "object": "response", "created_at": call.created_at,
        "completed_at": int(time.time()) if status in ("completed", "incomplete", "failed") else None, "model": call.model,
        "status": status, "error": error, "incomplete_details": incomplete, "output": output, "usage": usage, **call.echo,
    }  # fmt: skip


def _message_item(text: str, status: str = "completed") -> dict:
    return {"id": new_id("msg"), "type": "message", "role": "assistant", "status": status,
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}  # fmt: skip


def _reasoning_item(text: str) -> dict:
    return {"id": new_id("rs"), "type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": text}]}


def from_completion(call: ResponsesCall, completion: dict) -> dict:
    """A chat completion as a Response object."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    output: list[dict] = []
    if message.get("reasoning_content"):
        output.append(_reasoning_item(message["reasoning_content"]))
    if message.get("content"):
        output.append(_message_item(message["content"]))
    for k, tc in enumerate(message.get("tool_calls") or []):
        fn = tc.get("function") or {}
        call_id = safe_tool_id(tc.get("id"), "call", f"{call.response_id[5:]}{k}")
        output.append(tool_item(call, call_id, fn.get("name", ""), fn.get("arguments") or ""))
    status, incomplete = _status(choice.get("finish_reason"))
    return response_object(call, output, status, incomplete, usage_object(completion.get("usage")))


def history_after(call: ResponsesCall, completion: dict) -> list[dict]:
    """The conversation including this reply, for a later previous_response_id."""
    message = dict((completion.get("choices") or [{}])[0].get("message") or {})
    reply = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        reply["tool_calls"] = message["tool_calls"]
    return [*call.history, reply]


def _is_json(text: str) -> bool:
    try:
        json.loads(text or "{}")
    except ValueError:
        return False
    return True


class ResponseStore:
    """Recent responses' conversations, for ``previous_response_id``: in memory, bounded by their
    total size (the oldest go first), each readable only by the owner that stored it (a team, or
    a key without one): an id that leaks is no way into another tenant's conversation."""

    def __init__(self, max_chars: int = 64 * 1024 * 1024, max_entry_chars: int = 8 * 1024 * 1024, max_owner_chars: int | None = None) -> None:
        self.max_chars, self.max_entry_chars = max_chars, max_entry_chars
        self.max_owner_chars = max_owner_chars if max_owner_chars is not None else max_chars
        self._items: OrderedDict[str, tuple[str, list[dict], int]] = OrderedDict()
        self._owners: dict[str, OrderedDict[str, int]] = {}  # each owner's entries, oldest first, and their sizes
        self._owner_chars: dict[str, int] = {}
        self.chars = 0

    def get(self, response_id: str, owner: str) -> list[dict] | None:
        found = self._items.get(response_id)
        if found is None or found[0] != owner:
            return None  # another owner's id reads as unknown: its existence is not confirmed
        self._items.move_to_end(response_id)
        self._owners[owner].move_to_end(response_id)
        return found[1]

    def put(self, response_id: str, owner: str, conversation: list[dict]) -> None:
        size = json_size(conversation)
        if size > self.max_entry_chars:
            return  # too large to keep: a later previous_response_id finds nothing, and says so
        self._drop(response_id)
        self._items[response_id] = (owner, conversation, size)
        mine = self._owners.setdefault(owner, OrderedDict())
        mine[response_id] = size
        self._owner_chars[owner] = self._owner_chars.get(owner, 0) + size
        self.chars += size
        while self._owner_chars[owner] > self.max_owner_chars and len(mine) > 1:  # an owner over its share loses its own oldest
            self._drop(next(iter(mine)))
        while self.chars > self.max_chars and self._items:
            self._drop(next(iter(self._items)))

    def _drop(self, response_id: str) -> None:
        found = self._items.pop(response_id, None)
        if found is None:
            return
        owner, _, size = found
        self.chars -= size
        self._owner_chars[owner] -= size
        mine = self._owners[owner]
        del mine[response_id]
        if not mine:
            del self._owners[owner], self._owner_chars[owner]

    def __len__(self) -> int:
        return len(self._items)


# ------------------------------------------------------------------ stream


@dataclass
class _Call:
    item_id: str
    call_id: str
    chat_name: str
    arguments: str = ""
    output_index: int = -1


EVENT_NAMES = ("openai", "open_responses")
REASONING_EVENTS = {"openai": "response.reasoning_text", "open_responses": "response.reasoning"}


def renamed_event(kind: str, event_names: str) -> str:
    """A Responses event's type under ``event_names`` (only reasoning's names differ)."""
    if event_names == "open_responses" and kind.startswith("response.reasoning_text."):
        return "response.reasoning." + kind[len("response.reasoning_text."):]
    return kind


class ResponsesStream:
    """Chat chunks in, Responses SSE frames out (pure state machine, reference C5).

    ``start()`` before the upstream answers, ``feed(chunk)`` for each chat chunk, then
    ``finish()``; or ``fail(code, message)`` if the upstream breaks after the start.
    """

    def __init__(self, call: ResponsesCall, event_names: str = "openai") -> None:
        self.call = call
        # OpenAI's SDK and Codex read response.reasoning_text.*; the Open Responses specification names response.reasoning.*
        self.reasoning_events = REASONING_EVENTS[event_names]
        self.seq = 0
        self.output: list[dict] = []
        self.text_item: dict | None = None
        self.text = ""
        self.reasoning_item: dict | None = None
        self.reasoning = ""
        self.calls: dict[int, _Call] = {}
        self.open_call: _Call | None = None
        self.finish_reason: str | None = None
        self.usage: dict | None = None
        self.completion_text = ""
        self.tool_calls: list[dict] = []
        self._text_head: tuple[dict, tuple[str, str]] | None = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return sse(kind, payload)

    def start(self) -> list[bytes]:
        snapshot = response_object(self.call, [], "in_progress", None, None)
        return [self._event("response.created", response=snapshot), self._event("response.in_progress", response=snapshot)]

    # -- items

    def _close_text(self, out: list[bytes]) -> None:
        item = self.text_item
        if item is None:
            return
        index = self.output.index(item)
        part = {"type": "output_text", "text": self.text, "annotations": [], "logprobs": []}
        out.append(self._event("response.output_text.done", item_id=item["id"], output_index=index, content_index=0, text=self.text, logprobs=[]))
        out.append(self._event("response.content_part.done", item_id=item["id"], output_index=index, content_index=0, part=part))
        item.update(status="completed", content=[part])
        out.append(self._event("response.output_item.done", output_index=index, item=item))
        self.text_item = None

    def _close_reasoning(self, out: list[bytes]) -> None:
        item = self.reasoning_item
        if item is None:
            return
        index = self.output.index(item)
        part = {"type": "reasoning_text", "text": self.reasoning}
        out.append(self._event(f"{self.reasoning_events}.done", item_id=item["id"], output_index=index, content_index=0, text=self.reasoning))
        out.append(self._event("response.content_part.done", item_id=item["id"], output_index=index, content_index=0, part=part))
        item["content"] = [part]
        out.append(self._event("response.output_item.done", output_index=index, item=item))
        self.reasoning_item = None

    def _close_call(self, out: list[bytes]) -> None:
        open_call = self.open_call
        if open_call is None:
            return
        self.open_call = None
        index = open_call.output_index
        if self.call.tools.get(open_call.chat_name, ToolSpec("function", "")).kind == "function" and not _is_json(open_call.arguments):
            open_call.arguments = json.dumps(json_arguments(open_call.arguments))  # cut short: the final item stays valid JSON
        item = tool_item(self.call, open_call.call_id, open_call.chat_name, open_call.arguments)
        item["id"] = open_call.item_id
        if item["type"] == "function_call":
            out.append(self._event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                                   arguments=open_call.arguments, name=item["name"]))  # fmt: skip
        elif item["type"] == "custom_tool_call":
            out.append(self._event("response.custom_tool_call_input.delta", item_id=item["id"], output_index=index, delta=item["input"]))
            out.append(self._event("response.custom_tool_call_input.done", item_id=item["id"], output_index=index, input=item["input"]))
        self.output[index] = item
        out.append(self._event("response.output_item.done", output_index=index, item=item))

    def _open(self, item: dict, out: list[bytes]) -> int:
        self.output.append(item)
        index = len(self.output) - 1
        out.append(self._event("response.output_item.added", output_index=index, item=item))
        return index

    # -- feeding

    def feed(self, chunk: dict) -> list[bytes]:
        usage, delta, finish, plain = read_chunk(chunk)
        if usage:
            self.usage = usage
        if delta is None:
            return []
        if plain is not None and self.text_item is not None:
            return [self._text_delta(plain)]  # most events: more text for the open message
        out: list[bytes] = []
        if delta.get("reasoning_content"):
            self._reasoning(delta["reasoning_content"], out)
        if delta.get("content"):
            self._text(delta["content"], out)
        for tc in delta.get("tool_calls") or []:
            self._tool_call(tc, out)
        if finish:
            self.finish_reason = finish
        return out

    def _reasoning(self, text: str, out: list[bytes]) -> None:
        if self.reasoning_item is None:
            if self.text_item is not None or self.open_call is not None or self.reasoning:
                return  # reasoning after the answer began: not shown (clients expect it first)
            self.reasoning_item = {"id": new_id("rs"), "type": "reasoning", "summary": []}
            self._open(self.reasoning_item, out)
            # Its text is a content part, opened and closed as a message's is (openai-python's
            # ResponseContentPartAddedEvent takes a reasoning_text part).
            out.append(self._event("response.content_part.added", item_id=self.reasoning_item["id"], output_index=self.output.index(self.reasoning_item),
                                   content_index=0, part={"type": "reasoning_text", "text": ""}))  # fmt: skip
        self.reasoning += text
        index = self.output.index(self.reasoning_item)
        out.append(self._event(f"{self.reasoning_events}.delta", item_id=self.reasoning_item["id"], output_index=index, content_index=0, delta=text))

    def _text(self, text: str, out: list[bytes]) -> None:
        self._close_reasoning(out)
        self._close_call(out)
        if self.text_item is None:
            if self.text:  # text after tool calls: a new message item
                self.text = ""
            self.text_item = {"id": new_id("msg"), "type": "message", "role": "assistant", "status": "in_progress", "content": []}
            index = self._open(self.text_item, out)
            out.append(self._event("response.content_part.added", item_id=self.text_item["id"], output_index=index, content_index=0,
                                   part={"type": "output_text", "text": "", "annotations": [], "logprobs": []}))  # fmt: skip
        out.append(self._text_delta(text))

    def _text_delta(self, text: str) -> bytes:
        """``response.output_text.delta`` for the open message, built as text (most events are these)."""
        assert self.text_item is not None
        self.text += text
        self.completion_text += text
        if self._text_head is None or self._text_head[0] is not self.text_item:
            head = ('event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":',
                    f',"item_id":"{self.text_item["id"]}","output_index":{self.output.index(self.text_item)},"content_index":0,"delta":')
            self._text_head = (self.text_item, head)
        prefix, middle = self._text_head[1]
        frame = f'{prefix}{self.seq}{middle}{encode_text(text)},"logprobs":[]}}\n\n'
        self.seq += 1
        return frame.encode("utf-8")

    def _tool_call(self, tc: dict, out: list[bytes]) -> None:
        k = tc.get("index", 0)
        fn = tc.get("function") or {}
        known = self.calls.get(k)
        if known is None:
            self._close_reasoning(out)
            self._close_text(out)
            self._close_call(out)
            call_id = safe_tool_id(tc.get("id"), "call", f"{self.call.response_id[5:]}{k}")  # the first id is kept
            known = self.calls[k] = _Call(item_id=new_id("fc"), call_id=call_id, chat_name=fn.get("name") or "")
            self.tool_calls.append({"id": call_id, "type": "function", "function": {"name": known.chat_name, "arguments": ""}})
            spec = self.call.tools.get(known.chat_name) or ToolSpec("function", known.chat_name)
            placeholder = tool_item(self.call, call_id, known.chat_name, "", status="in_progress")
            placeholder["id"] = known.item_id
            if spec.kind == "function":
                placeholder["arguments"] = ""
            known.output_index = self._open(placeholder, out)
            self.open_call = known
        elif known is not self.open_call:
            return  # a fragment for a call already closed: chat streams do not interleave calls
        arguments = fn.get("arguments") or ""
        if not arguments:
            return
        known.arguments += arguments
        self.tool_calls[-1]["function"]["arguments"] = known.arguments
        if self.output[known.output_index]["type"] == "function_call":
            out.append(self._event("response.function_call_arguments.delta", item_id=known.item_id, output_index=known.output_index, delta=arguments))

    def finish(self) -> list[bytes]:
        """Upstream ended: close what is open and send the one terminal event."""
        out: list[bytes] = []
        self._close_reasoning(out)
        self._close_text(out)
        self._close_call(out)
        status, incomplete = _status(self.finish_reason)
        final = response_object(self.call, self.output, status, incomplete, usage_object(self.usage))
        out.append(self._event("response.completed" if status == "completed" else "response.incomplete", response=final))
        return out

    def fail(self, code: str, message: str) -> list[bytes]:
        final = response_object(self.call, self.output, "failed", None, usage_object(self.usage), error={"code": code, "message": message})
        return [self._event("response.failed", response=final)]

    def completion(self) -> dict:
        """What was streamed, as a chat completion (for the previous_response_id store)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.completion_text or None}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        return {"choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}]}
