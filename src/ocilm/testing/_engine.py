"""What the simulated models answer: deterministic, so tests can assert on it.

Pure functions from a validated request body to a result body or a list of stream events.
A reply is ``Hello from <model>! You said: <last user text>``; a prompt that mentions a
tool (``weather`` for ``get_weather``) gets a tool call whose string arguments are the
capitalised words of the prompt (one call per word when parallel calls are allowed);
``<system-reminder>`` spans that coding agents add to a turn are not part of the prompt;
JSON response formats get JSON built from the schema.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from ._catalog import ServedModel

SERVER_DEFAULT_MAX_TOKENS = 20  # OCI's own default when a request sets none (it cuts replies short)
REASONING_TOKENS = 16
TIME_CREATED = "2025-06-02T12:00:00.123Z"
_TOKEN = re.compile(r"\S+\s*")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return len(text.split())


@dataclass
class Call:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Plan:
    text: str = ""
    calls: list[Call] = field(default_factory=list)
    truncated: bool = False
    stopped: bool = False


# ------------------------------------------------------------------ shared planning


def _capitalised_words(text: str) -> list[str]:
    words = re.findall(r"[A-Za-z][\w-]*", text)
    # The first word of the prompt is capitalised by grammar, not because it names something.
    return [w for w in words[1:] if w[0].isupper()]


def _mentions(tool_name: str, prompt: str) -> bool:
    lowered = prompt.lower()
    parts = [p for p in re.split(r"[_\-]", tool_name.lower()) if len(p) > 3 and p not in {"get", "set", "fetch"}]
    return tool_name.lower() in lowered or any(p in lowered for p in parts)


def _value_for(schema: dict, words: list[str], prompt: str) -> Any:
    kind = schema.get("type")
    if schema.get("enum"):
        return schema["enum"][0]
    if kind in ("integer", "int"):
        numbers = re.findall(r"-?\d+", prompt)
        return int(numbers[0]) if numbers else 1
    if kind in ("number", "float"):
        numbers = re.findall(r"-?\d+(?:\.\d+)?", prompt)
        return float(numbers[0]) if numbers else 1.0
    if kind in ("boolean", "bool"):
        return True
    if kind in ("array", "list"):
        return []
    if kind in ("object", "dict"):
        return {}
    return words[0] if words else "example"


def _tool_arguments(params: dict, prompt: str, word: str | None) -> dict[str, Any]:
    props = params.get("properties") or {}
    required = params.get("required") or list(props)
    words = [word] if word else _capitalised_words(prompt)
    return {name: _value_for(props.get(name, {}), words, prompt) for name in required if name in props}


def _json_from_schema(schema: dict | None, prompt: str) -> Any:
    if not schema or schema.get("type") != "object":
        return {"answer": prompt}
    out = {}
    for name, prop in (schema.get("properties") or {}).items():
        out[name] = _json_from_schema(prop, prompt) if prop.get("type") == "object" else _value_for(prop, _capitalised_words(prompt), prompt)
    return out


def _call_id(seed: str, i: int) -> str:
    return "call_" + hashlib.sha256(f"{seed}/{i}".encode()).hexdigest()[:24]


def _limit_text(text: str, limit: int, stop: list[str]) -> Plan:
    for s in stop:
        if s and s in text:
            return Plan(text=text[: text.index(s)], stopped=True)
    parts = tokens(text)
    if len(parts) > limit:
        return Plan(text="".join(parts[:limit]), truncated=True)
    return Plan(text=text)


# ------------------------------------------------------------------ GENERIC


_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.S)


def _text_of(content: list[dict] | None) -> str:
    # Agents wrap context they add to a user turn in <system-reminder> tags; the simulated model
    # answers the user's own words (else every tool those reminders name would be "called").
    text = " ".join(part.get("text", "") for part in content or [] if part.get("type") == "TEXT")
    return _REMINDER.sub("", text).strip() if "<system-reminder>" in text else text


def plan_generic(req: dict, model: ServedModel, choice: int) -> Plan:
    messages = req.get("messages") or []
    # The turn to answer is the last user or tool message: a system message after it (a
    # reminder some agents append) is context, not the request.
    turns = [m for m in messages if m.get("role") not in ("SYSTEM", "DEVELOPER")]
    last: dict[str, Any] = turns[-1] if turns else {"role": "USER", "content": []}
    prompt = _text_of(last.get("content"))
    tools = req.get("tools") or []
    tool_choice = (req.get("toolChoice") or {}).get("type", "AUTO")
    if tools and tool_choice != "NONE" and last.get("role") != "TOOL":
        if tool_choice == "FUNCTION":
            chosen = [t for t in tools if t["name"] == req["toolChoice"]["name"]]
        else:
            chosen = [t for t in tools if _mentions(t["name"], prompt)]
            if not chosen and tool_choice == "REQUIRED":
                chosen = tools[:1]
        if chosen:
            tool = chosen[0]
            params = tool.get("parameters") or {}
            words = _capitalised_words(prompt)
            parallel = req.get("isParallelToolCalls", True) and len(words) > 1 and tool_choice != "FUNCTION"
            seed = json.dumps(messages, sort_keys=True)
            argsets = [_tool_arguments(params, prompt, w) for w in words] if parallel else [_tool_arguments(params, prompt, None)]
            return Plan(calls=[Call(_call_id(seed, i), tool["name"], a) for i, a in enumerate(argsets)])
    if last.get("role") == "TOOL":
        text = f"The tool said: {_text_of(last.get('content'))}"
    else:
        fmt = req.get("responseFormat") or {}
        if fmt.get("type") == "JSON_SCHEMA":
            text = json.dumps(_json_from_schema(fmt["jsonSchema"].get("schema"), prompt))
        elif fmt.get("type") == "JSON_OBJECT":
            text = json.dumps({"answer": prompt})
        else:
            text = f"Hello from {model.id}! You said: {prompt}"
    if choice:
        text = f"{text} (choice {choice + 1})"
    limit = req.get("maxCompletionTokens") or req.get("maxTokens") or SERVER_DEFAULT_MAX_TOKENS
    if req.get("maxCompletionTokens") and model.reasoning:  # the bound counts the thinking too: less is left to say
        limit = max(1, limit - min(REASONING_TOKENS, limit - 1))
    return _limit_text(text, limit, req.get("stop") or [])


def generic_finish_reason(plan: Plan, model: ServedModel) -> str:
    if plan.calls:
        return "stop" if model.vendor == "google" else "tool_calls"
    if plan.truncated:
        return "max_tokens" if model.vendor == "google" else "length"
    return "stop"


def _system_tokens(req: dict) -> int:
    return sum(count_tokens(_text_of(m.get("content"))) for m in req.get("messages") or [] if m.get("role") in ("SYSTEM", "DEVELOPER"))


def structured_tokens(*parts: Any) -> int:
    """Tokens of the structured parts OCI renders into a prompt (tool definitions, schemas,
    documents): about four characters of their JSON a token, as a tokenizer would count them."""
    return sum(-(-len(json.dumps(part, separators=(",", ":"))) // 4) for part in parts if part)


def generic_usage(req: dict, model: ServedModel, plans: list[Plan]) -> dict:
    prompt = sum(count_tokens(_text_of(m.get("content"))) + 4 for m in req.get("messages") or [])
    prompt += structured_tokens(req.get("tools"), (req.get("responseFormat") or {}).get("jsonSchema"))
    completion = sum(
        len(tokens(p.text)) + sum(len(json.dumps(c.arguments)) // 4 + 1 for c in p.calls) for p in plans
    )
    reasoning = REASONING_TOKENS if model.reasoning else 0
    if reasoning and req.get("maxCompletionTokens"):  # maxCompletionTokens bounds visible and reasoning tokens together
        reasoning = min(reasoning, max(0, req["maxCompletionTokens"] * max(1, len(plans)) - completion))
    return {
        "promptTokens": prompt,
        "completionTokens": completion + reasoning,
        "totalTokens": prompt + completion + reasoning,
        "promptTokensDetails": {"cachedTokens": _system_tokens(req)},
        "completionTokensDetails": {"reasoningTokens": reasoning, "acceptedPredictionTokens": 0, "rejectedPredictionTokens": 0},
    }


def _generic_tool_call(call: Call) -> dict:
    return {"type": "FUNCTION", "id": call.id, "name": call.name, "arguments": json.dumps(call.arguments)}


def generic_result(req: dict, model: ServedModel) -> dict:
    n = req.get("numGenerations") or 1
    plans = [plan_generic(req, model, i) for i in range(n)]
    choices = []
    for i, plan in enumerate(plans):
        message: dict[str, Any] = {"role": "ASSISTANT"}
        if plan.text or not plan.calls:
            message["content"] = [{"type": "TEXT", "text": plan.text}]
        if plan.calls:
            message["toolCalls"] = [_generic_tool_call(c) for c in plan.calls]
            if model.vendor == "google":
                for tc in message["toolCalls"]:
                    tc.pop("id")  # Gemini via OCI omits tool-call ids
        if model.reasoning and model.vendor in ("openai", "xai"):
            message["reasoningContent"] = "Thinking it through."
        choice: dict[str, Any] = {"index": i, "message": message, "finishReason": generic_finish_reason(plan, model)}
        if req.get("logProbs"):
            toks = tokens(plan.text)
            choice["logprobs"] = {
                "tokens": toks,
                "tokenLogprobs": [-0.1] * len(toks),
                "textOffset": [sum(len(t) for t in toks[:j]) for j in range(len(toks))],
                "topLogprobs": [{t: "-0.1"} for t in toks],
            }
        choices.append(choice)
    return {
        "modelId": model.id,
        "modelVersion": "1.0.0",
        "chatResponse": {"apiFormat": "GENERIC", "timeCreated": TIME_CREATED, "choices": choices, "usage": generic_usage(req, model, plans)},
    }


def _pad(i: int) -> dict:
    return {"pad": "x" * (7 + i % 5)} if i % 3 == 1 else {}


def generic_events(req: dict, model: ServedModel) -> list[Any]:
    n = req.get("numGenerations") or 1
    plans = [plan_generic(req, model, i) for i in range(n)]
    events: list[Any] = []
    tier = {"serviceTier": "default"} if model.vendor == "openai" else {}
    for i, plan in enumerate(plans):
        if model.reasoning and model.vendor in ("openai", "xai"):
            # Assumed shape (OCI documents reasoning only on the whole reply): the reasoning
            # as one delta of its own, before the text.
            events.append({"index": i, "message": {"role": "ASSISTANT", "reasoningContent": "Thinking it through."}, **tier})
        for piece in tokens(plan.text):
            events.append({"index": i, "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": piece}]}, **tier, **_pad(len(events))})
        for call in plan.calls:
            events.extend(_tool_call_events(call, i, model, tier))
    for i, plan in enumerate(plans):
        reason = generic_finish_reason(plan, model)
        if model.vendor == "openai":
            events.append({"index": i, "finishReason": reason, **tier})
        elif model.vendor == "google":
            events.append({"index": i, "finishReason": reason})
        else:
            events.append({"index": i, "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": ""}]}, "finishReason": reason})
    if (req.get("streamOptions") or {}).get("isIncludeUsage") or model.vendor == "google":
        events.append({"usage": generic_usage(req, model, plans), **tier})
    events.append("[DONE]")
    return events


def _fragments(text: str, size: int = 7) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _tool_call_events(call: Call, index: int, model: ServedModel, tier: dict) -> list[dict]:
    arguments = json.dumps(call.arguments)
    opening = {"type": "FUNCTION", "id": call.id, "name": call.name, "arguments": ""}

    def event(tool_call: dict) -> dict:
        return {"index": index, "message": {"role": "ASSISTANT", "toolCalls": [tool_call]}, **tier}

    if model.vendor == "openai":  # opened by id+name, then id-less argument fragments
        return [event(opening)] + [event({"arguments": frag}) for frag in _fragments(arguments)]
    if model.vendor == "xai":  # fragments keyed by id, and the opening chunk re-sent once
        frags = _fragments(arguments)
        out = [event(opening), event({"id": call.id, "arguments": frags[0]}), event(dict(opening))]
        return out + [event({"id": call.id, "arguments": f}) for f in frags[1:]]
    if model.vendor == "google":  # whole call in one chunk, no id
        return [event({"type": "FUNCTION", "name": call.name, "arguments": arguments})]
    return [event({"type": "FUNCTION", "id": call.id, "name": call.name, "arguments": arguments})]


# ------------------------------------------------------------------ COHERE


def _cohere_type_schema(definitions: dict) -> dict:
    mapping = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "list": "array", "dict": "object"}
    return {
        "type": "object",
        "properties": {k: {"type": mapping.get(v.get("type", "str"), "string")} for k, v in definitions.items()},
        "required": [k for k, v in definitions.items() if v.get("isRequired")] or list(definitions),
    }


def plan_cohere(req: dict, model: ServedModel) -> Plan:
    prompt = req.get("message", "")
    if req.get("toolResults"):
        outputs = [o for r in req["toolResults"] for o in r.get("outputs", [])]
        text = f"The tool said: {json.dumps(outputs)}"
    else:
        for tool in req.get("tools") or []:
            if _mentions(tool["name"], prompt):
                params = _cohere_type_schema(tool.get("parameterDefinitions") or {})
                words = _capitalised_words(prompt)
                argsets = [_tool_arguments(params, prompt, w) for w in words] if len(words) > 1 else [_tool_arguments(params, prompt, None)]
                return Plan(calls=[Call("", tool["name"], a) for a in argsets])
        fmt = req.get("responseFormat") or {}
        if fmt.get("type") == "JSON_OBJECT":
            text = json.dumps(_json_from_schema(fmt.get("schema"), prompt))
        else:
            text = f"Hello from {model.id}! You said: {prompt}"
    limit = req.get("maxTokens") or SERVER_DEFAULT_MAX_TOKENS
    return _limit_text(text, limit, req.get("stopSequences") or [])


def cohere_usage(req: dict, plan: Plan) -> dict:
    history = " ".join(h.get("message", "") for h in req.get("chatHistory") or [])
    prompt = count_tokens(req.get("message", "")) + count_tokens(history) + count_tokens(req.get("preambleOverride", "")) + 8
    prompt += structured_tokens(req.get("tools"), req.get("documents"), (req.get("responseFormat") or {}).get("schema"))
    completion = len(tokens(plan.text)) + sum(len(json.dumps(c.arguments)) // 4 + 1 for c in plan.calls)
    return {"promptTokens": prompt, "completionTokens": completion, "totalTokens": prompt + completion,
            "promptTokensDetails": {"cachedTokens": count_tokens(req.get("preambleOverride", ""))}}


def _cohere_body(req: dict, model: ServedModel, plan: Plan) -> dict:
    calls = [{"name": c.name, "parameters": c.arguments} for c in plan.calls]
    reply: dict[str, Any] = {"role": "CHATBOT", "message": plan.text}
    if calls:
        reply["toolCalls"] = calls
    history = [*(req.get("chatHistory") or []), {"role": "USER", "message": req.get("message", "")}, reply]
    body: dict[str, Any] = {
        "apiFormat": "COHERE",
        "text": plan.text,
        "chatHistory": history,
        "finishReason": "MAX_TOKENS" if plan.truncated else "COMPLETE",
        "usage": cohere_usage(req, plan),
    }
    if calls:
        body["toolCalls"] = calls
    if req.get("documents"):
        body["documents"] = [{"id": f"doc_{i}", **d} for i, d in enumerate(req["documents"])]
        body["citations"] = [{"start": 0, "end": 5, "text": plan.text[:5], "documentIds": ["doc_0"]}]
    return body


def cohere_result(req: dict, model: ServedModel) -> dict:
    return {"modelId": model.id, "modelVersion": "1.0.0", "chatResponse": _cohere_body(req, model, plan_cohere(req, model))}


def cohere_events(req: dict, model: ServedModel) -> list[Any]:
    plan = plan_cohere(req, model)
    events: list[Any] = [{"apiFormat": "COHERE", "text": piece, **_pad(i)} for i, piece in enumerate(tokens(plan.text))]
    body = _cohere_body(req, model, plan)
    if plan.calls:
        events.append({"apiFormat": "COHERE", "toolCalls": body["toolCalls"]})
    terminal = {k: body[k] for k in ("apiFormat", "text", "finishReason", "chatHistory", "usage")}
    if plan.calls:
        terminal["toolCalls"] = body["toolCalls"]  # restated on the terminal event
    events.append(terminal)
    return events


# ------------------------------------------------------------------ COHEREV2


def _v2_as_generic(req: dict) -> dict:
    """A v2 request in GENERIC's terms, so one planner answers both (content parts match)."""
    fmt = req.get("responseFormat") or {}
    if fmt.get("type") == "JSON_OBJECT" and fmt.get("schema"):
        fmt = {"type": "JSON_SCHEMA", "jsonSchema": {"name": "answer", "schema": fmt["schema"]}}
    return {
        "messages": req.get("messages") or [],
        "tools": [{"type": "FUNCTION", **tool["function"]} for tool in req.get("tools") or []],
        "toolChoice": {"type": req["toolsChoice"]} if req.get("toolsChoice") else None,
        "maxTokens": req.get("maxTokens"),
        "stop": req.get("stopSequences"),
        "responseFormat": fmt,
    }


