"""The router over real HTTP: ``ocilm serve``'s app in front of the simulator, several deployments
of one model with faults injected per deployment, LiteLLM's settings. Distributions are checked
within stated tolerances over a few hundred calls."""

from __future__ import annotations

import asyncio
import collections
import time

import httpx
import pytest

from ocilm.gateway import GatewayConfigError, create_app, parse_config
from ocilm.testing import BackgroundServer, Fault

MASTER = "sk-master-router-1"
HEADERS = {"authorization": f"Bearer {MASTER}"}
LLAMA, GROK = "oci/meta.llama-3.3-70b-instruct", "oci/xai.grok-3"


def deployment(name: str, ident: str, creds: dict, fault: Fault | None = None, **params) -> dict:
    extra = {"extra_headers": {"x-ocilm-sim-fault": fault.header()}} if fault is not None else {}
    return {"model_name": name, "litellm_params": {"model": LLAMA, **creds, "max_retries": 0, **extra, **params}, "model_info": {"id": ident}}


def serve(model_list: list[dict], **router_settings) -> BackgroundServer:
    config = {"model_list": model_list, "router_settings": router_settings, "general_settings": {"master_key": MASTER}}
    return BackgroundServer(create_app(parse_config(config)))


_HTTP = httpx.Client(timeout=30)  # one client for the module: a new one per call costs an SSL context (about 20 ms)


def chat(server, model: str = "m", **body) -> httpx.Response:
    return _HTTP.post(f"{server.base_url}/v1/chat/completions", headers=HEADERS,
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, **body})  # fmt: skip


def served(server, count: int, model: str = "m") -> collections.Counter:
    got: collections.Counter = collections.Counter()
    for _ in range(count):
        reply = chat(server, model)
        assert reply.status_code == 200, reply.text
        got[reply.headers["x-litellm-model-id"]] += 1
    return got


def test_weights_split_traffic_in_proportion(creds):
    with serve([deployment("m", "heavy", creds, weight=3), deployment("m", "light", creds, weight=1)]) as server:
        got = served(server, 400)
    assert 0.68 <= got["heavy"] / 400 <= 0.82  # 75% expected


def test_rpm_stands_in_for_a_missing_weight(creds):
    with serve([deployment("m", "big", creds, rpm=900), deployment("m", "small", creds, rpm=300)]) as server:
        got = served(server, 400)
    assert 0.68 <= got["big"] / 400 <= 0.82


def test_order_goes_to_the_next_only_when_the_first_cools(creds):
    with serve([deployment("m", "primary", creds, order=1), deployment("m", "backup", creds, order=2)], cooldown_time=30) as server:
        assert served(server, 20) == {"primary": 20}
    throttled = Fault(status=429, retry_after="30", times=None)
    with serve([deployment("m", "primary", creds, throttled, order=1), deployment("m", "backup", creds, order=2)]) as server:
        assert served(server, 20) == {"backup": 20}


def test_a_throttled_deployment_cools_and_the_healthy_one_serves(creds, oci_simulator):
    """The issue's measurement: a deployment answering 429 (no Retry-After) beside a healthy one
    got half the calls. Now it is tried until it has failed more than allowed_fails times, then
    spared for its cooldown; every call succeeds."""
    oci_simulator.reset()
    always = Fault(status=429, times=None)
    with serve([deployment("m", "throttled", creds, always, model=GROK), deployment("m", "healthy", creds)],
               allowed_fails=2, cooldown_time=60) as server:  # fmt: skip
        got = served(server, 60)
    attempts = sum(1 for r in oci_simulator.requests if r.json and r.json["servingMode"]["modelId"] == "xai.grok-3")
    assert got["healthy"] == 60 and attempts <= 3  # allowed_fails + 1, then cooling for the rest


