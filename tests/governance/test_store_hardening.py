"""One request's failure stays its own, nothing is lost, and a rule means the same on every store:
batch writes poisoned by one item, settlements retried until written, durations parsed alike
by Python and PostgreSQL, values an older version stored, a schema newer than the code."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ocilm.gateway.governance._gate import MASTER, Caller, Gate, Meter
from ocilm.gateway.governance._hot import Batched, Lost
from ocilm.gateway.governance._outcomes import StoreUnavailable
from ocilm.gateway.governance._policy import NANO, PolicyError, duration_seconds
from ocilm.gateway.governance._store import Store

from .test_batched import Recorder


async def _store(url: str) -> Store:
    store = await Store.open(url)
    await store.upgrade()
    return store


def _row(request_id: str, token: str, cost: int, **changes) -> dict:
    return {"request_id": request_id, "token": token, "team_id": None, "model": "llama", "deployment": "oci/x", "route": "chat",
            "input_tokens": 10, "output_tokens": 5, "cost": cost, "status": 200, "latency_ms": 1.0, "started_at": time.time(), **changes}  # fmt: skip


# ---------------------------------------------------------------- a bad item fails alone


class Poisoned(Recorder):
    """A write that fails whole when item 13 is in it (as a database fails a whole batch call)."""

    async def __call__(self, items: list[int]) -> list[object]:
        self.batches.append(list(items))
        await asyncio.sleep(self.delay)
        if 13 in items:
            raise ValueError("value out of range")
        return [item * 10 for item in items]


async def test_a_batch_poisoned_by_one_item_is_written_item_by_item():
    writes = Poisoned()
    batched = Batched(writes)
    first = asyncio.ensure_future(batched(1))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(batched(n)) for n in (2, 13, 4)]
    results = await asyncio.gather(first, *rest, return_exceptions=True)
    assert results[0] == 10 and results[1] == 20 and results[3] == 40
    assert isinstance(results[2], ValueError)
    assert [2] in writes.batches and [13] in writes.batches and [4] in writes.batches  # retried one at a time


async def test_an_outage_still_reaches_every_caller_at_once():
    writes = Recorder(fail=Lost("ConnectionResetError"))
    batched = Batched(writes)
    results = await asyncio.gather(*(batched(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(r, Lost) for r in results) and len(writes.batches) <= 2  # not retried item by item


async def test_a_settlement_the_database_refuses_fails_alone_among_concurrent_ones(store_url):
    """A row past its columns (a token count no integer column holds) among good rows, at once:
    the good rows are written, and the key's spend is theirs exactly."""
    store = await _store(store_url)
    try:
        _, info = await store.create_key({"max_budget": 100 * NANO})
        token = info["token"]
        rows = [_row(f"good-{i}", token, NANO) for i in range(6)]
        rows.insert(3, _row("bad", token, NANO, input_tokens=2**70))
        results = await asyncio.gather(*(store.settle(row) for row in rows), return_exceptions=True)
        assert [r for r in results if r is not True] and sum(r is True for r in results) == 6
        assert not isinstance(results[3], bool)
        assert (await store.key_info(token))["spend"] == 6.0
        assert len(await store.spend_logs(token=token)) == 6
    finally:
        await store.close()


# ---------------------------------------------------------------- nothing is lost


