"""Response objects in OpenAI's shapes, readable both as attributes and as items.

``response.choices[0].message.content == response["choices"][0]["message"]["content"]``.
They are dicts underneath, so ``json.dumps(response)`` works and printing shows JSON, and the
dict holds exactly what is on the wire. Each class declares the fields openai-python's type
of the same name declares: reading a declared field the reply did not carry gives ``None``, by
attribute and by key alike (as openai-python's objects do, whichever of OCI's APIs answered),
while an undeclared name raises ``AttributeError`` (``KeyError`` by key).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

_ABSENT = object()

Messages = Sequence[Mapping[str, Any]]
"""Chat messages in OpenAI's shape: ``[{"role": "user", "content": "Hi"}, ...]``."""


class _Field:
    """A declared field: read from the dict, None when the reply did not carry it.

    A descriptor on the class, so reading a declared field is an ordinary attribute lookup
    (no failed lookup and ``__getattr__`` round trip, as for undeclared keys).
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        value = dict.get(obj, self.name)
        kind = type(value)
        if kind is dict or kind is list:
            return obj._wrap_field(self.name, value)
        return value


class OpenAIObject(dict):
    """A dict whose keys are also attributes.

    Nested dicts (and dicts in lists) become typed objects when first read, so building one
    from a large reply costs a plain dict copy and only what is used gets wrapped.
    """

    __slots__ = ("model_retirement_info", "opc_request_id")
    _fields: ClassVar[frozenset[str]] = frozenset()
    _nested: ClassVar[dict[str, type[OpenAIObject]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls._fields:
            if not hasattr(dict, name):  # never shadow a dict method
                setattr(cls, name, _Field(name))

    def __init__(self, data: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        super().__init__(data or (), **kwargs)
        object.__setattr__(self, "opc_request_id", None)
        object.__setattr__(self, "model_retirement_info", None)  # OCI's model-retirement-info header, when the model is deprecated

    def __getitem__(self, key: str) -> Any:
        try:
            value = dict.__getitem__(self, key)
        except KeyError:
            if key in type(self)._fields:  # declared but not carried: None by key as by attribute, whichever API answered
                return None
            raise
        kind = type(value)
        if kind is dict or kind is list:
            return self._wrap_field(key, value)
        return value

    def __getattr__(self, name: str) -> Any:
        # Reached only for undeclared names (declared fields are _Field descriptors): a key the
        # wire happens to carry, such as Cohere's citations, or a typo.
        value = dict.get(self, name, _ABSENT)
        if value is _ABSENT:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        kind = type(value)
        if kind is dict or kind is list:
            return self._wrap_field(name, value)
        return value

    def _wrap_field(self, key: str, value: Any) -> Any:
        """A nested dict (or list of dicts) as its typed class, stored back so it is made once."""
        if type(value) is dict:
            value = self._nested.get(key, OpenAIObject)(value)
            dict.__setitem__(self, key, value)
        else:
            for item in value:  # a loop, not any(): lists read on every chunk are typed already
                if type(item) is dict:
                    cls = self._nested.get(key, OpenAIObject)
                    value = [cls(v) if type(v) is dict else v for v in value]
                    dict.__setitem__(self, key, value)
                    break
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if name in OpenAIObject.__slots__:
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default  # noqa: SIM401 - self.get would recurse; self[key] wraps nested dicts

    def model_dump(self) -> dict[str, Any]:
        """A plain-dict deep copy (what openai-python's pydantic models offer under this name)."""
        return json.loads(json.dumps(self))

    def model_dump_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self, indent=indent)

    to_dict = model_dump
    json = model_dump_json

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={self[k]!r}" for k in self)
        return f"{type(self).__name__}({fields})"

    def __str__(self) -> str:
        return f"{type(self).__name__} {json.dumps(self, indent=2)}"

    def __reduce__(self) -> tuple:
        return (type(self), (dict(self),))


def _declare(name: str, fields: str, nested: dict[str, type[OpenAIObject]] | None = None, doc: str = "") -> type[OpenAIObject]:
    """A response class with openai-python's declared field names (space-separated)."""
    namespace = {"__slots__": (), "_fields": frozenset(fields.split()), "_nested": nested or {}, "__doc__": doc or None}
    return type(name, (OpenAIObject,), namespace)