def test_after_a_cooldown_one_probe_decides(creds, oci_simulator):
    oci_simulator.reset()
    always = Fault(status=500, times=None)
    with serve([deployment("m", "bad", creds, always, model=GROK), deployment("m", "good", creds)], allowed_fails=0, cooldown_time=0.4) as server:
        served(server, 10)
        first = sum(1 for r in oci_simulator.requests if r.json and r.json["servingMode"]["modelId"] == "xai.grok-3")
        time.sleep(0.5)  # the cooldown ended: one probe, which fails, and the cooldown doubles
        started = time.monotonic()
        served(server, 10)
        elapsed = time.monotonic() - started
        second = sum(1 for r in oci_simulator.requests if r.json and r.json["servingMode"]["modelId"] == "xai.grok-3")
        state = {d["model_id"]: d for d in httpx.get(f"{server.base_url}/health/deployments", headers=HEADERS).json()["deployments"]}
    assert first <= 2
    # one probe per ended cooldown: one at once, and one more each 0.8 s (or more) a slow machine took for the ten
    assert 1 <= second - first <= 1 + int(elapsed / 0.8)
    assert state["bad"]["cooldowns_in_a_row"] >= 2  # the failed probe grew the cooldown (read, not timed)


def test_every_deployment_cooling_is_a_429_with_retry_after(creds):
    throttled = Fault(status=429, retry_after="20", times=None)
    with serve([deployment("m", "a", creds, throttled), deployment("m", "b", creds, throttled, model=GROK)]) as server:
        assert chat(server).status_code == 429  # both tried, both said wait
        reply = chat(server)
    assert reply.status_code == 429 and reply.json()["error"]["code"] == "deployments_cooling"
    assert 15 <= int(reply.headers["retry-after"]) <= 20


def test_a_callers_400_never_cools_a_deployment(creds):
    with serve([deployment("m", "only", creds)], allowed_fails=0) as server:
        for _ in range(5):
            assert chat(server, temperature=9).status_code == 400
        assert chat(server).status_code == 200


def test_fallbacks_route_to_another_model_and_never_loop(creds, oci_simulator):
    broken = Fault(status=500, times=None)
    models = [deployment("a", "a1", creds, broken), deployment("b", "b1", creds, broken, model=GROK), deployment("c", "c1", creds)]
    with serve(models, fallbacks=[{"a": ["b", "c"]}, {"b": ["a"]}]) as server:
        reply = chat(server, "a")
        assert reply.status_code == 200 and reply.headers["x-litellm-model-id"] == "c1"
        assert reply.headers["x-litellm-attempted-fallbacks"] == "2" and reply.headers["x-litellm-model-group"] == "a"
    with serve(models[:2], fallbacks=[{"a": ["b"]}, {"b": ["a"]}]) as server:
        oci_simulator.reset()
        assert chat(server, "a").status_code == 502  # a, then b, then nothing: a was tried already
        assert len([r for r in oci_simulator.requests if r.path.endswith("/chat")]) == 2


def test_context_window_and_request_fallbacks(creds):
    too_long = Fault(status=400, message="prompt is too long for this model's context length", times=None)
    models = [deployment("small", "s1", creds, too_long), deployment("big", "b1", creds, model=GROK), deployment("other", "o1", creds)]
    with serve(models, context_window_fallbacks=[{"small": ["big"]}]) as server:
        assert chat(server, "small").headers["x-litellm-model-id"] == "b1"
        assert chat(server, "small", fallbacks=["other"]).status_code == 400  # a request's own list is for failures, not this
    with serve(models) as server:
        assert chat(server, "small").status_code == 400  # no context-window list: the caller's error stands
    broken = Fault(status=503, times=None)
    with serve([deployment("x", "x1", creds, broken), *models[1:]]) as server:
        assert chat(server, "x", fallbacks=["other"]).headers["x-litellm-model-id"] == "o1"
        assert chat(server, "x", fallbacks=["nope"]).status_code == 400


def test_least_busy_spares_the_deployment_with_calls_in_flight(creds):
    slow = Fault(delay=0.4, times=None)
    with serve([deployment("m", "slow", creds, slow), deployment("m", "fast", creds, model=GROK)], routing_strategy="least-busy") as server:

        async def workers() -> collections.Counter:
            got: collections.Counter = collections.Counter()
            async with httpx.AsyncClient(timeout=30) as client:

                async def worker() -> None:
                    for _ in range(10):
                        reply = await client.post(f"{server.base_url}/v1/chat/completions", headers=HEADERS,
                                                  json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})  # fmt: skip
                        got[reply.headers["x-litellm-model-id"]] += 1

                await asyncio.gather(*(worker() for _ in range(4)))
            return got

        got = asyncio.run(workers())
    assert got["fast"] >= 0.7 * 40  # a call goes to the slow one only when it is no busier than the fast one


