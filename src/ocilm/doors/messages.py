"""Anthropic's Messages API (``POST /v1/messages``, spoken by Claude Code and the Anthropic SDK)
onto chat completions, and chat completions back: request mapping, reply mapping and a stream
state machine fed chat chunks (pure; the gateway does the I/O).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ._common import (
    MAX_TOOLS,
    DoorError,
    chat_usage,
    encode_text,
    estimate_tokens,
    json_arguments,
    new_id,
    read_chunk,
    safe_tool_id,
    sse,
)

log = logging.getLogger("ocilm.gateway")
MAX_OUTPUT_TOKENS = 2**31 - 1  # OCI's maxTokens is a 32-bit integer

EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
_BILLING_PREFIX = "x-anthropic-billing-header:"
ACCEPTED = frozenset({
    "model", "messages", "max_tokens", "system", "tools", "tool_choice", "stop_sequences", "temperature", "top_p",
    "top_k", "metadata", "thinking", "output_config", "context_management", "cache_control", "service_tier",
    "container", "inference_geo", "stream", "mcp_servers", "betas",
})  # fmt: skip
# Anthropic's error types by HTTP status (B7).
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
               413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 502: "api_error", 503: "overloaded_error",
               504: "api_error", 529: "overloaded_error"}  # fmt: skip


def error_body(status: int, message: str) -> dict:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error"),
                                       "message": message}, "request_id": new_id("req")}  # fmt: skip


@dataclass
class MessagesCall:
    model: str
    stream: bool
    chat: dict[str, Any]
    input_estimate: int  # a local estimate of the prompt's tokens (message_start needs one at once)
    message_id: str = field(default_factory=lambda: new_id("msg"))

    def stop(self, finish: str | None, has_calls: bool) -> tuple[str, str | None]:
        """Anthropic's ``stop_reason`` and ``stop_sequence``. OCI says only "stop" whether the
        model ended or met a stop sequence; when the client sent stop sequences, the stop is
        reported as one of them (the only one, or the first: OCI does not say which)."""
        reason = stop_reason(finish, has_calls)
        stops = self.chat.get("stop")
        if reason == "end_turn" and finish == "stop" and isinstance(stops, list) and stops:
            return "stop_sequence", str(stops[0])
        return reason, None


# ------------------------------------------------------------------ request


def _image(source: Any, where: str) -> dict:
    if isinstance(source, dict) and source.get("type") == "base64" and isinstance(source.get("data"), str):
        return {"type": "image_url", "image_url": {"url": f"data:{source.get('media_type', 'image/png')};base64,{source['data']}"}}
    if isinstance(source, dict) and source.get("type") == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise DoorError(f"{where}.source: expected a base64 or url image source", param=f"{where}.source")


def _document_text(block: dict, where: str) -> str:
    source = block.get("source") or {}
    kind = source.get("type")
    if kind == "text":
        text = str(source.get("data", ""))
    elif kind == "content":
        text = "".join(str(b.get("text", "")) for b in source.get("content") or [] if isinstance(b, dict))
    else:
        raise DoorError(f"{where}: only text documents can reach OCI (no PDF or URL documents)", param=where)
    title = block.get("title")
    return f"{title}\n\n{text}" if title else text


def _tool_result_content(content: Any, images: list[dict], where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for j, block in enumerate(content if isinstance(content, list) else []):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "image":
            images.append(_image(block.get("source"), f"{where}.content[{j}]"))
        elif kind == "document":
            texts.append(_document_text(block, f"{where}.content[{j}]"))
        elif kind == "search_result":
            texts.append("".join(str(b.get("text", "")) for b in block.get("content") or [] if isinstance(b, dict)))
    return "\n".join(texts)


def _user_turn(blocks: list, where: str) -> list[dict]:
    """One Anthropic user message: its tool results first, one tool message each, then the rest."""
    tools: list[dict] = []
    parts: list[dict] = []
    images: list[dict] = []
    for j, block in enumerate(blocks):
        at = f"{where}.content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_image(block.get("source"), at))
        elif kind == "document":
            parts.append({"type": "text", "text": _document_text(block, at)})
        elif kind == "tool_result":
            tool_use_id = block.get("tool_use_id")
            if not isinstance(tool_use_id, str) or not tool_use_id:
                raise DoorError(f"{at}.tool_use_id: required", param=f"{at}.tool_use_id")
            text = _tool_result_content(block.get("content"), images, at)
            if block.get("is_error"):
                text = f"ERROR: {text}"
            tools.append({"role": "tool", "tool_call_id": safe_tool_id(tool_use_id, "toolu", ""), "content": text})
        elif kind in ("search_result",):
            parts.append({"type": "text", "text": _tool_result_content([block], images, at)})
        elif kind is None:
            raise DoorError(f"{at}: expected a content block with a type", param=at)
        # thinking, redacted_thinking, server_tool_use, web_search_tool_result, tool_reference, ...: dropped
    out = list(tools)
    parts += images
    if parts:
        out.append({"role": "user", "content": parts if any(p["type"] != "text" for p in parts) else "".join(p["text"] for p in parts)})
    return out


def _assistant_turn(blocks: list, where: str) -> dict:
    text = []
    calls = []
    for j, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            text.append(str(block.get("text", "")))
        elif kind == "tool_use":
            if not block.get("id") or not block.get("name"):
                raise DoorError(f"{where}.content[{j}]: a tool_use block needs an id and a name", param=f"{where}.content[{j}]")
            calls.append({"id": safe_tool_id(block["id"], "toolu", ""), "type": "function",
                          "function": {"name": block["name"], "arguments": json.dumps(block.get("input") or {})}})  # fmt: skip
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def map_messages(messages: Any) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise DoorError("messages: expected a non-empty list of messages", param="messages")
    out: list[dict] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant", "system"):
            raise DoorError(f"{where}.role: expected user or assistant", param=f"{where}.role")
        content = m.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list):
            raise DoorError(f"{where}.content: expected a string or a list of content blocks", param=f"{where}.content")
        if m["role"] == "assistant":
            out.append(_assistant_turn(blocks, where))
        elif m["role"] == "system":
            out.append({"role": "system", "content": "".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict))})
        else:
            out += _user_turn(blocks, where)
    return out


def _system(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = [str(b.get("text", "")) for b in value if isinstance(b, dict) and b.get("type") == "text"]
        # Claude Code's first block changes on every request; it means nothing to OCI.
        return "\n\n".join(t for t in texts if not t.startswith(_BILLING_PREFIX))
    raise DoorError("system: expected a string or a list of text blocks", param="system")


def map_tools(raw: Any) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise DoorError("tools: expected a list of tools", param="tools")
    if len(raw) > MAX_TOOLS:
        raise DoorError(f"tools: at most {MAX_TOOLS} tools", param="tools")
    out, skipped = [], []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict):
            raise DoorError(f"tools[{i}]: expected an object", param=f"tools[{i}]")
        if tool.get("type") not in (None, "custom"):
            skipped.append(str(tool.get("type")))  # a server tool (web search, code execution, ...): runs on Anthropic's side
            continue
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise DoorError(f"tools[{i}].name: required", param=f"tools[{i}].name")
        fn: dict[str, Any] = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object", "properties": {}}}
        if tool.get("description"):
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    if skipped:
        log.warning("messages: skipped server tools OCI cannot run: %s", ", ".join(sorted(set(skipped))))
    return out


def _thinking_effort(body: dict) -> str | None:
    config: dict = body["output_config"] if isinstance(body.get("output_config"), dict) else {}
    if config.get("effort") is not None:
        if config["effort"] not in EFFORTS:
            raise DoorError(f"output_config.effort: expected one of {', '.join(EFFORTS)}", param="output_config.effort")
        return EFFORTS[config["effort"]]
    thinking = body.get("thinking")
    if not isinstance(thinking, dict):
        return None
    if thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens") or 0
        return "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"
    if thinking.get("type") == "adaptive":
        return "medium"
    return None


def parse_request(body: dict, *, counting: bool = False) -> MessagesCall:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise DoorError("model: required", param="model")
    unknown = sorted(set(body) - ACCEPTED)
    if unknown:
        raise DoorError(f"unknown parameter(s): {', '.join(unknown)}", param=unknown[0])
    limit = body.get("max_tokens")
    if not counting and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_OUTPUT_TOKENS):
        raise DoorError(f"max_tokens: required, a whole number from 1 to {MAX_OUTPUT_TOKENS}", param="max_tokens")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise DoorError("stream: expected true or false", param="stream")
    system = _system(body.get("system"))
    messages = ([{"role": "system", "content": system}] if system else []) + map_messages(body.get("messages"))
    chat: dict[str, Any] = {"messages": messages}
    if limit is not None:
        chat["max_tokens"] = limit
    tools = map_tools(body.get("tools"))
    if tools:
        chat["tools"] = tools
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            kind = choice.get("type")
            if kind == "any":
                chat["tool_choice"] = "required"
            elif kind == "tool" and isinstance(choice.get("name"), str):
                chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
            elif kind in ("auto", "none"):
                chat["tool_choice"] = kind
            if choice.get("disable_parallel_tool_use"):
                chat["parallel_tool_calls"] = False
    if body.get("stop_sequences"):
        chat["stop"] = body["stop_sequences"]
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            chat[name] = body[name]
    effort = _thinking_effort(body)
    if effort is not None:
        chat["reasoning_effort"] = effort
    config: dict = body["output_config"] if isinstance(body.get("output_config"), dict) else {}
    fmt = config.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        chat["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt.get("schema") or {}}}
    estimate = estimate_tokens(json.dumps(messages)) + (estimate_tokens(json.dumps(tools)) if tools else 0)
    return MessagesCall(model=model, stream=stream, chat=chat, input_estimate=estimate)


# ------------------------------------------------------------------ reply

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def stop_reason(finish: str | None, has_calls: bool) -> str:
    if finish == "length":
        return "max_tokens"
    if has_calls:
        return "tool_use"
    return _STOP.get(finish or "stop", "end_turn")


def usage_object(usage: Any, fallback_input: int = 0) -> dict:
    if not isinstance(usage, dict):
        return {"input_tokens": fallback_input, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    prompt, cached, completion, _ = chat_usage(usage)
    return {"input_tokens": max(prompt - cached, 0), "output_tokens": completion, "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached}


def signature(text: str) -> str:
    """An opaque, non-empty signature for a thinking block (the gateway's own; it is not verified)."""
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def from_completion(call: MessagesCall, completion: dict) -> dict:
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict] = []
    if message.get("reasoning_content"):
        content.append({"type": "thinking", "thinking": message["reasoning_content"], "signature": signature(message["reasoning_content"])})
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    calls = message.get("tool_calls") or []
    for k, tc in enumerate(calls):
        fn = tc.get("function") or {}
        content.append({"type": "tool_use", "id": safe_tool_id(tc.get("id"), "toolu", f"{call.message_id[4:]}{k}"),
                        "name": fn.get("name", ""), "input": json_arguments(fn.get("arguments") or "")})  # fmt: skip
    return {"id": call.message_id, "type": "message", "role": "assistant", "model": call.model, "content": content,
            **dict(zip(("stop_reason", "stop_sequence"), call.stop(choice.get("finish_reason"), bool(calls)), strict=True)),
            "usage": usage_object(completion.get("usage"), call.input_estimate)}  # fmt: skip


