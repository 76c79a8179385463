"""What the GENERIC and COHERE translators share: parameter checks, usage, ids, finish reasons."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .._capabilities import ModelInfo
from .._errors import InternalServerError, InvalidParameterError, UnsupportedParamsError

# OpenAI chat parameters (plus OCI's top_k and Cohere's documents) that ocilm understands.
CHAT_PARAMS = frozenset({
    "temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens", "n", "stop", "seed",
    "frequency_penalty", "presence_penalty", "logprobs", "top_logprobs", "logit_bias", "tools",
    "tool_choice", "parallel_tool_calls", "response_format", "reasoning_effort", "stream_options",
    "metadata", "verbosity", "service_tier", "prediction", "web_search_options", "user",
    "documents", "extra_body", "store", "modalities",
})  # fmt: skip
# OpenAI bookkeeping with no meaning for OCI: accepted and not sent (user ids, storing the
# completion on OpenAI's side). metadata and service_tier are sent where the format has them.
BOOKKEEPING_PARAMS = frozenset({"user", "store", "modalities"})
# chatRequest fields that ocilm itself sets from the call: extra_body may not replace them,
# or a stream could be turned into a plain reply, or the conversation swapped.
RESERVED_FIELDS = frozenset({"apiFormat", "isStream", "streamOptions", "messages", "message", "chatHistory",
                             "toolResults", "servingMode", "compartmentId"})  # fmt: skip
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high")


@dataclass
class ChatContext:
    """One call's translation settings (no I/O, no credentials)."""

    model: str  # the model name shown in responses (without "oci/")
    info: ModelInfo
    stream: bool = False
    include_usage: bool = False
    drop_params: bool = False
    dropped: list[str] = field(default_factory=list)

    def unsupported(self, param: str, why: str = "") -> None:
        """Raise for a parameter this model cannot take, or note it dropped with drop_params."""
        if self.drop_params:
            self.dropped.append(param)
            return
        reason = f" ({why})" if why else ""
        raise UnsupportedParamsError(
            f"{param} is not supported by model {self.model!r} (API format {self.info.api_format}){reason}; "
            "remove it, or pass drop_params=True to drop unsupported parameters",
            param=param,
        )


def bad(param: str, problem: str) -> InvalidParameterError:
    return InvalidParameterError(f"{param}: {problem}", param=param)


def expect(params: dict, name: str, kinds: tuple[type, ...], what: str) -> Any:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) and bool not in kinds:
        raise bad(name, f"expected {what}, got {value!r}")
    if not isinstance(value, kinds):
        raise bad(name, f"expected {what}, got {type(value).__name__}")
    return value


def number(params: dict, name: str, low: float | None = None, high: float | None = None) -> float | None:
    value = expect(params, name, (int, float), "a number")
    if value is not None and ((low is not None and value < low) or (high is not None and value > high)):
        raise bad(name, f"must be between {low} and {high}, got {value}")
    return value


def integer(params: dict, name: str, low: int | None = None) -> int | None:
    value = expect(params, name, (int,), "an integer")
    if value is not None and low is not None and value < low:
        raise bad(name, f"must be at least {low}, got {value}")
    return value


def stop_list(params: dict, name: str = "stop") -> list[str] | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value)
    raise bad(name, "expected a string or a list of strings")


def sampling(p: dict, req: dict, *, penalties: tuple[float, float], top_k_low: int, stop_field: str) -> None:
    """temperature, top_p, the penalties, top_k, seed and stop, checked and set under OCI's names
    (the formats differ only in the penalties' range, top_k's floor and the stop field)."""
    for name, oci_name, low, high in (("temperature", "temperature", 0, 2), ("top_p", "topP", 0, 1),
                                      ("frequency_penalty", "frequencyPenalty", *penalties), ("presence_penalty", "presencePenalty", *penalties)):  # fmt: skip
        value = number(p, name, low, high)
        if value is not None:
            req[oci_name] = value
    if (top_k := integer(p, "top_k", top_k_low)) is not None:
        req["topK"] = top_k
    if (seed := integer(p, "seed")) is not None:
        req["seed"] = seed
    if (stop := stop_list(p)) is not None:
        req[stop_field] = stop


def output_limit(params: dict) -> int | None:
    max_tokens = integer(params, "max_tokens", 1)
    max_completion = integer(params, "max_completion_tokens", 1)
    return max_completion if max_completion is not None else max_tokens


