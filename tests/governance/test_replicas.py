"""Several ``ocilm serve`` processes sharing one database (a PostgreSQL database, or one SQLite
file): budgets, revocation, and spend that survives a killed process. Each gateway is a real
process, killed with real signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from ocilm.testing import Fault

from ..servers import TcpRelay, free_port, serve

MASTER = "sk-master-replicas-1"
ADMIN = {"authorization": f"Bearer {MASTER}"}
PRICE = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}
HI = [{"role": "user", "content": "Hello there"}]


class Gateways:
    """Gateway processes for one config; each is started with ``start()`` and stopped at the end."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.procs: list[subprocess.Popen] = []

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ocilm", *args, "--config", self.path], capture_output=True, text=True, timeout=60)

    def start(self) -> tuple[subprocess.Popen, str]:
        proc, base = serve(self.path, seconds=30)
        self.procs.append(proc)
        return proc, base

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


@pytest.fixture
def gateways(creds, store_url, tmp_path):
    config = {
        "model_list": [
            {"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds, **PRICE}},
            {"model_name": "slow", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds, **PRICE,
             "extra_headers": {"x-ocilm-sim-fault": Fault(delay=0.4, times=None).header()}}},
            {"model_name": "stuck", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds, **PRICE, "timeout": 30,
             "extra_headers": {"x-ocilm-sim-fault": Fault(delay=20, times=None).header()}}},
        ],
        "general_settings": {"master_key": MASTER, "database_url": store_url, "budget_hold_seconds": 2},
    }  # fmt: skip
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    group = Gateways(str(path))
    done = group.run("db", "upgrade")
    assert done.returncode == 0, done.stderr
    yield group
    group.stop()


def _key(base: str, **fields) -> dict:
    r = httpx.post(f"{base}/key/generate", headers=ADMIN, json=fields, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _chat(base: str, key: str, model: str = "llama", timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": model, "messages": HI, "max_tokens": 20}, timeout=timeout)  # fmt: skip


def _logs(base: str, token: str) -> list[dict]:
    return httpx.get(f"{base}/spend/logs", headers=ADMIN, params={"api_key": token}, timeout=30).json()


def test_a_new_replica_refuses_an_unmigrated_database(creds, postgres_url, tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"model_list": [{"model_name": "m", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds}}],
                                    "general_settings": {"master_key": MASTER, "database_url": postgres_url}}))  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "ocilm", "serve", "--config", str(path), "--port", str(free_port())],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "run 'ocilm db upgrade --config FILE' once" in r.stderr


def test_an_unreachable_database_is_a_clear_error_at_start(creds, tmp_path):
    path = tmp_path / "gateway.yaml"
    secret = "pw-never-printed"
    path.write_text(yaml.safe_dump({"model_list": [{"model_name": "m", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds}}],
                                    "general_settings": {"master_key": MASTER, "database_url": f"postgresql://ocilm:{secret}@127.0.0.1:{free_port()}/x"}}))  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "ocilm", "serve", "--config", str(path), "--port", str(free_port())],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "cannot reach the database" in r.stderr and "postgresql://ocilm@127.0.0.1" in r.stderr
    assert secret not in r.stderr


def test_the_budget_holds_across_two_replicas(gateways):
    (_, a), (_, b) = gateways.start(), gateways.start()
    made = _key(a, max_budget=0.2)  # room for about three worst cases

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as http:
            async def one(i: int) -> int:
                base = a if i % 2 else b
                r = await http.post(f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {made['key']}"},
                                    json={"model": "llama", "messages": HI, "max_tokens": 20})  # fmt: skip
                return r.status_code

            return await asyncio.gather(*(one(i) for i in range(50)))

    statuses = asyncio.run(burst())
    assert set(statuses) <= {200, 429} and statuses.count(200) >= 1
    info = httpx.get(f"{a}/key/info", headers=ADMIN, params={"key": made["token"]}).json()["info"]
    assert info["spend"] <= 0.2
    logs = _logs(b, made["token"])
    assert len(logs) == statuses.count(200) and sum(r["spend"] for r in logs) == pytest.approx(info["spend"])