# ------------------------------------------------------------------ usage

PromptTokensDetails = _declare("PromptTokensDetails", "audio_tokens cache_write_tokens cached_tokens image_tokens text_tokens")
CompletionTokensDetails = _declare(
    "CompletionTokensDetails", "accepted_prediction_tokens audio_tokens reasoning_tokens rejected_prediction_tokens text_tokens"
)
CompletionUsage = _declare(
    "CompletionUsage", "completion_tokens completion_tokens_details prompt_tokens prompt_tokens_details total_tokens",
    {"prompt_tokens_details": PromptTokensDetails, "completion_tokens_details": CompletionTokensDetails},
)  # fmt: skip

# ------------------------------------------------------------------ shared by messages and deltas

TopLogprob = _declare("TopLogprob", "bytes logprob token")
ChatCompletionTokenLogprob = _declare("ChatCompletionTokenLogprob", "bytes logprob token top_logprobs", {"top_logprobs": TopLogprob})
ChoiceLogprobs = _declare("ChoiceLogprobs", "content refusal", {"content": ChatCompletionTokenLogprob, "refusal": ChatCompletionTokenLogprob})
FunctionCall = _declare("FunctionCall", "arguments name")
ChatCompletionAudio = _declare("ChatCompletionAudio", "data expires_at id transcript")

# ------------------------------------------------------------------ chat completion

Function = _declare("Function", "arguments name")
ChatCompletionMessageToolCall = _declare("ChatCompletionMessageToolCall", "function id type", {"function": Function})
AnnotationURLCitation = _declare("AnnotationURLCitation", "end_index start_index title url")
Annotation = _declare("Annotation", "type url_citation", {"url_citation": AnnotationURLCitation})
# reasoning_content is ocilm's addition (OCI's reasoningContent), as LiteLLM names it.
ChatCompletionMessage = _declare(
    "ChatCompletionMessage", "annotations audio content function_call reasoning_content refusal role tool_calls",
    {"tool_calls": ChatCompletionMessageToolCall, "annotations": Annotation, "function_call": FunctionCall, "audio": ChatCompletionAudio},
)  # fmt: skip
Choice = _declare("Choice", "finish_reason index logprobs message", {"message": ChatCompletionMessage, "logprobs": ChoiceLogprobs})

# ------------------------------------------------------------------ chunk

ChoiceDeltaToolCallFunction = _declare("ChoiceDeltaToolCallFunction", "arguments name")
ChoiceDeltaToolCall = _declare("ChoiceDeltaToolCall", "function id index type", {"function": ChoiceDeltaToolCallFunction})
ChoiceDeltaFunctionCall = _declare("ChoiceDeltaFunctionCall", "arguments name")
ChoiceDeltaAudio = _declare("ChoiceDeltaAudio", "data expires_at id transcript")
ChoiceDelta = _declare(
    "ChoiceDelta", "audio content function_call reasoning_content refusal role tool_calls",
    {"tool_calls": ChoiceDeltaToolCall, "function_call": ChoiceDeltaFunctionCall, "audio": ChoiceDeltaAudio},
)  # fmt: skip
ChunkChoice = _declare("ChunkChoice", "delta finish_reason index logprobs", {"delta": ChoiceDelta, "logprobs": ChoiceLogprobs})

_new_dict = dict.__new__
_fill = dict.update


def stream_chunk(chunk: dict[str, Any], opc_request_id: str | None) -> ChatCompletionChunk:
    """A chunk the stream translator just built, typed to the delta at once: each chunk's
    ``choices[i].delta`` is read by nearly every caller, and typing it here (one copy of each
    small dict, no per-read wrapping) costs half of typing it on first read."""
    obj = _new_dict(ChatCompletionChunk)
    _fill(obj, chunk)
    object.__setattr__(obj, "opc_request_id", opc_request_id)
    choices = chunk.get("choices")
    if choices:
        typed = []
        for choice in choices:
            item = _new_dict(ChunkChoice)
            _fill(item, choice)
            object.__setattr__(item, "opc_request_id", None)
            delta = choice.get("delta")
            if type(delta) is dict:
                wrapped = _new_dict(ChoiceDelta)
                _fill(wrapped, delta)
                object.__setattr__(wrapped, "opc_request_id", None)
                dict.__setitem__(item, "delta", wrapped)
            typed.append(item)
        dict.__setitem__(obj, "choices", typed)
    return obj