def test_latency_based_routing_prefers_the_faster_deployment(creds):
    slower = Fault(delay=0.15, times=None)
    with serve([deployment("m", "slow", creds, slower), deployment("m", "fast", creds, model=GROK)],
               routing_strategy="latency-based-routing") as server:  # fmt: skip
        served(server, 6)  # both measured
        got = served(server, 40)
    assert got["fast"] >= 36


def test_cost_and_usage_based_routing(creds):
    cheap = {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}
    dear = {"input_cost_per_token": 0.00001, "output_cost_per_token": 0.00002}
    with serve([deployment("m", "dear", creds, **dear), deployment("m", "cheap", creds, model=GROK, **cheap)],
               routing_strategy="cost-based-routing") as server:  # fmt: skip
        assert served(server, 20) == {"cheap": 20}
    with serve([deployment("m", "wide", creds, rpm=30), deployment("m", "narrow", creds, model=GROK, rpm=10)],
               routing_strategy="usage-based-routing-v2") as server:  # fmt: skip
        got = served(server, 24)
    assert 15 <= got["wide"] <= 21  # each kept near the same share of its rpm: 3:1


def test_num_retries_retries_the_last_deployment(creds):
    twice = Fault(status=500, times=2)
    with serve([deployment("m", "only", creds, twice)], num_retries=2) as server:
        reply = chat(server)
    assert reply.status_code == 200 and reply.headers["x-litellm-attempted-retries"] == "2"
    with serve([deployment("m", "only", creds, twice)], num_retries=0) as server:
        assert chat(server).status_code == 502


def test_health_deployments_lists_each_deployments_state(creds):
    with serve([deployment("m", "only", creds)]) as server:
        chat(server)
        listed = httpx.get(f"{server.base_url}/health/deployments", headers=HEADERS).json()
        refused = httpx.get(f"{server.base_url}/health/deployments", headers={"authorization": "Bearer wrong-key-1"})
    assert listed["strategy"] == "simple-shuffle" and listed["deployments"][0]["model_id"] == "only"
    assert listed["deployments"][0]["recent_latency_ms"] > 0 and refused.status_code == 401


@pytest.mark.parametrize(("settings", "place"), [
    ({"enable_tag_filtering": "yes"}, "router_settings.enable_tag_filtering"),
    ({"tag_routing_prefix": "t:"}, "router_settings.tag_routing_prefix"),
    ({"retry_policy": {"RateLimitErrorRetrys": 3}}, "router_settings.retry_policy.RateLimitErrorRetrys"),
    ({"allowed_fails_policy": {"RateLimitErrorAllowedFails": -1}}, "router_settings.allowed_fails_policy.RateLimitErrorAllowedFails"),
    ({"routing_strategy": "fastest"}, "router_settings.routing_strategy"),
    ({"fallbacks": [{"m": ["ghost"]}]}, "router_settings.fallbacks[0].m"),
    ({"redis_host": "cache.internal"}, "router_settings.redis_host"),
    ({"enable_pre_call_checks": False}, "router_settings.enable_pre_call_checks"),
    ({"colour": "blue"}, "router_settings.colour"),
])  # fmt: skip
def test_every_router_setting_is_acted_on_or_refused_naming_its_place(creds, settings, place):
    with pytest.raises(GatewayConfigError) as refused:
        parse_config({"model_list": [deployment("m", "only", creds)], "router_settings": settings})
    assert place in str(refused.value)


def test_deployment_routing_keys_that_are_not_acted_on_are_refused(creds):
    with pytest.raises(GatewayConfigError, match=r"litellm_params\.region_name"):
        parse_config({"model_list": [deployment("m", "only", creds, region_name="eu")]})