def message_list(messages: Any) -> list[dict]:
    """The messages as a list of dicts; any sequence of mappings is accepted (``Messages``)."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise bad("messages", "expected a non-empty list of {'role': ..., 'content': ...} objects")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m:
            raise bad(f"messages[{i}]", "each message must be an object with a 'role'")
        out.append(m if type(m) is dict else dict(m))
    return out


_DETAIL = {"auto": "AUTO", "high": "HIGH", "low": "LOW"}


def image_url(part: dict, at: str, ctx: ChatContext) -> dict:
    """OCI's ``imageUrl`` object for an OpenAI ``image_url`` content part, checked."""
    image = part.get("image_url")
    url, detail = (image, None) if isinstance(image, str) else (image.get("url"), image.get("detail")) if isinstance(image, dict) else (None, None)
    if not isinstance(url, str) or not url:
        raise bad(f"{at}.image_url", "expected a URL or data URI string, or {'url': ..., 'detail': ...}")
    if ctx.info.vision is False:
        raise bad(at, f"model {ctx.model!r} does not accept images; use a vision model such as meta.llama-3.2-90b-vision-instruct "
                      "or cohere.command-a-vision-07-2025")  # fmt: skip
    out: dict[str, Any] = {"url": url}
    if detail is not None:
        if str(detail).lower() not in _DETAIL:
            raise bad(f"{at}.image_url.detail", f"expected one of auto, high, low, got {detail!r}")
        out["detail"] = _DETAIL[str(detail).lower()]
    return out


PartBuilder = Callable[[dict, str, "ChatContext"], dict]


def content_parts(content: Any, where: str, ctx: ChatContext, builders: Mapping[str, PartBuilder], family: str = "") -> list[dict]:
    """A message's ``content`` as OCI parts: a string is one TEXT part; in a list, strings and
    ``text`` parts become TEXT and every other part is built by ``builders`` under its type, in
    the order OpenAI lists them. ``family`` ends the error for a type the format cannot carry."""
    if isinstance(content, str):
        return [{"type": "TEXT", "text": content}]
    if not isinstance(content, list):
        raise bad(f"{where}.content", "expected a string or a list of content parts")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        if isinstance(part, str):
            parts.append({"type": "TEXT", "text": part})
            continue
        kind = part.get("type") if isinstance(part, dict) else None
        at = f"{where}.content[{j}]"
        build = builders.get(kind) if isinstance(kind, str) else None
        if kind == "text":
            parts.append({"type": "TEXT", "text": str(part.get("text", ""))})
        elif build is not None:
            parts.append(build(part, at, ctx))
        else:
            valid = ["text", *builders]
            raise bad(f"{at}.type", f"unsupported content part {kind!r}{family}; expected {', '.join(valid[:-1])} or {valid[-1]}")
    return parts


def join_text(parts: Any) -> str:
    """The text of OCI content parts (``[{"type": "TEXT", "text": ...}, ...]``)."""
    return "".join(p.get("text", "") for p in parts or () if p.get("type") == "TEXT")


def request_params(params: dict, ctx: ChatContext, ignore: frozenset[str] = frozenset()) -> dict:
    """The parameters a translator acts on: unknown and unsupported ones raised (or dropped
    with drop_params), None values and OpenAI bookkeeping left out."""
    for name in sorted(set(params) - CHAT_PARAMS):
        ctx.unsupported(name, "not an OpenAI chat parameter ocilm knows")
    for name in sorted(ctx.info.unsupported & {k for k, v in params.items() if v is not None}):
        if name == "n" and params["n"] == 1:
            continue
        ctx.unsupported(name)
    modalities = params.get("modalities")
    if modalities is not None and modalities != ["text"]:
        ctx.unsupported("modalities", "OCI models answer with text only: use ['text'] or leave it out")
    if params.get("store") is not None and not isinstance(params["store"], bool):
        raise bad("store", "expected true or false")
    skip = BOOKKEEPING_PARAMS | ignore
    return {k: v for k, v in params.items() if v is not None and k in CHAT_PARAMS and k not in ctx.dropped and k not in skip}


