"""The gateway, used by real OpenAI clients, with the simulator as its upstream."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from ocilm.gateway import GatewayConfigError, create_app, parse_config
from ocilm.testing import BackgroundServer, Fault

openai = pytest.importorskip("openai")
MASTER = "sk-test-master-key-123"
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}  # fmt: skip


def config_dict(creds: dict, **extra_general) -> dict:
    oci = {k: v for k, v in creds.items()}
    return {
        "model_list": [
            {"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **oci}},
            {"model_name": "grok", "litellm_params": {"model": "oci/xai.grok-4", **oci, "max_retries": 0}},
            {"model_name": "command", "litellm_params": {"model": "oci/cohere.command-latest", **oci}},
            {"model_name": "embed", "litellm_params": {"model": "oci/cohere.embed-english-v3.0", **oci}},
            {"model_name": "slow", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **oci, "timeout": 0.3, "max_retries": 0}},
        ],
        "general_settings": {"master_key": MASTER, **extra_general},
    }


@pytest.fixture
def gateway(creds):
    with BackgroundServer(create_app(parse_config(config_dict(creds)))) as server:
        yield server


@pytest.fixture
def oa(gateway):
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=MASTER, max_retries=0) as client:
        yield client


def test_openai_sdk_chat(oa):
    r = oa.chat.completions.create(model="llama", messages=[{"role": "user", "content": "Hi gateway"}])
    assert r.choices[0].message.content == "Hello from meta.llama-3.3-70b-instruct! You said: Hi gateway"
    assert r.model == "llama" and r.usage.total_tokens > 0 and r.choices[0].finish_reason == "stop"


def test_openai_sdk_stream_with_usage(oa):
    stream = oa.chat.completions.create(model="command", messages=[{"role": "user", "content": "Hi"}], stream=True,
                                        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from cohere.command-latest! You said: Hi"
    assert chunks[-1].usage.total_tokens > 0 and chunks[-1].choices == []
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_openai_sdk_tools(oa):
    r = oa.chat.completions.create(model="llama", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL])
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls" and json.loads(call.function.arguments) == {"city": "Paris"}
    follow = oa.chat.completions.create(model="llama", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "Weather in Paris?"}, r.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"}])
    assert follow.choices[0].message.content == "The tool said: sunny"
    stream = oa.chat.completions.create(model="grok", messages=[{"role": "user", "content": "Weather in Oslo and Bergen?"}],
                                        tools=[WEATHER_TOOL], stream=True)
    args: dict[int, str] = {}
    for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or []:
            args[tc.index] = args.get(tc.index, "") + (tc.function.arguments or "")
    assert [json.loads(a) for _, a in sorted(args.items())] == [{"city": "Oslo"}, {"city": "Bergen"}]


def test_openai_sdk_embeddings_and_models(oa):
    e = oa.embeddings.create(model="embed", input=["a", "b"])
    assert len(e.data) == 2 and len(e.data[0].embedding) == 1024 and e.model == "embed"
    e64 = oa.embeddings.create(model="embed", input="a")  # the SDK asks for base64 and decodes it
    assert e64.data[0].embedding == pytest.approx(e.data[0].embedding, abs=1e-6)
    assert sorted(m.id for m in oa.models.list()) == ["command", "embed", "grok", "llama", "slow"]


def test_openai_sdk_error_classes(oa, gateway, oci_simulator):
    with pytest.raises(openai.NotFoundError) as err:
        oa.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert "GET /v1/models" in err.value.message and err.value.code == "model_not_found"  # which models exist is the key's to list
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="wrong-key-00", max_retries=0) as bad, pytest.raises(openai.AuthenticationError):
        bad.models.list()
    with pytest.raises(openai.BadRequestError, match="temperature"):
        oa.chat.completions.create(model="llama", messages=[{"role": "user", "content": "x"}], temperature=9)
    with pytest.raises(openai.BadRequestError, match="reasoning_effort is not supported"):
        oa.chat.completions.create(model="grok", messages=[{"role": "user", "content": "x"}], reasoning_effort="low")
    oci_simulator.inject(Fault(status=429, retry_after="7", times=1))
    with pytest.raises(openai.RateLimitError) as err:
        oa.chat.completions.create(model="grok", messages=[{"role": "user", "content": "x"}])
    assert err.value.response.headers["retry-after"] == "7"
    sent = len(oci_simulator.requests)
    with pytest.raises(openai.RateLimitError) as err:  # the deployment said wait: it cools that long, not asked again
        oa.chat.completions.create(model="grok", messages=[{"role": "user", "content": "x"}])
    assert err.value.code == "deployments_cooling" and 1 <= int(err.value.response.headers["retry-after"]) <= 7
    assert len(oci_simulator.requests) == sent
    oci_simulator.inject(Fault(status=500, times=None, action="chat"))
    with pytest.raises(openai.InternalServerError) as err:
        oa.chat.completions.create(model="llama", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 502
    oci_simulator.reset()
    oci_simulator.inject(Fault(delay=2, times=1))
    with pytest.raises(openai.APIStatusError) as err:
        oa.chat.completions.create(model="slow", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 504


async def test_openai_async_sdk(gateway):
    async with openai.AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=MASTER, max_retries=0) as client:
        results = await asyncio.gather(*(client.chat.completions.create(model="llama", messages=[{"role": "user", "content": f"n{i}"}]) for i in range(10)))
        assert [r.choices[0].message.content.rsplit(" ", 1)[-1] for r in results] == [f"n{i}" for i in range(10)]
        stream = await client.chat.completions.create(model="grok", messages=[{"role": "user", "content": "Hi"}], stream=True)
        assert "".join([c.choices[0].delta.content or "" async for c in stream]).endswith("You said: Hi")
        e = await client.embeddings.create(model="embed", input="x")
        assert len(e.data[0].embedding) == 1024


# ---------------------------------------------------------------- malformed input


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "must be a JSON object"),
    (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "model: required"),
    (b'{"model": "llama"}', 400, "messages: required"),
    (b'{"model": "llama", "messages": "hi"}', 400, "messages: expected a non-empty list"),
    (b'{"model": "llama", "messages": [{"content": "x"}]}', 400, r"messages\[0\]: each message must be an object with a 'role'"),
    (b'{"model": 7, "messages": []}', 400, "model: required"),
    (b'{"model": "ghost", "messages": [{"role": "user", "content": "x"}]}', 404, "model 'ghost' not found"),
    (b'{"model": "llama", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', 400, "stream: expected true or false"),
    (b'{"model": "llama", "messages": [{"role": "user", "content": "x"}], "max_tokens": "lots"}', 400, "max_tokens: expected a whole number"),
    (b'{"model": "llama", "messages": [{"role": "user", "content": "x"}], "oci_compartment_id": "x"}', 400, "unknown chat parameter"),
    (b'{"model": "llama", "messages": [{"role": "user", "content": "x"}], "api_base": "http://evil"}', 400, "unknown chat parameter"),
    (b'{"model": "llama", "messages": [{"role": "user", "content": [{"type": "video"}]}]}', 400, "unsupported content part"),
])
def test_malformed_chat_input(gateway, body, status, message):
    r = httpx.post(f"{gateway.base_url}/v1/chat/completions", content=body,
                   headers={"authorization": f"Bearer {MASTER}", "content-type": "application/json"})  # fmt: skip
    assert r.status_code == status, r.text
    error = r.json()["error"]
    import re

    assert re.search(message, error["message"]), error["message"]
    assert set(error) == {"message", "type", "param", "code"}


def test_malformed_embeddings_and_routes(gateway):
    auth = {"authorization": f"Bearer {MASTER}"}
    r = httpx.post(f"{gateway.base_url}/v1/embeddings", json={"model": "embed"}, headers=auth)
    assert r.status_code == 400 and "input: required" in r.json()["error"]["message"]
    r = httpx.post(f"{gateway.base_url}/v1/embeddings", json={"model": "embed", "input": [1]}, headers=auth)
    assert r.status_code == 400
    r = httpx.post(f"{gateway.base_url}/v1/chat/completions", content=b"x" * (9 * 1024 * 1024), headers={**auth, "content-type": "application/json"})
    assert r.status_code == 413
    assert httpx.get(f"{gateway.base_url}/v1/chat/completions", headers=auth).status_code == 405
    assert httpx.get(f"{gateway.base_url}/v2/things", headers=auth).status_code == 404


def test_master_key_and_health(gateway):
    assert httpx.get(f"{gateway.base_url}/v1/models").status_code == 401
    assert httpx.get(f"{gateway.base_url}/v1/models", headers={"authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(f"{gateway.base_url}/models", headers={"authorization": f"Bearer {MASTER}"}).status_code == 200
    assert httpx.get(f"{gateway.base_url}/health/liveliness").json() == {"status": "alive"}
    assert httpx.get(f"{gateway.base_url}/health/readiness").status_code == 200


def test_stream_is_server_sent_events_ending_with_done(gateway):
    """Shape of a relayed stream (that chunks are not buffered is checked with an upstream stall below)."""
    body = {"model": "llama", "messages": [{"role": "user", "content": "one two three"}], "stream": True}
    headers = {"authorization": f"Bearer {MASTER}"}
    start = time.monotonic()
    with httpx.stream("POST", f"{gateway.base_url}/v1/chat/completions", json=body, headers=headers) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        first = next(line for line in lines if line)
        first_at = time.monotonic() - start
        rest = [line for line in lines if line]
    assert first.startswith("data: {") and rest[-1] == "data: [DONE]"
    assert first_at < 0.5


def test_stream_chunks_arrive_before_the_upstream_finishes(creds, oci_simulator):
    config = config_dict(creds)
    with BackgroundServer(create_app(parse_config(config))) as gw:
        oci_simulator.inject(Fault(stall_after=3, delay=1.0, times=1))
        body = {"model": "llama", "messages": [{"role": "user", "content": "one two three four"}], "stream": True}
        start = time.monotonic()
        with httpx.stream("POST", f"{gw.base_url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {MASTER}"}) as r:
            stamps = [(time.monotonic() - start, line) for line in r.iter_lines() if line]
    assert stamps[0][0] < 0.5 and stamps[-1][0] >= 1.0 and stamps[-1][1] == "data: [DONE]"


def test_client_disconnect_cancels_upstream(creds, oci_simulator):
    with BackgroundServer(create_app(parse_config(config_dict(creds)))) as gw:
        oci_simulator.inject(Fault(stall_after=2, delay=5.0, times=1))
        body = json.dumps({"model": "llama", "messages": [{"role": "user", "content": "a b c d e"}], "stream": True}).encode()
        with socket.create_connection(("127.0.0.1", gw.port)) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                         + f"authorization: Bearer {MASTER}\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body)
            received = b""
            while b"data: " not in received:
                part = sock.recv(4096)
                assert part, "the gateway closed the connection before the first chunk"
                received += part
            gone = time.monotonic()
        upstream = oci_simulator.requests[-1]
        assert upstream.finished.wait(5)  # an event, not a poll: set when the simulator's answer ends
    assert upstream.disconnected_at is not None and upstream.disconnected_at - gone < 1.0  # the stall would last 5 s
    assert upstream.events_sent == 2


def test_balancing_and_fallback(creds, oci_simulator):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    config = config_dict(creds)
    config["model_list"] = [
        {"model_name": "pair", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds}},
        {"model_name": "pair", "litellm_params": {"model": "oci/xai.grok-3", **creds}},
        {"model_name": "flaky", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **{**creds, "api_base": dead}, "max_retries": 0}},
        {"model_name": "flaky", "litellm_params": {"model": "oci/xai.grok-3", **creds}},
    ]
    with BackgroundServer(create_app(parse_config(config))) as gw, openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=MASTER, max_retries=0) as oa:
        served = {oa.chat.completions.create(model="pair", messages=[{"role": "user", "content": "x"}]).choices[0].message.content.split("!")[0] for _ in range(30)}
        assert served == {"Hello from meta.llama-3.3-70b-instruct", "Hello from xai.grok-3"}
        for _ in range(10):
            r = oa.chat.completions.create(model="flaky", messages=[{"role": "user", "content": "x"}])
            assert r.choices[0].message.content.startswith("Hello from xai.grok-3")


def test_no_secrets_in_responses_or_logs(gateway, creds, caplog, oci_simulator):
    caplog.set_level(logging.DEBUG)
    oci_simulator.inject(Fault(status=503, times=None))
    r = httpx.post(f"{gateway.base_url}/v1/chat/completions", json={"model": "grok", "messages": [{"role": "user", "content": "x"}]},
                   headers={"authorization": f"Bearer {MASTER}"})
    assert r.status_code == 502
    key_body = creds["oci_key"].split("\n")[1]
    for text in (r.text, caplog.text):
        assert MASTER not in text and key_body not in text and "PRIVATE KEY" not in text


# ---------------------------------------------------------------- configuration


def test_config_errors_name_their_place_and_hide_values(creds, monkeypatch):
    bad = config_dict(creds)
    bad["model_list"][1]["litellm_params"]["oci_region"] = "mars-1.evil.com"
    bad["model_list"][2]["litellm_params"]["oci_key"] = "SECRETVALUE-not-a-pem"
    bad["model_list"][3]["litellm_params"]["timeout"] = -5
    bad["model_list"][4]["litellm_params"]["colour"] = "blue"
    bad["model_list"].append({"model_name": "x", "litellm_params": {"model": "openai/gpt-4"}})
    bad["model_list"].append({"model_name": "y", "litellm_params": {"model": "oci/meta.x", "oci_key": "os.environ/MISSING_KEY_VAR"}})
    with pytest.raises(GatewayConfigError) as err:
        parse_config(bad)
    text = err.value.message
    assert "model_list[3].litellm_params.timeout: Input should be greater than 0" in text
    with pytest.raises(GatewayConfigError) as err:
        bad["model_list"][3]["litellm_params"]["timeout"] = 5
        parse_config(bad)
    text = err.value.message
    assert "model_list[1].litellm_params.oci_region: oci_region is not a valid OCI region" in text
    assert "mars-1.evil.com" not in text  # a setting is named, never echoed
    assert "model_list[2].litellm_params.oci_key: oci_key is not a PEM private key" in text
    assert "model_list[4].litellm_params.colour: unknown setting" in text
    assert "model_list[5].litellm_params.model: ocilm serves OCI models only" in text
    assert "model_list[6].litellm_params.oci_key: environment variable MISSING_KEY_VAR is not set" in text
    assert "SECRETVALUE" not in text and creds["oci_key"].split("\n")[1] not in text


def test_config_env_references_and_litellm_extras(creds, monkeypatch, tmp_path):
    monkeypatch.setenv("MY_OCI_KEY", creds["oci_key"])
    monkeypatch.setenv("MY_MASTER", "sk-from-environment")
    raw = {
        "model_list": [{"model_name": "m", "litellm_params": {**creds, "model": "oci/xai.grok-4", "oci_key": "os.environ/MY_OCI_KEY", "rpm": 10, "weight": 2},
                        "model_info": {"id": "1"}}],
        "general_settings": {"master_key": "os.environ/MY_MASTER"},
        "litellm_settings": {"drop_params": True},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    from ocilm.gateway import load_config

    config = load_config(str(path))
    assert config.master_key == "sk-from-environment"
    assert config.deployments["m"][0].weight == 2.0 and config.deployments["m"][0].id == "1"  # LiteLLM's routing settings, acted on
    assert config.deployments["m"][0].params.get("drop_params") is True  # litellm_settings.drop_params reaches every call
    assert config.deployments["m"][0].rpm == 10  # a deployment's own limit steers routing
    assert "sk-from" not in repr(config) and "PRIVATE" not in repr(config.deployments)
    path.write_text("model_list: [\n  - oops")
    with pytest.raises(GatewayConfigError, match="not valid YAML at line"):
        load_config(str(path))


# ---------------------------------------------------------------- the command line, as a user runs it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def test_serve_refuses_public_bind_without_master_key(creds, tmp_path, capsys):
    from ocilm.cli import main

    raw = config_dict(creds)
    raw["general_settings"] = {}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["serve", "--config", str(path), "--host", "0.0.0.0"]) == 2
    assert "refusing to listen on 0.0.0.0" in capsys.readouterr().err
    path.write_text(yaml.safe_dump({"model_list": []}))
    assert main(["serve", "--config", str(path)]) == 2
    assert "model_list: expected at least one model (or mcp_servers" in capsys.readouterr().err


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_subprocess_and_graceful_sigterm(creds, tmp_path, oci_simulator, workers):
    """SIGTERM lets a request in flight finish, with one worker and with the workers' supervisor."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_dict(creds)))
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ocilm", "serve", "--config", str(path), "--port", str(port), "--log-level", "warning",
                             "--workers", workers], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        _wait_http(f"http://127.0.0.1:{port}/health/liveliness", proc)
        oci_simulator.inject(Fault(delay=1.0, times=1))
        before = len(oci_simulator.requests)
        result: dict = {}

        def slow_call() -> None:
            result["r"] = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=10,
                                     json={"model": "llama", "messages": [{"role": "user", "content": "in flight"}]},
                                     headers={"authorization": f"Bearer {MASTER}"})

        import threading

        worker = threading.Thread(target=slow_call)
        worker.start()
        deadline = time.monotonic() + 10
        while len(oci_simulator.requests) == before and time.monotonic() < deadline:  # in flight: reached the upstream
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        worker.join(10)
        assert result["r"].status_code == 200 and result["r"].json()["choices"][0]["message"]["content"].endswith("in flight")
        # uvicorn re-raises SIGTERM once it has shut down gracefully, so "killed by SIGTERM" is a clean exit here.
        assert proc.wait(10) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert MASTER not in err and "PRIVATE KEY" not in err


