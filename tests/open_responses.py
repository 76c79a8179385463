"""A checker for the Open Responses specification: every object and event the Responses door
returns must carry the fields the specification requires, with the types it declares.

Written for this suite from the specification's published OpenAPI document, version 2026-04-24
(``info.version`` of the openresponses/openresponses repository's ``public/openapi/openapi.json``,
read 2026-12-06). Only the parts a chat-backed door can produce are written down: the response
resource and its usage, the output items (message, function call, reasoning), their content
parts, and the streaming events.

Where the specification and openai-python disagree, both are satisfied and the disagreement is
named here:
- reasoning text events: the specification names them ``response.reasoning.delta`` and
  ``.done``; openai-python (and Codex) ``response.reasoning_text.delta`` and ``.done``. The door
  sends openai-python's names by default and the specification's with
  ``general_settings.responses_event_names: open_responses``; this checker holds both to the
  specification's fields.
- ``text.format`` of type ``json_schema``: the specification's ``schema`` is declared as type
  null (an artifact of its generator); any JSON value is accepted for it.
- items and tools the specification does not define (``custom_tool_call``, ``local_shell_call``,
  custom and local-shell tools, which Codex uses) are openai-python's and are let through.
"""

from __future__ import annotations

from typing import Any

SPEC_VERSION = "2026-04-24"

STR, INT, NUM, BOOL, ARR, OBJ, NULL, ANY = "string", "integer", "number", "boolean", "array", "object", "null", "any"


def nullable(*kinds: Any) -> tuple:
    return (*kinds, NULL)


# A schema: {"required": [...], "fields": {name: kind}}; a kind is a type name, a schema name
# (a key of SCHEMAS), a tuple of alternatives, ("enum", values), or ("array", kind).
def enum(*values: str) -> tuple:
    return ("enum", values)


def array(kind: Any) -> tuple:
    return ("array", kind)


SCHEMAS: dict[str, dict[str, Any]] = {
    "ResponseResource": {
        "required": ["id", "object", "created_at", "completed_at", "status", "incomplete_details", "model", "previous_response_id",
                     "instructions", "output", "error", "tools", "tool_choice", "truncation", "parallel_tool_calls", "text", "top_p",
                     "presence_penalty", "frequency_penalty", "top_logprobs", "temperature", "reasoning", "usage", "max_output_tokens",
                     "max_tool_calls", "store", "background", "service_tier", "metadata", "safety_identifier", "prompt_cache_key"],
        "fields": {
            "id": STR, "object": enum("response"), "created_at": INT, "completed_at": nullable(INT), "status": STR,
            "incomplete_details": nullable("IncompleteDetails"), "model": STR, "previous_response_id": nullable(STR),
            "instructions": nullable(STR, ARR), "output": array("Item"), "error": nullable("Error"), "tools": array("Tool"),
            "tool_choice": (enum("none", "auto", "required"), "ToolChoiceObject"), "truncation": enum("auto", "disabled"),
            "parallel_tool_calls": BOOL, "text": "TextField", "top_p": NUM, "presence_penalty": NUM, "frequency_penalty": NUM,
            "top_logprobs": INT, "temperature": NUM, "reasoning": nullable("Reasoning"), "usage": nullable("Usage"),
            "max_output_tokens": nullable(INT), "max_tool_calls": nullable(INT), "store": BOOL, "background": BOOL,
            "service_tier": STR, "metadata": ANY, "safety_identifier": nullable(STR), "prompt_cache_key": nullable(STR),
            "user": nullable(STR),
        },
    },
    "IncompleteDetails": {"required": ["reason"], "fields": {"reason": STR}},
    "Error": {"required": ["code", "message"], "fields": {"code": STR, "message": STR}},
    "Reasoning": {"required": ["effort", "summary"], "fields": {
        "effort": nullable(enum("none", "minimal", "low", "medium", "high", "xhigh")), "summary": nullable(enum("concise", "detailed", "auto"))}},
    "TextField": {"required": ["format"], "fields": {"format": "TextFormat", "verbosity": enum("low", "medium", "high")}},
    "Usage": {"required": ["input_tokens", "output_tokens", "total_tokens", "input_tokens_details", "output_tokens_details"],
              "fields": {"input_tokens": INT, "output_tokens": INT, "total_tokens": INT, "input_tokens_details": "InputTokensDetails",
                         "output_tokens_details": "OutputTokensDetails"}},
    "InputTokensDetails": {"required": ["cached_tokens"], "fields": {"cached_tokens": INT, "cache_write_tokens": INT}},
    "OutputTokensDetails": {"required": ["reasoning_tokens"], "fields": {"reasoning_tokens": INT}},
    "FunctionTool": {"required": ["type", "name", "description", "parameters", "strict"],
                     "fields": {"type": enum("function"), "name": STR, "description": nullable(STR), "parameters": nullable(OBJ),
                                "strict": nullable(BOOL)}},
    "Message": {"required": ["type", "id", "status", "role", "content"],
                "fields": {"type": enum("message"), "id": STR, "status": enum("in_progress", "completed", "incomplete"),
                           "role": enum("user", "assistant", "system", "developer"), "content": array("Content"),
                           "phase": enum("commentary", "final_answer")}},
    "FunctionCall": {"required": ["type", "id", "call_id", "name", "arguments", "status"],
                     "fields": {"type": enum("function_call"), "id": STR, "call_id": STR, "name": STR, "arguments": STR,
                                "status": enum("in_progress", "completed", "incomplete"), "namespace": STR}},
    "ReasoningBody": {"required": ["type", "id", "summary"],
                      "fields": {"type": enum("reasoning"), "id": STR, "content": array("Content"), "summary": array("Content"),
                                 "encrypted_content": STR, "status": STR}},
    "OutputTextContent": {"required": ["type", "text", "annotations"],
                          "fields": {"type": enum("output_text"), "text": STR, "annotations": ARR, "logprobs": ARR}},
    "ReasoningTextContent": {"required": ["type", "text"], "fields": {"type": enum("reasoning_text"), "text": STR}},
    "SummaryTextContent": {"required": ["type", "text"], "fields": {"type": enum("summary_text"), "text": STR}},
    "RefusalContent": {"required": ["type", "refusal"], "fields": {"type": enum("refusal"), "refusal": STR}},
}  # fmt: skip

