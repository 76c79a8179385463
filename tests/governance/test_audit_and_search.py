"""Who changed what (a hash-chained audit trail that ``ocilm audit verify`` checks, naming the row
that was changed, removed or reordered), finding any request by its call id or by key, team,
model, status and time in the database with a cursor, and the spend log's retention; on SQLite
and on PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from ocilm.gateway import create_app, parse_config
from ocilm.gateway.governance._audit import GENESIS, digest, verify
from ocilm.gateway.governance._retention import sweep
from ocilm.gateway.governance._store import Store
from ocilm.testing import BackgroundServer

from .conftest import migrate

MASTER = "sk-master-audit-search-1"
ADMIN = {"authorization": f"Bearer {MASTER}"}
PRICE = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}


def _config(creds: dict, store_url: str, **general) -> dict:
    return {"model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds, **PRICE}},
                           {"model_name": "grok", "litellm_params": {"model": "oci/xai.grok-3", **creds, **PRICE}}],
            "general_settings": {"master_key": MASTER, "database_url": store_url, **general}}  # fmt: skip


@pytest.fixture
def gateway(creds, store_url):
    if store_url.startswith("postgresql"):
        migrate(store_url)
    with BackgroundServer(create_app(parse_config(_config(creds, store_url)))) as server:
        server.store_url = store_url
        yield server


def _post(gateway, path: str, body: dict) -> dict:
    reply = httpx.post(f"{gateway.base_url}{path}", headers=ADMIN, json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _audit(gateway, **params) -> list[dict]:
    return httpx.get(f"{gateway.base_url}/audit/logs", headers=ADMIN, params=params, timeout=30).json()


def _verify_cli(store_url: str, tmp_path) -> subprocess.CompletedProcess:
    config = tmp_path / "gw.yaml"
    config.write_text(yaml.safe_dump({"model_list": [{"model_name": "m", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct",
                                                                                            "oci_region": "us-chicago-1"}}],
                                      "general_settings": {"master_key": MASTER, "database_url": store_url}}))  # fmt: skip
    return subprocess.run([sys.executable, "-m", "ocilm", "audit", "verify", "--config", str(config)], capture_output=True, text=True, timeout=60)


def _sql(store_url: str, statement: str) -> None:
    async def go() -> None:
        store = await Store.open(store_url)
        try:
            async with store.engine.begin() as conn:
                await conn.exec_driver_sql(statement)
        finally:
            await store.close()

    asyncio.run(go())


def test_every_admin_change_is_recorded_without_secrets_and_the_chain_verifies(gateway, tmp_path):
    team = _post(gateway, "/team/new", {"team_alias": "research", "max_budget": 10})
    made = _post(gateway, "/key/generate", {"team_id": team["team_id"], "max_budget": 2})
    _post(gateway, "/key/update", {"key": made["key"], "max_budget": 5})
    _post(gateway, "/key/block", {"key": made["key"]})
    _post(gateway, "/key/unblock", {"key": made["key"]})
    regenerated = _post(gateway, "/key/regenerate", {"key": made["key"]})
    _post(gateway, "/team/update", {"team_id": team["team_id"], "max_budget": 20})
    _post(gateway, "/key/delete", {"keys": [made["token"]]})
    entries = _audit(gateway)
    assert [e["action"] for e in entries] == ["team.new", "key.generate", "key.update", "key.block", "key.unblock", "key.regenerate",
                                              "team.update", "key.delete"]  # fmt: skip
    assert all(e["actor"] == "master key" and e["digest"] and e["at"] for e in entries)
    update = entries[2]
    assert update["target"] == made["token"] and update["before"]["max_budget"] == 2 and update["after"]["max_budget"] == 5
    assert entries[3]["after"]["blocked"] is True and entries[7]["after"] is None
    dumped = json.dumps(entries)
    assert made["key"] not in dumped and regenerated["key"] not in dumped and MASTER not in dumped  # no secret enters it
    assert _audit(gateway, action="key.block")[0]["seq"] == entries[3]["seq"] and len(_audit(gateway, after=str(entries[5]["seq"]))) == 2
    for hostile in ("-1", "1e9", "9" * 40, ""):
        bad = httpx.get(f"{gateway.base_url}/audit/logs", headers=ADMIN, params={"after": hostile}, timeout=30)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "after"
    done = _verify_cli(gateway.store_url, tmp_path)
    assert done.returncode == 0 and "8 entries, the chain is whole" in done.stdout, done.stderr


@pytest.mark.parametrize("tamper", ["edit", "delete", "swap"])
def test_audit_verify_names_the_row_that_was_changed_removed_or_reordered(gateway, tmp_path, tamper):
    team = _post(gateway, "/team/new", {"team_alias": "t"})
    for budget in (1, 2, 3):
        _post(gateway, "/team/update", {"team_id": team["team_id"], "max_budget": budget})
    assert _verify_cli(gateway.store_url, tmp_path).returncode == 0
    if tamper == "edit":  # someone lowers what a budget was raised to
        _sql(gateway.store_url, "UPDATE ocilm_audit SET actor = 'someone else' WHERE seq = 3")
        named = "audit entry 3: was changed"
    elif tamper == "delete":
        _sql(gateway.store_url, "DELETE FROM ocilm_audit WHERE seq = 2")
        named = "audit entry 3: entries 2 to 2 are missing"
    else:  # two entries' contents swapped, digests and all, with their sequence numbers kept
        _sql(gateway.store_url, "UPDATE ocilm_audit SET seq = 99 WHERE seq = 2")
        _sql(gateway.store_url, "UPDATE ocilm_audit SET seq = 2 WHERE seq = 3")
        _sql(gateway.store_url, "UPDATE ocilm_audit SET seq = 3 WHERE seq = 99")
        named = "audit entry 2: does not follow"
    done = _verify_cli(gateway.store_url, tmp_path)
    assert done.returncode == 1 and named in done.stderr, done.stderr


def test_the_chain_is_pure_and_every_field_counts():
    rows, previous = [], GENESIS
    for seq in range(1, 4):
        row = {"seq": seq, "at": 1.0 + seq, "actor": "master key", "action": "key.update", "target": "k1", "before": {"b": seq},
               "after": {"b": seq + 1}, "previous": previous}  # fmt: skip
        row["digest"] = previous = digest(previous, row)
        rows.append(row)
    assert verify(rows) == (3, None)
    for field in ("at", "actor", "action", "target", "before", "after"):
        changed = [dict(r) for r in rows]
        changed[1][field] = "tampered"
        assert verify(changed)[1] is not None and verify(changed)[1].seq == 2


def test_spend_logs_are_searched_in_the_database_with_a_cursor(gateway):
    made = _post(gateway, "/key/generate", {"max_budget": 50})
    other = _post(gateway, "/key/generate", {})
    auth = {"authorization": f"Bearer {made['key']}"}
    ids = []
    for i in range(7):
        reply = httpx.post(f"{gateway.base_url}/v1/chat/completions", headers=auth, timeout=30,
                           json={"model": "llama" if i % 2 else "grok", "messages": [{"role": "user", "content": f"hi {i}"}], "max_tokens": 5})  # fmt: skip
        ids.append(reply.headers["x-litellm-call-id"])
    refused = httpx.post(f"{gateway.base_url}/v1/chat/completions", headers=auth, json={"model": "nope", "messages": []}, timeout=30)
    httpx.post(f"{gateway.base_url}/v1/chat/completions", headers={"authorization": f"Bearer {other['key']}"}, timeout=30,
               json={"model": "llama", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5})  # fmt: skip

    def search(**params):
        reply = httpx.get(f"{gateway.base_url}/spend/logs", headers=ADMIN, params=params, timeout=30)
        assert reply.status_code == 200, reply.text
        return reply

    by_id = search(request_id=ids[3]).json()
    assert [r["request_id"] for r in by_id] == [ids[3]]  # the reply's call id is its row's id
    assert {r["request_id"] for r in search(api_key=made["token"]).json()} == set(ids)
    assert {r["model"] for r in search(api_key=made["token"], model="llama").json()} == {"llama"}
    assert len(search(api_key=made["token"], model="llama").json()) == 3
    assert search(status="200", api_key=other["token"]).json()[0]["api_key"] == other["token"]
    assert refused.status_code == 404 and search(request_id=refused.headers["x-litellm-call-id"]).json() == []  # refused before any row
    pages, cursor = [], None
    while True:  # three pages of three, newest first, each row once
        page = search(api_key=made["token"], limit="3", **({"cursor": cursor} if cursor else {}))
        pages.append([r["request_id"] for r in page.json()])
        cursor = page.headers.get("x-next-cursor")
        if cursor is None:
            break
    flat = [i for p in pages for i in p]
    assert sorted(flat) == sorted(ids) and len(flat) == len(set(flat)) and flat == list(reversed(ids))
    infinite = base64.urlsafe_b64encode(b'[Infinity, "x"]').decode()
    for params, named in (({"stauts": "200"}, "stauts"), ({"status": "abc"}, "status"), ({"cursor": "!!"}, "cursor"), ({"cursor": infinite}, "cursor"),
                          ({"status": "9" * 40}, "status"), ({"limit": "0"}, "limit"),
                          ({"start_date": "yesterday"}, "start_date")):  # fmt: skip
        bad = httpx.get(f"{gateway.base_url}/spend/logs", headers=ADMIN, params=params, timeout=30)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == named


async def test_retention_deletes_old_rows_in_batches_and_keeps_the_rest(store_url):
    store = await Store.open(store_url)
    try:
        await store.upgrade()
        now = time.time()
        for i in range(25):
            await store.settle({"request_id": f"r{i}", "token": None, "team_id": None, "model": "m", "deployment": "d", "route": "chat",
                                "input_tokens": 1, "output_tokens": 1, "cost": 0, "status": 200, "latency_ms": 1.0,
                                "started_at": now - (86400 * 40 if i < 20 else 60)})  # fmt: skip
        calls = []
        real = store.delete_spend_before

        async def counting(cutoff, batch):
            calls.append(batch)
            return await real(cutoff, batch)

        store.delete_spend_before = counting  # type: ignore[method-assign]
        assert await sweep(store, 30 * 86400, batch=6) == 20
        assert len(calls) == 4  # 6 + 6 + 6 + 2: short transactions, never one long delete
        left = await store.spend_logs(limit=100)
        assert sorted(r["request_id"] for r in left) == [f"r{i}" for i in range(20, 25)]
    finally:
        await store.close()


def test_retention_settings_are_read_and_checked():
    base = {"model_list": [{"model_name": "m", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", "oci_region": "us-chicago-1",
                                                                  "oci_compartment_id": "ocid1.compartment.oc1..x"}}]}  # fmt: skip
    config = parse_config({**base, "general_settings": {"master_key": MASTER, "database_url": "sqlite:///x.db",
                                                        "maximum_spend_logs_retention_period": "30d",
                                                        "maximum_spend_logs_retention_interval": "6h"}}, check_credentials=False)  # fmt: skip
    assert config.governance.retention_seconds == 30 * 86400 and config.governance.retention_interval == 6 * 3600
    from ocilm.gateway import GatewayConfigError

    with pytest.raises(GatewayConfigError) as refused:
        parse_config({**base, "general_settings": {"master_key": MASTER, "database_url": "sqlite:///x.db",
                                                   "maximum_spend_logs_retention_period": "a month"}}, check_credentials=False)  # fmt: skip
    assert "general_settings.maximum_spend_logs_retention_period" in str(refused.value)


async def test_a_change_and_its_audit_entry_commit_together_or_not_at_all(store_url):
    """An entry that cannot be written takes its change with it: no change goes unrecorded."""
    from ocilm.gateway.governance._policy import NANO

    store = await Store.open(store_url)
    try:
        await store.upgrade()
        _, info = await store.create_key({"max_budget": NANO}, actor="master key")
        async with store.engine.begin() as conn:  # the trail becomes unwritable (a bad day: a full disk, a revoked grant)
            await conn.exec_driver_sql("ALTER TABLE ocilm_audit RENAME TO ocilm_audit_gone")
        with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises, the change must not land
            await store.update_key(info["token"], {"max_budget": 5 * NANO}, actor="master key")
        assert (await store.key_info(info["token"]))["max_budget"] == 1.0
        async with store.engine.begin() as conn:
            await conn.exec_driver_sql("ALTER TABLE ocilm_audit_gone RENAME TO ocilm_audit")
        await store.update_key(info["token"], {"max_budget": 5 * NANO}, actor="master key")
        entries = await store.audit_entries()
        assert [e["action"] for e in entries] == ["key.generate", "key.update"] and entries[1]["after"]["max_budget"] == 5.0
        assert await store.verify_audit() == (2, None)
    finally:
        await store.close()
