"""The response cache through ``ocilm serve``'s app against the simulator: what hits (a reply
replayed as a stream and a stream as a reply), what never does (another tenant, a key without the
model, a stream cut short), the request's own say (no-cache, no-store, ttl, s-maxage, use-cache),
spend (a hit is logged at no cost), both doors and the SDKs in strict mode, Redis shared by two
replicas and Redis gone (requests still served)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from ocilm.gateway import GatewayConfigError, create_app, parse_config
from ocilm.testing import BackgroundServer, Fault

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
MASTER = "sk-master-cache-1"
ADMIN = {"authorization": f"Bearer {MASTER}"}


def _config(creds: dict, cache_params: dict | None = None, *, cache: bool = True, extra: dict | None = None, **general) -> dict:
    litellm_settings: dict = {"cache": cache}
    if cache_params is not None:
        litellm_settings["cache_params"] = cache_params
    return {
        "model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds, **(extra or {})}},
                       {"model_name": "embed", "litellm_params": {"model": "oci/cohere.embed-english-v3.0", **creds}},
                       {"model_name": "rerank", "litellm_params": {"model": "oci/cohere.rerank-v3.5", **creds}}],
        "router_settings": {"model_group_alias": {"claude-*": "llama", "gpt-5*": "llama"}},
        "litellm_settings": litellm_settings,
        "general_settings": {"master_key": MASTER, **general},
    }  # fmt: skip


def _calls(sim, action: str = "chat") -> int:
    return sum(1 for r in sim.requests if r.path.endswith(f"/actions/{action}"))


def _chat(text: str, **extra) -> dict:
    return {"model": "llama", "messages": [{"role": "user", "content": text}], "max_tokens": 40, **extra}


@pytest.fixture
def gateway(creds):
    with BackgroundServer(create_app(parse_config(_config(creds)))) as server:
        yield server


def _oa(server, key: str = MASTER):
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0, _strict_response_validation=True)


def test_a_reply_hits_and_replays_as_a_stream(gateway, oci_simulator):
    with _oa(gateway) as oa:
        first = oa.chat.completions.with_raw_response.create(**_chat("tell me about caches"))
        second = oa.chat.completions.with_raw_response.create(**_chat("tell me about caches"))
        chunks = list(oa.chat.completions.create(**_chat("tell me about caches"), stream=True, stream_options={"include_usage": True}))
        other = oa.chat.completions.with_raw_response.create(**_chat("tell me about caches", temperature=0.3))
    assert _calls(oci_simulator) == 2  # the first request and the one with another temperature
    assert first.headers["x-ocilm-cache"] == "miss" and second.headers["x-ocilm-cache"] == "hit" and other.headers["x-ocilm-cache"] == "miss"
    assert first.headers["x-litellm-cache-key"] == second.headers["x-litellm-cache-key"] != other.headers["x-litellm-cache-key"]
    reply, again = first.parse(), second.parse()
    assert again.choices[0].message.content == reply.choices[0].message.content and again.model == "llama"
    assert again.usage.total_tokens == reply.usage.total_tokens  # what the answer took, as the caller first saw it
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == reply.choices[0].message.content
    assert chunks[-1].usage is not None and not chunks[-1].choices
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == reply.choices[0].finish_reason


def test_a_stream_is_kept_and_replayed_as_a_reply(gateway, oci_simulator):
    with _oa(gateway) as oa:
        streamed = list(oa.chat.completions.create(**_chat("stream then reply"), stream=True))
        reply = oa.chat.completions.create(**_chat("stream then reply"))
        replayed = list(oa.chat.completions.create(**_chat("stream then reply"), stream=True, stream_options={"include_usage": True}))
    assert _calls(oci_simulator) == 1
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text and reply.choices[0].message.content == text
    assert all(c.usage is None for c in streamed)  # this caller did not ask for usage ...
    assert reply.usage.total_tokens > 0 and replayed[-1].usage.total_tokens == reply.usage.total_tokens  # ... a later one gets it


def test_a_stream_cut_short_is_never_kept(creds, oci_simulator):
    cut = {"extra_headers": {"x-ocilm-sim-fault": Fault(cut_after=2, times=None).header()}, "max_retries": 0}
    with BackgroundServer(create_app(parse_config(_config(creds, extra=cut)))) as server, httpx.Client(base_url=server.base_url,
                                                                                                        headers=ADMIN, timeout=30) as http:  # fmt: skip
        for _ in range(2):
            body = http.post("/v1/chat/completions", json=_chat("a stream that breaks", stream=True)).text
            assert '"error"' in body and "[DONE]" not in body
    assert _calls(oci_simulator) == 2


def test_the_request_has_its_say(gateway, oci_simulator):
    with httpx.Client(base_url=gateway.base_url, headers=ADMIN, timeout=30) as http:
        def ask(text: str, headers: dict | None = None, **extra) -> httpx.Response:
            return http.post("/v1/chat/completions", json=_chat(text, **extra), headers=headers)

        assert ask("say it").headers["x-ocilm-cache"] == "miss"
        assert ask("say it", cache={"no-cache": True}).headers["x-ocilm-cache"] == "miss"  # read skipped; written again
        assert ask("say it", headers={"cache-control": "no-cache"}).headers["x-ocilm-cache"] == "miss"
        assert ask("say it").headers["x-ocilm-cache"] == "hit"
        assert _calls(oci_simulator) == 3
        ask("not kept", cache={"no-store": True})
        assert ask("not kept").headers["x-ocilm-cache"] == "miss"
        ask("brief", cache={"ttl": 0.2})
        assert ask("brief").headers["x-ocilm-cache"] == "hit"
        time.sleep(0.3)
        assert ask("brief").headers["x-ocilm-cache"] == "miss"  # expired; stored again with the default ttl
        time.sleep(0.1)
        assert ask("brief", cache={"s-maxage": 0.05}).headers["x-ocilm-cache"] == "miss"  # older than this caller accepts
        assert ask("brief", headers={"cache-control": "s-maxage=60"}).headers["x-ocilm-cache"] == "hit"
        bad = [ask("x", cache="no-cache"), ask("x", cache={"ttl": -1}), ask("x", cache={"stale": True}), ask("x", cache={"no-cache": "yes"}),
               ask("x", headers={"cache-control": "s-maxage=soon"})]  # fmt: skip
    for response in bad:
        assert response.status_code == 400 and response.json()["error"]["param"] == "cache", response.text


def test_a_cache_off_gateway_refuses_a_cache_setting(creds):
    with BackgroundServer(create_app(parse_config(_config(creds, cache=False)))) as server:
        refused = httpx.post(f"{server.base_url}/v1/chat/completions", headers=ADMIN, json=_chat("x", cache={"no-cache": True}), timeout=30)
        plain = httpx.post(f"{server.base_url}/v1/chat/completions", headers=ADMIN, json=_chat("x"), timeout=30)
    assert refused.status_code == 400 and "litellm_settings.cache" in refused.json()["error"]["message"]
    assert plain.status_code == 200 and "x-ocilm-cache" not in plain.headers


def test_default_off_caches_only_what_asks(creds, oci_simulator):
    with BackgroundServer(create_app(parse_config(_config(creds, {"mode": "default_off"})))) as server, httpx.Client(
            base_url=server.base_url, headers=ADMIN, timeout=30) as http:  # fmt: skip
        http.post("/v1/chat/completions", json=_chat("plain"))
        plain = http.post("/v1/chat/completions", json=_chat("plain"))
        http.post("/v1/chat/completions", json=_chat("opted", cache={"use-cache": True}))
        opted = http.post("/v1/chat/completions", json=_chat("opted", cache={"use-cache": True}))
    assert "x-ocilm-cache" not in plain.headers and opted.headers["x-ocilm-cache"] == "hit"
    assert _calls(oci_simulator) == 3


def test_tenants_never_share_and_a_hit_costs_nothing(creds, tmp_path, oci_simulator):
    config = _config(creds, database_url=f"sqlite:///{tmp_path / 'g.db'}")
    with BackgroundServer(create_app(parse_config(config))) as server, httpx.Client(base_url=server.base_url, timeout=30) as http:
        for team in ("red", "blue"):
            assert http.post("/team/new", headers=ADMIN, json={"team_id": team}).status_code == 200
        made = {name: http.post("/key/generate", headers=ADMIN, json=body).json() for name, body in
                {"red1": {"team_id": "red"}, "red2": {"team_id": "red"}, "blue": {"team_id": "blue"}, "lone": {},
                 "embed_only": {"team_id": "red", "models": ["embed"]}}.items()}  # fmt: skip

        def ask(who: str) -> httpx.Response:
            return http.post("/v1/chat/completions", json=_chat("a team secret"), headers={"authorization": f"Bearer {made[who]['key']}"})

        results = {who: ask(who) for who in ("red1", "red2", "blue", "lone", "embed_only")}
        logs = http.get("/spend/logs", headers=ADMIN, params={"api_key": made["red2"]["token"]}).json()
    assert [results[w].headers.get("x-ocilm-cache") for w in ("red1", "red2", "blue", "lone")] == ["miss", "hit", "miss", "miss"]
    assert results["embed_only"].status_code in (401, 403) and "a team secret" not in results["embed_only"].text
    assert _calls(oci_simulator) == 3
    assert results["red2"].json()["choices"][0]["message"]["content"] == results["red1"].json()["choices"][0]["message"]["content"]
    assert len(logs) == 1 and logs[0]["model_id"] == "ocilm-cache" and logs[0]["spend"] == 0 and logs[0]["total_tokens"] == 0
    assert logs[0]["model"] == "llama" and logs[0]["status"] == 200


def test_embeddings_and_rerank_are_cached(gateway, oci_simulator):
    with _oa(gateway) as oa:
        vectors = [oa.embeddings.create(model="embed", input=["alpha", "beta"], encoding_format="float") for _ in range(2)]
    assert _calls(oci_simulator, "embedText") == 1 and vectors[0].data[1].embedding == vectors[1].data[1].embedding
    body = {"model": "rerank", "query": "which is red", "documents": ["an apple", "the sky"], "top_n": 1}
    replies = [httpx.post(f"{gateway.base_url}/v1/rerank", headers=ADMIN, json=body, timeout=30) for _ in range(2)]
    assert _calls(oci_simulator, "rerankText") == 1 and replies[1].headers["x-ocilm-cache"] == "hit"
    assert replies[0].json()["results"] == replies[1].json()["results"]


def test_both_doors_hit(gateway, oci_simulator):
    with anthropic.Anthropic(base_url=gateway.base_url, api_key=MASTER, max_retries=0, _strict_response_validation=True) as an:
        asked = {"model": "claude-x", "max_tokens": 40, "messages": [{"role": "user", "content": "cache this door"}]}
        first = an.messages.create(**asked)
        second = an.messages.create(**asked)
        with an.messages.stream(**asked) as stream:
            streamed = stream.get_final_message()
    assert _calls(oci_simulator) == 1
    assert second.content[0].text == first.content[0].text == streamed.content[0].text and streamed.usage.output_tokens > 0
    with _oa(gateway) as oa:
        replies = [oa.responses.create(model="gpt-5", input="cache the responses door", store=False) for _ in range(2)]
    assert _calls(oci_simulator) == 2 and replies[0].output_text == replies[1].output_text


def test_redis_is_shared_by_replicas_and_its_loss_costs_no_request(creds, redis_url, oci_simulator):
    namespace = f"t{time.time_ns()}"
    shared = _config(creds, {"type": "redis", "url": redis_url, "namespace": namespace})
    with BackgroundServer(create_app(parse_config(shared))) as one, BackgroundServer(create_app(parse_config(shared))) as two:
        first = httpx.post(f"{one.base_url}/v1/chat/completions", headers=ADMIN, json=_chat("across replicas"), timeout=30)
        second = httpx.post(f"{two.base_url}/v1/chat/completions", headers=ADMIN, json=_chat("across replicas"), timeout=30)
    assert first.headers["x-ocilm-cache"] == "miss" and second.headers["x-ocilm-cache"] == "hit" and _calls(oci_simulator) == 1
    gone = _config(creds, {"type": "redis", "url": "redis://127.0.0.1:1/0"})
    with BackgroundServer(create_app(parse_config(gone))) as server:
        started = time.perf_counter()
        replies = [httpx.post(f"{server.base_url}/v1/chat/completions", headers=ADMIN, json=_chat("no redis"), timeout=30) for _ in range(2)]
        elapsed = time.perf_counter() - started
    assert [r.status_code for r in replies] == [200, 200] and [r.headers["x-ocilm-cache"] for r in replies] == ["miss", "miss"]
    assert elapsed < 5 and _calls(oci_simulator) == 3


@pytest.mark.parametrize(("params", "needle"), [
    ({"type": "disk"}, "cache_params.type"),
    ({"tll": 60}, "cache_params.tll"),
    ({"ttl": -5}, "cache_params.ttl"),
    ({"mode": "sometimes"}, "cache_params.mode"),
    ({"scope": "everyone"}, "cache_params.scope"),
    ({"supported_call_types": ["image_generation"]}, "supported_call_types"),
    ({"max_entries": 0}, "max_entries"),
    ({"type": "redis", "password": "hunter2-secret"}, "cache_params.type"),
    ({"ttl": 0}, "cache_params.ttl"),
    ({"type": "local", "url": "redis://127.0.0.1:6379/0"}, "cache_params.url: applies to type: redis only"),
    ({"namespace": "team-a"}, "cache_params.namespace: applies to type: redis only"),
    ({"type": "redis", "url": "redis://127.0.0.1:6379/0", "max_entries": 5}, "cache_params.max_entries: applies to type: local only"),
    ({"type": "redis", "url": "http://127.0.0.1:6379"}, "cache_params.url: expected redis://"),
    ({"type": "redis", "url": "redis://h:6379/0", "password": "hunter2-secret"}, "not both"),
    ({"type": "redis", "host": "h", "port": "six", "password": "hunter2-secret"}, "cache_params.port"),
])  # fmt: skip
def test_a_bad_cache_setting_is_named_and_never_echoed(creds, params, needle):
    with pytest.raises(GatewayConfigError) as refused:
        parse_config(_config(creds, params))
    assert needle in str(refused.value) and "hunter2-secret" not in str(refused.value)


def test_a_redis_password_reaches_the_url_quoted(creds):
    settings = parse_config(_config(creds, {"type": "redis", "host": "cache.internal", "port": 6380, "password": "p@ss/w:rd"})).cache
    assert settings.url == "redis://:p%40ss%2Fw%3Ard@cache.internal:6380/0" and "p@ss" not in repr(settings)
    assert parse_config(_config(creds, {"ttl": 604800})).cache.ttl == 604800  # a week, as LiteLLM configs say


def test_cache_params_without_cache_is_refused(creds):
    with pytest.raises(GatewayConfigError, match="cache: true"):
        parse_config(_config(creds, {"ttl": 60}, cache=False))


def test_an_entry_holds_no_caller_key(creds, redis_url):
    namespace = f"k{time.time_ns()}"
    config = _config(creds, {"type": "redis", "url": redis_url, "namespace": namespace})
    with BackgroundServer(create_app(parse_config(config))) as server:
        assert httpx.post(f"{server.base_url}/v1/chat/completions", headers=ADMIN, json=_chat("keyless"), timeout=30).status_code == 200
    import redis

    client = redis.Redis.from_url(redis_url)
    names = client.keys(f"{namespace}:cache:*")
    assert len(names) == 1 and MASTER.encode() not in client.get(names[0])
    assert json.loads(client.get(names[0])[17:])["reply"]["choices"]


def test_embeddings_are_cached_per_input(gateway, oci_simulator):
    with _oa(gateway) as oa:
        first = oa.embeddings.with_raw_response.create(model="embed", input=["one", "two", "three"], encoding_format="float")
        mixed = oa.embeddings.with_raw_response.create(model="embed", input=["three", "four", "one", "five"], encoding_format="float")
        single = oa.embeddings.with_raw_response.create(model="embed", input="two", encoding_format="float")
    sent = [r.json["inputs"] for r in oci_simulator.requests if r.path.endswith("/actions/embedText")]
    assert sent == [["one", "two", "three"], ["four", "five"]]  # only what the cache did not hold went upstream
    assert [r.headers["x-ocilm-cache"] for r in (first, mixed, single)] == ["miss", "partial", "hit"]
    vectors = {text: item.embedding for text, item in zip(["one", "two", "three"], first.parse().data, strict=True)}
    again = mixed.parse()
    assert [d.index for d in again.data] == [0, 1, 2, 3]
    assert again.data[0].embedding == vectors["three"] and again.data[2].embedding == vectors["one"]
    assert again.data[1].embedding != again.data[3].embedding and single.parse().data[0].embedding == vectors["two"]
    assert again.usage.prompt_tokens >= 1


def test_the_door_bodies_carry_cache_controls(gateway, oci_simulator):
    asked = {"model": "claude-x", "max_tokens": 40, "messages": [{"role": "user", "content": "door controls"}]}
    with httpx.Client(base_url=gateway.base_url, headers={"x-api-key": MASTER, "anthropic-version": "2023-06-01"}, timeout=30) as http:
        http.post("/v1/messages", json=asked)
        skipped = http.post("/v1/messages", json={**asked, "cache": {"no-cache": True}})
        hit = http.post("/v1/messages", json=asked)
        bad = http.post("/v1/messages", json={**asked, "cache": {"ttl": "long"}})
    assert skipped.headers["x-ocilm-cache"] == "miss" and hit.headers["x-ocilm-cache"] == "hit" and _calls(oci_simulator) == 2
    assert bad.status_code == 400 and bad.json()["type"] == "error" and "cache.ttl" in bad.json()["error"]["message"]
    with _oa(gateway) as oa:
        oa.responses.create(model="gpt-5", input="responses controls", store=False)
        again = oa.responses.with_raw_response.create(model="gpt-5", input="responses controls", store=False, extra_body={"cache": {"no-cache": True}})
    assert again.headers["x-ocilm-cache"] == "miss" and _calls(oci_simulator) == 4


def test_a_reply_cut_at_max_tokens_is_never_kept(gateway, oci_simulator):
    with httpx.Client(base_url=gateway.base_url, headers=ADMIN, timeout=30) as http:
        body = _chat("please write a very long answer about the sea and the sky and the land " * 3, max_tokens=2)
        replies = [http.post("/v1/chat/completions", json=body).json() for _ in range(2)]
        streams = [http.post("/v1/chat/completions", json={**body, "stream": True}).text for _ in range(2)]
    assert [r["choices"][0]["finish_reason"] for r in replies] == ["length", "length"] and '"length"' in streams[0]
    assert _calls(oci_simulator) == 4


def test_hits_get_their_own_ids_and_the_key_ignores_json_order(gateway, oci_simulator):
    tool = {"type": "function", "function": {"name": "lookup", "description": "d", "parameters": {"type": "object", "properties": {}}}}
    reordered = {"function": {"parameters": {"properties": {}, "type": "object"}, "description": "d", "name": "lookup"}, "type": "function"}
    with httpx.Client(base_url=gateway.base_url, headers=ADMIN, timeout=30) as http:
        first = http.post("/v1/chat/completions", json=_chat("ids", tools=[tool]))
        second = http.post("/v1/chat/completions", json=_chat("ids", tools=[reordered]))
        changed = http.post("/v1/chat/completions", json=_chat("ids", tools=[tool], tool_choice="none"))
    assert second.headers["x-ocilm-cache"] == "hit" and changed.headers["x-ocilm-cache"] == "miss"
    assert first.json()["id"] != second.json()["id"] and first.json()["choices"] == second.json()["choices"]


def test_two_deployments_behind_one_alias_never_share(creds, redis_url, oci_simulator):
    namespace = f"d{time.time_ns()}"

    def config(model: str) -> dict:
        made = _config(creds, {"type": "redis", "url": redis_url, "namespace": namespace})
        made["model_list"][0]["litellm_params"]["model"] = model
        return made

    with (BackgroundServer(create_app(parse_config(config("oci/meta.llama-3.3-70b-instruct")))) as one,
          BackgroundServer(create_app(parse_config(config("oci/meta.llama-4-maverick-17b-128e-instruct-fp8")))) as two):  # fmt: skip
        replies = [httpx.post(f"{s.base_url}/v1/chat/completions", headers=ADMIN, json=_chat("same alias"), timeout=30) for s in (one, two)]
    assert [r.headers["x-ocilm-cache"] for r in replies] == ["miss", "miss"] and _calls(oci_simulator) == 2


def test_a_key_and_a_team_have_their_say(creds, tmp_path, oci_simulator):
    config = _config(creds, database_url=f"sqlite:///{tmp_path / 'g.db'}")
    with BackgroundServer(create_app(parse_config(config))) as server, httpx.Client(base_url=server.base_url, timeout=30) as http:
        assert http.post("/team/new", headers=ADMIN, json={"team_id": "quiet", "cache": {"enabled": False}}).status_code == 200
        keys = {name: http.post("/key/generate", headers=ADMIN, json=body).json()["key"] for name, body in {
            "quiet": {"team_id": "quiet"}, "loud": {"team_id": "quiet", "cache": {"enabled": True}},
            "strict": {"cache": {"deterministic_only": True}}, "limited": {"cache": {"allowed_controls": ["no-cache"], "ttl": 0.2}}}.items()}  # fmt: skip

        def ask(who: str, **extra) -> httpx.Response:
            return http.post("/v1/chat/completions", json=_chat(f"policy {who}", **extra), headers={"authorization": f"Bearer {keys[who]}"})

        quiet = [ask("quiet") for _ in range(2)]
        loud = [ask("loud") for _ in range(2)]
        sampled = [ask("strict", temperature=0.7) for _ in range(2)]
        greedy = [ask("strict", temperature=0) for _ in range(2)]
        refused = ask("limited", cache={"ttl": 5})
        allowed = ask("limited", cache={"no-cache": True})
        kept = ask("limited")
        time.sleep(0.3)
        expired = ask("limited")
        embedded = [http.post("/v1/embeddings", json={"model": "embed", "input": ["strict vectors"]},
                              headers={"authorization": f"Bearer {keys['strict']}"}) for _ in range(2)]  # fmt: skip
        bad = http.post("/key/generate", headers=ADMIN, json={"cache": {"ttl": "forever"}})
        info = http.get("/team/info", headers=ADMIN, params={"team_id": "quiet"}).json()
    assert all("x-ocilm-cache" not in r.headers for r in quiet + sampled) and [r.headers["x-ocilm-cache"] for r in loud] == ["miss", "hit"]
    assert [r.headers["x-ocilm-cache"] for r in greedy] == ["miss", "hit"]
    assert [r.headers["x-ocilm-cache"] for r in embedded] == ["miss", "hit"]  # embeddings are deterministic: deterministic_only keeps them
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "cache_control_not_allowed"
    assert allowed.headers["x-ocilm-cache"] == "miss" and kept.headers["x-ocilm-cache"] == "hit" and expired.headers["x-ocilm-cache"] == "miss"
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "cache" and "forever" not in bad.text
    assert (info.get("team_info") or info).get("cache") == {"enabled": False}


def test_metrics_and_the_access_line_show_hits(creds, oci_simulator):
    lines: list[bytes] = []

    class Sink:
        def write(self, data: bytes) -> int:
            lines.append(data)
            return len(data)

        def flush(self) -> None:
            pass

    with BackgroundServer(create_app(parse_config(_config(creds)), access_stream=Sink())) as server:
        for _ in range(3):
            httpx.post(f"{server.base_url}/v1/chat/completions", headers=ADMIN, json=_chat("metered"), timeout=30)
        metrics = httpx.get(f"{server.base_url}/metrics", headers=ADMIN, timeout=30).text
    assert 'ocilm_cache_lookups_total{model="llama",result="hit"} 2.0' in metrics
    assert 'ocilm_cache_lookups_total{model="llama",result="miss"} 1.0' in metrics
    stored = [line for line in metrics.splitlines() if line.startswith("ocilm_cache_stored_bytes_total")]
    assert stored and float(stored[0].split()[-1]) > 100
    access = [json.loads(line) for chunk in lines for line in chunk.splitlines() if b'"route"' in line]
    assert [a["cache"] for a in access if a["route"] == "chat/completions"] == ["miss", "hit", "hit"]
    assert [a["deployment"] for a in access if a["cache"] == "hit"] == ["ocilm-cache", "ocilm-cache"]


def test_redis_stalling_or_cut_mid_run_costs_no_request(creds, redis_url, oci_simulator):
    from urllib.parse import urlsplit

    from ..servers import TcpRelay

    target = urlsplit(redis_url)
    relay = TcpRelay(target.port or 6379)
    relayed = f"redis://127.0.0.1:{relay.port}{target.path or '/0'}"
    config = _config(creds, {"type": "redis", "url": relayed, "namespace": f"s{time.time_ns()}"})
    try:
        with BackgroundServer(create_app(parse_config(config))) as server, httpx.Client(base_url=server.base_url, headers=ADMIN,
                                                                                        timeout=30) as http:  # fmt: skip
            def ask() -> httpx.Response:
                return http.post("/v1/chat/completions", json=_chat("through a relay"))

            assert [ask().headers["x-ocilm-cache"] for _ in range(2)] == ["miss", "hit"]
            for trouble, mend in ((relay.freeze, relay.thaw), (relay.cut, relay.restore)):
                trouble()
                started = time.perf_counter()
                during = [ask() for _ in range(6)]
                took = time.perf_counter() - started
                assert [r.status_code for r in during] == [200] * 6 and {r.headers["x-ocilm-cache"] for r in during} == {"miss"}
                assert took < 4, took  # one timeout, then Redis is left alone for a second at a time
                metrics = http.get("/metrics").text
                assert "ocilm_cache_redis_up 0.0" in metrics
                mend()
                deadline = time.monotonic() + 10
                while ask().headers["x-ocilm-cache"] != "hit":
                    assert time.monotonic() < deadline, "the cache did not come back"
                    time.sleep(0.3)
                assert "ocilm_cache_redis_up 1.0" in http.get("/metrics").text
    finally:
        relay.close()
    assert _calls(oci_simulator) >= 1 + 12


def test_a_hit_holds_no_budget_and_a_spent_key_still_gets_it(creds, tmp_path, oci_simulator):
    config = _config(creds, database_url=f"sqlite:///{tmp_path / 'g.db'}")
    with BackgroundServer(create_app(parse_config(config))) as server, httpx.Client(base_url=server.base_url, timeout=30) as http:
        made = http.post("/key/generate", headers=ADMIN, json={"max_budget": 1.0}).json()
        caller = {"authorization": f"Bearer {made['key']}"}
        assert http.post("/v1/chat/completions", json=_chat("budgeted"), headers=caller).headers["x-ocilm-cache"] == "miss"
        spent = http.get("/key/info", headers=ADMIN, params={"key": made["token"]}).json()["info"]["spend"]
        assert spent > 0
        assert http.post("/key/update", headers=ADMIN, json={"key": made["token"], "max_budget": spent}).status_code == 200
        time.sleep(0.6)  # past the key cache
        fresh = http.post("/v1/chat/completions", json=_chat("budgeted, new"), headers=caller)
        hit = http.post("/v1/chat/completions", json=_chat("budgeted"), headers=caller)
        after = http.get("/key/info", headers=ADMIN, params={"key": made["token"]}).json()["info"]["spend"]
    assert fresh.status_code == 429 and fresh.json()["error"]["code"] == "budget_exceeded"
    assert hit.status_code == 200 and hit.headers["x-ocilm-cache"] == "hit" and hit.headers["x-litellm-response-cost"] == "0"
    assert after == spent and _calls(oci_simulator) == 1
