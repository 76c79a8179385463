"""Budget alerts: a webhook receiver on loopback gets exactly one event per threshold crossing,
retried when it fails, never blocking a request."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ocilm.gateway import create_app, parse_config
from ocilm.testing import BackgroundServer

from ..governance.conftest import migrate

MASTER = "sk-master-alerts-1"
ADMIN = {"authorization": f"Bearer {MASTER}"}
HI = [{"role": "user", "content": "Hello there"}]


class Receiver:
    """A webhook endpoint that fails its first delivery (HTTP 503) and records the rest."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.refused = 0

        async def hook(request: Request) -> JSONResponse:
            if self.refused == 0:
                self.refused += 1
                return JSONResponse({"busy": True}, status_code=503)
            self.events.append(await request.json())
            return JSONResponse({"ok": True})

        self.app = Starlette(routes=[Route("/hooks/budget", hook, methods=["POST"])])


@pytest.fixture
def receiver():
    hooks = Receiver()
    with BackgroundServer(hooks.app) as server:
        hooks.url = f"{server.base_url}/hooks/budget"
        yield hooks


def test_each_threshold_crossing_is_announced_exactly_once(creds, store_url, receiver):
    if store_url.startswith("postgresql"):
        migrate(store_url)
    # Input is free and output costs $0.01 a token, capped at 5 tokens: every request costs its
    # worst case, $0.05, so a $0.20 budget is spent to the cent by exactly four of them.
    price = {"input_cost_per_token": 0, "output_cost_per_token": 0.01}
    config = {"model_list": [{"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds, **price}}],
              "general_settings": {"master_key": MASTER, "database_url": store_url, "budget_alert_webhooks": [receiver.url]}}  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as gw:
        key = httpx.post(f"{gw.base_url}/key/generate", headers=ADMIN, json={"key_alias": "alerted", "max_budget": 0.2}, timeout=30).json()

        async def burst() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as http:
                replies = await asyncio.gather(*(
                    http.post(f"{gw.base_url}/v1/chat/completions", headers={"authorization": f"Bearer {key['key']}"},
                              json={"model": "llama", "messages": HI, "max_tokens": 5})
                    for _ in range(8)
                ))  # fmt: skip
            return [r.status_code for r in replies]

        statuses = asyncio.run(burst())
        assert statuses.count(200) == 4 and statuses.count(429) == 4
        deadline = time.monotonic() + 10
        while len(receiver.events) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # nothing more arrives
        info = httpx.get(f"{gw.base_url}/key/info", headers=ADMIN, params={"key": key["token"]}, timeout=30).json()["info"]
    assert info["spend"] == pytest.approx(0.2)
    assert receiver.refused == 1  # the first delivery failed and was retried
    assert sorted(e["threshold"] for e in receiver.events) == [0.5, 0.8, 1.0]
    for event in receiver.events:
        assert event["event"] == "budget_threshold_crossed" and event["scope"] == "key" and event["id"] == key["token"]
        assert event["max_budget"] == pytest.approx(0.2) and event["spend"] >= event["threshold"] * 0.2 - 1e-9
        assert key["key"] not in str(event)
