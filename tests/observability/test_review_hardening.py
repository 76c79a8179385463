"""Observability when things go wrong: clients that leave mid-body and bugs still close their
record (no phantom load), alerts start again after a budget is raised, a webhook that never
answers cannot hold a shutdown, and a password in a database URL's query is never printed."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from ocilm.gateway import create_app, parse_config
from ocilm.testing import BackgroundServer

from ..servers import free_port, serve
from .test_alerts import Receiver

MASTER = "sk-master-obs-hard-1"
ADMIN = {"authorization": f"Bearer {MASTER}"}
HI = [{"role": "user", "content": "Hello there"}]
LLAMA = "oci/meta.llama-3.3-70b-instruct"


def _in_flight(base: str) -> float:
    for line in httpx.get(f"{base}/metrics", headers=ADMIN, timeout=30).text.splitlines():
        if line.startswith('ocilm_in_flight_requests{route="chat/completions"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def gateway(creds, tmp_path):
    config = {"model_list": [{"model_name": "llama", "litellm_params": {"model": LLAMA, **creds}}],
              "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path / 'g.db'}"}}  # fmt: skip
    app = create_app(parse_config(config))
    with BackgroundServer(app) as server:
        server.asgi = app
        yield server


def test_clients_that_leave_mid_body_leave_nothing_in_flight(gateway):
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                         b"authorization: Bearer " + MASTER.encode() + b"\r\ncontent-length: 1000\r\n\r\n{\"model\": \"ll")  # fmt: skip
            time.sleep(0.1)
    deadline = time.monotonic() + 5
    while _in_flight(gateway.base_url) != 0:
        assert time.monotonic() < deadline, "requests whose clients left are still counted in flight"
        time.sleep(0.1)


def test_a_bug_is_a_500_in_the_routes_envelope_with_its_record_closed(gateway, caplog):
    router = gateway.asgi.state.router

    async def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    original, router.call = router.call, broken
    try:
        reply = httpx.post(f"{gateway.base_url}/v1/chat/completions", headers=ADMIN, json={"model": "llama", "messages": HI}, timeout=30)
        door = httpx.post(f"{gateway.base_url}/v1/messages", headers={"x-api-key": MASTER, "anthropic-version": "2023-06-01"},
                          json={"model": "llama", "max_tokens": 5, "messages": HI}, timeout=30)  # fmt: skip
    finally:
        router.call = original
    assert reply.status_code == 500 and reply.json()["error"]["code"] == "internal_error"
    assert door.status_code == 500 and door.json()["type"] == "error"  # Anthropic's envelope
    assert _in_flight(gateway.base_url) == 0
    metrics = httpx.get(f"{gateway.base_url}/metrics", headers=ADMIN, timeout=30).text
    assert 'status="500"' in metrics


@pytest.fixture
def receiver():
    hooks = Receiver()
    hooks.refused = 1  # no failed first delivery here
    with BackgroundServer(hooks.app) as server:
        hooks.url = f"{server.base_url}/hooks/budget"
        yield hooks


def test_alerts_start_again_after_a_budget_is_raised(creds, tmp_path, receiver):
    price = {"input_cost_per_token": 0, "output_cost_per_token": 0.01}
    config = {"model_list": [{"model_name": "llama", "litellm_params": {"model": LLAMA, **creds, **price}}],
              "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path / 'g.db'}",
                                   "budget_alert_webhooks": [receiver.url]}}  # fmt: skip

    def spend_until(base: str, key: str, count: int) -> None:
        for _ in range(count):
            assert httpx.post(f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                              json={"model": "llama", "messages": HI, "max_tokens": 5}, timeout=30).status_code == 200  # fmt: skip

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 10
        while len(receiver.events) < count:
            assert time.monotonic() < deadline, receiver.events
            time.sleep(0.05)

    with BackgroundServer(create_app(parse_config(config))) as gw:
        made = httpx.post(f"{gw.base_url}/key/generate", headers=ADMIN, json={"max_budget": 0.2}, timeout=30).json()
        spend_until(gw.base_url, made["key"], 4)  # $0.20 of $0.20: 50%, 80%, 100%
        wait_for(3)
        httpx.post(f"{gw.base_url}/key/update", headers=ADMIN, json={"key": made["token"], "max_budget": 0.5}, timeout=30)
        spend_until(gw.base_url, made["key"], 4)  # $0.40 of $0.50: 50% and 80% of the new budget
        wait_for(5)
    assert [(e["threshold"], e["max_budget"]) for e in receiver.events[3:]] == [(0.5, 0.5), (0.8, 0.5)]


def test_a_webhook_that_never_answers_cannot_hold_a_shutdown(creds, tmp_path):
    silent = socket.create_server(("127.0.0.1", free_port()))  # accepts connections, never answers
    silent.listen(16)
    path = tmp_path / "gateway.yaml"
    price = {"input_cost_per_token": 0, "output_cost_per_token": 0.01}
    path.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "llama", "litellm_params": {"model": LLAMA, **creds, **price}}],
        "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path / 'g.db'}",
                             "budget_alert_webhooks": [f"http://127.0.0.1:{silent.getsockname()[1]}/hook"]},
    }))  # fmt: skip
    proc, base = serve(str(path))
    try:
        made = httpx.post(f"{base}/key/generate", headers=ADMIN, json={"max_budget": 0.05}, timeout=30).json()
        reply = httpx.post(f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {made['key']}"},
                           json={"model": "llama", "messages": HI, "max_tokens": 5}, timeout=30)  # fmt: skip
        assert reply.status_code == 200  # spent the whole budget: 50%, 80% and 100% to announce
        time.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        assert time.monotonic() - started < 20  # within a Kubernetes pod's default 30 s grace
    finally:
        if proc.poll() is None:
            proc.kill()
        silent.close()


def test_a_password_in_the_database_urls_query_is_never_printed(creds, tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "llama", "litellm_params": {"model": LLAMA, **creds}}],
        "general_settings": {"master_key": MASTER, "database_url": f"postgresql://127.0.0.1:{free_port()}/ocilm?user=ocilm&password=S3cretPW"},
    }))  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "ocilm", "serve", "--config", str(path), "--port", str(free_port())],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0 and "cannot reach the database" in done.stderr
    assert "S3cretPW" not in done.stderr + done.stdout and "127.0.0.1" in done.stderr
