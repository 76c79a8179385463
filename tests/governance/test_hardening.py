"""The December 6 review's attacks, tried again through the gateway over HTTP on SQLite and
PostgreSQL: budgets against ``n``, tools and reasoning; hostile numbers and names; one tenant's
bad request among another's; aliases against limits and metrics; restricted keys."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from ocilm.gateway import create_app, parse_config
from ocilm.testing import BackgroundServer

from .conftest import migrate

openai = pytest.importorskip("openai")
MASTER = "sk-master-hardening-1"
ADMIN = {"authorization": f"Bearer {MASTER}"}
LLAMA = "oci/meta.llama-3.3-70b-instruct"
PRICE = {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.001}
WORDS = " ".join(["word"] * 55)


def _config(creds: dict, database_url: str, **general) -> dict:
    return {
        "model_list": [
            {"model_name": "llama", "litellm_params": {"model": LLAMA, **creds, **PRICE}},
            {"model_name": "grok", "litellm_params": {"model": "oci/xai.grok-3", **creds, **PRICE}},
            {"model_name": "grok4", "litellm_params": {"model": "oci/xai.grok-4", **creds, **PRICE}},
            {"model_name": "command", "litellm_params": {"model": "oci/cohere.command-a-03-2025", **creds, **PRICE}},
        ],
        "router_settings": {"model_group_alias": {"claude-*": "llama", "gpt-5*": "grok4"}},
        "general_settings": {"master_key": MASTER, "database_url": database_url, **general},
    }  # fmt: skip


@pytest.fixture
def gateway(creds, store_url):
    if store_url.startswith("postgresql"):
        migrate(store_url)
    with BackgroundServer(create_app(parse_config(_config(creds, store_url)))) as server:
        server.store_url = store_url
        yield server


@pytest.fixture
def limited_gateway(creds, tmp_path):
    """One process on SQLite: rate limits counted in the process (with PostgreSQL they need Redis)."""
    with BackgroundServer(create_app(parse_config(_config(creds, f"sqlite:///{tmp_path / 'g.db'}")))) as server:
        yield server


def admin(gateway, path: str, body: dict | None = None, **params) -> httpx.Response:
    if body is None:
        return httpx.get(f"{gateway.base_url}{path}", headers=ADMIN, params=params, timeout=30)
    return httpx.post(f"{gateway.base_url}{path}", headers=ADMIN, json=body, timeout=30)


def new_key(gateway, **fields) -> dict:
    r = admin(gateway, "/key/generate", fields)
    assert r.status_code == 200, r.text
    return r.json()


def post(gateway, path: str, key: str, body: dict, **headers) -> httpx.Response:
    return httpx.post(f"{gateway.base_url}{path}", headers={"authorization": f"Bearer {key}", **headers}, json=body, timeout=60)


def spend(gateway, token: str) -> float:
    return admin(gateway, "/key/info", key=token).json()["info"]["spend"]


def _estimate(reply: httpx.Response) -> float:
    """The hold a budget refusal names: "this request may cost up to $X"."""
    found = re.search(r"may cost up to \$([0-9.]+)", reply.text)
    assert reply.status_code == 429 and found, reply.text
    return float(found.group(1))


# ---------------------------------------------------------------- B1, B2: the worst case is the whole request

TOOLS = [{"type": "function", "function": {"name": f"tool_{i}", "description": "Looks things up. " * 40,
                                           "parameters": {"type": "object", "properties": {f"field_{j}": {"type": "string"} for j in range(20)}}}}
         for i in range(30)]  # fmt: skip
ANTHROPIC_TOOLS = [{"name": t["function"]["name"], "description": t["function"]["description"], "input_schema": t["function"]["parameters"]}
                   for t in TOOLS]  # fmt: skip
RESPONSES_TOOLS = [{"type": "function", "name": t["function"]["name"], "description": t["function"]["description"],
                    "parameters": t["function"]["parameters"]} for t in TOOLS]  # fmt: skip
CASES = {
    "chat n=8": ("/v1/chat/completions", {"model": "llama", "n": 8, "max_tokens": 60, "messages": [{"role": "user", "content": WORDS}]}),
    "chat tools": ("/v1/chat/completions", {"model": "grok", "max_tokens": 30, "tools": TOOLS,
                                            "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}),
    "chat schema": ("/v1/chat/completions", {"model": "llama", "max_tokens": 200, "messages": [{"role": "user", "content": "a person"}],
                                             "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": {
                                                 "type": "object", "properties": {f"p{i}": {"type": "string", "description": "x" * 50}
                                                                                  for i in range(40)}}}}}),
    "chat reasoning": ("/v1/chat/completions", {"model": "grok4", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    "chat reasoning bounded": ("/v1/chat/completions", {"model": "grok4", "max_completion_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}),
    "chat cohere tools": ("/v1/chat/completions", {"model": "command", "max_tokens": 40, "tools": TOOLS,
                                                   "messages": [{"role": "user", "content": "hello there"}]}),
    "messages tools": ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 32000, "tools": ANTHROPIC_TOOLS, "system": "Be brief.",
                                        "messages": [{"role": "user", "content": "hello there"}]}),
    "responses tools": ("/v1/responses", {"model": "gpt-5-codex", "max_output_tokens": 50, "tools": RESPONSES_TOOLS,
                                          "instructions": "Be brief.", "input": "hello there"}),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_every_hold_covers_what_the_request_then_costs(gateway, case):
    """Through every front door: the hold a tiny budget refuses is at least what the same request
    costs when a key can afford it (n, tools, schemas, reasoning and the doors' mapping included)."""
    path, body = CASES[case]
    broke = new_key(gateway, max_budget=0.000000001)["key"]
    estimate = _estimate(post(gateway, path, broke, body, **{"anthropic-version": "2023-06-01"}))
    rich = new_key(gateway, max_budget=1000)
    reply = post(gateway, path, rich["key"], body, **{"anthropic-version": "2023-06-01"})
    assert reply.status_code == 200, reply.text
    cost = spend(gateway, rich["token"])
    assert 0 < cost <= estimate, f"{case}: spent {cost}, held {estimate}"


def test_n_choices_are_held_so_a_budget_is_never_overshot(gateway):
    made = new_key(gateway, max_budget=0.10)
    body = {"model": "llama", "n": 8, "max_tokens": 60, "messages": [{"role": "user", "content": WORDS}]}
    assert post(gateway, "/v1/chat/completions", made["key"], body).status_code == 429  # 8 x 60 output tokens may cost $0.48
    assert post(gateway, "/v1/chat/completions", made["key"], {**body, "n": 1}).status_code == 200
    assert spend(gateway, made["token"]) <= 0.10


def test_max_completion_tokens_is_sent_as_ocis_bound_and_held_exactly(gateway, oci_simulator):
    """A reasoning model's thinking counts within max_completion_tokens (OCI's maxCompletionTokens):
    20 tokens are held, not 20 plus the 4,000-token allowance that max_tokens still carries."""
    made = new_key(gateway, max_budget=0.05)  # $0.001 an output token: 20 fit, 4,020 do not
    body = {"model": "grok4", "messages": [{"role": "user", "content": "hi"}]}
    assert post(gateway, "/v1/chat/completions", made["key"], {**body, "max_tokens": 20}).status_code == 429
    reply = post(gateway, "/v1/chat/completions", made["key"], {**body, "max_completion_tokens": 20})
    assert reply.status_code == 200, reply.text
    sent = [r.json["chatRequest"] for r in oci_simulator.requests if r.path.endswith("/actions/chat")][-1]
    assert sent["maxCompletionTokens"] == 20 and "maxTokens" not in sent
    usage = reply.json()["usage"]
    assert usage["completion_tokens"] <= 20 and usage["completion_tokens_details"]["reasoning_tokens"] > 0
    assert spend(gateway, made["token"]) <= 0.05


def test_tool_definitions_raise_the_hold(gateway):
    broke = new_key(gateway, max_budget=0.000000001)["key"]
    body = {"model": "llama", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
    bare = _estimate(post(gateway, "/v1/chat/completions", broke, body))
    big = [{"type": "function", "function": {"name": "t", "description": "d" * 200_000, "parameters": {"type": "object"}}}]
    assert _estimate(post(gateway, "/v1/chat/completions", broke, {**body, "tools": big})) >= bare + 200_000 * PRICE["input_cost_per_token"]


def test_an_agent_door_holds_the_clamped_output_limit_not_the_asked_one(gateway):
    """Claude Code asks for 32,000 output tokens; the call is clamped to 4,000, and so is the hold."""
    made = new_key(gateway, max_budget=10)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 32000, "messages": [{"role": "user", "content": "hi"}]}
    reply = post(gateway, "/v1/messages", made["key"], body, **{"anthropic-version": "2023-06-01"})
    assert reply.status_code == 200, reply.text


# ---------------------------------------------------------------- G1: hostile values stop at the edge


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/chat/completions", {"model": "llama", "max_tokens": 10**17, "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
    ("/v1/chat/completions", {"model": "llama", "max_completion_tokens": 10**400, "messages": [{"role": "user", "content": "hi"}]},
     "max_completion_tokens"),
    ("/v1/chat/completions", {"model": "llama", "n": 100000, "messages": [{"role": "user", "content": "hi"}]}, "n"),
    ("/v1/chat/completions", {"model": "claude-" + "x" * 300, "messages": [{"role": "user", "content": "hi"}]}, "model"),
    ("/v1/chat/completions", {"model": "claude-x\nINFO forged line", "messages": [{"role": "user", "content": "hi"}]}, "model"),
    ("/v1/messages", {"model": "claude-x", "max_tokens": 10**17, "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
    ("/v1/responses", {"model": "gpt-5", "max_output_tokens": 10**17, "input": "hi"}, "max_output_tokens"),
])  # fmt: skip
def test_hostile_numbers_and_names_are_a_400_naming_the_field(gateway, path, body, field):
    made = new_key(gateway, max_budget=5, rpm_limit=1000, tpm_limit=10**9) if not gateway.store_url.startswith("postgresql") else \
        new_key(gateway, max_budget=5)  # fmt: skip
    reply = post(gateway, path, made["key"], body, **{"anthropic-version": "2023-06-01"})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == field if "error" in reply.json() and "param" in reply.json()["error"] else field in reply.text


def test_one_tenants_hostile_requests_never_fail_another_tenants(gateway):
    """The review's G1: a team's hostile requests mixed with another team's ordinary ones, all
    at once; every ordinary request succeeds and is billed once."""
    for team in ("a", "b"):
        assert admin(gateway, "/team/new", {"team_id": f"team-{team}", "max_budget": 100}).status_code == 200
    hostile = new_key(gateway, team_id="team-a", max_budget=50)["key"]
    other = new_key(gateway, team_id="team-b", max_budget=50)

    async def go() -> tuple[list[int], list[int]]:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60) as client:
            def chat(key: str, **extra) -> object:
                body = {"model": "llama", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], **extra}
                return client.post("/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json=body)

            bad = [chat(hostile, max_tokens=10**17), chat(hostile, model="claude-" + "x" * 300), chat(hostile, n=10**6)] * 4
            good = [chat(other["key"]) for _ in range(40)]
            replies = await asyncio.gather(*bad, *good)
        return [r.status_code for r in replies[: len(bad)]], [r.status_code for r in replies[len(bad):]]

    bad_statuses, good_statuses = asyncio.run(go())
    assert set(bad_statuses) == {400}
    assert good_statuses == [200] * 40
    logs = admin(gateway, "/spend/logs", api_key=other["token"], limit="1000").json()
    assert len(logs) == 40 and len({row["request_id"] for row in logs}) == 40


def test_admin_values_past_their_columns_are_a_400(gateway):
    for path, body, field in [("/team/new", {"team_id": "t" * 100}, "team_id"),
                              ("/key/generate", {"budget_duration": "1000000000000000d"}, "budget_duration"),
                              ("/key/generate", {"budget_duration": "30d "}, "budget_duration"),
                              ("/key/generate", {"budget_duration": "30d\n"}, "budget_duration"),
                              ("/key/generate", {"key_alias": "a\nb"}, "key_alias"),
                              ("/key/generate", {"models": ["claude-" + "x" * 300]}, "models")]:  # fmt: skip
        reply = admin(gateway, path, body)
        assert reply.status_code == 400 and reply.json()["error"]["param"] == field, (body, reply.text)


# ---------------------------------------------------------------- O1, R1, L1, L2, L3: names are resolved once


def test_alias_names_never_grow_the_metrics_or_the_spend_log(gateway):
    made = new_key(gateway, models=["llama"])
    before = httpx.get(f"{gateway.base_url}/metrics", headers=ADMIN).text
    for i in range(20):
        body = {"model": f"claude-{i}-" + "y" * 200, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        assert post(gateway, "/v1/chat/completions", made["key"], body).status_code == 200
    after = httpx.get(f"{gateway.base_url}/metrics", headers=ADMIN).text
    assert "claude-" not in after and len(after) < len(before) * 2 + 20_000
    assert {row["model"] for row in admin(gateway, "/spend/logs", api_key=made["token"]).json()} == {"llama"}


def test_a_per_model_limit_holds_through_every_alias(limited_gateway):
    gateway = limited_gateway
    made = new_key(gateway, model_rpm_limit={"claude-3-haiku": 1})  # given by an alias: stored by the name behind it
    assert admin(gateway, "/key/info", key=made["token"]).json()["info"]["model_rpm_limit"] == {"llama": 1}
    statuses = [post(gateway, "/v1/chat/completions", made["key"], {"model": name, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}).status_code
                for name in ("llama", "claude-3-haiku", "claude-opus-4")]  # fmt: skip
    assert statuses == [200, 429, 429]


def test_a_restricted_key_sees_and_counts_only_its_models(gateway):
    made = new_key(gateway, models=["llama"])
    headers = {"authorization": f"Bearer {made['key']}"}
    listed = httpx.get(f"{gateway.base_url}/v1/models", headers=headers).json()
    assert [m["id"] for m in listed["data"]] == ["llama"]
    assert httpx.get(f"{gateway.base_url}/v1/models/grok", headers=headers).status_code == 404
    assert httpx.get(f"{gateway.base_url}/v1/models/llama", headers=headers).status_code == 200
    counted = post(gateway, "/v1/messages/count_tokens", made["key"], {"model": "grok", "messages": [{"role": "user", "content": "hi"}]},
                   **{"anthropic-version": "2023-06-01"})  # fmt: skip
    assert counted.status_code == 403
    missing = post(gateway, "/v1/chat/completions", made["key"], {"model": "nope", "messages": [{"role": "user", "content": "hi"}]})
    assert missing.status_code == 404 and "grok" not in missing.text


def test_a_keys_models_narrow_its_teams_never_widen_them(gateway):
    assert admin(gateway, "/team/new", {"team_id": "narrow", "models": ["llama"]}).status_code == 200
    made = new_key(gateway, team_id="narrow", models=["grok"])
    reply = post(gateway, "/v1/chat/completions", made["key"], {"model": "grok", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 403


# ---------------------------------------------------------------- R2: a request that can never fit


def test_a_request_larger_than_a_token_limit_is_a_400_not_a_429_forever(limited_gateway):
    gateway = limited_gateway
    made = new_key(gateway, tpm_limit=3000)
    reply = post(gateway, "/v1/chat/completions", made["key"], {"model": "llama", "messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 400 and "retry-after" not in reply.headers
    assert reply.json()["error"]["code"] == "request_exceeds_token_limit" and reply.json()["error"]["param"] == "max_tokens"
    small = post(gateway, "/v1/chat/completions", made["key"], {"model": "llama", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})
    assert small.status_code == 200