def test_serve_with_workers(creds, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_dict(creds)))
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ocilm", "serve", "--config", str(path), "--port", str(port), "--workers", "2",
                             "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/health/liveliness", proc, seconds=30)
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=MASTER, max_retries=2) as oa:
            replies = {oa.chat.completions.create(model="llama", messages=[{"role": "user", "content": f"w{i}"}]).choices[0].message.content
                       for i in range(6)}
        assert len(replies) == 6
    finally:
        proc.terminate()
        proc.wait(15)


def _socket_count(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


def _listening_on(port: int) -> int:
    """Listening TCP sockets on ``port`` (state 0A in /proc/net/tcp)."""
    with open("/proc/net/tcp") as table:
        return sum(1 for line in list(table)[1:] if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A")


def _workers_of(proc: subprocess.Popen, count: int) -> list[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "multiprocessing.spawn"], capture_output=True, text=True).stdout.split()
        if len(found) == count:
            return [int(pid) for pid in found]
        time.sleep(0.1)
    raise AssertionError(f"expected {count} workers of ocilm serve")


def test_workers_each_take_a_share_of_connections_opened_together(creds, tmp_path):
    """32 keep-alive connections opened at once land on both workers (each has a listening socket
    of its own, SO_REUSEPORT): with one socket shared, the first worker awake accepted them all."""
    from tests.servers import serve

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_dict(creds)))
    proc, base = serve(str(path), "--workers", "2")
    conns: list[socket.socket] = []
    try:
        workers = _workers_of(proc, 2)
        port = int(base.rsplit(":", 1)[1])
        deadline = time.monotonic() + 30
        while _listening_on(port) < 2 and time.monotonic() < deadline:  # both workers have bound their socket
            time.sleep(0.05)
        before = {pid: _socket_count(pid) for pid in workers}
        for pid in workers:  # the connections all wait to be accepted, as a burst finds them
            os.kill(pid, signal.SIGSTOP)
        try:
            conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(32)]
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
        deadline = time.monotonic() + 30
        while sum(_socket_count(pid) - before[pid] for pid in workers) < 32 and time.monotonic() < deadline:
            time.sleep(0.05)
        taken = [_socket_count(pid) - before[pid] for pid in workers]
        assert sum(taken) >= 32 and min(taken) >= 4, taken  # (a worker may open a socket of its own meanwhile)
    finally:
        for conn in conns:
            conn.close()
        proc.terminate()
        proc.wait(30)