# ------------------------------------------------------------------ embeddings and rerank

Embedding = _declare("Embedding", "embedding index object")
EmbeddingUsage = _declare("EmbeddingUsage", "prompt_tokens total_tokens")
RerankDocument = _declare("RerankDocument", "text")
RerankResult = _declare("RerankResult", "document index relevance_score", {"document": RerankDocument})
RerankMeta = _declare("RerankMeta", "api_version billed_units model_version tokens warnings")


class ChatCompletion(OpenAIObject):
    """``object == "chat.completion"``."""

    __slots__ = ()
    _fields = frozenset(["choices", "created", "id", "metadata", "model", "moderation", "object", "service_tier", "system_fingerprint", "usage"])
    _nested = {"choices": Choice, "usage": CompletionUsage}


class ChatCompletionChunk(OpenAIObject):
    """``object == "chat.completion.chunk"``."""

    __slots__ = ()
    _fields = frozenset(["choices", "created", "id", "model", "moderation", "obfuscation", "object", "service_tier", "system_fingerprint", "usage"])
    _nested = {"choices": ChunkChoice, "usage": CompletionUsage}


class EmbeddingResponse(OpenAIObject):
    """``object == "list"`` of ``{"object": "embedding", "index", "embedding"}``."""

    __slots__ = ()
    _fields = frozenset(["data", "model", "object", "usage"])
    _nested = {"data": Embedding, "usage": EmbeddingUsage}


class RerankResponse(OpenAIObject):
    """Cohere-style ``results`` of ``{"index", "relevance_score", "document"?}``."""

    __slots__ = ()
    _fields = frozenset(["id", "meta", "model", "results"])
    _nested = {"results": RerankResult, "meta": RerankMeta}


# ------------------------------------------------------------------ Responses API

ResponseUsage = _declare(
    "ResponseUsage", "input_tokens input_tokens_details output_tokens output_tokens_details total_tokens",
    {"input_tokens_details": PromptTokensDetails, "output_tokens_details": CompletionTokensDetails},
)  # fmt: skip
ResponseError = _declare("ResponseError", "code message")
ResponseOutputItem = _declare(
    "ResponseOutputItem", "arguments call_id content encrypted_content id name role status summary type action input namespace"
)


class Response(OpenAIObject):
    """``object == "response"``, as openai-python's ``Response``; ``output_text`` joins the text
    of every output message."""

    __slots__ = ()
    _fields = frozenset(["background", "completed_at", "conversation", "created_at", "error", "frequency_penalty", "id",
                         "incomplete_details", "instructions", "max_output_tokens", "max_tool_calls", "metadata", "model", "object",
                         "output", "parallel_tool_calls", "presence_penalty", "previous_response_id", "prompt", "prompt_cache_key",
                         "reasoning", "safety_identifier", "service_tier", "status", "store", "temperature", "text", "tool_choice",
                         "tools", "top_logprobs", "top_p", "truncation", "usage", "user"])  # fmt: skip
    _nested = {"usage": ResponseUsage, "error": ResponseError, "output": ResponseOutputItem}

    @property
    def output_text(self) -> str:
        return "".join(
            part.get("text") or ""
            for item in dict.get(self, "output") or [] if isinstance(item, dict) and item.get("type") == "message"
            for part in item.get("content") or [] if isinstance(part, dict) and part.get("type") == "output_text"
        )  # fmt: skip


class ResponseStreamEvent(OpenAIObject):
    """One typed event of a Responses stream (``type`` says which); ``response`` is a Response."""

    __slots__ = ()
    _fields = frozenset(["arguments", "code", "content_index", "delta", "item", "item_id", "logprobs", "message", "name", "output_index",
                         "part", "response", "sequence_number", "summary_index", "text", "type"])  # fmt: skip
    _nested = {"response": Response, "item": ResponseOutputItem}


class ResponseItemList(OpenAIObject):
    """``object == "list"``: a stored response's input items."""

    __slots__ = ()
    _fields = frozenset(["data", "first_id", "has_more", "last_id", "object"])


class ResponseDeleted(OpenAIObject):
    __slots__ = ()
    _fields = frozenset(["deleted", "id", "object"])
