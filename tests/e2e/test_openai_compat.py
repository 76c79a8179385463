"""ocilm's response objects read like openai-python's: every field openai-python declares
gives the same value on ocilm's object for the same reply (None where the wire has none),
and an undeclared name raises AttributeError.

The declared fields are read from the installed ``openai`` package, so a new field there
shows up here as a failure until ocilm declares it too.
"""

from __future__ import annotations

import json
import typing

import pydantic
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import ocilm
from ocilm import _types

WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}  # fmt: skip


def _models_in(annotation: typing.Any) -> list[type[pydantic.BaseModel]]:
    if typing.get_origin(annotation) is not None:
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    return []


def walk(theirs: typing.Any, ours: typing.Any, path: str, visited: list[str]) -> None:
    """Compare every declared field of an openai-python object with ocilm's, recursively."""
    if isinstance(theirs, pydantic.BaseModel):
        assert ours is not None, f"{path}: openai-python has an object, ocilm has None"
        for name in type(theirs).model_fields:
            visited.append(f"{type(theirs).__name__}.{name}")
            walk(getattr(theirs, name), getattr(ours, name), f"{path}.{name}", visited)
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), path
        for i, (a, b) in enumerate(zip(theirs, ours, strict=True)):
            walk(a, b, f"{path}[{i}]", visited)
    else:
        assert ours == theirs, f"{path}: openai-python reads {theirs!r}, ocilm reads {ours!r}"


def check(openai_type: type[pydantic.BaseModel], ours: typing.Any) -> list[str]:
    wire = json.loads(json.dumps(ours))
    theirs = openai_type.model_validate(wire)  # strict: validation fails on a wrong shape
    visited: list[str] = []
    walk(theirs, ours, openai_type.__name__, visited)
    return visited


@pytest.fixture
def replies(creds):
    """Replies that between them carry every kind of field ocilm produces."""
    user = [{"role": "user", "content": "What is the weather in Paris?"}]
    return {
        "text": ocilm.completion("oci/meta.llama-3.3-70b-instruct", [{"role": "user", "content": "Hi"}], **creds),
        "logprobs": ocilm.completion("oci/xai.grok-3-mini", [{"role": "user", "content": "Hi"}], logprobs=True, top_logprobs=2, **creds),
        "tools": ocilm.completion("oci/meta.llama-3.3-70b-instruct", user, tools=[WEATHER_TOOL], **creds),
        "cohere": ocilm.completion("oci/cohere.command-latest", [{"role": "user", "content": "Hi"}], **creds),
        "cohere_v2_tools": ocilm.completion("oci/cohere.command-a-03-2025", user, tools=[WEATHER_TOOL], **creds),
    }


def test_chat_completion_fields_match_openai_python(replies):
    visited: set[str] = set()
    for reply in replies.values():
        visited.update(check(ChatCompletion, reply))
    # Reached every nested object ocilm produces, not only the top level.
    for name in ("ChatCompletion.service_tier", "Choice.logprobs", "ChoiceLogprobs.content", "TopLogprob.bytes",
                 "ChatCompletionMessage.function_call", "ChatCompletionMessage.audio", "ChatCompletionMessage.annotations",
                 "ChatCompletionMessageFunctionToolCall.id", "Function.arguments",
                 "PromptTokensDetails.audio_tokens", "CompletionTokensDetails.reasoning_tokens"):  # fmt: skip
        assert name in visited, name
    r = replies["text"]
    assert r.choices[0].message.function_call is None and r.service_tier is None
    assert r.usage.prompt_tokens_details.audio_tokens is None
    assert "service_tier" not in r and "function_call" not in r.choices[0].message  # absent stays absent on the wire