def test_a_worker_that_dies_is_replaced_and_a_port_in_use_is_refused(creds, tmp_path):
    from tests.servers import serve

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_dict(creds)))
    proc, base = serve(str(path), "--workers", "2")
    try:
        first = _workers_of(proc, 2)
        port = int(base.rsplit(":", 1)[1])
        deadline = time.monotonic() + 30
        while _listening_on(port) < 2 and time.monotonic() < deadline:  # both serving: a death now is not a failed start
            time.sleep(0.05)
        os.kill(first[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = _workers_of(proc, 2) if len(subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "multiprocessing.spawn"], capture_output=True,
                                                             text=True).stdout.split()) == 2 else first  # fmt: skip
            if first[0] not in now:
                break
            time.sleep(0.1)
        assert first[0] not in now and first[1] in now
        for i in range(8):  # whichever worker takes each connection answers
            r = httpx.post(f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {MASTER}"}, timeout=30,
                           json={"model": "llama", "messages": [{"role": "user", "content": f"after {i}"}]})  # fmt: skip
            assert r.status_code == 200, r.text
        second = subprocess.run([sys.executable, "-m", "ocilm", "serve", "--config", str(path), "--port", base.rsplit(":", 1)[1],
                                 "--workers", "2"], capture_output=True, text=True, timeout=60)  # fmt: skip
        assert second.returncode == 1 and "in use" in second.stderr, second.stderr
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def test_simulate_and_chat_commands(tmp_path):
    port = _free_port()
    sim = subprocess.Popen([sys.executable, "-m", "ocilm", "simulate", "--port", str(port), "--profile-dir", str(tmp_path / "prof")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/", sim)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OCI_")}
        env["OCI_CONFIG_FILE"] = str(tmp_path / "prof" / "config")
        out = subprocess.run([sys.executable, "-m", "ocilm", "chat", "--api-base", f"http://127.0.0.1:{port}", "-m", "xai.grok-4", "Hello there"],
                             capture_output=True, text=True, env=env, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "Hello from xai.grok-4! You said: Hello there"
        bad = subprocess.run([sys.executable, "-m", "ocilm", "chat", "--api-base", f"http://127.0.0.1:{port}", "-m", "meta.none", "x"],
                             capture_output=True, text=True, env=env, timeout=30)
        assert bad.returncode == 1 and "HTTP 404" in bad.stderr
    finally:
        sim.terminate()
        sim.wait(10)
    assert "OCI_CONFIG_FILE=" in sim.stdout.read()


@pytest.mark.parametrize(("settings", "needle"), [
    ({"totally_bogus_setting": 42}, "general_settings.totally_bogus_setting: unknown setting"),
    ({"alerting": ["slack"]}, "general_settings.alerting: not supported by ocilm's gateway; use general_settings.budget_alert_webhooks"),
    ({"allow_requests_on_db_unavailable": True}, "general_settings.allow_requests_on_db_unavailable: ocilm always behaves as false"),
    ({"custom_auth": "my_module.auth"}, "general_settings.custom_auth: not supported"),
    ({"store_prompts_in_spend_logs": True}, "use general_settings.log_prompts"),
])  # fmt: skip
def test_every_general_setting_is_honoured_refused_or_explained(creds, settings, needle):
    config = {"model_list": [{"model_name": "m", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds}}],
              "general_settings": {"master_key": "sk-general-1", **settings}}  # fmt: skip
    with pytest.raises(GatewayConfigError) as refused:
        parse_config(config)
    assert needle in str(refused.value)
    assert "my_module" not in str(refused.value)  # a setting is named, never its value