def test_cooldowns_and_fallbacks_are_counted_in_the_metrics(creds):
    broken = Fault(status=500, times=None)
    models = [deployment("a", "a1", creds, broken), deployment("b", "b1", creds, model=GROK)]
    with serve(models, fallbacks=[{"a": ["b"]}], allowed_fails=0, cooldown_time=30) as server:
        assert chat(server, "a").status_code == 200
        metrics = httpx.get(f"{server.base_url}/metrics", headers=HEADERS).text
    assert 'ocilm_deployment_cooldowns_total{deployment="oci/meta.llama-3.3-70b-instruct",model="a"} 1.0' in metrics
    assert 'ocilm_model_fallbacks_total{fallback="b",model="a"} 1.0' in metrics


def _run_load(server, count: int, workers: int = 4) -> tuple[int, list[float]]:
    async def go() -> tuple[int, list[float]]:
        ok, latencies = 0, []
        async with httpx.AsyncClient(timeout=30) as client:
            todo = list(range(count))

            async def worker() -> None:
                nonlocal ok
                while todo:
                    todo.pop()
                    started = time.perf_counter()
                    reply = await client.post(f"{server.base_url}/v1/chat/completions", headers=HEADERS,
                                              json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})  # fmt: skip
                    latencies.append(time.perf_counter() - started)
                    ok += reply.status_code == 200

            await asyncio.gather(*(worker() for _ in range(workers)))
        return ok, sorted(latencies)

    return asyncio.run(go())


def test_chaos_one_region_throttling_at_random(creds):
    """Two regions, one answering 429 (no Retry-After) to half its calls throughout: at least 99.9%
    of calls succeed, and p99 stays within 50 ms of the healthy case (a CI-sized run; the minute-long
    one is in bench/router.py)."""
    chicago = lambda fault: deployment("m", "chicago", creds, fault, model=GROK)  # noqa: E731
    with serve([chicago(None), deployment("m", "ashburn", creds)], cooldown_time=1) as server:
        _, healthy = _run_load(server, 300)
    with serve([chicago(Fault(status=429, times=None, probability=0.5)), deployment("m", "ashburn", creds)], cooldown_time=1) as server:
        ok, chaos = _run_load(server, 1000)
    assert ok >= 999
    p99 = lambda values: values[int(len(values) * 0.99) - 1]  # noqa: E731
    assert p99(chaos) <= p99(healthy) + 0.050, (p99(chaos), p99(healthy))


TAGGED = [("paid", ("paid",)), ("free", ("free",)), ("fallback", ("default",)), ("plain", ())]


@pytest.mark.parametrize("strategy", ["simple-shuffle", "least-busy", "latency-based-routing", "usage-based-routing-v2", "cost-based-routing"])
def test_tags_route_the_same_with_every_strategy(creds, strategy):
    price = {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}
    models = [deployment("m", ident, creds, tags=list(tags), rpm=100, **price) if tags else deployment("m", ident, creds, rpm=100, **price)
              for ident, tags in TAGGED]  # fmt: skip
    with serve(models, routing_strategy=strategy, enable_tag_filtering=True) as server:
        paid = {chat(server, metadata={"tags": ["paid"]}).headers["x-litellm-model-id"] for _ in range(8)}
        by_header = {httpx.post(f"{server.base_url}/v1/chat/completions", headers={**HEADERS, "x-litellm-tags": "free"}, timeout=30,
                                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}).headers["x-litellm-model-id"]
                     for _ in range(8)}  # fmt: skip
        unknown = {chat(server, metadata={"tags": ["gold"]}).headers["x-litellm-model-id"] for _ in range(8)}
        untagged = {chat(server).headers["x-litellm-model-id"] for _ in range(16)}
    assert paid == {"paid"} and by_header == {"free"}
    assert unknown == {"fallback"}  # no deployment has the tag: the default-tagged ones serve
    assert untagged <= {"plain", "fallback"} and "paid" not in untagged  # untagged requests never reach another tag's deployments


def test_a_tag_no_deployment_serves_is_a_400_without_a_default(creds):
    with serve([deployment("m", "paid", creds, tags=["paid"])], enable_tag_filtering=True) as server:
        reply = chat(server, metadata={"tags": ["gold"]})
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "no_deployment_for_tags"