def _v2_finish(plan: Plan) -> str:
    return "TOOL_CALL" if plan.calls else "MAX_TOKENS" if plan.truncated else "STOP_SEQUENCE" if plan.stopped else "COMPLETE"


def _v2_thinks(req: dict, model: ServedModel) -> bool:
    return model.reasoning and (req.get("thinking") or {}).get("type", "ENABLED") == "ENABLED"


def cohere_v2_result(req: dict, model: ServedModel) -> dict:
    generic = _v2_as_generic(req)
    plan = plan_generic(generic, model, 0)
    message: dict[str, Any] = {"role": "ASSISTANT", "content": []}
    if _v2_thinks(req, model):
        message["content"].append({"type": "THINKING", "thinking": "Thinking it through."})
    if plan.text or not plan.calls:
        message["content"].append({"type": "TEXT", "text": plan.text})
    if plan.calls:
        message["toolPlan"] = f"I will call {plan.calls[0].name}."
        message["toolCalls"] = [{"id": c.id, "type": "FUNCTION", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}} for c in plan.calls]
    usage = generic_usage(generic, model, [plan])
    documents = structured_tokens(req.get("documents"))
    usage = {**usage, "promptTokens": usage["promptTokens"] + documents, "totalTokens": usage["totalTokens"] + documents}
    return {
        "modelId": model.id, "modelVersion": "1.0.0",
        "chatResponse": {
            "apiFormat": "COHEREV2", "id": hashlib.sha256(json.dumps(req, sort_keys=True).encode()).hexdigest()[:32],
            "message": message, "finishReason": _v2_finish(plan),
            "usage": {k: usage[k] for k in ("promptTokens", "completionTokens", "totalTokens")},
        },
    }