def test_litellms_internal_general_settings_are_accepted(creds):
    from ocilm.gateway._general_settings import AT_DEFAULT, INTERNAL

    config = {"model_list": [{"model_name": "m", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds}}],
              "general_settings": {"master_key": "sk-general-1", **dict.fromkeys(INTERNAL, 10), **AT_DEFAULT}}  # fmt: skip
    assert parse_config(config).master_key == "sk-general-1"
    readme = (__import__("pathlib").Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert all(f"`{key}`" in readme for key in INTERNAL)  # each is listed with why it changes nothing


def test_workers_that_cannot_start_stop_the_gateway_instead_of_restarting_forever(tmp_path):
    """A worker that dies before its server starts (here: its config is gone) would die again:
    ``ocilm serve --workers N`` stops with the reason instead of starting it again in a loop."""
    env = {**os.environ, "OCILM_GATEWAY_CONFIG": str(tmp_path / "gone.yaml")}
    run = subprocess.run([sys.executable, "-c", "from ocilm.gateway._workers import run_workers; import sys; "
                          f"run_workers('127.0.0.1', {_free_port()}, 2, {{'log_level': 'critical'}})"],
                         capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert run.returncode == 1 and "WorkersFailed" in run.stderr and "stopped as it started" in run.stderr
