"""Rate limits through ``ocilm serve``: global across replicas on a real Redis (3 processes
sharing PostgreSQL), Redis stopped and restarted under them, OpenAI's headers read by the
official SDK, and deployments skipped when at their own limits."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time

import httpx
import pytest
import yaml

from ocilm.gateway import create_app, parse_config
from ocilm.testing import BackgroundServer, Fault

from ..servers import free_port, serve
from .conftest import migrate
from .test_replicas import Gateways

openai = pytest.importorskip("openai")
MASTER = "sk-master-limits-1"
ADMIN = {"authorization": f"Bearer {MASTER}"}
HI = [{"role": "user", "content": "Hello there"}]
LLAMA = "oci/meta.llama-3.3-70b-instruct"


def _models(creds: dict) -> list[dict]:
    return [
        {"model_name": "llama", "litellm_params": {"model": LLAMA, **creds}},
        {"model_name": "slow", "litellm_params": {"model": LLAMA, **creds, "extra_headers": {"x-ocilm-sim-fault": Fault(delay=1.0, times=None).header()}}},
        {"model_name": "dribble", "litellm_params": {"model": LLAMA, **creds,
         "extra_headers": {"x-ocilm-sim-fault": Fault(events=40, event_delay=0.1, times=None).header()}}},
    ]  # fmt: skip


def _key(base: str, **fields) -> dict:
    r = httpx.post(f"{base}/key/generate", headers=ADMIN, json=fields, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


async def _burst(bases: list[str], key: str, count: int, model: str = "llama", **body) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60) as http:
        return await asyncio.gather(*(
            http.post(f"{bases[i % len(bases)]}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": model, "messages": HI, "max_tokens": 20, **body})
            for i in range(count)
        ))  # fmt: skip


def _statuses(replies: list[httpx.Response]) -> list[int]:
    return [r.status_code for r in replies]


@pytest.fixture
def replicas(creds, postgres_url, redis_url, tmp_path):
    """Three gateway processes sharing PostgreSQL and Redis, counting over a 4 s window."""
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"model_list": _models(creds), "general_settings": {
        "master_key": MASTER, "database_url": postgres_url, "redis_url": redis_url, "rate_limit_window_seconds": 4}}))  # fmt: skip
    group = Gateways(str(path))
    assert group.run("db", "upgrade").returncode == 0
    bases = [group.start()[1] for _ in range(3)]
    yield bases
    group.stop()


def test_requests_per_window_hold_across_three_replicas_with_no_boundary_burst(replicas):
    made = _key(replicas[0], rpm_limit=10)
    started = time.monotonic()
    answered: list[float] = []

    async def burst_noting_when_answered() -> list[httpx.Response]:
        replies = await _burst(replicas, made["key"], 100)  # 10x the limit, spread over the three
        answered.append(time.monotonic())  # every admission was before this
        return replies

    first = asyncio.run(burst_noting_when_answered())
    # The marks below are measured from before the burst, so they hold however long it took, as
    # long as it ended before the first mark (said here, rather than failing obscurely later).
    assert time.monotonic() - started < 2.5, "the first burst took longer than the test's first mark"
    assert _statuses(first).count(200) == 10 and set(_statuses(first)) == {200, 429}
    refused = next(r for r in first if r.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limit_exceeded" and "(key)" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 4 and refused.headers["x-ratelimit-remaining-requests"] == "0"
    time.sleep(max(0.0, started + 2.5 - time.monotonic()))  # past where a fixed 2 s window would have turned over
    assert _statuses(asyncio.run(_burst(replicas, made["key"], 30))).count(200) == 0
    # the first ten have left the sliding window: 4 s after the last could have been admitted (on a
    # busy machine the burst's admissions may come well after it started)
    time.sleep(max(0.0, answered[0] + 4.2 - time.monotonic()))
    assert _statuses(asyncio.run(_burst(replicas, made["key"], 30))).count(200) == 10


def test_concurrent_large_requests_never_exceed_the_token_limit(replicas):
    prompt = [{"role": "user", "content": "word " * 300}]  # 1,500 characters: held as up to ~1,520 tokens, plus max_tokens
    made = _key(replicas[0], tpm_limit=5000)

    async def burst(model: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as http:
            return await asyncio.gather(*(
                http.post(f"{replicas[i % 3]}/v1/chat/completions", headers={"authorization": f"Bearer {made['key']}"},
                          json={"model": model, "messages": prompt, "max_tokens": 100})
                for i in range(30)
            ))  # fmt: skip

    # While none has answered, each holds its worst case (~1,620 tokens): three fit in 5,000, not four.
    slow = asyncio.run(burst("slow"))
    assert _statuses(slow).count(200) == 3
    refused = [r for r in slow if r.status_code == 429]
    assert all("tokens per minute" in r.json()["error"]["message"] for r in refused)
    assert all(r.headers["x-ratelimit-limit-tokens"] == "5000" for r in refused)
    # Answered, each is set to what it used (~320 tokens), which frees room for more: what the
    # admitted requests used in the window still never passes the limit.
    fast = [r for r in asyncio.run(burst("llama")) if r.status_code == 200]
    used = sum(r.json()["usage"]["total_tokens"] for r in [*fast, *(r for r in slow if r.status_code == 200)])
    assert fast and used <= 5000


def test_requests_in_flight_are_capped_across_replicas_and_freed_when_clients_leave(replicas):
    made = _key(replicas[0], max_parallel_requests=2)
    statuses = _statuses(asyncio.run(_burst(replicas, made["key"], 9, model="slow")))
    assert statuses.count(200) == 2 and statuses.count(429) == 7

    async def abandon_streams() -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            for base in replicas[:2]:
                async with http.stream("POST", f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {made['key']}"},
                                       json={"model": "dribble", "messages": HI, "stream": True}) as r:  # fmt: skip
                    assert r.status_code == 200
                    async for _ in r.aiter_lines():
                        break  # the client leaves after the first event, mid-stream

    asyncio.run(abandon_streams())
    deadline = time.monotonic() + 3
    while True:  # both slots come back as soon as each replica sees its client gone
        r = httpx.post(f"{replicas[2]}/v1/chat/completions", headers={"authorization": f"Bearer {made['key']}"},
                       json={"model": "llama", "messages": HI, "max_tokens": 5}, timeout=30)  # fmt: skip
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.status_code == 200, r.text


def test_start_up_refuses_limits_one_process_cannot_enforce(creds, postgres_url, tmp_path):
    path = tmp_path / "workers.yaml"
    models = _models(creds)
    models[0]["litellm_params"]["rpm"] = 100
    path.write_text(yaml.safe_dump({"model_list": models}))
    r = subprocess.run([sys.executable, "-m", "ocilm", "serve", "--config", str(path), "--port", str(free_port()), "--workers", "2"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "need general_settings.redis_url, or a sqlite:/// database_url, with --workers 2" in r.stderr
    # replicas sharing PostgreSQL: a key with a limit and no Redis
    path.write_text(yaml.safe_dump({"model_list": _models(creds), "general_settings": {"master_key": MASTER, "database_url": postgres_url}}))
    migrate(postgres_url)

    async def limited_key() -> None:
        from ocilm.gateway.governance._store import Store

        store = await Store.open(postgres_url)
        await store.create_key({"rpm_limit": 5})
        await store.close()

    asyncio.run(limited_key())
    r = subprocess.run([sys.executable, "-m", "ocilm", "serve", "--config", str(path), "--port", str(free_port())],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "some keys or teams have rate limits, but rate limits need general_settings.redis_url" in r.stderr


def test_workers_without_redis_count_in_their_shared_sqlite_file(creds, tmp_path):
    models = _models(creds)
    models[0]["litellm_params"]["rpm"] = 6  # the deployment's own limit, across both workers
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"model_list": models, "general_settings": {"master_key": MASTER,
                                                                              "database_url": f"sqlite:///{tmp_path / 'g.db'}"}}))  # fmt: skip
    proc, base = serve(str(path), "--workers", "2")
    try:
        made = _key(base, rpm_limit=4)
        assert httpx.get(f"{base}/health/readiness").json()["rate_limits"]["counters"] == "store"

        async def burst(key: str, count: int) -> list[int]:
            async with httpx.AsyncClient(timeout=30) as http:  # a new connection each: both workers answer
                replies = await asyncio.gather(*(
                    http.post(f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {key}", "connection": "close"},
                              json={"model": "llama", "messages": HI, "max_tokens": 5})
                    for _ in range(count)
                ))  # fmt: skip
            return [r.status_code for r in replies]

        assert sorted(asyncio.run(burst(made["key"], 20))) == [200] * 4 + [429] * 16
        free = _key(base)
        assert sorted(asyncio.run(burst(free["key"], 10))) == [200] * 2 + [429] * 8  # the deployment's 6, less the key's 4
    finally:
        proc.terminate()
        proc.wait(30)


# ---------------------------------------------------------------- Redis going away


@pytest.fixture
def replicas_on_own_redis(creds, postgres_url, own_redis, tmp_path):
    """Three gateway processes sharing PostgreSQL and the test's own Redis; ``start(policy)``."""
    groups: list[Gateways] = []

    def start(failure: str) -> list[str]:
        path = tmp_path / f"gateway-{failure}.yaml"
        path.write_text(yaml.safe_dump({"model_list": _models(creds), "general_settings": {
            "master_key": MASTER, "database_url": postgres_url, "redis_url": own_redis.url, "rate_limit_failure": failure}}))  # fmt: skip
        group = Gateways(str(path))
        groups.append(group)
        assert group.run("db", "upgrade").returncode == 0
        return [group.start()[1] for _ in range(3)]

    yield start
    for group in groups:
        group.stop()