def cohere_v2_events(req: dict, model: ServedModel) -> list[Any]:
    """Thinking, then text deltas, then each tool call opened whole and its arguments in two
    fragments, then the finish event with usage (restating nothing)."""
    body = cohere_v2_result(req, model)["chatResponse"]
    message = body["message"]
    tag = {"apiFormat": "COHEREV2"}
    events: list[Any] = []
    for part in message["content"]:
        if part["type"] == "THINKING":
            events.append({**tag, "message": {"role": "ASSISTANT", "content": [part]}})
        else:
            events += [{**tag, "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": piece}]}} for piece in tokens(part["text"])]
    for call in message.get("toolCalls") or []:
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2
        events.append({**tag, "message": {"role": "ASSISTANT", "toolCalls": [{**call, "function": {"name": call["function"]["name"], "arguments": arguments[:half]}}]}})
        events.append({**tag, "message": {"role": "ASSISTANT", "toolCalls": [{"function": {"arguments": arguments[half:]}}]}})
    events.append({**tag, "finishReason": body["finishReason"], "usage": body["usage"]})
    return events


# ------------------------------------------------------------------ embeddings and rerank


def embedding_vector(model_id: str, text: str, dims: int) -> list[float]:
    rng = random.Random(hashlib.sha256(f"{model_id}\0{text}".encode()).digest())
    vec = [rng.gauss(0.0, 1.0) for _ in range(dims)]
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in vec]