class FlakyStore:
    """A store whose settlement fails ``failures`` times (an outage, then a bad row), then works."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures, self.rows = list(failures), []

    async def settle(self, row: dict) -> bool:
        if self.failures:
            raise self.failures.pop(0)
        self.rows.append(row)
        return True


async def test_a_settlement_that_cannot_be_written_is_retried_until_it_is():
    store = FlakyStore([StoreUnavailable("down"), StoreUnavailable("down"), ValueError("bad row")])
    gate = Gate("sk-master-key-1", store=store, hold_seconds=30)  # type: ignore[arg-type]
    meter = Meter(gate, Caller("k1", has_budget=True), "req-1", "chat", "llama")
    cost = await meter.settle(usage={"prompt_tokens": 3, "completion_tokens": 4})
    assert cost is None and not meter.settled  # not marked done before it is written
    deadline = time.monotonic() + 10
    while not meter.settled:
        assert time.monotonic() < deadline, "the settlement was never written"
        await asyncio.sleep(0.05)
    assert [row["request_id"] for row in store.rows] == ["req-1"]  # written once
    assert await meter.settle(usage={"prompt_tokens": 3, "completion_tokens": 4}) is None and len(store.rows) == 1
    await gate.drain()


async def test_a_settlement_is_given_up_only_when_its_hold_would_have_expired():
    store = FlakyStore([StoreUnavailable("down")] * 1000)
    gate = Gate("sk-master-key-1", store=store, hold_seconds=0.6)  # type: ignore[arg-type]
    meter = Meter(gate, MASTER, "req-2", "chat", "llama")
    await meter.settle(usage={"prompt_tokens": 1, "completion_tokens": 1})
    await asyncio.sleep(0.3)
    assert gate.lost_settlements == 0  # still trying
    await asyncio.sleep(1.0)
    assert gate.lost_settlements == 1 and not meter.settled
    await gate.drain()


# ---------------------------------------------------------------- one rule, every implementation

DURATIONS = [("30s", 30), ("15m", 900), ("1h", 3600), ("30d", 2_592_000), ("999999999d", 999_999_999 * 86400),
             ("30d ", None), (" 30d", None), ("30d\n", None), ("0d", None), ("30", None), ("d", None), ("1.5h", None),
             ("30x", None), ("-1d", None), ("1000000000d", None), ("", None)]  # fmt: skip


@pytest.mark.parametrize(("text", "seconds"), DURATIONS)
def test_durations_in_python(text, seconds):
    if seconds is None:
        with pytest.raises(PolicyError):
            duration_seconds(text, "budget_duration")
    else:
        assert duration_seconds(text, "budget_duration") == seconds


async def test_durations_in_postgresql_read_as_in_python(postgres_url):
    store = await _store(postgres_url)
    try:
        async with store.engine.connect() as conn:
            for text, seconds in DURATIONS:
                got = (await conn.exec_driver_sql("SELECT ocilm_duration_seconds($1)", (text,))).scalar_one()
                assert got == seconds, text
    finally:
        await store.close()


async def test_a_duration_an_older_version_stored_never_fails_holds(store_url):
    """"30d " was accepted before this version: a key holding it still reserves (and its batch-mates
    too), on both stores, and the migration trims it."""
    store = await _store(store_url)
    try:
        _, bad = await store.create_key({"max_budget": 10 * NANO})
        _, good = await store.create_key({"max_budget": 10 * NANO})
        async with store.engine.begin() as conn:
            await conn.exec_driver_sql(f"UPDATE ocilm_keys SET budget_duration = '30x' WHERE token = '{bad['token']}'")
        results = await asyncio.gather(*(store.reserve(f"r{i}", token, None, NANO, 60) for i, token in enumerate([bad["token"], good["token"]] * 4)),
                                       return_exceptions=True)  # fmt: skip
        assert results == [None] * 8
    finally:
        await store.close()


# ---------------------------------------------------------------- a schema from a newer ocilm


def test_a_database_migrated_by_a_newer_ocilm_is_one_clear_line(tmp_path, creds):
    import yaml

    db = tmp_path / "gov.db"
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds}}],
                                      "general_settings": {"master_key": "sk-master-newer-1", "database_url": f"sqlite:///{db}"}}))  # fmt: skip

    async def migrate_then_jump() -> None:
        store = await _store(f"sqlite:///{db}")
        async with store.engine.begin() as conn:
            await conn.exec_driver_sql("UPDATE ocilm_alembic_version SET version_num = '0099'")
        await store.close()

    asyncio.run(migrate_then_jump())
    for args in (["keys", "list"], ["db", "upgrade"]):
        done = subprocess.run([sys.executable, "-m", "ocilm", *args, "--config", str(config)], capture_output=True, text=True, timeout=60)
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        assert "0099" in done.stderr and "newer than this ocilm knows" in done.stderr


async def test_background_work_that_fails_is_logged_once_never_left_unread(caplog):
    gate = Gate("sk-master-key-1")

    async def fails() -> None:
        raise RuntimeError("settle failed")

    gate.later(fails())
    await gate.drain()
    assert [r.getMessage() for r in caplog.records if "background work failed" in r.getMessage()] == [
        "background work failed: RuntimeError: settle failed"]


async def test_shutdown_gives_settlements_and_alerts_a_deadline():
    gate = Gate("sk-master-key-1")
    gate.later(asyncio.sleep(60))
    gate.announce(asyncio.sleep(60))
    started = time.monotonic()
    await gate.drain(settle_seconds=0.2, alert_seconds=0.2)
    assert time.monotonic() - started < 3


def test_the_schema_check_knows_what_alembic_knows():
    """Start-up checks the schema from the migration files' revision lines, without Alembic;
    both must agree on every revision and the head."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from ocilm.gateway.governance import migrations

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).resolve().parent))
    script = ScriptDirectory.from_config(config)
    known, head = migrations.known_revisions()
    assert known == {rev.revision for rev in script.walk_revisions()} and head == script.get_current_head()