def _chat(base: str, key: str) -> httpx.Response:
    return httpx.post(f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": "llama", "messages": HI, "max_tokens": 5}, timeout=30)  # fmt: skip


def test_redis_stopped_fails_closed_and_limits_hold_again_when_it_returns(replicas_on_own_redis, own_redis):
    bases = replicas_on_own_redis("closed")
    limited, free = _key(bases[0], rpm_limit=3), _key(bases[0])
    assert _chat(bases[0], limited["key"]).status_code == 200
    own_redis.stop()
    for base in bases:
        down = _chat(base, limited["key"])
        assert down.status_code == 503 and down.json()["error"]["code"] == "rate_limit_unavailable" and down.headers["retry-after"] == "1"
        assert _chat(base, free["key"]).status_code == 200  # a key without limits needs no counters
        assert httpx.get(f"{base}/health/readiness").json()["rate_limits"]["reachable"] is False
    own_redis.start()  # empty: it kept nothing
    statuses = [_chat(bases[i % 3], limited["key"]).status_code for i in range(5)]
    assert statuses == [200, 200, 200, 429, 429]  # global again across the three, no restart needed
    assert all(httpx.get(f"{base}/health/readiness").json()["rate_limits"]["reachable"] for base in bases[:2])


def test_redis_stopped_fails_open_when_configured_and_counts_what_it_served(replicas_on_own_redis, own_redis):
    bases = replicas_on_own_redis("open")
    limited = _key(bases[0], rpm_limit=1)
    assert _chat(bases[0], limited["key"]).status_code == 200
    assert _chat(bases[1], limited["key"]).status_code == 429
    own_redis.stop()
    assert [_chat(bases[i % 3], limited["key"]).status_code for i in range(6)] == [200] * 6
    states = [httpx.get(f"{base}/health/readiness").json()["rate_limits"] for base in bases]
    assert all(state["failure_policy"] == "open" and state["reachable"] is False for state in states)
    assert sum(state["served_unlimited"] for state in states) == 6


# ---------------------------------------------------------------- headers, the SDK, deployments


@pytest.fixture
def gateway(creds, tmp_path, oci_simulator):
    models = [*_models(creds),
              {"model_name": "pair", "litellm_params": {"model": "oci/xai.grok-3", **creds, "rpm": 2}},
              {"model_name": "pair", "litellm_params": {"model": LLAMA, **creds}},
              {"model_name": "tight", "litellm_params": {"model": "oci/xai.grok-3", **creds, "rpm": 1}},
              {"model_name": "tight", "litellm_params": {"model": LLAMA, **creds, "rpm": 1}}]  # fmt: skip
    config = {"model_list": models, "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path / 'g.db'}"}}
    with BackgroundServer(create_app(parse_config(config))) as server:
        yield server


