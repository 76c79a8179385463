"""Budget alerts: when a key's or team's spend passes a threshold of its budget (50%, 80% and
100% by default), a JSON event is POSTed to each configured webhook. Checked after a request
is settled, off its path; sent with retries; each crossing claimed in the store, so exactly one
replica announces it, once per budget window."""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

log = logging.getLogger("ocilm.gateway")

ATTEMPTS = 4
FIRST_BACKOFF = 0.5
WEBHOOK_SECONDS = 3.0  # a webhook that accepts and never answers cannot hold an alert (or a shutdown) for long


class BudgetAlerts:
    def __init__(self, webhooks: list[str], thresholds: tuple[float, ...]) -> None:
        self.webhooks, self.thresholds = webhooks, thresholds
        self._http: Any = None

    async def check(self, store: Any, token: str | None, team_id: str | None) -> None:
        try:
            events = await store.claim_budget_alerts(token, team_id, self.thresholds)
        except Exception as exc:  # the store is down: the next settled request checks again
            log.warning("budget alerts: could not check %s (%s)", token, type(exc).__name__)
            return
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        bodies = [{"event": "budget_threshold_crossed", **event, "time": now} for event in events]
        await asyncio.gather(*(self._send(url, body) for body in bodies for url in self.webhooks))  # every crossing at once

    async def _send(self, url: str, body: dict[str, Any]) -> None:
        import httpx

        if self._http is None:
            self._http = httpx.AsyncClient(timeout=WEBHOOK_SECONDS)
        for attempt in range(ATTEMPTS):
            try:
                response = await self._http.post(url, json=body)
                if response.status_code < 300:
                    return
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            if attempt + 1 < ATTEMPTS:
                await asyncio.sleep(FIRST_BACKOFF * 2**attempt)
        host = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]  # never the path or credentials: they may hold a token
        log.error("budget alert for %s %s at %d%% not delivered to %s after %d attempts (%s)", body["scope"], body["id"],
                  round(body["threshold"] * 100), host, ATTEMPTS, problem)  # fmt: skip

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