def embed_result(req: dict, model: ServedModel) -> dict:
    dims = req.get("outputDimensions") or model.dimensions
    inputs = req.get("inputs") or [c.get("text") or c.get("imageUrl", {}).get("url", "") for c in req.get("embedContents") or []]
    vectors = [embedding_vector(model.id, text, dims) for text in inputs]
    types = req.get("embeddingTypes") or ["float"]
    by_type: dict[str, Any] = {}
    for kind in types:
        if kind == "float":
            by_type["float"] = vectors
        elif kind == "int8":
            by_type["int8"] = [[max(-128, min(127, round(v * 127 * 8))) for v in vec] for vec in vectors]
        elif kind == "uint8":
            by_type["uint8"] = [[max(0, min(255, round(v * 127 * 8) + 128)) for v in vec] for vec in vectors]
        elif kind == "base64":
            by_type["base64"] = [base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode() for vec in vectors]
        else:
            by_type[kind] = [[1 if v > 0 else 0 for v in vec] for vec in vectors]
    tokens_used = sum(count_tokens(t) if not t.startswith("data:") else 1 for t in inputs)
    result: dict[str, Any] = {
        "id": hashlib.sha256(json.dumps(inputs).encode()).hexdigest()[:32],
        "embeddings": vectors if "float" in types else [],
        "embeddingsByType": by_type,
        "modelId": model.id,
        "modelVersion": "3.0",
        "usage": {"promptTokens": tokens_used, "totalTokens": tokens_used},
    }
    if req.get("isEcho"):
        result["inputs"] = inputs
    return result