def test_replies_carry_openai_rate_limit_headers_streamed_or_not(gateway):
    made = _key(gateway.base_url, rpm_limit=50, tpm_limit=100_000)
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=made["key"], max_retries=0, _strict_response_validation=True) as oa:
        raw = oa.chat.completions.with_raw_response.create(model="llama", messages=HI, max_tokens=10)
        assert raw.headers["x-ratelimit-limit-requests"] == "50" and raw.headers["x-ratelimit-remaining-requests"] == "49"
        assert raw.headers["x-ratelimit-limit-tokens"] == "100000" and int(raw.headers["x-ratelimit-remaining-tokens"]) < 100_000
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        with oa.chat.completions.with_streaming_response.create(model="llama", messages=HI, stream=True) as streamed:
            assert streamed.headers["x-ratelimit-remaining-requests"] == "48"  # sent before the first event
            assert any(chunk.choices for chunk in streamed.parse())


def test_the_openai_sdk_waits_as_retry_after_says_and_then_succeeds(gateway):
    made = _key(gateway.base_url, max_parallel_requests=1)
    busy = threading.Thread(target=_chat_model, args=(gateway.base_url, made["key"], "slow"))
    busy.start()
    time.sleep(0.3)  # the key's one slot is taken for about a second
    seen: list[int] = []
    http = httpx.Client(event_hooks={"response": [lambda r: seen.append(r.status_code)]})
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=made["key"], max_retries=3, http_client=http) as oa:
        started = time.monotonic()
        reply = oa.chat.completions.create(model="llama", messages=HI, max_tokens=5)
        waited = time.monotonic() - started
    busy.join()
    assert reply.choices[0].message.content
    assert seen[0] == 429 and seen[-1] == 200 and waited >= 0.9  # Retry-After: 1, honoured