def test_tagged_deployments_cooling_never_spill_onto_other_tags(creds):
    throttled = Fault(status=429, retry_after="30", times=None)
    with serve([deployment("m", "paid", creds, throttled, tags=["paid"]), deployment("m", "free", creds, tags=["free"])],
               enable_tag_filtering=True) as server:  # fmt: skip
        assert chat(server, metadata={"tags": ["paid"]}).status_code == 429
        again = chat(server, metadata={"tags": ["paid"]})
    assert again.status_code == 429 and again.json()["error"]["code"] == "deployments_cooling"


def test_a_stream_falls_over_before_its_first_chunk_not_after(creds, oci_simulator):
    broken = Fault(status=503, times=None)
    with serve([deployment("m", "bad", creds, broken, order=1), deployment("m", "good", creds, order=2)]) as server:
        with httpx.stream("POST", f"{server.base_url}/v1/chat/completions", headers=HEADERS, timeout=30,
                          json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}) as reply:  # fmt: skip
            body = reply.read().decode()
        assert reply.headers["x-litellm-model-id"] == "good" and body.rstrip().endswith("[DONE]")
    cut = Fault(cut_after=2, times=None)
    with serve([deployment("m", "cut", creds, cut, order=1), deployment("m", "good", creds, order=2)]) as server:
        oci_simulator.reset()
        with httpx.stream("POST", f"{server.base_url}/v1/chat/completions", headers=HEADERS, timeout=30,
                          json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}) as reply:  # fmt: skip
            body = reply.read().decode()
        assert reply.headers["x-litellm-model-id"] == "cut" and '"error"' in body  # the client already had chunks: no second answer
        assert len([r for r in oci_simulator.requests if r.path.endswith("/chat")]) == 1


def test_retry_policy_counts_retries_by_error_class(creds):
    twice = Fault(status=500, times=2)
    with serve([deployment("m", "only", creds, twice)], num_retries=0, retry_policy={"InternalServerErrorRetries": 2}) as server:
        assert chat(server).status_code == 200
    refused_once = Fault(status=400, message="try again", times=1)
    with serve([deployment("m", "only", creds, refused_once)], retry_policy={"BadRequestErrorRetries": 1}) as server:
        assert chat(server).status_code == 200  # a 400 is retried only because the policy says so
    with serve([deployment("m", "only", creds, Fault(status=400, message="try again", times=1))]) as server:
        assert chat(server).status_code == 400
    with serve([deployment("m", "only", creds, Fault(status=500, times=2))], num_retries=0,
               model_group_retry_policy={"m": {"InternalServerErrorRetries": 2}}) as server:  # fmt: skip
        assert chat(server).status_code == 200


def test_allowed_fails_policy_cools_by_error_class(creds, oci_simulator):
    oci_simulator.reset()
    throttled = Fault(status=429, times=None)
    with serve([deployment("m", "t", creds, throttled, model=GROK), deployment("m", "ok", creds)],
               allowed_fails=10, allowed_fails_policy={"RateLimitErrorAllowedFails": 0}, cooldown_time=30) as server:  # fmt: skip
        served(server, 20)
    assert len([r for r in oci_simulator.requests if r.json and r.json["servingMode"]["modelId"] == "xai.grok-3"]) == 1


def test_a_requests_own_retries_and_disable_fallbacks(creds):
    with serve([deployment("m", "only", creds, Fault(status=500, times=2))], num_retries=0) as server:
        assert chat(server, num_retries=2).status_code == 200
    broken = Fault(status=500, times=None)
    with serve([deployment("a", "a1", creds, broken), deployment("b", "b1", creds)], fallbacks=[{"a": ["b"]}]) as server:
        assert chat(server, "a", disable_fallbacks=True).status_code == 502
        assert chat(server, "a", num_retries=99).status_code == 400


