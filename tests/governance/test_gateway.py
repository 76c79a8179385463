"""Keys, teams, budgets and spend through ``ocilm serve``'s app over HTTP, on SQLite and on
PostgreSQL, driven by the official openai SDK where a client would be."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from ocilm.gateway import create_app, parse_config
from ocilm.testing import BackgroundServer, Fault

from .conftest import migrate

openai = pytest.importorskip("openai")
MASTER = "sk-master-governance-1"
ADMIN = {"authorization": f"Bearer {MASTER}"}
PRICE = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}
HI = [{"role": "user", "content": "Hello there"}]


def config(creds: dict, database_url: str, **general) -> dict:
    return {
        "model_list": [
            {"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds, **PRICE}},
            {"model_name": "grok", "litellm_params": {"model": "oci/xai.grok-3", **creds}, "model_info": PRICE},
            {"model_name": "unpriced", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds, "oci_serving_mode": "DEDICATED",
             "oci_endpoint_id": "ocid1.generativeaiendpoint.oc1.us-chicago-1.simllama"}},  # billed by the hour: no per-request price
            {"model_name": "builtin", "litellm_params": {"model": "oci/xai.grok-3", **creds}},  # the built-in OCI price table
            {"model_name": "slow", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds, **PRICE,
             "extra_headers": {"x-ocilm-sim-fault": Fault(events=40, event_delay=0.05, times=None).header()}}},
        ],
        "general_settings": {"master_key": MASTER, "database_url": database_url, **general},
    }  # fmt: skip


@pytest.fixture
def gateway(creds, store_url):
    if store_url.startswith("postgresql"):
        migrate(store_url)  # replicas do not migrate by themselves: ocilm db upgrade
    with BackgroundServer(create_app(parse_config(config(creds, store_url)))) as server:
        yield server


def admin(gateway, path: str, body: dict | None = None, **params) -> httpx.Response:
    if body is None:
        return httpx.get(f"{gateway.base_url}{path}", headers=ADMIN, params=params, timeout=30)
    return httpx.post(f"{gateway.base_url}{path}", headers=ADMIN, json=body, timeout=30)


def client(gateway, key: str):
    return openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=key, max_retries=0, _strict_response_validation=True)


def new_key(gateway, **fields) -> dict:
    r = admin(gateway, "/key/generate", fields)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_team_key_is_made_used_billed_and_reported(gateway, oci_simulator):
    team = admin(gateway, "/team/new", {"team_alias": "research", "max_budget": 50}).json()
    made = new_key(gateway, team_id=team["team_id"], key_alias="ci", models=["llama"], metadata={"owner": "ana"})
    assert made["key"].startswith("sk-") and made["token"] in made["key"] and made["key_name"] == f"sk-...{made['key'][-4:]}"
    with client(gateway, made["key"]) as oa:
        raw = oa.chat.completions.with_raw_response.create(model="llama", messages=HI)
        reply = raw.parse()
    assert reply.choices[0].message.content.endswith("Hello there")
    usage = reply.usage
    expected = usage.prompt_tokens * 0.001 + usage.completion_tokens * 0.002
    assert float(raw.headers["x-litellm-response-cost"]) == pytest.approx(expected)
    info = admin(gateway, "/key/info", key=made["key"]).json()
    assert info["key"] == made["token"] and info["info"]["spend"] == pytest.approx(expected) and info["info"]["metadata"] == {"owner": "ana"}
    assert admin(gateway, "/key/info", key=made["token"]).json()["info"]["spend"] == pytest.approx(expected)  # by id too
    assert admin(gateway, "/team/info", team_id=team["team_id"]).json()["team_info"]["spend"] == pytest.approx(expected)
    logs = admin(gateway, "/spend/logs", api_key=made["token"]).json()
    assert len(logs) == 1 and logs[0]["prompt_tokens"] == usage.prompt_tokens and logs[0]["completion_tokens"] == usage.completion_tokens
    assert logs[0]["spend"] == pytest.approx(expected) and logs[0]["team_id"] == team["team_id"] and logs[0]["status"] == 200
    assert logs[0]["model"] == "llama" and logs[0]["model_id"] == "oci/meta.llama-3.3-70b-instruct"
    assert admin(gateway, "/spend/logs", team_id="nobody").json() == []
    everything = json.dumps([info, logs, admin(gateway, "/key/list").json()])
    assert made["key"] not in everything  # the secret is shown once


def test_what_a_key_may_not_do(gateway):
    made = new_key(gateway, models=["llama"])
    key = made["key"]
    with client(gateway, key) as oa, pytest.raises(openai.PermissionDeniedError, match="may not use model 'grok'"):
        oa.chat.completions.create(model="grok", messages=HI)
    r = httpx.post(f"{gateway.base_url}/key/generate", headers={"authorization": f"Bearer {key}"}, json={})
    assert r.status_code == 403 and "master key" in r.json()["error"]["message"]  # a virtual key is no admin
    with client(gateway, key[:-2] + "zz") as oa, pytest.raises(openai.AuthenticationError):
        oa.chat.completions.create(model="llama", messages=HI)
    assert admin(gateway, "/key/block", {"key": key}).json()["blocked"] is True
    with client(gateway, key) as oa:
        with pytest.raises(openai.AuthenticationError, match="blocked"):
            oa.chat.completions.create(model="llama", messages=HI)
        admin(gateway, "/key/unblock", {"key": made["token"]})
        assert oa.chat.completions.create(model="llama", messages=HI).choices[0].message.content
        assert admin(gateway, "/key/delete", {"keys": [key]}).json() == {"deleted_keys": [made["token"]]}
        with pytest.raises(openai.AuthenticationError):
            oa.chat.completions.create(model="llama", messages=HI)
    expired = new_key(gateway, duration="1s")["key"]
    time.sleep(1.1)
    with client(gateway, expired) as oa, pytest.raises(openai.AuthenticationError, match="expired"):
        oa.chat.completions.create(model="llama", messages=HI)


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/key/generate", {"max_budget": -1}, "max_budget"),
    ("/key/generate", {"budget_duration": "soon"}, "budget_duration"),
    ("/key/generate", {"models": ["gpt-9"]}, "models"),
    ("/key/generate", {"team_id": "no-such-team"}, "team_id"),
    ("/key/generate", {"colour": "red"}, "colour"),
    ("/key/generate", {"rpm_limit": 0}, "rpm_limit"),
    ("/key/generate", {"max_parallel_requests": 1.5}, "max_parallel_requests"),
    ("/key/generate", {"model_rpm_limit": {"llama": "many"}}, "model_rpm_limit"),
    ("/key/generate", {"model_tpm_limit": {"gpt-9": 100}}, "model_tpm_limit"),
    ("/team/new", {"tpm_limit": -5}, "tpm_limit"),
    ("/key/generate", {"tpm_limit": 10**10}, "tpm_limit"),
    ("/team/new", {"max_budget": 1e13}, "max_budget"),  # past what the column holds: a 400, not a database error
    ("/key/update", {"key": "sk-nope", "max_budget": "lots"}, "max_budget"),
    ("/key/delete", {"keys": []}, "keys"),
    ("/key/regenerate", {"key": "k0000000000000000", "grace_period": "a while"}, "grace_period"),
    ("/team/new", {"max_budget": True}, "max_budget"),
    ("/team/update", {"max_budget": 1}, "team_id"),
])  # fmt: skip
def test_malformed_admin_bodies_name_the_field(gateway, path, body, field):
    r = admin(gateway, path, body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == field and error["message"].startswith(f"{field}: ")


def test_unknown_keys_and_teams_are_404(gateway):
    assert admin(gateway, "/key/info", key="k0123456789abcdef").status_code == 404
    assert admin(gateway, "/team/info", team_id="nobody").status_code == 404
    assert admin(gateway, "/key/delete", {"keys": ["k0123456789abcdef"]}).status_code == 404


def test_budget_is_never_overshot_under_concurrency(gateway):
    made = new_key(gateway, max_budget=0.2)

    async def one(http: httpx.AsyncClient) -> int:
        r = await http.post(f"{gateway.base_url}/v1/chat/completions", json={"model": "llama", "messages": HI, "max_tokens": 20},
                            headers={"authorization": f"Bearer {made['key']}"})  # fmt: skip
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "budget_exceeded" and "key budget exceeded" in r.json()["error"]["message"]
        return r.status_code

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as http:
            return await asyncio.gather(*(one(http) for _ in range(30)))

    statuses = asyncio.run(burst())
    assert set(statuses) <= {200, 429} and statuses.count(200) >= 1
    spent = admin(gateway, "/key/info", key=made["token"]).json()["info"]["spend"]
    assert spent <= 0.2
    assert len(admin(gateway, "/spend/logs", api_key=made["token"]).json()) == statuses.count(200)


def test_a_budgeted_key_cannot_use_an_unpriced_model(gateway):
    made = new_key(gateway, max_budget=1)
    with client(gateway, made["key"]) as oa, pytest.raises(openai.BadRequestError, match="has no price"):
        oa.chat.completions.create(model="unpriced", messages=HI)
    free = new_key(gateway)  # no budget: served, logged with an unknown cost
    with client(gateway, free["key"]) as oa:
        raw = oa.chat.completions.with_raw_response.create(model="unpriced", messages=HI)
    assert "x-litellm-response-cost" not in raw.headers
    assert admin(gateway, "/spend/logs", api_key=free["token"]).json()[0]["spend"] is None


def test_a_deployment_without_a_price_in_its_config_is_billed_from_the_built_in_table(gateway):
    made = new_key(gateway, max_budget=1)
    with client(gateway, made["key"]) as oa:
        raw = oa.chat.completions.with_raw_response.create(model="builtin", messages=HI, max_tokens=50)
    usage = raw.parse().usage
    expected = usage.prompt_tokens * 3.00 / 1e6 + usage.completion_tokens * 15.00 / 1e6  # xai.grok-3: $3 / $15 per million
    assert float(raw.headers["x-litellm-response-cost"]) == pytest.approx(expected, abs=1e-9)
    assert admin(gateway, "/spend/logs", api_key=made["token"]).json()[0]["spend"] == pytest.approx(expected, abs=1e-9)


def test_streams_are_billed_from_usage_and_usage_stays_private(gateway):
    made = new_key(gateway, max_budget=50)
    with client(gateway, made["key"]) as oa:
        chunks = list(oa.chat.completions.create(model="llama", messages=HI, stream=True))
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)  # the client did not ask for usage
    log = admin(gateway, "/spend/logs", api_key=made["token"]).json()[0]
    assert log["completion_tokens"] > 0 and log["spend"] == pytest.approx(log["prompt_tokens"] * 0.001 + log["completion_tokens"] * 0.002)
    with client(gateway, made["key"]) as oa:
        chunks = list(oa.chat.completions.create(model="llama", messages=HI, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == log["completion_tokens"]


def test_a_cancelled_stream_is_billed_for_what_was_used(gateway, oci_simulator):
    made = new_key(gateway, max_budget=50)
    with httpx.stream("POST", f"{gateway.base_url}/v1/chat/completions", headers={"authorization": f"Bearer {made['key']}"},
                      json={"model": "slow", "messages": HI, "stream": True}, timeout=30) as r:  # fmt: skip
        seen = 0
        for line in r.iter_lines():
            seen += line.startswith("data: ")
            if seen >= 3:
                break  # the client leaves mid-stream
    deadline = time.monotonic() + 5
    logs = []
    while time.monotonic() < deadline and not logs:
        logs = admin(gateway, "/spend/logs", api_key=made["token"]).json()
        time.sleep(0.05)
    assert len(logs) == 1 and logs[0]["status"] == 499
    assert logs[0]["prompt_tokens"] > 0 and logs[0]["completion_tokens"] >= 1 and logs[0]["spend"] > 0  # never a zero row


def test_regenerate_with_grace_keeps_the_id_and_the_spend(gateway):
    made = new_key(gateway, max_budget=50)
    with client(gateway, made["key"]) as oa:
        oa.chat.completions.create(model="llama", messages=HI)
    spent = admin(gateway, "/key/info", key=made["token"]).json()["info"]["spend"]
    fresh = admin(gateway, "/key/regenerate", {"key": made["key"], "grace_period": "1h"}).json()
    assert fresh["token"] == made["token"] and fresh["key"] != made["key"] and fresh["spend"] == spent
    for key in (made["key"], fresh["key"]):  # both work during the grace period
        with client(gateway, key) as oa:
            assert oa.chat.completions.create(model="llama", messages=HI).choices[0].message.content
    newest = admin(gateway, "/key/regenerate", {"key": made["token"]}).json()["key"]  # no grace: the others stop at once
    with client(gateway, fresh["key"]) as oa, pytest.raises(openai.AuthenticationError):
        oa.chat.completions.create(model="llama", messages=HI)
    with client(gateway, newest) as oa:
        assert oa.chat.completions.create(model="llama", messages=HI).choices[0].message.content


def test_embeddings_and_doors_take_virtual_keys_and_are_billed(gateway):
    made = new_key(gateway, max_budget=50)
    headers = {"authorization": f"Bearer {made['key']}"}
    r = httpx.post(f"{gateway.base_url}/v1/messages", headers={"x-api-key": made["key"], "anthropic-version": "2023-06-01"},
                   json={"model": "llama", "max_tokens": 50, "messages": HI}, timeout=30)  # fmt: skip
    assert r.status_code == 200 and float(r.headers["x-litellm-response-cost"]) > 0
    r = httpx.post(f"{gateway.base_url}/v1/responses", headers=headers, json={"model": "llama", "input": "Hello there"}, timeout=30)
    assert r.status_code == 200
    routes = sorted(row["call_type"] for row in admin(gateway, "/spend/logs", api_key=made["token"]).json())
    assert routes == ["messages", "responses"]


def test_without_a_database_the_gateway_keeps_no_state_and_says_how_to_add_it(creds):
    plain = {"model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds}}],
             "general_settings": {"master_key": MASTER}}  # fmt: skip
    with BackgroundServer(create_app(parse_config(plain))) as gw:
        r = admin(gw, "/key/generate", {})
        assert r.status_code == 400 and r.json()["error"]["code"] == "governance_off" and "database_url" in r.json()["error"]["message"]
        with client(gw, MASTER) as oa:
            raw = oa.chat.completions.with_raw_response.create(model="llama", messages=HI)
        assert "x-litellm-response-cost" not in raw.headers  # nothing metered


def test_with_budget_leases_off_each_request_writes_its_own_hold_and_the_budget_holds(creds, store_url):
    """``budget_leases: false``: the hold written per request, as before leases; a burst still
    never overshoots, and the hold rows are per request, not a replica's lease."""
    if store_url.startswith("postgresql"):
        migrate(store_url)
    with BackgroundServer(create_app(parse_config(config(creds, store_url, budget_leases=False)))) as gw:
        made = new_key(gw, max_budget=0.2)

        statuses, seen_holds = asyncio.run(_streams_and_holds(gw.base_url, made["key"], store_url))
        assert set(statuses) <= {200, 429} and statuses.count(200) >= 1
        assert admin(gw, "/key/info", key=made["token"]).json()["info"]["spend"] <= 0.2
        assert seen_holds and not any(hold.startswith("lease:") for hold in seen_holds)