def finish_request(req: dict, p: dict, ctx: ChatContext) -> dict:
    """Stream flags and ``extra_body``, the same for every format."""
    if ctx.stream:
        req["isStream"] = True
        if ctx.include_usage:
            req["streamOptions"] = {"isIncludeUsage": True}
    if p.get("extra_body"):
        extra = expect(p, "extra_body", (dict,), "an object of extra OCI chatRequest fields")
        reserved = sorted(RESERVED_FIELDS & set(extra))
        if reserved:
            raise bad("extra_body", f"cannot set {', '.join(reserved)}: ocilm sets these from the call itself")
        req.update(extra)
    return req


def text_content(content: Any, where: str) -> str:
    """Text of a message's content: a string, or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise bad(f"{where}.content[{j}]", f"this message can only carry text parts, got {kind!r}")
        return "".join(texts)
    raise bad(f"{where}.content", "expected a string or a list of content parts")


def tool_functions(tools: Any, ctx: ChatContext) -> list[dict]:
    """OpenAI ``tools`` → list of their ``function`` objects, validated.

    ``strict`` has no OCI counterpart (GENERIC or COHERE): ``strict: true`` is unsupported.
    """
    if not isinstance(tools, list):
        raise bad("tools", "expected a list of {'type': 'function', 'function': {...}} objects")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(tool.get("function"), dict):
            raise bad(f"tools[{i}]", "expected {'type': 'function', 'function': {'name': ..., 'parameters': {...}}}")
        fn = tool["function"]
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            raise bad(f"tools[{i}].function.name", "a function name is required")
        if fn.get("parameters") is not None and not isinstance(fn["parameters"], dict):
            raise bad(f"tools[{i}].function.parameters", "expected a JSON Schema object such as {'type': 'object', 'properties': {...}}")
        if fn.get("strict"):
            ctx.unsupported(f"tools[{i}].function.strict", "OCI has no strict mode for function schemas")
        out.append(fn)
    return out


def assistant_tool_calls(calls: Any, where: str) -> list[tuple[str, str, str]]:
    """An assistant message's ``tool_calls`` as (id, name, arguments text), checked."""
    if not isinstance(calls, list):
        raise bad(f"{where}.tool_calls", "expected a list")
    out = []
    for k, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not call.get("id") or not fn.get("name"):
            raise bad(f"{where}.tool_calls[{k}]", "expected {'id': ..., 'type': 'function', 'function': {'name': ..., 'arguments': '...'}}")
        out.append((call["id"], fn["name"], arguments_text(fn.get("arguments"))))
    return out


def parse_arguments(arguments: Any, where: str) -> dict:
    if isinstance(arguments, dict):
        return arguments
    if arguments in (None, ""):
        return {}
    try:
        value = json.loads(arguments)
    except (TypeError, ValueError):
        raise bad(where, "tool call arguments must be a JSON object string") from None
    if not isinstance(value, dict):
        raise bad(where, "tool call arguments must be a JSON object")
    return value


def arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments or {})


def chat_id(request_id: str | None) -> str:
    seed = (request_id or "").split("/")[0] or hashlib.sha256(str(time.time_ns()).encode()).hexdigest()
    return "chatcmpl-" + seed.lower()[:32]


def tool_call_id(seed: str, *parts: object) -> str:
    return "call_" + hashlib.sha256("/".join(map(str, (seed, *parts))).encode()).hexdigest()[:24]


def created_from(time_created: Any) -> int:
    if isinstance(time_created, (int, float)):
        return int(time_created)
    if isinstance(time_created, str):
        try:
            return int(datetime.fromisoformat(time_created.replace("Z", "+00:00")).timestamp())
        except ValueError:
            pass
    return int(time.time())


def openai_usage(usage: dict | None) -> dict | None:
    if not usage:
        return None
    prompt = usage.get("promptTokens") or 0
    total = usage.get("totalTokens")
    completion = usage.get("completionTokens")
    if completion is None:
        completion = max(0, (total or 0) - prompt)
    reasoning = (usage.get("completionTokensDetails") or {}).get("reasoningTokens") or 0
    if total is not None and reasoning and total == prompt + completion + reasoning:
        # Gemini counts reasoning outside completionTokens; OpenAI's convention counts it inside.
        completion += reasoning
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total if total is not None else prompt + completion,
    }
    prompt_details = usage.get("promptTokensDetails") or {}
    completion_details = usage.get("completionTokensDetails") or {}
    out["prompt_tokens_details"] = {"cached_tokens": prompt_details.get("cachedTokens") or 0}
    out["completion_tokens_details"] = {
        "reasoning_tokens": completion_details.get("reasoningTokens") or 0,
        "accepted_prediction_tokens": completion_details.get("acceptedPredictionTokens") or 0,
        "rejected_prediction_tokens": completion_details.get("rejectedPredictionTokens") or 0,
    }
    return out