_ITEMS = {"message": "Message", "function_call": "FunctionCall", "reasoning": "ReasoningBody"}
_CONTENT = {"output_text": "OutputTextContent", "reasoning_text": "ReasoningTextContent", "summary_text": "SummaryTextContent",
            "refusal": "RefusalContent"}  # fmt: skip
_OPENAI_ONLY_ITEMS = {"custom_tool_call", "local_shell_call"}

_SEQ = {"type": STR, "sequence_number": INT}
_IN_ITEM = {**_SEQ, "item_id": STR, "output_index": INT}
EVENTS: dict[str, dict[str, Any]] = {
    **{kind: {"required": ["type", "sequence_number", "response"], "fields": {**_SEQ, "response": "ResponseResource"}}
       for kind in ("response.created", "response.queued", "response.in_progress", "response.completed", "response.failed",
                    "response.incomplete")},
    **{kind: {"required": ["type", "sequence_number", "output_index", "item"], "fields": {**_SEQ, "output_index": INT, "item": "Item"}}
       for kind in ("response.output_item.added", "response.output_item.done")},
    **{kind: {"required": ["type", "sequence_number", "item_id", "output_index", "content_index", "part"],
              "fields": {**_IN_ITEM, "content_index": INT, "part": "Content"}}
       for kind in ("response.content_part.added", "response.content_part.done")},
    "response.output_text.delta": {"required": ["type", "sequence_number", "item_id", "output_index", "content_index", "delta"],
                                   "fields": {**_IN_ITEM, "content_index": INT, "delta": STR, "logprobs": ARR, "obfuscation": STR}},
    "response.output_text.done": {"required": ["type", "sequence_number", "item_id", "output_index", "content_index", "text"],
                                  "fields": {**_IN_ITEM, "content_index": INT, "text": STR, "logprobs": ARR}},
    # the specification's response.reasoning.delta/.done, under openai-python's names (see above)
    "response.reasoning_text.delta": {"required": ["type", "sequence_number", "item_id", "output_index", "content_index", "delta"],
                                      "fields": {**_IN_ITEM, "content_index": INT, "delta": STR, "obfuscation": STR}},
    "response.reasoning_text.done": {"required": ["type", "sequence_number", "item_id", "output_index", "content_index", "text"],
                                     "fields": {**_IN_ITEM, "content_index": INT, "text": STR}},
    # the specification's own names (general_settings.responses_event_names: open_responses)
    "response.reasoning.delta": {"required": ["type", "sequence_number", "item_id", "output_index", "content_index", "delta"],
                                 "fields": {**_IN_ITEM, "content_index": INT, "delta": STR, "obfuscation": STR}},
    "response.reasoning.done": {"required": ["type", "sequence_number", "item_id", "output_index", "content_index", "text"],
                                "fields": {**_IN_ITEM, "content_index": INT, "text": STR}},
    "response.function_call_arguments.delta": {"required": ["type", "sequence_number", "item_id", "output_index", "delta"],
                                               "fields": {**_IN_ITEM, "delta": STR, "obfuscation": STR}},
    "response.function_call_arguments.done": {"required": ["type", "sequence_number", "item_id", "output_index", "arguments"],
                                              "fields": {**_IN_ITEM, "arguments": STR, "name": STR}},
}  # fmt: skip


