"""The gateway's findings of the December review (C5, C8, C11, C12, S2-S4, section 5) and the
hardening issue's gateway requirements: the caller's deadline, prompt cancellation, hostile
input. Everything goes over real HTTP: clients -> ``ocilm serve``'s app -> the simulator."""

from __future__ import annotations

import concurrent.futures
import json
import time

import httpx
import pytest

from ocilm.gateway import GatewayConfigError, create_app, parse_config
from ocilm.testing import BackgroundServer, Fault

from ..conftest import TEST_KEY_PEM

openai = pytest.importorskip("openai")
MASTER = "sk-test-master-key-123"
AUTH = {"authorization": f"Bearer {MASTER}"}
JSON_AUTH = {**AUTH, "content-type": "application/json"}
HI = [{"role": "user", "content": "Hi"}]


def deployment(name: str, model: str, creds: dict, **params) -> dict:
    return {"model_name": name, "litellm_params": {"model": model, **creds, **params}}


def serve(*entries: dict, master_key: str | None = MASTER, **app_options) -> BackgroundServer:
    config: dict = {"model_list": list(entries)}
    if master_key:
        config["general_settings"] = {"master_key": master_key}
    return BackgroundServer(create_app(parse_config(config), **app_options))


def fault(f: Fault) -> dict:
    return {"x-ocilm-sim-fault": f.header()}


@pytest.fixture
def gateway(creds):
    with serve(deployment("llama", "oci/meta.llama-3.3-70b-instruct", creds),
               deployment("embed", "oci/cohere.embed-english-v3.0", creds)) as gw:  # fmt: skip
        yield gw


def _last_upstream(sim, since: int):
    requests = sim.requests[since:]
    assert requests, "the gateway made no upstream call"
    return requests[-1]


# ---------------------------------------------------------------- C8: disconnects cancel the upstream call


@pytest.mark.parametrize("stream", [False, True])
def test_disconnect_before_the_answer_cancels_upstream(creds, oci_simulator, stream):
    oci_simulator.inject(Fault(delay=5, times=1))  # the upstream takes 5 s to answer
    with serve(deployment("llama", "oci/meta.llama-3.3-70b-instruct", creds)) as gw:
        body = {"model": "llama", "messages": HI, "stream": stream}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{gw.base_url}/v1/chat/completions", json=body, headers=AUTH, timeout=0.5)
        gone = time.monotonic()
        upstream = _last_upstream(oci_simulator, 0)
        assert upstream.finished.wait(5)
    assert upstream.disconnected_at is not None and upstream.disconnected_at - gone < 0.2  # was: the call ran its 5 s


def test_disconnect_mid_stream_stops_reading_upstream(creds, oci_simulator):
    """20 clients each read the first chunk of a 500-event stream and leave."""
    clients = 20
    for _ in range(clients):
        oci_simulator.inject(Fault(events=500, event_delay=0.01, times=1))
    with serve(deployment("llama", "oci/meta.llama-3.3-70b-instruct", creds)) as gw:

        def read_first_chunk() -> float:
            with httpx.stream("POST", f"{gw.base_url}/v1/chat/completions", headers=AUTH, timeout=10,
                              json={"model": "llama", "messages": HI, "stream": True}) as r:  # fmt: skip
                for line in r.iter_lines():
                    if line.startswith("data: {"):
                        break
            return time.monotonic()

        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            left = list(pool.map(lambda _: read_first_chunk(), range(clients)))
        upstreams = oci_simulator.requests[-clients:]
        assert all(u.finished.wait(5) for u in upstreams)
    assert all(u.disconnected_at is not None for u in upstreams)
    assert max(u.disconnected_at for u in upstreams) - max(left) < 0.2
    assert max(u.events_sent for u in upstreams) < 100  # was ~250 of 500: read on after the client left


# ---------------------------------------------------------------- the caller's deadline (C12)


@pytest.mark.parametrize("stream", [False, True])
def test_deployment_timeout_bounds_the_whole_request(creds, oci_simulator, stream):
    oci_simulator.inject(Fault(delay=10, times=None))  # never answers in time
    with serve(deployment("slow", "oci/meta.llama-3.3-70b-instruct", creds, timeout=2)) as gw:
        start = time.monotonic()
        r = httpx.post(f"{gw.base_url}/v1/chat/completions", headers=AUTH, timeout=30,
                       json={"model": "slow", "messages": HI, "stream": stream})  # fmt: skip
        took = time.monotonic() - start
    assert r.status_code == 504 and r.json()["error"]["type"] == "timeout_error"
    assert 1.9 < took < 3.0  # was 7 s: three attempts of 2 s each


def test_stream_timeout_bounds_the_first_chunk(creds, oci_simulator):
    oci_simulator.inject(Fault(delay=10, times=None))
    with serve(deployment("slow", "oci/meta.llama-3.3-70b-instruct", creds, timeout=30, stream_timeout=1)) as gw:
        start = time.monotonic()
        r = httpx.post(f"{gw.base_url}/v1/chat/completions", headers=AUTH, timeout=30,
                       json={"model": "slow", "messages": HI, "stream": True})  # fmt: skip
    assert r.status_code == 504 and time.monotonic() - start < 2.0


