"""Compaction (`POST /v1/responses/compact`): a sealed, tenant-bound, billed summary that a later
request sends back; `POST /v1/responses/input_tokens`; `POST /v1/responses/{id}/cancel` for a
background response, its hold settled as its usage says."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from ocilm.gateway import create_app, parse_config
from ocilm.testing import BackgroundServer

MASTER = "sk-master-compaction-1"
ADMIN = {"authorization": f"Bearer {MASTER}"}
PRICE = {"input_cost_per_token": 0.0001, "output_cost_per_token": 0.0003}
CONVERSATION = [{"role": "user", "content": "My name is Ana and I am porting the ledger to Rust."},
                {"role": "assistant", "content": "Noted: Ana, ledger, Rust."},
                {"role": "user", "content": "We decided on sqlx for the database."}]  # fmt: skip


@pytest.fixture(scope="module")
def gateway(sim, tmp_path_factory):
    signed, key = sim.credentials(), sim.api_key_credentials()
    config = {
        "model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **signed, **PRICE}},
                       {"model_name": "gpt", "litellm_params": {"model": "oci/xai.grok-3", **key, **PRICE}}],
        "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path_factory.mktemp('cmp') / 'c.db'}"},
    }  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as server:
        yield server


def _key(gateway, **fields) -> dict:
    return httpx.post(f"{gateway.base_url}/key/generate", headers=ADMIN, json=fields, timeout=30).json()


def _post(gateway, path: str, key: str, body: dict) -> httpx.Response:
    return httpx.post(f"{gateway.base_url}{path}", headers={"authorization": f"Bearer {key}"}, json=body, timeout=30)


@pytest.mark.parametrize("model", ["llama", "gpt"], ids=["translated", "openai_v1"])
def test_a_compacted_conversation_continues_from_its_sealed_summary(gateway, sim, model):
    made = _key(gateway, max_budget=5)
    compacted = _post(gateway, "/v1/responses/compact", made["key"], {"model": model, "input": CONVERSATION})
    assert compacted.status_code == 200, compacted.text
    body = compacted.json()
    item = body["output"][-1]
    assert body["object"] == "response.compaction" and item["type"] == "compaction" and body["usage"]["input_tokens"] > 0
    assert "Ana" not in item["encrypted_content"] and "sqlx" not in json.dumps(body)  # opaque
    since = len(sim.requests)
    follow = _post(gateway, "/v1/responses", made["key"], {"model": model, "input": [item, {"role": "user", "content": "Where were we?"}]})
    assert follow.status_code == 200, follow.text
    sent = json.dumps([r.json for r in sim.requests[since:] if r.json])
    assert "summary of the earlier conversation" in sent and "encrypted_content" not in sent  # the gateway opened it
    logs = httpx.get(f"{gateway.base_url}/spend/logs", headers=ADMIN, params={"api_key": made["token"]}, timeout=30).json()
    assert any(r["call_type"] == "responses.compact" and r["spend"] > 0 for r in logs)  # billed like any call


def test_a_forged_altered_or_foreign_compaction_item_is_a_400_that_never_reaches_the_model(gateway, sim):
    teams = [httpx.post(f"{gateway.base_url}/team/new", headers=ADMIN, json={}, timeout=30).json()["team_id"] for _ in range(2)]
    mine, theirs = _key(gateway, team_id=teams[0]), _key(gateway, team_id=teams[1])
    item = _post(gateway, "/v1/responses/compact", mine["key"], {"model": "llama", "input": CONVERSATION}).json()["output"][-1]
    token = item["encrypted_content"]
    altered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    since = len(sim.requests)
    for key, content in ((mine["key"], altered), (mine["key"], "ocilm-compaction-1:forged"), (theirs["key"], token), (mine["key"], 42)):
        r = _post(gateway, "/v1/responses", key, {"model": "llama", "input": [{"type": "compaction", "encrypted_content": content}]})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_compaction", r.text
        assert r.json()["error"]["param"] == "input[0].encrypted_content" and str(content)[:20] not in r.json()["error"]["message"]
    assert not [r for r in sim.requests[since:] if r.path.endswith("/actions/chat")]


def test_compaction_names_a_missing_model(gateway):
    r = _post(gateway, "/v1/responses/compact", MASTER, {"input": CONVERSATION})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"


def test_compaction_over_a_websocket_starts_a_new_chain(gateway):
    from websockets.sync.client import connect

    item = _post(gateway, "/v1/responses/compact", MASTER, {"model": "llama", "input": CONVERSATION}).json()["output"][-1]
    with connect(gateway.base_url.replace("http://", "ws://") + "/v1/responses", additional_headers=ADMIN, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "response.create", "model": "llama", "store": False, "input": [item, {"role": "user", "content": "go on"}]}))
        while (event := json.loads(ws.recv(timeout=30)))["type"] not in ("response.completed", "error", "response.failed"):
            pass
    assert event["type"] == "response.completed"


def test_input_tokens_counts_without_calling_the_model(gateway, sim):
    since = len(sim.requests)
    small = _post(gateway, "/v1/responses/input_tokens", MASTER, {"model": "llama", "input": "hi"})
    large = _post(gateway, "/v1/responses/input_tokens", MASTER, {"model": "llama", "input": CONVERSATION, "instructions": "be brief"})
    assert small.json()["object"] == "response.input_tokens" and 0 < small.json()["input_tokens"] < large.json()["input_tokens"]
    assert not [r for r in sim.requests[since:] if r.json]
    restricted = _key(gateway, models=["gpt"])
    assert _post(gateway, "/v1/responses/input_tokens", restricted["key"], {"model": "llama", "input": "hi"}).status_code == 403


def test_cancelling_a_background_response_settles_its_hold(gateway):
    made, other = _key(gateway, max_budget=5), _key(gateway)
    queued = _post(gateway, "/v1/responses", made["key"], {"model": "gpt", "input": "a long task", "background": True, "max_output_tokens": 50})
    assert queued.json()["status"] == "queued"
    rid = queued.json()["id"]
    assert _post(gateway, f"/v1/responses/{rid}/cancel", other["key"], {}).status_code == 404  # another key's: as if it did not exist
    cancelled = _post(gateway, f"/v1/responses/{rid}/cancel", made["key"], {})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    deadline = time.monotonic() + 10
    while True:  # settled at once by the cancel (its prompt, never $0), not at the hold's expiry
        rows = [r for r in httpx.get(f"{gateway.base_url}/spend/logs", headers=ADMIN, params={"api_key": made["token"]}, timeout=30).json()
                if r["call_type"] == "responses"]  # fmt: skip
        if rows:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert rows[0]["spend"] > 0 and rows[0]["completion_tokens"] == 0
    foreground = _post(gateway, "/v1/responses", made["key"], {"model": "gpt", "input": "now", "max_output_tokens": 5}).json()
    assert _post(gateway, f"/v1/responses/{foreground['id']}/cancel", made["key"], {}).status_code == 400  # only background ones