def test_revocation_reaches_every_replica_within_a_second(gateways):
    (_, a), (_, b) = gateways.start(), gateways.start()
    made = _key(a)
    assert _chat(b, made["key"]).status_code == 200  # B knows the key now
    assert httpx.post(f"{a}/key/block", headers=ADMIN, json={"key": made["token"]}).status_code == 200
    blocked = time.monotonic()
    while _chat(b, made["key"]).status_code == 200:
        assert time.monotonic() - blocked < 1.0, "replica B still accepts a key blocked on A"
    assert time.monotonic() - blocked < 1.0
    httpx.post(f"{a}/key/unblock", headers=ADMIN, json={"key": made["token"]})
    unblocked = time.monotonic()
    while _chat(b, made["key"]).status_code != 200:
        assert time.monotonic() - unblocked < 1.0, "replica B still refuses a key unblocked on A"
    httpx.post(f"{a}/key/delete", headers=ADMIN, json={"keys": [made["token"]]})
    deleted = time.monotonic()
    while _chat(b, made["key"]).status_code == 200:
        assert time.monotonic() - deleted < 1.0, "replica B still accepts a key deleted on A"


def test_a_lowered_budget_binds_on_every_replica_within_a_second(gateways):
    """Replica B admits against a budget lease with plenty of room; a budget lowered on A binds on
    B as quickly as revocation does, lease or not."""
    (_, a), (_, b) = gateways.start(), gateways.start()
    made = _key(a, max_budget=100)
    for _ in range(3):
        assert _chat(b, made["key"]).status_code == 200  # B holds a lease with room for many more
    spent = httpx.get(f"{a}/key/info", headers=ADMIN, params={"key": made["token"]}).json()["info"]["spend"]
    r = httpx.post(f"{a}/key/update", headers=ADMIN, json={"key": made["token"], "max_budget": spent + 0.01})  # less than a worst case
    assert r.status_code == 200
    lowered = time.monotonic()
    while (r := _chat(b, made["key"])).status_code == 200:
        assert time.monotonic() - lowered < 1.0, "replica B still admits against a budget lowered on A"
    assert r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded"
    # From then on B admits nothing more, though its lease had room for many.
    settled = httpx.get(f"{a}/key/info", headers=ADMIN, params={"key": made["token"]}).json()["info"]["spend"]
    assert all(_chat(b, made["key"]).status_code == 429 for _ in range(5))
    assert httpx.get(f"{a}/key/info", headers=ADMIN, params={"key": made["token"]}).json()["info"]["spend"] == settled


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_every_answered_request_is_billed_once_when_a_replica_dies(gateways, sig):
    (victim, a), (_, b) = gateways.start(), gateways.start()
    made = _key(b, max_budget=100)

    async def burst() -> list[tuple[int, str | None]]:
        async with httpx.AsyncClient(timeout=60) as http:
            async def one(i: int) -> tuple[int, str | None]:
                await asyncio.sleep(i * 0.02)
                try:
                    r = await http.post(f"{a}/v1/chat/completions", headers={"authorization": f"Bearer {made['key']}"},
                                        json={"model": "slow", "messages": HI, "max_tokens": 20})  # fmt: skip
                    return r.status_code, r.headers.get("x-litellm-call-id")
                except httpx.HTTPError:
                    return 0, None  # the process died before it answered

            async def kill() -> None:
                await asyncio.sleep(0.7)  # mid-burst: some answered, some in flight, some not sent
                os.kill(victim.pid, sig)

            *codes, _ = await asyncio.gather(*(one(i) for i in range(40)), kill())
            return codes

    replies = asyncio.run(burst())
    victim.wait(60)
    codes = [code for code, _ in replies]
    answered = {call_id for code, call_id in replies if code == 200}
    assert answered and set(codes) <= {0, 200} and None not in answered  # answered, or never answered: nothing in between
    billed = [r for r in _logs(b, made["token"]) if r["status"] == 200]
    assert len({r["request_id"] for r in billed}) == len(billed)  # none billed twice
    assert answered <= {r["request_id"] for r in billed}  # every answered request billed, by its id
    # A reply's row is written before the reply is sent: a kill between the two bills work OCI did for a
    # caller who never heard it (never more than the requests the kill cut off). A graceful stop answers all.
    unanswered = len(billed) - len(answered)
    assert unanswered == 0 if sig == signal.SIGTERM else 0 <= unanswered <= codes.count(0)


def test_a_killed_replicas_hold_expires(gateways):
    (victim, a), (_, b) = gateways.start(), gateways.start()
    made = _key(b, max_budget=0.1)  # room for one worst case ($0.071), not two

    async def stuck_then_kill() -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            request = asyncio.ensure_future(http.post(f"{a}/v1/chat/completions", headers={"authorization": f"Bearer {made['key']}"},
                                                      json={"model": "stuck", "messages": HI, "max_tokens": 20}))  # fmt: skip
            await asyncio.sleep(0.8)  # its hold is taken; the upstream is slow
            victim.send_signal(signal.SIGKILL)
            with pytest.raises(httpx.HTTPError):
                await request

    asyncio.run(stuck_then_kill())
    assert _chat(b, made["key"]).status_code == 429  # the dead replica's hold still counts ...
    time.sleep(2.2)  # ... until it expires (budget_hold_seconds: 2)
    assert _chat(b, made["key"]).status_code == 200