def rerank_result(req: dict, model: ServedModel) -> dict:
    query = set(re.findall(r"\w+", req["input"].lower()))
    ranks: list[dict[str, Any]] = []
    for i, doc in enumerate(req["documents"]):
        words = set(re.findall(r"\w+", doc.lower()))
        score = len(query & words) / (len(query) or 1)
        ranks.append({"index": i, "relevanceScore": round(min(0.999, 0.05 + 0.9 * score - 0.001 * i), 6)})
    ranks.sort(key=lambda r: (-r["relevanceScore"], r["index"]))
    if req.get("topN"):
        ranks = ranks[: req["topN"]]
    if req.get("isEcho"):
        for r in ranks:
            r["document"] = {"text": req["documents"][r["index"]]}
    return {"id": hashlib.sha256(req["input"].encode()).hexdigest()[:32], "modelId": model.id, "modelVersion": "3.5", "documentRanks": ranks}


# ------------------------------------------------------------------ applyGuardrails

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_PHONE = re.compile(r"\+?\d[\d ().-]{7,}\d")
HARMFUL_WORDS = ("kill", "bomb", "hate you")  # what the simulator's moderation flags (OVERALL 1.0)
INJECTION_PHRASES = ("ignore previous instructions", "ignore all previous instructions", "disregard your instructions")


