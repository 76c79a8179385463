"""Junk in, a clear BadRequestError out: the translators never crash on malformed input."""

from __future__ import annotations

import random

import pytest

from ocilm._capabilities import model_info
from ocilm._core import translate
from ocilm._errors import BadRequestError
from ocilm.formats._common import ChatContext
from ocilm.formats.cohere import cohere_request
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


@pytest.mark.parametrize("build,model", [(generic_request, "meta.llama-4-scout-17b-16e-instruct"), (cohere_request, "cohere.command-latest")])
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