@pytest.mark.parametrize("model", ["meta.llama-3.3-70b-instruct", "openai.gpt-4.1", "cohere.command-latest", "cohere.command-a-03-2025", "xai.grok-4"])
@pytest.mark.parametrize("include_usage", [False, True])
def test_chunk_fields_match_openai_python(creds, model, include_usage):
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(ocilm.completion(f"oci/{model}", [{"role": "user", "content": "What is the weather in Paris?"}],
                                   tools=[WEATHER_TOOL], stream=True, **options, **creds))  # fmt: skip
    visited: set[str] = set()
    for chunk in chunks:
        visited.update(check(ChatCompletionChunk, chunk))
    assert {"ChoiceDelta.role", "ChoiceDelta.refusal", "ChoiceDeltaToolCall.id", "ChoiceDeltaToolCall.type"} <= visited
    assert chunks[1].choices[0].delta.role is None  # openai-python reads None after the first chunk
    if not include_usage:
        assert all(c.usage is None for c in chunks) and all("usage" not in c for c in chunks)


def test_tool_call_continuation_fragments_read_none(creds):
    chunks = list(ocilm.completion("oci/openai.gpt-4.1", [{"role": "user", "content": "What is the weather in Paris?"}],
                                   tools=[WEATHER_TOOL], stream=True, **creds))  # fmt: skip
    fragments = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or []) if "id" not in tc]
    assert fragments, "expected id-less argument fragments from an OpenAI model's stream"
    for fragment in fragments:
        assert fragment.id is None and fragment.type is None and fragment.function.name is None
        check(ChatCompletionChunk, _types.ChatCompletionChunk({"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m",
              "choices": [{"index": 0, "delta": {"tool_calls": [dict(fragment)]}, "finish_reason": None}]}))  # fmt: skip


def test_embedding_fields_match_openai_python(creds):
    reply = ocilm.embedding("oci/cohere.embed-english-v3.0", ["a", "b"], **creds)
    visited = check(CreateEmbeddingResponse, reply)
    assert {"Embedding.embedding", "Usage.prompt_tokens"} <= set(visited)


def test_rerank_fields_read_none_when_absent(creds):
    reply = ocilm.rerank("oci/cohere.rerank-v3.5", "capital", ["Paris", "a cat"], **creds)
    assert reply.results[0].document is None  # return_documents not asked
    assert reply.meta.billed_units is None
    with pytest.raises(AttributeError):
        reply.results[0].scores  # noqa: B018


def test_undeclared_names_raise(replies):
    r = replies["text"]
    for obj, name in ((r, "no_such_field"), (r.choices[0], "text"), (r.choices[0].message, "contents"), (r.usage, "input_tokens")):
        with pytest.raises(AttributeError, match=name):
            getattr(obj, name)


def _openai_classes(root: type[pydantic.BaseModel]) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}

    def visit(cls: type[pydantic.BaseModel], path: str) -> None:
        if path in out:
            return
        out[path] = frozenset(cls.model_fields)
        for name, field in cls.model_fields.items():
            for model in _models_in(field.annotation):
                visit(model, f"{path}.{name}")

    visit(root, "")
    return out


@pytest.mark.parametrize(("root", "ours"), [(ChatCompletion, _types.ChatCompletion), (ChatCompletionChunk, _types.ChatCompletionChunk),
                                            (CreateEmbeddingResponse, _types.EmbeddingResponse)])  # fmt: skip
def test_every_declared_class_is_declared_here(root, ours):
    """Beyond one reply: each openai-python class reachable from the root has its fields
    declared on the ocilm class at the same place (except the moderation results and custom
    tool calls, which OCI never sends)."""
    for path, fields in _openai_classes(root).items():
        parts = [p for p in path.split(".") if p]
        if "moderation" in parts or "custom" in parts:
            continue
        cls = ours
        for part in parts:
            cls = cls._nested.get(part)
            assert cls is not None, f"{root.__name__}{path}: no typed class at this place"
        if fields >= {"custom"}:
            continue
        missing = fields - cls._fields
        assert not missing, f"{root.__name__}{path} ({cls.__name__}): not declared: {sorted(missing)}"
