"""Junk in, a clear BadRequestError out: the translators never crash on malformed input."""

from __future__ import annotations

import json
import random

import pytest

from ocilm._capabilities import model_info
from ocilm._core import translate
from ocilm._errors import BadRequestError
from ocilm.formats._common import ChatContext
from ocilm.formats.cohere import cohere_request
from ocilm.formats.cohere_v2 import cohere_v2_request
from ocilm.formats.generic import generic_request

JUNK = [None, 0, -1, 3.5, True, "", "x", [], [1], {}, {"a": 1}, [{}], [None], {"type": 5}, {"url": 3}]


def junk(rng: random.Random, depth: int = 0):
    if depth > 2 or rng.random() < 0.5:
        return rng.choice(JUNK)
    if rng.random() < 0.5:
        return [junk(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = ["type", "text", "image_url", "url", "detail", "function", "name", "arguments", "parameters", "properties",
            "input_audio", "file", "content", "role", "tool_calls", "id", "json_schema", "schema", "strict"]
    return {rng.choice(keys): junk(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def random_call(rng: random.Random):
    roles = ["user", "assistant", "system", "tool", "developer", "bot", None, 3]
    messages = [
        {"role": rng.choice(roles), "content": junk(rng), **({"tool_calls": junk(rng)} if rng.random() < 0.3 else {}),
         **({"tool_call_id": junk(rng)} if rng.random() < 0.3 else {})}
        for _ in range(rng.randint(1, 4))
    ]
    names = ["tools", "tool_choice", "response_format", "stop", "temperature", "n", "logit_bias", "prediction",
             "web_search_options", "metadata", "max_tokens", "documents", "seed", "top_k", "reasoning_effort"]
    params = {rng.choice(names): junk(rng) for _ in range(rng.randint(0, 3))}
    return messages, params


@pytest.mark.parametrize("build,model", [(generic_request, "meta.llama-4-scout-17b-16e-instruct"), (cohere_request, "cohere.command-latest"),
                                         (cohere_v2_request, "cohere.command-a-03-2025")])
def test_junk_never_crashes(build, model):
    rng = random.Random(1234)
    outcomes = {"ok": 0, "rejected": 0}
    for _ in range(3000):
        messages, params = random_call(rng)
        ctx = ChatContext(model=model, info=model_info(model), drop_params=rng.random() < 0.5)
        try:
            translate(build, messages, params, ctx)
            outcomes["ok"] += 1
        except BadRequestError as exc:
            assert exc.message
            outcomes["rejected"] += 1
    assert outcomes["rejected"] > 100 and outcomes["ok"] > 0


# ---------------------------------------------------------------- replies (review C5)

REPLY_KEYS = ["chatResponse", "choices", "message", "content", "type", "text", "toolCalls", "id", "name", "arguments", "function",
              "finishReason", "usage", "promptTokens", "completionTokens", "totalTokens", "logprobs", "tokens", "topLogprobs",
              "reasoningContent", "index", "apiFormat", "thinking", "embeddings", "documentRanks", "relevanceScore", "citations"]  # fmt: skip


def junk_reply(rng: random.Random, depth: int = 0):
    if depth > 4 or rng.random() < 0.3:
        return rng.choice([*JUNK, "TEXT", "TOOL_CALL", "stop", "COHEREV2"])
    if rng.random() < 0.3:
        return [junk_reply(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(REPLY_KEYS): junk_reply(rng, depth + 1) for _ in range(rng.randint(0, 5))}


@pytest.mark.parametrize("model", ["meta.llama-3.3-70b-instruct", "cohere.command-latest", "cohere.command-a-03-2025"])
@pytest.mark.parametrize("stream", [False, True])
def test_junk_replies_give_validation_errors_never_crashes(model, stream):
    """Any 200 reply, and any stream event, is read or refused with an OCIError."""
    import httpx

    from ocilm._client import _reply
    from ocilm._core import prepare_chat
    from ocilm._errors import OCIError
    from ocilm._settings import SettingsCache

    from ..conftest import TEST_KEY_PEM

    creds = {"oci_user": "u", "oci_fingerprint": "f", "oci_tenancy": "t", "oci_key": TEST_KEY_PEM, "oci_compartment_id": "c"}
    call = prepare_chat(SettingsCache(), model, [{"role": "user", "content": "x"}], stream, creds)
    rng = random.Random(99)
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(1500):
        reply = junk_reply(rng)
        body = json.dumps(reply).encode()
        try:
            if stream:
                assembler = call.new_assembler("RID")
                assembler.feed(b"data: " + body + b"\n\n")
                assembler.close()
            else:
                _reply(call, httpx.Response(200, content=body, headers={"opc-request-id": "RID"}), body)
            outcomes["ok"] += 1
        except OCIError as exc:
            assert exc.message
            outcomes["refused"] += 1
    assert outcomes["ok"] > 0 and outcomes["refused"] > 0


@pytest.mark.parametrize(("model", "build", "valid"), [
    ("meta.llama-3.3-70b-instruct", generic_request, "expected text, image_url, input_audio or file"),
    ("cohere.command-a-03-2025", cohere_v2_request, "for a Cohere model; expected text or image_url"),
])  # fmt: skip
def test_an_unsupported_content_part_names_its_place_and_the_valid_types(model, build, valid):
    ctx = ChatContext(model=model, info=model_info(model))
    content = ["plain text", {"type": "text", "text": "more"}, {"type": "video", "video": {}}]
    with pytest.raises(BadRequestError) as err:
        translate(build, [{"role": "user", "content": content}], {}, ctx)
    assert err.value.param == "messages[0].content[2].type"
    assert "unsupported content part 'video'" in str(err.value) and valid in str(err.value)
