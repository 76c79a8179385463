"""A cache entry is keyed by what decided its answer (the deployments left after routing tags, each
guardrail's effective settings), never keeps a reply a guardrail skipped, and lives no longer
than the operator's ttl (the December 7 review's M1, M3 and M6)."""

from __future__ import annotations

import time

import httpx
import pytest

from ocilm.gateway import create_app, parse_config
from ocilm.gateway._cache import CacheControl, CacheSettings, ResponseCache
from ocilm.gateway._guardrails import GuardrailSpec
from ocilm.testing import BackgroundServer, Fault

MASTER = "sk-master-cache-keys-1"
ADMIN = {"authorization": f"Bearer {MASTER}"}
PHONE = "+1 415 555 0100"


def _post(server, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v1/chat/completions", headers={**ADMIN, **(headers or {})}, json=body, timeout=30)


def test_one_tags_reply_never_answers_another_tag(creds, oci_simulator):
    config = {
        "model_list": [{"model_name": "m", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds, "tags": ["eu"]}},
                       {"model_name": "m", "litellm_params": {"model": "oci/xai.grok-3", **creds, "tags": ["us"]}}],
        "router_settings": {"enable_tag_filtering": True},
        "litellm_settings": {"cache": True},
        "general_settings": {"master_key": MASTER},
    }  # fmt: skip
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    with BackgroundServer(create_app(parse_config(config))) as server:
        eu = _post(server, body, {"x-litellm-tags": "eu"})
        us = _post(server, body, {"x-litellm-tags": "us"})
        eu_again = _post(server, body, {"x-litellm-tags": "eu"})
    assert eu.headers["x-ocilm-cache"] == "miss" and "llama" in eu.json()["choices"][0]["message"]["content"]
    assert us.headers["x-ocilm-cache"] == "miss" and "grok" in us.json()["choices"][0]["message"]["content"]
    assert eu_again.headers["x-ocilm-cache"] == "hit" and eu_again.headers["x-litellm-cache-key"] != us.headers["x-litellm-cache-key"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_reply_served_while_a_guardrail_was_down_is_never_replayed(creds, oci_simulator, stream):
    config = {
        "model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds}}],
        "guardrails": [{"guardrail_name": "g", "litellm_params": {"guardrail": "oci_guardrails", **creds, "max_retries": 0, "mode": "post_call",
                                                                  "default_on": True, "pii_entities_config": {"TELEPHONE_NUMBER": "BLOCK"},
                                                                  "on_error": "fail_open"}}],
        "litellm_settings": {"cache": True},
        "general_settings": {"master_key": MASTER},
    }  # fmt: skip
    body = {"model": "llama", "messages": [{"role": "user", "content": f"say {PHONE}"}], "temperature": 0, "stream": stream}
    with BackgroundServer(create_app(parse_config(config))) as server:
        oci_simulator.inject(Fault(status=503, action="applyGuardrails", times=1))
        down = _post(server, body)
        back = _post(server, body)
    assert down.status_code == 200 and ("[DONE]" in down.text if stream else PHONE in down.text)  # fail_open: served unguarded, once
    assert back.headers.get("x-ocilm-cache") != "hit" and PHONE not in back.text
    assert (back.status_code == 400) if not stream else ("guardrail" in back.text and "[DONE]" not in back.text)


def test_a_changed_guardrail_policy_never_shares_an_entry():
    monitor = GuardrailSpec("g", frozenset({"post_call"}), pii={"TELEPHONE_NUMBER": "MONITOR"})
    block = GuardrailSpec("g", frozenset({"post_call"}), pii={"TELEPHONE_NUMBER": "BLOCK"})
    secret = GuardrailSpec("g", frozenset({"post_call"}), pii={"TELEPHONE_NUMBER": "BLOCK"}, params={"oci_api_key": "sk-secret-1"})
    assert monitor.digest != block.digest and block.digest == secret.digest and "sk-secret" not in secret.digest


class _Caller:
    team_id, token, cache = None, "tok", None


@pytest.mark.parametrize("asked", [31_536_000, 600, 60, 5])
def test_the_operators_ttl_bounds_every_entry(asked):
    cache = ResponseCache(CacheSettings(ttl=60))
    plan = cache.plan(CacheControl.parse({"ttl": asked}, None), route="chat", method="completion", model=["m", []], first=[], params={},
                      guardrails=[], caller=_Caller())  # fmt: skip
    assert plan is not None and cache._ttl(plan) == min(asked, 60)


def test_a_request_cannot_keep_an_entry_longer_in_redis(creds, redis_url, oci_simulator):
    import redis

    namespace = f"ttl{time.time_ns()}"
    config = {
        "model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds}}],
        "litellm_settings": {"cache": True, "cache_params": {"type": "redis", "url": redis_url, "namespace": namespace, "ttl": 60}},
        "general_settings": {"master_key": MASTER},
    }  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as server:
        r = _post(server, {"model": "llama", "messages": [{"role": "user", "content": "a year"}], "cache": {"ttl": 31_536_000}})
    assert r.status_code == 200
    client = redis.Redis.from_url(redis_url)
    names = client.keys(f"{namespace}:*")
    assert names and all(0 < client.ttl(name) <= 60 for name in names)
    client.delete(*names)