def test_the_database_going_away_fails_closed_and_service_resumes(creds, postgres_url, tmp_path):
    from urllib.parse import urlsplit

    target = urlsplit(postgres_url)
    relay = TcpRelay(target.port or 5432)
    relayed = postgres_url.replace(f"{target.hostname}:{target.port or 5432}", f"127.0.0.1:{relay.port}", 1)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds, **PRICE}}],
        "general_settings": {"master_key": MASTER, "database_url": relayed},
    }))  # fmt: skip
    group = Gateways(str(path))
    try:
        assert group.run("db", "upgrade").returncode == 0
        _, base = group.start()
        made = _key(base, max_budget=50)
        assert _chat(base, made["key"]).status_code == 200
        relay.cut()
        time.sleep(0.6)  # past the key cache: every governed request needs the database now
        down = [_chat(base, made["key"], timeout=30) for _ in range(3)]
        assert [r.status_code for r in down] == [503] * 3  # never an unbilled 200
        assert down[0].json()["error"]["code"] == "governance_unavailable" and down[0].headers["retry-after"] == "1"
        relay.restore()
        deadline = time.monotonic() + 10
        while (r := _chat(base, made["key"])).status_code != 200:
            assert time.monotonic() < deadline, f"service did not resume: {r.status_code} {r.text}"
            time.sleep(0.2)
        assert len(_logs(base, made["token"])) == 2  # the first call and the one after the outage; none of the 503s
    finally:
        group.stop()
        relay.close()


def _relayed_gateway(creds: dict, postgres_url: str, tmp_path, **general) -> tuple[TcpRelay, Gateways]:
    from urllib.parse import urlsplit

    target = urlsplit(postgres_url)
    relay = TcpRelay(target.port or 5432)
    relayed = postgres_url.replace(f"{target.hostname}:{target.port or 5432}", f"127.0.0.1:{relay.port}", 1)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({
        "model_list": [
            {"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds, **PRICE}},
            {"model_name": "long", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds, **PRICE,
             "extra_headers": {"x-ocilm-sim-fault": Fault(events=30, event_delay=0.1, times=None).header()}}},
        ],
        "general_settings": {"master_key": MASTER, "database_url": relayed, **general},
    }))  # fmt: skip
    group = Gateways(str(path))
    assert group.run("db", "upgrade").returncode == 0
    return relay, group


def test_a_database_that_stalls_fails_closed_within_seconds_and_readiness_says_so(creds, postgres_url, tmp_path):
    """The review's G3: a partition (no reset, no answer) used to hang governed requests for
    minutes while readiness said ready."""
    relay, group = _relayed_gateway(creds, postgres_url, tmp_path)
    try:
        _, base = group.start()
        made = _key(base, max_budget=50)
        assert _chat(base, made["key"]).status_code == 200
        relay.freeze()
        time.sleep(0.6)  # past the key cache

        async def during_the_stall() -> tuple[list[httpx.Response], httpx.Response, float]:
            async with httpx.AsyncClient(timeout=60) as client:
                started = time.monotonic()
                chats = [client.post(f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {made['key']}"},
                                     json={"model": "llama", "messages": HI, "max_tokens": 5}) for _ in range(3)]  # fmt: skip
                *replies, ready = await asyncio.gather(*chats, client.get(f"{base}/health/readiness"))
                return replies, ready, time.monotonic() - started

        replies, ready, took = asyncio.run(during_the_stall())
        assert [r.status_code for r in replies] == [503] * 3 and took < 30  # the deadline is 5 s a statement, not the client's patience
        assert replies[0].json()["error"]["code"] == "governance_unavailable"
        assert ready.status_code == 503 and ready.json()["store"] == {"reachable": False}
        relay.thaw()
        deadline = time.monotonic() + 30
        while (r := _chat(base, made["key"])).status_code != 200:
            assert time.monotonic() < deadline, f"service did not resume: {r.status_code} {r.text}"
            time.sleep(0.3)
        assert httpx.get(f"{base}/health/readiness", timeout=30).status_code == 200
    finally:
        group.stop()
        relay.close()