_FINISH = {
    "stop": "stop", "complete": "stop", "end_turn": "stop", "stop_sequence": "stop", "eos": "stop",
    "length": "length", "max_tokens": "length", "max_completion_tokens": "length", "error_limit": "length",
    "tool_calls": "tool_calls", "tool_call": "tool_calls", "function_call": "tool_calls",
    "content_filter": "content_filter", "error_toxic": "content_filter", "safety": "content_filter",
}  # fmt: skip


def finish_reason(raw: Any, has_tool_calls: bool) -> str:
    """OpenAI finish_reason; tool calls are detected by presence (some models say 'stop')."""
    if has_tool_calls:
        return "tool_calls"
    return _FINISH.get(str(raw or "stop").lower(), "stop")


def completion_object(ctx: ChatContext, request_id: str | None, created: int, choices: list, usage: dict | None) -> dict:
    return {
        "id": chat_id(request_id),
        "object": "chat.completion",
        "created": created,
        "model": ctx.model,
        "choices": choices,
        "usage": usage,
        "system_fingerprint": None,
    }


def delta_object(delta: dict) -> dict:
    """A chunk's delta with ``content`` and ``tool_calls`` always present (None when absent),
    so ``chunk["choices"][0]["delta"]["content"]`` works on every chunk, the last included."""
    return {"content": None, "tool_calls": None, **delta}


def chunk_object(ctx: ChatContext, stream_id: str, created: int, choices: list, usage: dict | None = None) -> dict:
    chunk = {
        "id": stream_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": ctx.model,
        "choices": choices,
        "system_fingerprint": None,
    }
    if ctx.include_usage:
        chunk["usage"] = usage
    return chunk


class SingleChoiceStream:
    """What the Cohere stream translators share: one choice, a role on the first chunk, and a
    terminal event (the one with ``finishReason``) that finishes it and carries usage."""

    def __init__(self, ctx: ChatContext, request_id: str | None, created: int) -> None:
        self.ctx = ctx
        self.id = chat_id(request_id)
        self.created = created
        self.started = False
        self.finished = False
        self.saw_text = False
        self.calls: list[str] = []  # tool call ids by OpenAI index

    def _chunk(self, delta: dict, finish: str | None = None) -> dict:
        if not self.started:
            delta = {"role": "assistant", **delta}
            self.started = True
        return chunk_object(self.ctx, self.id, self.created, [{"index": 0, "delta": delta_object(delta), "finish_reason": finish, "logprobs": None}])

    def _text(self, delta: dict, text: Any, terminal: bool) -> None:
        """Add ``text`` to the delta; a terminal event's text only if none came before (it
        restates the reply)."""
        if text and (not terminal or not self.saw_text):
            delta["content"] = text
            self.saw_text = True

    def _deliver(self, delta: dict, calls: list[dict], event: dict, terminal: bool) -> list[dict]:
        """The chunks for one event: its delta (with tool calls), then, if it ends the stream,
        the finish."""
        if calls:
            delta["tool_calls"] = calls
        out = [self._chunk(delta)] if delta else []
        if terminal:
            out += self._finish(event)
        return out

    def _finish(self, event: dict) -> list[dict]:
        if str(event["finishReason"]).upper() == "ERROR":
            raise InternalServerError(f"the model stopped with an error mid-stream: {event.get('errorMessage') or 'no detail given'}")
        self.finished = True
        out = [self._chunk({}, finish_reason(event["finishReason"], bool(self.calls)))]
        if self.ctx.include_usage and isinstance(event.get("usage"), dict):
            out.append(chunk_object(self.ctx, self.id, self.created, [], openai_usage(event["usage"])))
        return out

    def close(self) -> list[dict]:
        """End of stream: finish the choice if the service did not."""
        return [] if self.finished else [self._chunk({}, finish_reason("stop", bool(self.calls)))]
