"""The router's state shared by replicas through Redis (``general_settings.redis_url``).

A cooldown is pushed to every replica the moment it starts (pub/sub), and stored with its
expiry for replicas that start later; each replica also publishes its calls in flight and
recent latency per deployment every ``SYNC_SECONDS`` and reads the others'. Nothing here is on a
request's path: a request reads only this process's memory. Redis going away never stops
routing: each replica goes on with its own state, says so once, and shares again when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from typing import Any

from ._routing_policy import MAX_COOLDOWN, RoutingState

log = logging.getLogger("ocilm.gateway")
CHANNEL = "ocilm:router:cooldowns"
COOLDOWN_KEYS = "ocilm:router:cooldown:"
REPLICA_KEYS = "ocilm:router:replica:"
SYNC_SECONDS = 0.25


class SharedRouting:
    def __init__(self, url: str, state: RoutingState) -> None:
        import redis.asyncio as redis_asyncio

        self.state = state
        self.replica = uuid.uuid4().hex[:12]
        self._redis = redis_asyncio.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0, retry_on_timeout=False)
        self._tasks: list[asyncio.Task[Any]] = []
        self._sending: set[asyncio.Task[Any]] = set()
        self.reachable = True
        state.on_cooldown = self._cooled

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._listen()), asyncio.ensure_future(self._sync())]

    def _down(self, exc: BaseException) -> None:
        if self.reachable:
            self.reachable = False
            log.error("router: Redis is unreachable (%s); this replica routes on its own state until it returns", type(exc).__name__)

    def _up(self) -> None:
        if not self.reachable:
            self.reachable = True
            log.warning("router: Redis answers again; replicas share cooldowns and load again")

    def _cooled(self, deployment_id: str, seconds: float, in_a_row: int) -> None:
        task = asyncio.ensure_future(self._announce(deployment_id, seconds, in_a_row))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _announce(self, deployment_id: str, seconds: float, in_a_row: int) -> None:
        # a duration, never a wall-clock time: replicas' clocks disagree; a stored cooldown's time
        # left is read from Redis's own clock (PTTL)
        message = json.dumps({"id": deployment_id, "seconds": seconds, "in_a_row": in_a_row, "from": self.replica})
        try:
            await self._redis.set(COOLDOWN_KEYS + deployment_id, message, px=max(1, int(seconds * 1000)))
            await self._redis.publish(CHANNEL, message)
            self._up()
        except Exception as exc:
            self._down(exc)

    def _apply(self, raw: Any, left: float | None = None) -> None:
        """Another replica's cooldown: for ``seconds`` from now (a message just published), or for
        what Redis says its key has ``left``; never longer than any cooldown can be."""
        try:
            message = json.loads(raw)
            remaining = float(message["seconds"]) if left is None else left
            in_a_row = int(message.get("in_a_row", 1))
            deployment_id = str(message["id"])
        except (TypeError, ValueError, KeyError):
            return
        if message.get("from") == self.replica or not math.isfinite(remaining) or remaining <= 0:
            return
        self.state.apply_cooldown(deployment_id, time.monotonic() + min(remaining, MAX_COOLDOWN), max(1, min(in_a_row, 32)))

    async def _listen(self) -> None:
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                async for key in self._redis.scan_iter(match=COOLDOWN_KEYS + "*", count=500):  # cooldowns started before this replica
                    left = await self._redis.pttl(key)
                    if left > 0:
                        self._apply(await self._redis.get(key), left / 1000)
                self._up()
                while True:  # polled with a timeout, so that closing never waits on a blocked read
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._apply(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._down(exc)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(pubsub.aclose()), 1.0)

    async def _sync(self) -> None:
        while True:
            await asyncio.sleep(SYNC_SECONDS)
            now = time.monotonic()
            mine: dict[Any, Any] = {}
            for deployment_id, state in self.state.states.items():
                latency = state.mean_latency(now, self.state.settings.latency_ttl, False)
                mine[deployment_id] = json.dumps({"in_flight": state.in_flight, "latency": latency})
            try:
                key = REPLICA_KEYS + self.replica
                if mine:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        pipe.hset(key, mapping=mine)
                        pipe.pexpire(key, int(SYNC_SECONDS * 4000))
                        await pipe.execute()
                in_flight: dict[str, int] = {}
                latencies: dict[str, list[float]] = {}
                async for other in self._redis.scan_iter(match=REPLICA_KEYS + "*", count=500):
                    name = other.decode() if isinstance(other, bytes) else str(other)
                    if name == key:
                        continue
                    for field, value in (await self._redis.hgetall(other)).items():
                        deployment_id = field.decode() if isinstance(field, bytes) else str(field)
                        figures = json.loads(value)
                        in_flight[deployment_id] = in_flight.get(deployment_id, 0) + int(figures.get("in_flight") or 0)
                        if figures.get("latency") is not None:
                            latencies.setdefault(deployment_id, []).append(float(figures["latency"]))
                self.state.remote_in_flight = in_flight
                self.state.remote_latency = {d: sum(v) / len(v) for d, v in latencies.items()}
                self._up()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._down(exc)
                self.state.remote_in_flight, self.state.remote_latency = {}, {}

    async def close(self) -> None:
        """Stop sharing, within a few seconds whatever Redis does (a shutdown must not hang on it)."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._redis.delete(REPLICA_KEYS + self.replica), 1.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._redis.aclose(), 1.0)
