"""The router's state shared by replicas through Redis: a cooldown one replica starts is
honoured by every other within 0.5 s, calls in flight on one replica steer least-busy on the
others, and Redis going away never stops routing."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import yaml

from ocilm.testing import Fault

from ..servers import serve

MASTER = "sk-master-router-replicas-1"
HEADERS = {"authorization": f"Bearer {MASTER}"}


def _start(creds: dict, tmp_path, redis: str, models: list[dict], count: int = 3, **router) -> tuple[list, list[str]]:
    path = tmp_path / f"gateway-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump({"model_list": models, "router_settings": router,
                                    "general_settings": {"master_key": MASTER, "redis_url": redis}}))  # fmt: skip
    started = [serve(str(path)) for _ in range(count)]
    return [proc for proc, _ in started], [base for _, base in started]


def _stop(procs: list) -> None:
    for proc in procs:
        proc.kill()
        proc.wait(10)


def _chat(base: str) -> httpx.Response:
    return httpx.post(f"{base}/v1/chat/completions", headers=HEADERS, timeout=30,
                      json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})  # fmt: skip


def _deployment(ident: str, creds: dict, model: str, fault: Fault | None = None, **params) -> dict:
    extra = {"extra_headers": {"x-ocilm-sim-fault": fault.header()}} if fault else {}
    return {"model_name": "m", "litellm_params": {"model": model, **creds, "max_retries": 0, **extra, **params}, "model_info": {"id": ident}}


def test_a_cooldown_reaches_every_replica(creds, oci_simulator, own_redis, tmp_path):
    throttled = Fault(status=429, retry_after="30", times=None)
    models = [_deployment(f"cool-{uuid.uuid4().hex[:8]}", creds, "oci/xai.grok-3", throttled, order=1),
              _deployment(f"ok-{uuid.uuid4().hex[:8]}", creds, "oci/meta.llama-3.3-70b-instruct", order=2)]  # fmt: skip
    procs, bases = _start(creds, tmp_path, own_redis.url, models)
    try:
        oci_simulator.reset()
        assert _chat(bases[0]).status_code == 200  # the throttled one refused, cooled, and the next served
        time.sleep(0.5)
        assert all(_chat(base).status_code == 200 for base in bases[1:] for _ in range(10))
        to_throttled = [r for r in oci_simulator.requests if r.json and r.json["servingMode"]["modelId"] == "xai.grok-3"]
        assert len(to_throttled) == 1  # only the first: the other replicas spared it
    finally:
        _stop(procs)


def test_calls_in_flight_on_one_replica_steer_least_busy_on_the_others(creds, oci_simulator, own_redis, tmp_path):
    slow = Fault(delay=3, times=None)
    slow_id, fast_id = f"slow-{uuid.uuid4().hex[:8]}", f"fast-{uuid.uuid4().hex[:8]}"
    models = [_deployment(slow_id, creds, "oci/xai.grok-3", slow), _deployment(fast_id, creds, "oci/meta.llama-3.3-70b-instruct")]
    procs, bases = _start(creds, tmp_path, own_redis.url, models, count=2, routing_strategy="least-busy")
    try:

        async def go() -> list[str]:
            async with httpx.AsyncClient(timeout=30) as client:
                body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
                held = [asyncio.ensure_future(client.post(f"{bases[0]}/v1/chat/completions", headers=HEADERS, json=body)) for _ in range(4)]
                await asyncio.sleep(1.0)  # replica A has the slow deployment busy; B hears it within its sync
                got = []
                for _ in range(10):
                    reply = await client.post(f"{bases[1]}/v1/chat/completions", headers=HEADERS, json=body)
                    got.append(reply.headers["x-litellm-model-id"])
                await asyncio.gather(*held)
                return got

        got = asyncio.run(go())
        assert got == [fast_id] * 10  # without sharing, B would send about half to the busy one (ties are random)
    finally:
        _stop(procs)


def test_redis_going_away_never_stops_routing(creds, oci_simulator, own_redis, tmp_path):
    models = [_deployment(f"a-{uuid.uuid4().hex[:8]}", creds, "oci/xai.grok-3"),
              _deployment(f"b-{uuid.uuid4().hex[:8]}", creds, "oci/meta.llama-3.3-70b-instruct")]  # fmt: skip
    procs, bases = _start(creds, tmp_path, own_redis.url, models, count=2)
    try:
        assert all(_chat(base).status_code == 200 for base in bases)
        own_redis.stop()
        time.sleep(0.5)
        assert all(_chat(base).status_code == 200 for base in bases for _ in range(5))
        own_redis.start()
        time.sleep(1.5)
        assert all(_chat(base).status_code == 200 for base in bases)
    finally:
        _stop(procs)
