"""Metrics scraped from ``ocilm serve --workers 2`` after a scripted mix of traffic, and its
JSON access lines, checked against what the mix must produce."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ocilm.testing import Fault

from ..servers import serve

MASTER = "sk-master-observe-1"
ADMIN = {"authorization": f"Bearer {MASTER}"}
HI = [{"role": "user", "content": "Hello there, secret-prompt-words"}]
LLAMA = "oci/meta.llama-3.3-70b-instruct"


@pytest.fixture
def two_workers(creds, tmp_path, redis_url):
    config = {
        "model_list": [
            {"model_name": "llama", "litellm_params": {"model": LLAMA, **creds}},
            {"model_name": "broken", "litellm_params": {"model": LLAMA, **creds, "max_retries": 1,
             "extra_headers": {"x-ocilm-sim-fault": Fault(status=500, times=None).header()}}},
        ],
        "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path / 'g.db'}", "redis_url": redis_url},
    }  # fmt: skip
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    out = open(tmp_path / "access.log", "w")  # noqa: SIM115
    proc, base = serve(str(path), "--workers", "2", stdout=out)
    yield base, tmp_path / "access.log", creds
    proc.terminate()
    proc.wait(30)
    out.close()


def _scrape(base: str) -> dict[tuple[str, tuple], float]:
    r = httpx.get(f"{base}/metrics", headers=ADMIN, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and all(dict(ls).get(k) == want for k, want in labels.items()))


def test_every_counter_matches_the_traffic_across_two_workers(two_workers):
    base, log_path, creds = two_workers
    key = httpx.post(f"{base}/key/generate", headers=ADMIN, json={"key_alias": "obs", "rpm_limit": 9}, timeout=30).json()
    poor = httpx.post(f"{base}/key/generate", headers=ADMIN, json={"max_budget": 0.0000001}, timeout=30).json()
    auth = {"authorization": f"Bearer {key['key']}"}
    usage_in = usage_out = 0
    with httpx.Client(timeout=30) as http:  # new connections spread over both workers
        for _ in range(4):
            r = http.post(f"{base}/v1/chat/completions", headers={**auth, "connection": "close"},
                          json={"model": "llama", "messages": HI, "max_tokens": 20})  # fmt: skip
            assert r.status_code == 200
            usage_in += r.json()["usage"]["prompt_tokens"]
            usage_out += r.json()["usage"]["completion_tokens"]
        for _ in range(2):
            with http.stream("POST", f"{base}/v1/chat/completions", headers={**auth, "connection": "close"},
                             json={"model": "llama", "messages": HI, "stream": True, "stream_options": {"include_usage": True}}) as r:  # fmt: skip
                assert r.status_code == 200
                for line in r.iter_lines():
                    if line.startswith("data: {") and '"usage":{' in line.replace(" ", ""):
                        usage = json.loads(line[6:])["usage"]
                        usage_in += usage["prompt_tokens"]
                        usage_out += usage["completion_tokens"]
        for _ in range(2):  # OCI fails: one retry each, then 502
            assert http.post(f"{base}/v1/chat/completions", headers={**auth, "connection": "close"},
                             json={"model": "broken", "messages": HI}).status_code == 502  # fmt: skip
        assert http.post(f"{base}/v1/chat/completions", headers={"authorization": "Bearer sk-wrong-key-000"},
                         json={"model": "llama", "messages": HI}).status_code == 401  # fmt: skip
        assert http.post(f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {poor['key']}"},
                         json={"model": "llama", "messages": HI}).status_code == 429  # fmt: skip
        # 8 of the key's 9 requests per minute are used: the 9th passes, the 10th is refused
        statuses = [http.post(f"{base}/v1/chat/completions", headers={**auth, "connection": "close"},
                              json={"model": "llama", "messages": HI, "max_tokens": 5}).status_code for _ in range(2)]  # fmt: skip
    assert statuses == [200, 429]

    for _ in range(4):  # any worker answers the scrape with both workers' samples
        samples = _scrape(base)
        chat = {"route": "chat/completions"}
        assert _total(samples, "ocilm_requests_total", **chat, status="200") == 7
        assert _total(samples, "ocilm_requests_total", **chat, status="502") == 2
        assert _total(samples, "ocilm_requests_total", **chat, status="401") == 1
        assert _total(samples, "ocilm_requests_total", **chat, status="429") == 2
        assert _total(samples, "ocilm_requests_total", **chat, key=key["token"]) == 10
        assert _total(samples, "ocilm_rejections_total", reason="auth") == 1
        assert _total(samples, "ocilm_rejections_total", reason="budget") == 1
        assert _total(samples, "ocilm_rejections_total", reason="rate_limit") == 1
        assert _total(samples, "ocilm_upstream_errors_total", status="500") == 2
        assert _total(samples, "ocilm_retries_total", model="broken") == 2
        assert _total(samples, "ocilm_time_to_first_token_seconds_count", model="llama") == 2
        assert _total(samples, "ocilm_request_duration_seconds_count", model="llama") == 7 + 1 + 1  # + the budget and rate refusals
        last_in = _total(samples, "ocilm_tokens_total", model="llama", direction="input")
        assert last_in >= usage_in and _total(samples, "ocilm_tokens_total", model="llama", direction="output") >= usage_out
        assert _total(samples, "ocilm_in_flight_requests") == 0
        assert _total(samples, "ocilm_governance_store_up") == 1

    deadline = time.monotonic() + 10  # lines are flushed at most 0.2 s late; a loaded machine may take longer
    while True:
        lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        chat_lines = [line for line in lines if line["route"] == "chat/completions"]
        if len(chat_lines) >= 12 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(chat_lines) == 12 and len({line["request_id"] for line in chat_lines}) == 12
    ok = [line for line in chat_lines if line["status"] == 200]
    assert all(line["key"] == key["token"] and line["model"] == "llama" and line["deployment"] == LLAMA
               and line["input_tokens"] and line["output_tokens"] and line["latency_ms"] > 0 and line["opc_request_id"] for line in ok)  # fmt: skip
    assert sum(1 for line in ok if line["ttft_ms"] is not None) == 2
    assert {line["reason"] for line in chat_lines if line["status"] in (401, 429)} == {"auth", "budget", "rate_limit"}
    assert all(line["upstream_status"] == 500 and line["retries"] == 1 for line in chat_lines if line["status"] == 502)
    spent = httpx.get(f"{base}/spend/logs", headers=ADMIN, params={"api_key": key["token"]}, timeout=30).json()
    assert spent and {row["request_id"] for row in spent} <= {line["request_id"] for line in chat_lines}  # one id per request, in both
    text = log_path.read_text()
    for secret in (MASTER, key["key"], poor["key"], "sk-wrong-key-000", "secret-prompt-words", creds["oci_key"].splitlines()[1]):
        assert secret not in text


def test_metrics_need_the_master_key(two_workers):
    base, _, _ = two_workers
    assert httpx.get(f"{base}/metrics", timeout=10).status_code == 401
    key = httpx.post(f"{base}/key/generate", headers=ADMIN, json={}, timeout=30).json()["key"]
    assert httpx.get(f"{base}/metrics", headers={"authorization": f"Bearer {key}"}, timeout=10).status_code == 403