# ------------------------------------------------------------------ stream


class MessagesStream:
    """Chat chunks in, Anthropic SSE frames out (pure state machine, reference C6).

    Blocks are opened and closed in order (thinking, text, each tool call), never interleaved;
    usage in ``message_delta`` is cumulative and includes the final input tokens. A tool's
    input is sent in one ``input_json_delta`` when its block closes, always valid JSON.
    """

    def __init__(self, call: MessagesCall) -> None:
        self.call = call
        self.index = -1
        self.open: str | None = None  # "thinking" | "text" | "tool"
        self.thinking = ""
        self.tools: dict[int, int] = {}  # chat tool index -> block index
        self.open_tool: int | None = None
        self.arguments = ""  # the open tool block's input so far
        self.finish: str | None = None
        self.usage: dict | None = None
        self.had_calls = False

    def start(self) -> list[bytes]:
        message: dict[str, Any] = {"id": self.call.message_id, "type": "message", "role": "assistant", "model": self.call.model, "content": [],
                   "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": self.call.input_estimate, "output_tokens": 1, "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": 0}}  # fmt: skip
        return [sse("message_start", {"type": "message_start", "message": message})]

    def _close(self, out: list[bytes]) -> None:
        if self.open is None:
            return
        if self.open == "tool":
            # The input goes out whole, as valid JSON, when the block closes: a reply cut short
            # mid-arguments would otherwise leave the client a partial JSON it cannot parse.
            arguments = json.dumps(json_arguments(self.arguments)) if self.arguments else ""
            if arguments:
                out.append(sse("content_block_delta", {"type": "content_block_delta", "index": self.index,
                                                       "delta": {"type": "input_json_delta", "partial_json": arguments}}))  # fmt: skip
            self.arguments = ""
        if self.open == "thinking":
            out.append(sse("content_block_delta", {"type": "content_block_delta", "index": self.index,
                                                   "delta": {"type": "signature_delta", "signature": signature(self.thinking)}}))  # fmt: skip
        out.append(sse("content_block_stop", {"type": "content_block_stop", "index": self.index}))
        self.open = None
        self.open_tool = None

    def _begin(self, kind: str, block: dict, out: list[bytes]) -> None:
        self._close(out)
        self.index += 1
        self.open = kind
        out.append(sse("content_block_start", {"type": "content_block_start", "index": self.index, "content_block": block}))

    def feed(self, chunk: dict) -> list[bytes]:
        usage, delta, finish, plain = read_chunk(chunk)
        if usage:
            self.usage = usage
        if delta is None:
            return []
        if plain is not None and self.open == "text":  # most events: more text for the open block, built as text
            return [f'event: content_block_delta\ndata: {{"type":"content_block_delta","index":{self.index},'
                    f'"delta":{{"type":"text_delta","text":{encode_text(plain)}}}}}\n\n'.encode()]  # fmt: skip
        out: list[bytes] = []
        thinking = delta.get("reasoning_content")
        if thinking and self.open != "text" and self.open != "tool":  # thinking comes first, or not at all
            if self.open != "thinking":
                self._begin("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
            self.thinking += thinking
            out.append(sse("content_block_delta", {"type": "content_block_delta", "index": self.index,
                                                   "delta": {"type": "thinking_delta", "thinking": thinking}}))  # fmt: skip
        text = delta.get("content")
        if text:
            if self.open != "text":
                self._begin("text", {"type": "text", "text": ""}, out)
            out.append(sse("content_block_delta", {"type": "content_block_delta", "index": self.index,
                                                   "delta": {"type": "text_delta", "text": text}}))  # fmt: skip
        for tc in delta.get("tool_calls") or []:
            self._tool(tc, out)
        if finish:
            self.finish = finish
        return out

    def _tool(self, tc: dict, out: list[bytes]) -> None:
        k = tc.get("index", 0)
        fn = tc.get("function") or {}
        if k not in self.tools:
            tool_id = safe_tool_id(tc.get("id"), "toolu", f"{self.call.message_id[4:]}{k}")  # the first id is kept
            self._begin("tool", {"type": "tool_use", "id": tool_id, "name": fn.get("name") or "", "input": {}}, out)
            self.tools[k] = self.index
            self.open_tool = k
            self.had_calls = True
        elif self.open_tool != k:
            return  # a fragment for a closed block: chat streams do not interleave calls
        self.arguments += fn.get("arguments") or ""

    def finish_events(self) -> list[bytes]:
        out: list[bytes] = []
        self._close(out)
        usage = usage_object(self.usage, self.call.input_estimate)
        reason, sequence = self.call.stop(self.finish, self.had_calls)
        out.append(sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence},
                                         "usage": usage}))  # fmt: skip
        out.append(sse("message_stop", {"type": "message_stop"}))
        return out

    def fail(self, status: int, message: str) -> list[bytes]:
        body = error_body(status, message)
        return [sse("error", {"type": "error", "error": body["error"]})]


def count_tokens(body: dict) -> dict:
    """``{"input_tokens": N}``, estimated locally (OCI has no token-counting endpoint)."""
    call = parse_request(body, counting=True)
    return {"input_tokens": call.input_estimate}


def model_list(names: list[str], created: int) -> dict:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
    data = [{"type": "model", "id": n, "display_name": n, "created_at": stamp, "lifecycle": "active"} for n in names]
    return {"data": data, "has_more": False, "first_id": names[0] if names else None, "last_id": names[-1] if names else None}