def guardrails_result(req: dict) -> dict:
    """OCI's ApplyGuardrailsResult for the request's text: only the configured checks answer.
    E-mail addresses and telephone numbers are personal information (spans with offsets);
    ``HARMFUL_WORDS`` score OVERALL 1.0; ``INJECTION_PHRASES`` score prompt injection 1.0."""
    text_input: dict = req.get("input") or next((i for i in req.get("multimodalInput") or [] if i.get("type") == "TEXT"), {})
    text = text_input.get("content") or ""
    lowered = text.lower()
    configs = req["guardrailConfigs"]
    results: dict[str, Any] = {}
    if "contentModerationConfig" in configs:
        wanted = configs["contentModerationConfig"].get("categories") or ["OVERALL", "BLOCKLIST"]
        scores = {"OVERALL": 1.0 if any(w in lowered for w in HARMFUL_WORDS) else 0.0, "BLOCKLIST": 0.0}
        results["contentModeration"] = {"categories": [{"name": n, "score": scores.get(n, 0.0)} for n in wanted]}
    if "personallyIdentifiableInformationConfig" in configs:
        types = set(configs["personallyIdentifiableInformationConfig"].get("types") or ["EMAIL", "TELEPHONE_NUMBER"])
        spans = [(m, "EMAIL") for m in _EMAIL.finditer(text)] + [(m, "TELEPHONE_NUMBER") for m in _PHONE.finditer(text)]
        results["personallyIdentifiableInformation"] = [
            {"offset": m.start(), "length": m.end() - m.start(), "text": m.group(), "label": label, "score": 0.99}
            for m, label in sorted(spans, key=lambda s: s[0].start()) if label in types
        ]
    if "promptInjectionConfig" in configs:
        results["promptInjection"] = {"score": 1.0 if any(p in lowered for p in INJECTION_PHRASES) else 0.0}
    version = (req.get("guardrailVersionConfig") or {}).get("guardrailVersion") or "1.0.1"
    return {"results": results, "guardrailVersion": {"version": version}}