def test_a_stream_whose_settlement_meets_an_outage_is_billed_once_the_database_is_back(creds, postgres_url, tmp_path):
    """The review's G2: the database went away during a stream; the stream was delivered and
    never billed. Now its settlement is kept and retried until it is written."""
    relay, group = _relayed_gateway(creds, postgres_url, tmp_path)
    try:
        _, base = group.start()
        made = _key(base, max_budget=50)
        with httpx.stream("POST", f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {made['key']}"}, timeout=60,
                          json={"model": "long", "messages": HI, "max_tokens": 50, "stream": True}) as reply:  # fmt: skip
            assert reply.status_code == 200
            lines = reply.iter_lines()
            for _ in range(4):
                next(lines)
            relay.cut()  # the database goes away before the stream's end
            rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]"  # delivered in full
        time.sleep(1.0)
        relay.restore()
        deadline = time.monotonic() + 30
        while not isinstance(logs := _logs(base, made["token"]), list) or not logs:  # an error body until the admin API reconnects
            assert time.monotonic() < deadline, "the delivered stream was never billed"
            time.sleep(0.3)
        assert len(logs) == 1 and logs[0]["status"] == 200 and logs[0]["completion_tokens"] > 0
        info = httpx.get(f"{base}/key/info", headers=ADMIN, params={"key": made["token"]}, timeout=30).json()["info"]
        assert info["spend"] == pytest.approx(logs[0]["spend"])
    finally:
        group.stop()
        relay.close()


def test_stored_responses_are_reachable_from_every_replica_and_only_by_their_key(oci_simulator, postgres_url, tmp_path):
    """Responses stored on OCI's /openai/v1: the key that made one reaches it through any replica
    (the owner and deployment live in PostgreSQL); another key gets 404 on every replica."""
    creds = oci_simulator.api_key_credentials()
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "gpt", "litellm_params": {"model": "oci/openai.gpt-oss-120b", **creds, **PRICE}}],
        "general_settings": {"master_key": MASTER, "database_url": postgres_url},
    }))  # fmt: skip
    group = Gateways(str(path))
    try:
        assert group.run("db", "upgrade").returncode == 0
        (_, a), (_, b) = group.start(), group.start()
        mine, theirs = _key(a)["key"], _key(a)["key"]
        made = httpx.post(f"{a}/v1/responses", headers={"authorization": f"Bearer {mine}"}, json={"model": "gpt", "input": "hi"}, timeout=30)
        assert made.status_code == 200, made.text
        rid = made.json()["id"]
        assert httpx.get(f"{b}/v1/responses/{rid}", headers={"authorization": f"Bearer {mine}"}, timeout=30).json()["id"] == rid
        chained = httpx.post(f"{b}/v1/responses", headers={"authorization": f"Bearer {mine}"},
                             json={"model": "gpt", "input": "again", "previous_response_id": rid}, timeout=30)  # fmt: skip
        assert chained.status_code == 200
        for base in (a, b):
            assert httpx.get(f"{base}/v1/responses/{rid}", headers={"authorization": f"Bearer {theirs}"}, timeout=30).status_code == 404
    finally:
        group.stop()


def test_the_translated_doors_conversations_reach_every_replica_and_only_their_owner(creds, postgres_url, tmp_path):
    """previous_response_id on a native deployment: the conversation lives in PostgreSQL, so a
    second replica (or a restarted one) continues it; another key's team gets 404."""
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds, **PRICE}}],
        "general_settings": {"master_key": MASTER, "database_url": postgres_url},
    }))  # fmt: skip
    group = Gateways(str(path))
    try:
        assert group.run("db", "upgrade").returncode == 0
        (_, a), (_, b) = group.start(), group.start()
        mine, theirs = _key(a)["key"], _key(a)["key"]

        def respond(base: str, key: str, **body) -> httpx.Response:
            return httpx.post(f"{base}/v1/responses", headers={"authorization": f"Bearer {key}"}, json={"model": "llama", **body}, timeout=30)

        first = respond(a, mine, input="My name is Ana.")
        with httpx.stream("POST", f"{a}/v1/responses", headers={"authorization": f"Bearer {mine}"}, timeout=30,
                          json={"model": "llama", "input": "And I live in Lisbon.", "stream": True}) as streamed:  # fmt: skip
            final = [line for line in streamed.iter_lines() if line.startswith("data: ")][-1]
        streamed_id = json.loads(final[6:])["response"]["id"]
        second = respond(b, mine, input="What is my name?", previous_response_id=first.json()["id"])
        assert second.status_code == 200 and second.json()["usage"]["input_tokens"] > first.json()["usage"]["input_tokens"]
        assert respond(b, mine, input="Where?", previous_response_id=streamed_id).status_code == 200  # kept before the stream ended
        refused = respond(b, theirs, input="What was it?", previous_response_id=first.json()["id"])
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "previous_response_not_found"
    finally:
        group.stop()
