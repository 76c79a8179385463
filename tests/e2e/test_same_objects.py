"""Response objects read the same whichever of OCI's APIs answered (the native one, or
``/openai/v1`` with a Generative AI API key): every field openai-python declares reads as ``None``
when the reply did not carry it, by attribute and by key."""

from __future__ import annotations

import pytest

import ocilm
from ocilm._types import OpenAIObject


def _walk(obj, seen: list) -> None:
    """Every typed object inside a response, reached through its declared fields."""
    if isinstance(obj, OpenAIObject):
        seen.append(obj)
        for name in type(obj)._fields:
            if name in dict.keys(obj):
                _walk(obj[name], seen)
    elif isinstance(obj, list):
        for item in obj:
            _walk(item, seen)


def _same_both_ways(obj: OpenAIObject) -> None:
    for name in type(obj)._fields:
        if hasattr(dict, name):
            continue
        by_key = obj[name]  # never a KeyError for a declared field
        assert by_key == getattr(obj, name), (type(obj).__name__, name)


@pytest.fixture(params=["native", "openai_v1"])
def api(request, oci_simulator):
    if request.param == "native":
        return {**oci_simulator.credentials()}
    return {**oci_simulator.api_key_credentials()}


def test_every_declared_field_reads_alike_by_key_and_by_attribute(api):
    reply = ocilm.completion("oci/xai.grok-3", [{"role": "user", "content": "Hi"}], max_tokens=10, **api)
    chunks = list(ocilm.completion("oci/xai.grok-3", [{"role": "user", "content": "Hi"}], max_tokens=10, stream=True, **api))
    last = next(c for c in reversed(chunks) if c["choices"])
    assert last["choices"][0]["delta"]["content"] is last.choices[0].delta.content  # the review's case: a KeyError on /openai/v1
    objects: list = []
    _walk(reply, objects)
    for chunk in chunks:
        _walk(chunk, objects)
    assert len(objects) > len(chunks)
    for obj in objects:
        _same_both_ways(obj)
    with pytest.raises(KeyError):
        reply["no_such_field"]


def test_a_finish_chunk_has_no_content_and_says_so_with_none(api):
    chunks = list(ocilm.completion("oci/xai.grok-3", [{"role": "user", "content": "Hi"}], max_tokens=10, stream=True, **api))
    finish = next(c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"])
    assert finish["choices"][0]["delta"]["tool_calls"] is None and finish["choices"][0]["logprobs"] is None