async def _streams_and_holds(base: str, key: str, store_url: str) -> tuple[list[int], list[str]]:
    """Twelve slow streams at once, and the hold rows seen once every one has been answered and
    those admitted are still running (a condition, not a sleep: a busy machine only waits longer)."""
    answered, running = asyncio.Event(), asyncio.Event()
    heard = [0]
    async with httpx.AsyncClient(timeout=30) as http:
        async def one() -> int:
            async with http.stream("POST", f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                                   json={"model": "slow", "messages": HI, "max_tokens": 20, "stream": True}) as r:  # fmt: skip
                heard[0] += 1
                if heard[0] == 12:
                    answered.set()
                if r.status_code == 200:
                    await running.wait()  # hold the stream open until the holds were read
                await r.aread()
                return r.status_code

        async def look() -> list[str]:
            await answered.wait()
            try:
                return await _hold_ids(store_url)
            finally:
                running.set()

        *codes, holds = await asyncio.gather(*(one() for _ in range(12)), look())
        return codes, holds


async def _hold_ids(store_url: str) -> list[str]:
    if store_url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(store_url[len("sqlite:///"):]) as conn:
            return [row[0] for row in conn.execute("SELECT request_id FROM ocilm_holds")]
    import asyncpg

    conn = await asyncpg.connect(store_url.replace("postgresql://", "postgres://", 1))
    try:
        return [row[0] for row in await conn.fetch("SELECT request_id FROM ocilm_holds")]
    finally:
        await conn.close()


def test_with_budget_leases_a_burst_holds_one_lease_row_not_one_per_request(creds, store_url):
    if store_url.startswith("postgresql"):
        migrate(store_url)
    with BackgroundServer(create_app(parse_config(config(creds, store_url)))) as gw:
        made = new_key(gw, max_budget=100)

        statuses, seen_holds = asyncio.run(_streams_and_holds(gw.base_url, made["key"], store_url))
        assert statuses == [200] * 12
        assert len(seen_holds) == 1 and seen_holds[0].startswith("lease:")  # twelve requests in flight, one row