def _chat_model(base: str, key: str, model: str) -> None:
    httpx.post(f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
               json={"model": model, "messages": HI, "max_tokens": 5}, timeout=30)  # fmt: skip


def test_a_deployment_at_its_own_limit_is_skipped_for_the_next(gateway, oci_simulator):
    made = _key(gateway.base_url, max_budget=10)  # a budgeted key: a refused request must not keep its hold
    oci_simulator.reset()
    assert [_chat_pair(gateway.base_url, made["key"], "pair") for _ in range(8)] == [200] * 8
    served = [json.loads(r.body)["servingMode"]["modelId"] for r in oci_simulator.requests]
    assert served.count("xai.grok-3") <= 2 and served.count("meta.llama-3.3-70b-instruct") >= 6
    first, second = _chat_pair(gateway.base_url, made["key"], "tight"), _chat_pair(gateway.base_url, made["key"], "tight")
    full = httpx.post(f"{gateway.base_url}/v1/chat/completions", headers={"authorization": f"Bearer {made['key']}"},
                      json={"model": "tight", "messages": HI, "max_tokens": 5}, timeout=30)  # fmt: skip
    assert (first, second, full.status_code) == (200, 200, 429)
    assert "every deployment's" in full.json()["error"]["message"] and int(full.headers["retry-after"]) >= 1
    logs = httpx.get(f"{gateway.base_url}/spend/logs", headers=ADMIN, params={"api_key": made["token"]}, timeout=30).json()
    assert [row["status"] for row in logs].count(429) == 1  # settled at once (its hold released), at no cost
    assert next(row for row in logs if row["status"] == 429)["spend"] == 0