def test_throttled_deployment_fails_over_at_once(creds, oci_simulator):
    throttled = Fault(status=429, retry_after="5", match="xai.grok-4", times=None)
    with serve(deployment("g", "oci/xai.grok-4", creds, extra_headers=fault(throttled)),
               deployment("g", "oci/xai.grok-3", creds, extra_headers=fault(throttled))) as gw:  # fmt: skip
        for _ in range(4):  # the throttled one is tried first in about half of these
            start = time.monotonic()
            r = httpx.post(f"{gw.base_url}/v1/chat/completions", headers=AUTH, json={"model": "g", "messages": HI})
            assert r.status_code == 200 and time.monotonic() - start < 1.0  # was 2 x Retry-After


def test_last_deployment_429_is_passed_on_with_retry_after(creds):
    throttled = Fault(status=429, retry_after="7", times=None)
    with serve(deployment("g", "oci/xai.grok-4", creds, extra_headers=fault(throttled), max_retries=0),
               deployment("e", "oci/cohere.embed-english-v3.0", creds, extra_headers=fault(throttled), max_retries=0)) as gw:  # fmt: skip
        r = httpx.post(f"{gw.base_url}/v1/chat/completions", headers=AUTH, json={"model": "g", "messages": HI})
        assert r.status_code == 429 and r.headers["retry-after"] == "7"
        r = httpx.post(f"{gw.base_url}/v1/embeddings", headers=AUTH, json={"model": "e", "input": "a"})
        assert r.status_code == 429 and r.headers["retry-after"] == "7"  # C11: was missing on embeddings


# ---------------------------------------------------------------- C5: odd replies fall back, never 500


def test_malformed_reply_falls_back_to_the_next_deployment(creds):
    async def odd(scope, receive, send):
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"[]"})

    with BackgroundServer(odd) as broken, serve(
        deployment("m", "oci/meta.llama-3.3-70b-instruct", {**creds, "api_base": broken.base_url}),
        deployment("m", "oci/meta.llama-3.3-70b-instruct", creds),
    ) as gw:
        statuses = {httpx.post(f"{gw.base_url}/v1/chat/completions", headers=AUTH, json={"model": "m", "messages": HI}).status_code
                    for _ in range(6)}  # fmt: skip
    assert statuses == {200}


# ---------------------------------------------------------------- S2: cross-site requests


def test_cross_site_simple_request_is_refused(creds, oci_simulator):
    with serve(deployment("llama", "oci/meta.llama-3.3-70b-instruct", creds), master_key=None) as gw:
        before = len(oci_simulator.requests)
        r = httpx.post(f"{gw.base_url}/v1/chat/completions", content=json.dumps({"model": "llama", "messages": HI}),
                       headers={"content-type": "text/plain", "origin": "https://attacker.example"})  # fmt: skip
        assert r.status_code == 415 and r.json()["error"]["param"] == "content-type"
        r = httpx.post(f"{gw.base_url}/v1/chat/completions", json={"model": "llama", "messages": HI}, headers={"host": "attacker.example"})
        assert r.status_code == 400  # DNS rebinding: a name that is not this loopback gateway's
        assert len(oci_simulator.requests) == before
        assert httpx.post(f"{gw.base_url}/v1/chat/completions", json={"model": "llama", "messages": HI}).status_code == 200


# ---------------------------------------------------------------- S3: no internals in error bodies


def test_upstream_failures_do_not_disclose_internals(creds, caplog):
    dead = {**creds, "api_base": "http://127.0.0.1:9/internal-proxy"}
    with serve(deployment("m", "oci/meta.llama-3.3-70b-instruct", dead, max_retries=0)) as gw:
        r = httpx.post(f"{gw.base_url}/v1/chat/completions", headers=AUTH, json={"model": "m", "messages": HI})
    assert r.status_code == 502
    assert "internal-proxy" not in r.text and "127.0.0.1" not in r.text
    assert "internal-proxy" in caplog.text  # the operator still sees it


def test_configuration_problem_is_generic_to_callers(creds, tmp_path):
    token = tmp_path / "token"
    token.write_text("TOKEN")
    session = {**creds, "oci_security_token_file": str(token)}
    with serve(deployment("m", "oci/meta.llama-3.3-70b-instruct", session)) as gw:
        token.unlink()  # the session token file disappears while serving
        r = httpx.post(f"{gw.base_url}/v1/chat/completions", headers=AUTH, json={"model": "m", "messages": HI})
    assert r.status_code == 500 and r.json()["error"]["code"] == "gateway_configuration"
    assert str(tmp_path) not in r.text


