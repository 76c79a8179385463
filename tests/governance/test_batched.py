"""Writes that arrive while one is in flight go together in the next, each with its own outcome."""

from __future__ import annotations

import asyncio

import pytest

from ocilm.gateway.governance._hot import Batched, Lost, Refused, lock_order


class Recorder:
    def __init__(self, delay: float = 0.01, fail: BaseException | None = None) -> None:
        self.batches: list[list[int]] = []
        self.delay, self.fail = delay, fail

    async def __call__(self, items: list[int]) -> list[object]:
        self.batches.append(list(items))
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return [Refused("key", 1, 1, 0) if item % 2 else item * 10 for item in items]


async def test_one_write_alone_then_everything_that_waited_in_the_next():
    writes = Recorder()
    batched = Batched(writes)
    first = asyncio.ensure_future(batched(0))
    await asyncio.sleep(0)  # the first write is in flight
    rest = [asyncio.ensure_future(batched(n)) for n in range(2, 12, 2)]
    assert await first == 0 and await asyncio.gather(*rest) == [20, 40, 60, 80, 100]
    assert writes.batches == [[0], [2, 4, 6, 8, 10]]


async def test_each_caller_gets_its_own_outcome():
    batched = Batched(Recorder())
    results = await asyncio.gather(*(batched(n) for n in range(4)), return_exceptions=True)
    assert results[0] == 0 and results[2] == 20
    assert isinstance(results[1], Refused) and isinstance(results[3], Refused)


async def test_a_failed_write_reaches_every_caller_in_it_and_the_next_write_still_runs():
    writes = Recorder(fail=Lost("ConnectionResetError"))
    batched = Batched(writes)
    results = await asyncio.gather(*(batched(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(r, Lost) for r in results)
    writes.fail = None
    assert await batched(4) == 40


async def test_a_caller_that_gives_up_does_not_stop_a_settlement():
    writes = Recorder(delay=0.05)
    batched = Batched(writes)
    settling = asyncio.ensure_future(batched(2))
    await asyncio.sleep(0.01)
    settling.cancel()
    await batched.drain()
    assert writes.batches == [[2]]  # written all the same


async def test_an_abandoned_hold_is_not_written_when_its_turn_comes():
    writes = Recorder(delay=0.05)
    batched = Batched(writes, skip_abandoned=True)
    in_flight = asyncio.ensure_future(batched(0))
    await asyncio.sleep(0.01)
    abandoned = asyncio.ensure_future(batched(2))
    kept = asyncio.ensure_future(batched(4))
    await asyncio.sleep(0)
    abandoned.cancel()
    assert await in_flight == 0 and await kept == 40
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    assert writes.batches == [[0], [4]]


def test_row_locks_are_taken_teamless_keys_first_then_by_team_then_by_key():
    rows = [{"request_id": "r1", "token": "kb", "team_id": "t2"}, {"request_id": "r2", "token": "kz", "team_id": None},
            {"request_id": "r3", "token": "ka", "team_id": "t2"}, {"request_id": "r4", "token": "kc", "team_id": "t1"}]  # fmt: skip
    assert [rows[i]["request_id"] for i, _ in sorted(enumerate(rows), key=lock_order)] == ["r2", "r4", "r3", "r1"]