def _chat_pair(base: str, key: str, model: str) -> int:
    return httpx.post(f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": model, "messages": HI, "max_tokens": 5}, timeout=30).status_code  # fmt: skip


def test_a_team_limit_binds_all_its_keys_and_a_model_limit_binds_one_model(gateway):
    team = httpx.post(f"{gateway.base_url}/team/new", headers=ADMIN, json={"team_id": "research", "rpm_limit": 3}, timeout=30).json()
    a, b = _key(gateway.base_url, team_id=team["team_id"]), _key(gateway.base_url, team_id=team["team_id"])
    assert [_chat_pair(gateway.base_url, k["key"], "llama") for k in (a, b, a, b)] == [200, 200, 200, 429]
    refused = httpx.post(f"{gateway.base_url}/v1/chat/completions", headers={"authorization": f"Bearer {b['key']}"},
                         json={"model": "llama", "messages": HI}, timeout=30).json()  # fmt: skip
    assert "its team's limit of 3 requests per minute (team)" in refused["error"]["message"]
    per_model = _key(gateway.base_url, model_rpm_limit={"llama": 1})
    assert [_chat_pair(gateway.base_url, per_model["key"], m) for m in ("llama", "llama", "pair")] == [200, 429, 200]
    info = httpx.get(f"{gateway.base_url}/key/info", headers=ADMIN, params={"key": per_model["token"]}, timeout=30).json()["info"]
    assert info["model_rpm_limit"] == {"llama": 1} and info["rpm_limit"] is None


def test_a_deployments_token_limit_counts_what_streams_used_not_their_worst_case(creds, tmp_path):
    """The review's R3: a stream's deployment ticket stayed at its worst case for the whole
    window, so a deployment filled at about four times its real use."""
    models = [{"model_name": "metered", "litellm_params": {"model": LLAMA, **creds, "tpm": 10000}}]
    config = {"model_list": models, "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path / 'g.db'}"}}
    prompt = [{"role": "user", "content": " ".join(["word"] * 600)}]
    with BackgroundServer(create_app(parse_config(config))) as server:
        statuses = []
        for _ in range(6):
            with httpx.stream("POST", f"{server.base_url}/v1/chat/completions", headers=ADMIN, timeout=30,
                              json={"model": "metered", "messages": prompt, "max_tokens": 1000, "stream": True}) as reply:  # fmt: skip
                statuses.append(reply.status_code)
                reply.read()
            time.sleep(0.1)  # the reconciliation runs off the stream's path
    # Each used about 1,200 tokens and reserves about 4,000 until it is reconciled: five fit in
    # 10,000, as five non-streamed requests do (before, the third stream was refused).
    assert statuses == [200] * 5 + [429]


def test_redis_answering_errors_applies_the_failure_policy_not_a_500(creds, tmp_path, own_redis):
    """The review's R4: READONLY after a failover (and OOM, CLUSTERDOWN, ...) are answers, not
    connection errors; they fail closed (503) and readiness says the counters are unreachable."""
    import redis

    config = {"model_list": _models(creds), "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path / 'g.db'}",
                                                                 "redis_url": own_redis.url}}  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as server:
        made = _key(server.base_url, rpm_limit=100)
        assert _chat(server.base_url, made["key"]).status_code == 200
        redis.Redis.from_url(own_redis.url).execute_command("REPLICAOF", "127.0.0.1", "1")  # now a read-only replica
        try:
            replies = [_chat(server.base_url, made["key"]) for _ in range(2)]
            ready = httpx.get(f"{server.base_url}/health/readiness", timeout=30).json()
        finally:
            redis.Redis.from_url(own_redis.url).execute_command("REPLICAOF", "NO", "ONE")
        assert [r.status_code for r in replies] == [503, 503]
        assert replies[0].json()["error"]["code"] == "rate_limit_unavailable"
        assert ready["rate_limits"]["reachable"] is False
        assert _chat(server.base_url, made["key"]).status_code == 200  # back without a restart
