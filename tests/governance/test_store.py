"""The governance store on SQLite and PostgreSQL: keys, holds that never overshoot, settlement once."""

from __future__ import annotations

import asyncio
import time

import pytest

from ocilm.gateway.governance._policy import NANO, key_hash, token_of
from ocilm.gateway.governance._store import BudgetExceeded, Store


async def _store(url: str) -> Store:
    store = await Store.open(url)
    await store.upgrade()
    return store


def _log(request_id: str, token: str, cost: int, team_id: str | None = None) -> dict:
    return {"request_id": request_id, "token": token, "team_id": team_id, "model": "m", "deployment": "oci/x", "route": "chat",
            "input_tokens": 10, "output_tokens": 5, "cost": cost, "status": 200, "latency_ms": 1.0, "started_at": time.time()}  # fmt: skip


async def test_keys_are_stored_as_hashes_and_authenticate(store_url):
    store = await _store(store_url)
    try:
        await store.upgrade()  # a second run is a no-op
        key, info = await store.create_key({"key_alias": "ci", "models": ["llama"]})
        assert token_of(key) == info["token"] and info["key_name"] == f"sk-...{key[-4:]}"
        async with store.engine.connect() as conn:
            stored = (await conn.exec_driver_sql("SELECT key_hash FROM ocilm_keys")).scalar_one()
        assert stored == key_hash(key) and key not in stored
        view = await store.authenticate(key)
        assert view is not None and view.token == info["token"] and view.models == ("llama",) and not view.blocked
        assert await store.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        await store.update_key(info["token"], {"blocked": True})
        assert (await store.authenticate(key)).blocked
    finally:
        await store.close()


async def test_regenerate_keeps_the_id_and_the_old_secret_for_the_grace_period(store_url):
    store = await _store(store_url)
    try:
        old, info = await store.create_key({"max_budget": 5 * NANO})
        await store.settle(_log("r1", info["token"], 2 * NANO))
        new, after = await store.regenerate(info["token"], grace_seconds=60)
        assert token_of(new) == info["token"] and new != old and after["spend"] == 2.0  # the budget window is not reset
        assert (await store.authenticate(new)) is not None and (await store.authenticate(old)) is not None
        newest, _ = await store.regenerate(info["token"], grace_seconds=0)
        assert await store.authenticate(new) is None and await store.authenticate(old) is None and await store.authenticate(newest)
    finally:
        await store.close()


async def test_concurrent_holds_never_exceed_the_budget(store_url):
    """50 concurrent reservations of $1 against a $3 key (and a $10 team): exactly 3 fit."""
    store = await _store(store_url)
    try:
        await store.create_team({"team_id": "t1", "max_budget": 10 * NANO})
        _, info = await store.create_key({"max_budget": 3 * NANO, "team_id": "t1"})

        async def one(i: int) -> bool:
            try:
                await store.reserve(f"req-{i}", info["token"], "t1", NANO, ttl=60)
                return True
            except BudgetExceeded as exc:
                assert exc.scope == "key"
                return False

        admitted = await asyncio.gather(*(one(i) for i in range(50)))
        assert sum(admitted) == 3
        # settling for less frees the rest: a fourth fits after one settles at $0.50
        first = next(i for i, ok in enumerate(admitted) if ok)
        assert await store.settle(_log(f"req-{first}", info["token"], NANO // 2, "t1"))
        assert not await store.settle(_log(f"req-{first}", info["token"], NANO // 2, "t1"))  # once only
        await store.reserve("req-more", info["token"], "t1", NANO // 2, ttl=60)
        with pytest.raises(BudgetExceeded):
            await store.reserve("req-over", info["token"], "t1", 1, ttl=60)
        assert (await store.key_info(info["token"]))["spend"] == 0.5 and (await store.team_info("t1"))["spend"] == 0.5
    finally:
        await store.close()


async def test_expired_holds_free_the_budget(store_url):
    store = await _store(store_url)
    try:
        _, info = await store.create_key({"max_budget": NANO})
        await store.reserve("crashed", info["token"], None, NANO, ttl=1.5)  # its process died before settling
        with pytest.raises(BudgetExceeded):  # well inside the hold's 1.5 s, even on a loaded machine
            await store.reserve("next", info["token"], None, NANO, ttl=60)
        await asyncio.sleep(1.6)
        await store.reserve("next", info["token"], None, NANO, ttl=60)
    finally:
        await store.close()


async def test_a_team_budget_binds_every_key_of_the_team(store_url):
    store = await _store(store_url)
    try:
        await store.create_team({"team_id": "t", "max_budget": NANO})
        _, a = await store.create_key({"team_id": "t"})
        _, b = await store.create_key({"team_id": "t"})
        await store.reserve("a1", a["token"], "t", NANO, ttl=60)
        with pytest.raises(BudgetExceeded) as err:
            await store.reserve("b1", b["token"], "t", 1, ttl=60)
        assert err.value.scope == "team"
    finally:
        await store.close()


async def test_budget_window_starts_over(store_url):
    store = await _store(store_url)
    try:
        _, info = await store.create_key({"max_budget": NANO, "budget_duration": "1s"})
        await store.reserve("w1", info["token"], None, NANO, ttl=60)
        await store.settle(_log("w1", info["token"], NANO))
        with pytest.raises(BudgetExceeded):
            await store.reserve("w2", info["token"], None, 1, ttl=60)
        await asyncio.sleep(1.1)
        await store.reserve("w2", info["token"], None, NANO, ttl=60)
    finally:
        await store.close()


async def test_two_stores_batching_many_keys_and_teams_at_once_lose_nothing(store_url):
    """Two replicas' stores, six keys in three teams (and two teamless), 300 concurrent holds
    and settlements in batches that cross: no deadlock, no failure, every cent on its key and team."""
    first = await _store(store_url)
    second = await Store.open(store_url)
    try:
        for team in ("t1", "t2", "t3"):
            await first.create_team({"team_id": team, "max_budget": 1000 * NANO})
        keys = [(await first.create_key({"team_id": team, "max_budget": 1000 * NANO}))[1]["token"] for team in ("t1", "t2", "t3", "t1", "t2", "t3")]
        keys += [(await first.create_key({"max_budget": 1000 * NANO}))[1]["token"] for _ in range(2)]
        teams = {k: (await first.key_info(k))["team_id"] for k in keys}

        async def one(i: int) -> None:
            store, token = (first, second)[i % 2], keys[(i * 7) % len(keys)]
            await store.reserve(f"r{i}", token, teams[token], NANO, ttl=60)
            assert await store.settle(_log(f"r{i}", token, i + 1, teams[token]))

        await asyncio.gather(*(one(i) for i in range(300)))
        for token in keys:
            expected = sum(i + 1 for i in range(300) if keys[(i * 7) % len(keys)] == token)
            assert round((await first.key_info(token))["spend"] * NANO) == expected
        for team in ("t1", "t2", "t3"):
            expected = sum(i + 1 for i in range(300) if teams[keys[(i * 7) % len(keys)]] == team)
            assert round((await first.team_info(team))["spend"] * NANO) == expected
        assert len(await first.spend_logs(limit=1000)) == 300
    finally:
        await second.close()
        await first.close()