# ---------------------------------------------------------------- S4 and hostile input: 400, never 500 or 200


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(("body", "needle"), [
    ('{"model": "llama", "messages": ' + _deep(10_000) + "}", "nested too deeply"),
    ('{"model": "llama", "messages": [{"role": "user", "content": "x"}], "metadata": {"a": ' + _deep(10_000) + "}}", "nested too deeply"),
    ('{"model": "llama", "messages": [{"role": "user", "content": "\\ud800"}]}', "not valid Unicode"),
    ('{"model": "llama", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}', "NaN is not valid JSON"),
    ('{"model": "llama", "messages": [{"role": "user", "content": "x"}], "temperature": Infinity}', "Infinity is not valid JSON"),
    ('{"model": "llama", "messages": [{"role": "user", "content": "x"}], "temperature": -Infinity}', "Infinity is not valid JSON"),
    ('{"model": "llama", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": "nope"}}]}',
     "tools\\[0\\].function.parameters"),
    ('{"model": "llama", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}], '
     '"tool_choice": {"type": "function", "function": {"name": "g"}}}', "tool_choice: names the function 'g'"),
])  # fmt: skip
def test_hostile_input_gets_a_400(gateway, oci_simulator, body, needle):
    import re

    before = len(oci_simulator.requests)
    r = httpx.post(f"{gateway.base_url}/v1/chat/completions", content=body.encode(), headers=JSON_AUTH)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and re.search(needle, error["message"]), error["message"]
    assert len(oci_simulator.requests) == before


def test_openai_bookkeeping_fields_are_accepted(gateway, oci_simulator):
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=MASTER, max_retries=0) as client:
        r = client.chat.completions.create(model="llama", messages=HI, user="alice", store=False, metadata={"team": "a"},
                                           modalities=["text"], service_tier="auto")  # fmt: skip
        assert r.choices[0].message.content
        sent = oci_simulator.requests[-1].json["chatRequest"]
        assert "user" not in sent and "store" not in sent and "modalities" not in sent
        assert client.embeddings.create(model="embed", input="a", user="alice").data[0].embedding
        assert client.models.retrieve("llama").id == "llama"
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("ghost")
    r = httpx.post(f"{gateway.base_url}/v1/chat/completions", headers=AUTH, json={"model": "llama", "messages": HI, "stream": None})
    assert r.status_code == 200 and r.json()["object"] == "chat.completion"
    r = httpx.post(f"{gateway.base_url}/v1/chat/completions", headers=AUTH, json={"model": "llama", "messages": HI, "modalities": ["audio"]})
    assert r.status_code == 400 and "modalities" in r.json()["error"]["message"]


# ---------------------------------------------------------------- S1 at start-up


def test_key_text_in_key_file_setting_is_not_printed(creds):
    explicit = {k: v for k, v in creds.items() if k != "oci_key"}
    with pytest.raises(GatewayConfigError) as err:
        parse_config({"model_list": [deployment("m", "oci/meta.llama-3.3-70b-instruct", explicit, oci_key_file=TEST_KEY_PEM)]})
    assert "oci_key_file holds key text" in err.value.message and "BEGIN" not in err.value.message


# ---------------------------------------------------------------- idle connections the upstream closed


def _close_wait_sockets(port: int) -> int:
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[2].split(":")[1], 16) == port and fields[3] == "08":  # remote port, state CLOSE_WAIT
                count += 1
    return count


@pytest.mark.usefixtures("async_backend")  # aiohttp drops them by itself; for httpx the gateway prunes its pool
def test_idle_connections_closed_by_upstream_are_dropped(creds, oci_simulator, monkeypatch):
    from ocilm.gateway import _pool

    monkeypatch.setattr(_pool, "PRUNE_EVERY", 0.2)
    with BackgroundServer(oci_simulator.app, keep_alive=0.3) as upstream, serve(
        deployment("m", "oci/meta.llama-3.3-70b-instruct", {**creds, "api_base": upstream.base_url})
    ) as gw:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:  # a few connections in the gateway's pool
            list(pool.map(lambda _: httpx.post(f"{gw.base_url}/v1/chat/completions", headers=AUTH,
                                               json={"model": "m", "messages": HI}).raise_for_status(), range(8)))  # fmt: skip
        time.sleep(1.0)  # the upstream closes its idle connections after 0.3 s; the gateway looks every 0.2 s
        assert _close_wait_sockets(upstream.port) == 0  # without pruning: one per pooled connection
        # and the gateway still answers, on fresh connections
        assert httpx.post(f"{gw.base_url}/v1/chat/completions", headers=AUTH, json={"model": "m", "messages": HI}).status_code == 200


# ---------------------------------------------------------------- D2: an app that is a good guest


def test_app_leaves_an_injected_client_and_the_collector_alone(creds):
    import gc

    from ocilm import AsyncClient

    client = AsyncClient()
    frozen = gc.get_freeze_count()
    with serve(deployment("m", "oci/meta.llama-3.3-70b-instruct", creds), client=client) as gw:
        assert httpx.post(f"{gw.base_url}/v1/chat/completions", headers=AUTH, json={"model": "m", "messages": HI}).status_code == 200
    assert client._transport is not None and not client._transport.is_closed  # the caller's to close
    assert gc.get_freeze_count() == frozen  # only `ocilm serve` freezes its own process's start-up objects