def test_serving_a_current_schema_loads_no_alembic(tmp_path):
    url = f"sqlite:///{tmp_path / 'g.db'}"
    check = f"""
import asyncio, sys
from ocilm.gateway.governance._store import Store
async def main():
    store = await Store.open({url!r})
    await store.upgrade()
    first = 'alembic' in sys.modules
    await store.close()
    return first
print(asyncio.run(main()))
"""
    assert subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout.strip() == "True"  # it migrated
    again = subprocess.run([sys.executable, "-c", check.replace("'alembic' in sys.modules", "any(m.startswith('alembic') for m in sys.modules)")],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert again.stdout.strip() == "False"


async def test_sqlite_writes_on_the_loop_when_the_lock_is_free_and_wait_in_the_writer_thread_when_it_is_not(tmp_path):
    """A settlement runs on the event loop when nobody holds SQLite's write lock; when another
    connection holds it, the loop does not wait (it keeps serving) and the settlement is written
    by the writer thread once the lock is released."""
    import sqlite3

    from ocilm.gateway.governance._policy import NANO

    url = f"sqlite:///{tmp_path}/lock.db"
    store = await Store.open(url)
    await store.upgrade()
    try:
        _, info = await store.create_key({"max_budget": NANO})
        row = {"request_id": "free", "token": info["token"], "team_id": None, "model": "m", "deployment": "d", "route": "chat",
               "input_tokens": 1, "output_tokens": 1, "cost": 5, "status": 200, "latency_ms": 1.0, "started_at": time.time()}  # fmt: skip
        assert await store.settle(row)
        budgets = store._budgets
        assert budgets._inline_commits == 1  # written on the loop
        other = sqlite3.connect(str(tmp_path / "lock.db"), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another worker holds the write lock
        settle = asyncio.ensure_future(store.settle({**row, "request_id": "locked"}))
        ticks = 0
        for _ in range(20):  # the loop keeps running while the settlement waits for the lock
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not settle.done()
        other.execute("COMMIT")
        assert await asyncio.wait_for(settle, 10)
        assert budgets._inline_commits == 1  # that one went through the writer thread
        other.close()
        async with store.engine.connect() as conn:
            spend = (await conn.exec_driver_sql(f"SELECT spend FROM ocilm_keys WHERE token = '{info['token']}'")).scalar_one()
        assert spend == 10
    finally:
        await store.close()


async def test_sqlite_writes_on_the_loop_are_checkpointed_so_the_wal_stays_bounded(tmp_path):
    from ocilm.gateway.governance._policy import NANO

    store = await Store.open(f"sqlite:///{tmp_path}/wal.db")
    await store.upgrade()
    try:
        _, info = await store.create_key({"max_budget": NANO})
        for i in range(2000):
            await store.settle({"request_id": f"r{i}", "token": info["token"], "team_id": None, "model": "m", "deployment": "d",
                                "route": "chat", "input_tokens": 1, "output_tokens": 1, "cost": 1, "status": 200, "latency_ms": 1.0,
                                "started_at": time.time()})  # fmt: skip
        await asyncio.sleep(0.2)  # the last checkpoint, in the writer thread
        wal = tmp_path / "wal.db-wal"
        assert wal.stat().st_size < 4 * 1024 * 1024  # as SQLite's own autocheckpoint keeps it (1,000 pages)
    finally:
        await store.close()


async def test_a_flood_of_unknown_keys_never_evicts_a_tenants_cached_key():
    """The review's negative-cache item: lookups of keys that do not exist are remembered apart,
    so 20,000 made-up keys cost their own lookups and leave a real key's cache entry alone."""

    class Counting:
        def __init__(self) -> None:
            self.lookups: list[str] = []

        async def authenticate(self, key: str):
            self.lookups.append(key)
            if key == "sk-real-key-1":
                from ocilm.gateway.governance._outcomes import KeyView

                return KeyView(token="tok", team_id=None, models=(), team_models=(), has_budget=False, blocked=False, expires_at=None)
            return None

    gate = Gate("sk-master-flood-1")
    gate.clock = lambda: 1000.0  # all within one cache lifetime, however slow the machine
    gate.store = store = Counting()  # type: ignore[assignment]
    real = {"authorization": "Bearer sk-real-key-1"}
    assert (await gate.caller(real)).token == "tok"
    for i in range(20_000):
        with pytest.raises(Exception, match="wrong API key"):
            await gate.caller({"authorization": f"Bearer sk-made-up-{i}"})
    before = len(store.lookups)
    assert (await gate.caller(real)).token == "tok" and len(store.lookups) == before  # still cached: no lookup
    assert len(gate._unknown) <= 10_000


async def test_a_statement_timeout_on_the_responses_tables_is_an_outage_not_a_500(postgres_url):
    """The review's last open item: a statement that runs into the driver's command timeout (a
    table locked by someone else) is StoreUnavailable, which the Responses routes answer 503."""
    import asyncpg

    store = await _store(postgres_url)
    lock = await asyncpg.connect(postgres_url.replace("postgresql://", "postgres://", 1))
    try:
        async with lock.transaction():
            await lock.execute("LOCK TABLE ocilm_responses, ocilm_conversations IN ACCESS EXCLUSIVE MODE")
            outcomes = await asyncio.gather(store.response_home("resp_x"), store.load_conversation("resp_x", "key:t"), return_exceptions=True)
        assert all(isinstance(outcome, StoreUnavailable) for outcome in outcomes), outcomes
    finally:
        await lock.close()
        await store.close()


async def test_stored_conversations_are_bounded_per_tenant_and_one_never_evicts_another(store_url):
    """The review's open item: conversations had no bound per key. Now a tenant over its bound
    loses its own oldest conversations; another tenant's stay."""
    store = await _store(store_url)
    try:
        await store.save_conversation("theirs", "team:b", "x" * 100, 3600)
        for i in range(6):
            await store.save_conversation(f"mine-{i}", "team:a", "y" * 100, 3600, max_owner_chars=350, max_owner_count=5)
        kept = [i for i in range(6) if await store.load_conversation(f"mine-{i}", "team:a") is not None]
        assert kept == [3, 4, 5]  # 350 characters hold three of a hundred: the newest
        for i in range(6, 12):
            await store.save_conversation(f"mine-{i}", "team:a", "y", 3600, max_owner_chars=10**9, max_owner_count=5)
        assert [i for i in range(12) if await store.load_conversation(f"mine-{i}", "team:a") is not None] == [7, 8, 9, 10, 11]
        assert await store.load_conversation("theirs", "team:b") == "x" * 100
    finally:
        await store.close()


def test_in_memory_conversations_are_bounded_per_tenant():
    from ocilm.doors.responses import ResponseStore

    memory = ResponseStore(max_chars=10_000, max_owner_chars=2_500)
    memory.put("theirs", "team:b", [{"role": "user", "content": "x" * 900}])
    for i in range(20):
        memory.put(f"mine-{i}", "team:a", [{"role": "user", "content": "y" * 900}])
    assert memory.get("theirs", "team:b") is not None  # a flood by one tenant never evicts another's
    mine = [i for i in range(20) if memory.get(f"mine-{i}", "team:a") is not None]
    assert mine == [18, 19] and memory.chars <= 10_000
