"""The agent doors against hostile and unusual callers: quadratic tool names, huge bodies that
must not stall the event loop, stored responses bound to their owner and to a size, stop
sequences, and reasoning that a leaving client was sent."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from ocilm.doors import responses as openai_responses
from ocilm.doors._common import MAX_TOOLS
from ocilm.gateway import create_app, parse_config
from ocilm.gateway.governance._gate import Gate, Meter, StreamWatch
from ocilm.testing import BackgroundServer

anthropic = pytest.importorskip("anthropic")
MASTER = "sk-master-doors-hard-1"
ADMIN = {"authorization": f"Bearer {MASTER}"}
ANTHROPIC = {"anthropic-version": "2023-06-01"}


@pytest.fixture
def gateway(creds, tmp_path):
    config = {
        "model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds}},
                       {"model_name": "grok4", "litellm_params": {"model": "oci/xai.grok-4", **creds}}],
        "router_settings": {"model_group_alias": {"gpt-5*": "llama", "claude-*": "llama"}},
        "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path / 'g.db'}"},
    }  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as server:
        yield server


def _key(gateway, **fields) -> str:
    r = httpx.post(f"{gateway.base_url}/key/generate", headers=ADMIN, json=fields, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["key"]


# ---------------------------------------------------------------- A1: no quadratic path


def test_tool_names_that_flatten_alike_cost_linear_time():
    """4,000 names that all flatten to ``a_b`` took 2.8 s before (quadratic); the work per name is
    now constant, so 4,000 cost about four times 1,000 (measured by the suffix loop's steps)."""
    tools = [{"type": "function", "name": f"a{chr(0x100 + i)}b", "parameters": {"type": "object"}} for i in range(1000)]
    chat, table, _ = openai_responses.map_tools(tools)
    names = [t["function"]["name"] for t in chat]
    assert len(set(names)) == 1000 and names[:3] == ["a_b", "a_b_2", "a_b_3"] and names[-1] == "a_b_1000"
    assert all(table[n].name == tools[i]["name"] for i, n in enumerate(names))
    started = time.perf_counter()
    openai_responses.map_tools(tools * 1)  # warm
    small = time.perf_counter() - started
    started = time.perf_counter()
    openai_responses.map_tools([{"type": "function", "name": f"a{chr(0x100 + i)}b"} for i in range(MAX_TOOLS)])
    assert time.perf_counter() - started < max(1.0, small * 40)


def test_too_many_tools_is_a_400_naming_tools(gateway):
    key = _key(gateway)
    many = [{"type": "function", "name": f"t{i}"} for i in range(MAX_TOOLS + 1)]
    r = httpx.post(f"{gateway.base_url}/v1/responses", headers={"authorization": f"Bearer {key}"}, json={"model": "gpt-5", "input": "hi", "tools": many})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools"
    many = [{"name": f"t{i}", "input_schema": {"type": "object"}} for i in range(MAX_TOOLS + 1)]
    r = httpx.post(f"{gateway.base_url}/v1/messages", headers={"x-api-key": key, **ANTHROPIC},
                   json={"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "tools": many})  # fmt: skip
    assert r.status_code == 400 and "tools" in r.text


def _deep(depth: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


ADVERSARIAL = {
    "responses: colliding tools": ("/v1/responses", {"model": "gpt-5", "input": "hi",
                                                     "tools": [{"type": "function", "name": f"a{chr(0x100 + i)}b"} for i in range(MAX_TOOLS)]}),
    "responses: many items": ("/v1/responses", {"model": "gpt-5", "input": [{"role": "user", "content": [{"type": "input_text", "text": "w"}]}] * 20000}),
    "messages: many blocks": ("/v1/messages", {"model": "claude-x", "max_tokens": 5,
                                               "messages": [{"role": "user", "content": [{"type": "text", "text": "w"}] * 20000}]}),
    "messages: many tools": ("/v1/messages", {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
                                              "tools": [{"name": f"t{i}", "description": "d" * 500, "input_schema": {"type": "object"}}
                                                        for i in range(MAX_TOOLS)]}),
    "chat: many messages": ("/v1/chat/completions", {"model": "llama", "max_tokens": 5,
                                                     "messages": [{"role": "user", "content": "w"}, {"role": "assistant", "content": "w"}] * 10000
                                                     + [{"role": "user", "content": "hi"}]}),
    "chat: deep schema": ("/v1/chat/completions", {"model": "llama", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
                                                   "response_format": {"type": "json_schema", "json_schema": {"name": "d", "schema": _deep(300)}}}),
    "chat: nested past any parser": ("/v1/chat/completions", b'{"model": "llama", "messages": [{"role": "user", "content": '
                                     + b'[' * 100_000 + b']' * 100_000 + b'}]}'),
}  # fmt: skip


@pytest.mark.parametrize("case", list(ADVERSARIAL))
def test_large_adversarial_bodies_never_stall_the_event_loop(gateway, case):
    """While each door parses a large hostile body (a few MB at most), a liveness probe on the
    same worker still answers promptly, and the body gets an answer, never a 500."""
    path, body = ADVERSARIAL[case]
    key = _key(gateway, max_budget=1000)

    async def go() -> tuple[int, float]:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=120) as client:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            big = asyncio.ensure_future(client.post(path, content=content, headers={"authorization": f"Bearer {key}",
                                                                                    "content-type": "application/json", **ANTHROPIC}))  # fmt: skip
            await asyncio.sleep(0.05)
            worst = 0.0
            while not big.done():
                started = time.perf_counter()
                await client.get("/health/liveliness")
                worst = max(worst, time.perf_counter() - started)
                await asyncio.sleep(0.01)
            return (await big).status_code, worst

    status, worst = asyncio.run(go())
    assert status < 500, (case, status)
    assert worst < 1.0, f"{case}: the event loop stalled {worst:.2f} s"


# ---------------------------------------------------------------- A2, A3: stored responses


def test_a_stored_response_is_readable_only_by_its_owner(gateway):
    for team in ("a", "b"):
        httpx.post(f"{gateway.base_url}/team/new", headers=ADMIN, json={"team_id": f"team-{team}"}, timeout=30)
    owner, teammate, stranger, teamless = (_key(gateway, team_id="team-a"), _key(gateway, team_id="team-a"),
                                           _key(gateway, team_id="team-b"), _key(gateway))  # fmt: skip

    def respond(key: str, **body) -> httpx.Response:
        return httpx.post(f"{gateway.base_url}/v1/responses", headers={"authorization": f"Bearer {key}"}, json={"model": "gpt-5", **body}, timeout=30)

    first = respond(owner, input="my secret is Rosebud")
    assert first.status_code == 200
    rid = first.json()["id"]
    assert respond(teammate, input="what was it?", previous_response_id=rid).status_code == 200  # a team shares its responses
    for outsider in (stranger, teamless, MASTER):
        refused = respond(outsider, input="what was it?", previous_response_id=rid)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "previous_response_not_found"


def test_the_response_store_is_bounded_by_size_not_count():
    store = openai_responses.ResponseStore(max_chars=10_000, max_entry_chars=4_000)
    store.put("big", "o", [{"role": "user", "content": "x" * 5_000}])
    assert store.get("big", "o") is None  # larger than an entry may be: not kept
    for i in range(10):
        store.put(f"r{i}", "o", [{"role": "user", "content": "y" * 1_500}])
    assert store.chars <= 10_000 and len(store) < 10
    assert store.get("r9", "o") is not None and store.get("r0", "o") is None  # the oldest went first
    assert store.get("r9", "someone else") is None


# ---------------------------------------------------------------- L5: stop sequences


def test_a_stop_sequence_is_reported_as_anthropic_does(gateway):
    key = _key(gateway)
    with anthropic.Anthropic(base_url=gateway.base_url, api_key=key, max_retries=0, _strict_response_validation=True) as an:
        plain = an.messages.create(model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
        assert plain.stop_reason == "end_turn" and plain.stop_sequence is None
        stopped = an.messages.create(model="claude-x", max_tokens=50, stop_sequences=["said"], messages=[{"role": "user", "content": "hi"}])
        assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "said"
        with an.messages.stream(model="claude-x", max_tokens=50, stop_sequences=["said"], messages=[{"role": "user", "content": "hi"}]) as s:
            final = s.get_final_message()
        assert final.stop_reason == "stop_sequence" and final.stop_sequence == "said"


# ---------------------------------------------------------------- B3: what a leaving client was sent


class _Gate(Gate):
    def __init__(self) -> None:
        super().__init__(None)
        self.store = object()  # type: ignore[assignment]
        self.settled: list[dict] = []

    def settle_later(self, meter: Meter, **result) -> None:
        self.settled.append(result)


def test_reasoning_and_tool_arguments_sent_to_a_leaving_client_are_billed():
    gate = _Gate()
    meter = Meter(gate, gate_caller(), "r", "chat", "grok4")
    watch = StreamWatch(gate, meter, None, 40, keep_usage=True)
    thought = "Thinking it through, at length. " * 50
    watch.see([{"choices": [{"index": 0, "delta": {"reasoning_content": thought}}]}])
    watch.see([{"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": '{"a": "' + "b" * 400 + '"}'}}]}}]}])
    watch.abandon()
    (result,) = gate.settled
    assert result["status"] == 499 and result["estimated"][0] == 10
    assert result["estimated"][1] >= (len(thought) + 400) // 4  # not one token


def gate_caller():
    from ocilm.gateway.governance._gate import Caller

    return Caller("k1", has_budget=True)