def test_background_health_checks_cool_a_failing_deployment_before_a_caller_meets_it(creds):
    config = {"model_list": [deployment("m", "bad", creds, Fault(status=500, times=None)), deployment("m", "good", creds, model=GROK)],
              "router_settings": {"allowed_fails": 0, "cooldown_time": 30},
              "general_settings": {"master_key": MASTER, "background_health_checks": True, "health_check_interval": 0.2}}  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as server:
        deadline = time.monotonic() + 10
        while True:
            state = {d["model_id"]: d for d in httpx.get(f"{server.base_url}/health/deployments", headers=HEADERS).json()["deployments"]}
            if state["bad"]["cooling_down"]:
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.1)
        assert not state["good"]["cooling_down"]
        assert served(server, 10) == {"good": 10}


class _Hung:
    """A host that accepts connections and never answers (a dead target behind a load balancer)."""

    def __init__(self) -> None:
        import socket

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(64)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def close(self) -> None:
        self.socket.close()


def test_a_hung_deployment_cools_and_requests_fail_over_within_their_deadline(creds):
    """H6: the gateway's own deadline counts as the deployment's failure, and each attempt but the
    last gets a share of it, so the request itself still fails over to a healthy deployment."""
    hung = _Hung()
    try:
        model_list = [deployment("m", "hung", {**creds, "api_base": hung.url}, order=1, timeout=2),
                      deployment("m", "healthy", creds, order=2, timeout=2)]  # fmt: skip
        with serve(model_list, allowed_fails=1, cooldown_time=60) as server:
            first = [chat(server) for _ in range(2)]
            assert all(r.status_code == 200 and r.headers["x-litellm-model-id"] == "healthy" for r in first), [r.text for r in first]
            state = {d["model_id"]: d for d in httpx.get(f"{server.base_url}/health/deployments", headers=HEADERS).json()["deployments"]}
            assert state["hung"]["cooling_down"] and state["hung"]["last_error"] == "TimeoutError"
            started = time.monotonic()
            assert served(server, 5) == {"healthy": 5}
            assert time.monotonic() - started < 5  # the cooled one is no longer tried
    finally:
        hung.close()


def test_a_caller_leaving_is_not_the_deployments_failure(creds):
    hung = _Hung()
    try:
        with serve([deployment("m", "hung", {**creds, "api_base": hung.url}, timeout=30)], allowed_fails=0, cooldown_time=60) as server:
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(f"{server.base_url}/v1/chat/completions", headers=HEADERS, timeout=0.5,
                           json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
            deadline = time.monotonic() + 10
            while True:  # the gateway notices the caller left, then ends the attempt
                state = httpx.get(f"{server.base_url}/health/deployments", headers=HEADERS).json()["deployments"][0]
                if state["in_flight"] == 0:
                    break
                assert time.monotonic() < deadline, state
                time.sleep(0.05)
            assert not state["cooling_down"] and state["failures_this_minute"] == 0
    finally:
        hung.close()


@pytest.mark.parametrize("value", ["false", "true", 0, 1])
def test_disable_cooldowns_takes_a_boolean_only(creds, value):
    with pytest.raises(GatewayConfigError, match="router_settings.disable_cooldowns: expected true or false"):
        parse_config({"model_list": [deployment("m", "a", creds)], "router_settings": {"disable_cooldowns": value}})


def test_health_checks_probe_each_deployment_with_its_own_kind_of_call(creds, oci_simulator):
    """L2: an embedding, a rerank and a chat deployment each answer their own probe (no 400s)."""
    config = {"model_list": [{"model_name": "e", "litellm_params": {"model": "oci/cohere.embed-english-v3.0", **creds}, "model_info": {"id": "e1"}},
                             {"model_name": "r", "litellm_params": {"model": "oci/cohere.rerank-v3.5", **creds}, "model_info": {"id": "r1"}},
                             deployment("m", "c1", creds)],
              "general_settings": {"master_key": MASTER, "background_health_checks": True, "health_check_interval": 0.2}}  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))):
        deadline = time.monotonic() + 10
        while True:
            actions = collections.Counter(r.path.rsplit("/", 1)[-1] for r in oci_simulator.requests)
            if all(actions[a] >= 2 for a in ("embedText", "rerankText", "chat")):
                break
            assert time.monotonic() < deadline, actions
            time.sleep(0.1)
    assert all(r.status == 200 for r in oci_simulator.requests), [(r.path, r.status) for r in oci_simulator.requests if r.status != 200]
