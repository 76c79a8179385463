"""The cache's pure parts: a reply and its stream turn into each other without loss (text,
reasoning, tool calls, finish reasons, usage, every choice), the key separates what must be
separate, and the in-process store stays within its bounds."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from ocilm.gateway._cache import (
    CacheControl,
    CacheSettings,
    LocalCache,
    assemble,
    cache_key,
    chunks_of,
    split,
)
from ocilm.gateway._errors import GatewayError

REPLY = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "llama", "system_fingerprint": None,
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hello", "reasoning_content": "think", "tool_calls": None},
         "finish_reason": "stop", "logprobs": None},
        {"index": 1, "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}},
            {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
         "finish_reason": "tool_calls", "logprobs": None},
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
}  # fmt: skip


def test_a_reply_survives_its_stream():
    again = assemble(split(REPLY))
    assert again["usage"] == REPLY["usage"] and again["id"] == "chatcmpl-1"
    first, second = again["choices"]
    assert first["message"]["content"] == "hello" and first["message"]["reasoning_content"] == "think" and first["finish_reason"] == "stop"
    assert second["message"]["tool_calls"] == REPLY["choices"][1]["message"]["tool_calls"] and second["finish_reason"] == "tool_calls"


def test_usage_goes_only_to_a_caller_that_asked():
    entry = {"reply": REPLY, "chunks": None}
    assert not any("usage" in c for c in chunks_of(entry, with_usage=False))
    asked = chunks_of(entry, with_usage=True)
    assert asked[-1]["usage"] == REPLY["usage"] and all(c["usage"] is None for c in asked[:-1])


def _caller(token: str | None, team: str | None) -> SimpleNamespace:
    return SimpleNamespace(token=token, team_id=team)


@pytest.mark.parametrize("scope", ["team", "key", "global"])
def test_the_key_separates_tenants_by_scope(scope):
    settings = CacheSettings(scope=scope)

    def key(caller, **params) -> str:
        return cache_key(settings, route="chat", method="completion", model="llama", first=[{"role": "user", "content": "x"}],
                         params={"max_tokens": 5, **params}, guardrails=[], caller=caller)  # fmt: skip

    a1, a2, b, lone = _caller("t1", "a"), _caller("t2", "a"), _caller("t3", "b"), _caller("t4", None)
    same_team = key(a1) == key(a2)
    assert same_team is (scope in ("team", "global"))
    assert (key(a1) == key(b)) is (scope == "global") and (key(lone) == key(_caller("t5", None))) is (scope == "global")
    assert key(a1, user="u", metadata={"x": 1}, stream_options={"include_usage": True}) == key(a1)  # no effect on the answer
    assert key(a1, temperature=0.1) != key(a1) and key(a1, max_tokens=6) != key(a1)


def test_guardrails_that_ran_are_part_of_the_key():
    settings = CacheSettings()
    caller = _caller("t1", "a")
    keys = {cache_key(settings, route="chat", method="completion", model="m", first="x", params={}, guardrails=g, caller=caller)
            for g in ([], ["pii"], ["pii", "injection"], ["injection", "pii"])}  # fmt: skip
    assert len(keys) == 3


def test_the_local_store_keeps_to_its_bounds():
    async def run() -> LocalCache:
        store = LocalCache(CacheSettings(max_entries=3, max_bytes=25))
        for i in range(5):
            await store.put(f"k{i}", b"0123456789", 60)
        assert await store.get("k0") is None and store.bytes <= 25
        assert (await store.get("k4"))[0] == b"0123456789"
        await store.put("short", b"x", 0.01)
        await asyncio.sleep(0.02)
        assert await store.get("short") is None
        return store

    assert len(asyncio.run(run())._entries) <= 3


@pytest.mark.parametrize("value", ["no-cache", ["ttl"], {"ttl": True}, {"ttl": float("nan")}, {"s-maxage": 10**9}, {"use-cache": 1}])
def test_a_bad_cache_value_names_the_parameter(value):
    with pytest.raises(GatewayError) as refused:
        CacheControl.parse(value, None)
    assert refused.value.param == "cache"


def test_the_header_and_the_body_combine():
    control = CacheControl.parse({"ttl": 5}, "no-store, s-maxage=30")
    assert (control.read, control.write, control.ttl, control.max_age) == (True, False, 5.0, 30.0)


def test_a_long_stream_assembles_in_linear_time():
    """A stream kept as 200,000 small chunks (the entry's 4 MB bound) becomes a reply without
    copying its growing text once per chunk (that took minutes; joining takes well under 5 s)."""
    import time

    piece = {"id": "c", "choices": [{"index": 0, "delta": {"content": "x" * 20,
             "tool_calls": [{"index": 0, "function": {"arguments": "y" * 20}}]}, "finish_reason": None}]}  # fmt: skip
    chunks = [piece] * 200_000
    started = time.perf_counter()
    reply = assemble(chunks)
    assert time.perf_counter() - started < 5
    message = reply["choices"][0]["message"]
    assert len(message["content"]) == 4_000_000 and len(message["tool_calls"][0]["function"]["arguments"]) == 4_000_000
