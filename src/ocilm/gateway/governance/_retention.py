"""The spend log's retention (LiteLLM's ``maximum_spend_logs_retention_period``): rows older than
the period are deleted every ``interval``, a batch per short transaction with a pause between, so
that settlements never wait behind one long delete."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger("ocilm.gateway")
BATCH = 5_000
PAUSE = 0.05  # seconds between batches: writers take the lock in between


async def sweep(store: Any, period: float, *, batch: int = BATCH, now: float | None = None) -> int:
    """Delete every row older than ``period`` seconds, in batches; returns how many."""
    cutoff = (time.time() if now is None else now) - period
    deleted = 0
    while True:
        done = await store.delete_spend_before(cutoff, batch)
        deleted += done
        if done < batch:
            return deleted
        await asyncio.sleep(PAUSE)


async def sweep_forever(store: Any, period: float, interval: float) -> None:
    while True:
        try:
            deleted = await sweep(store, period)
            if deleted:
                log.info("spend-log retention: deleted %d rows older than %.0f s", deleted, period)
        except Exception as exc:  # a store outage: the next sweep tries again
            log.warning("spend-log retention sweep failed (%s); trying again in %.0f s", type(exc).__name__, interval)
        await asyncio.sleep(interval)