class SpecViolation(AssertionError):
    pass


def _type_of(value: Any) -> str:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return NUM
    if isinstance(value, str):
        return STR
    if isinstance(value, list):
        return ARR
    return OBJ


def _matches(value: Any, kind: Any, path: str) -> None:
    if kind == ANY:
        return
    if isinstance(kind, tuple) and kind and kind[0] == "enum":
        if value not in kind[1]:
            raise SpecViolation(f"{path}: {value!r} is not one of {kind[1]}")
        return
    if isinstance(kind, tuple) and kind and kind[0] == "array":
        if not isinstance(value, list):
            raise SpecViolation(f"{path}: expected an array, got {_type_of(value)}")
        for i, element in enumerate(value):
            _matches(element, kind[1], f"{path}[{i}]")
        return
    if isinstance(kind, tuple):  # alternatives
        problems = []
        for alternative in kind:
            try:
                _matches(value, alternative, path)
                return
            except SpecViolation as exc:
                problems.append(str(exc))
        raise SpecViolation(f"{path}: matches none of its forms ({'; '.join(problems)})")
    if kind in (STR, INT, NUM, BOOL, ARR, OBJ, NULL):
        actual = _type_of(value)
        if not (actual == kind or (kind == NUM and actual == INT)):
            raise SpecViolation(f"{path}: expected {kind}, got {actual}")
        return
    if kind == "Item":
        item_type = value.get("type") if isinstance(value, dict) else None
        if item_type in _OPENAI_ONLY_ITEMS:
            return
        if item_type not in _ITEMS:
            raise SpecViolation(f"{path}.type: {item_type!r} is not an item type the specification defines")
        _object(value, SCHEMAS[_ITEMS[item_type]], path)
        return
    if kind == "Content":
        part_type = value.get("type") if isinstance(value, dict) else None
        if part_type not in _CONTENT:
            raise SpecViolation(f"{path}.type: {part_type!r} is not a content type the specification defines")
        _object(value, SCHEMAS[_CONTENT[part_type]], path)
        return
    if kind == "Tool":
        if isinstance(value, dict) and value.get("type") == "function":
            _object(value, SCHEMAS["FunctionTool"], path)
        return
    if kind == "ToolChoiceObject":
        if not (isinstance(value, dict) and isinstance(value.get("type"), str)):
            raise SpecViolation(f"{path}: expected a tool choice object with a type")
        return
    if kind == "TextFormat":
        fmt_type = value.get("type") if isinstance(value, dict) else None
        if fmt_type == "json_schema":
            for name in ("name", "description", "schema", "strict"):
                if name not in value:
                    raise SpecViolation(f"{path}.{name}: required")
        elif fmt_type not in ("text", "json_object"):
            raise SpecViolation(f"{path}.type: {fmt_type!r} is not a text format")
        return
    _object(value, SCHEMAS[kind], path)


def _object(value: Any, schema: dict[str, Any], path: str) -> None:
    if not isinstance(value, dict):
        raise SpecViolation(f"{path}: expected an object, got {_type_of(value)}")
    for name in schema["required"]:
        if name not in value:
            raise SpecViolation(f"{path}.{name}: required by the specification, missing")
    for name, kind in schema["fields"].items():
        if name in value:
            _matches(value[name], kind, f"{path}.{name}")


def check_response(obj: Any) -> None:
    """Raise SpecViolation unless ``obj`` is a valid response resource."""
    _object(obj, SCHEMAS["ResponseResource"], "response")


def check_event(event: Any) -> None:
    """Raise SpecViolation unless ``event`` is a valid streaming event of a kind the door sends."""
    kind = event.get("type") if isinstance(event, dict) else None
    if kind not in EVENTS:
        raise SpecViolation(f"event: {kind!r} is not a streaming event the door may send")
    _object(event, EVENTS[kind], kind)
