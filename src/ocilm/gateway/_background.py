"""Billing follows the usage, not the HTTP exchange: a background Responses request (``background:
true`` on ``/openai/v1``) is answered ``queued`` with no usage, so its hold is kept and its
settlement waits for the response to end. The gateway polls the response (backing off from
``POLL_FIRST`` to ``POLL_MOST`` seconds); a caller's ``GET /v1/responses/{id}`` that sees it end
settles it at once. Whichever comes first settles it, once, from the usage OCI reports. A
response that has not ended when its hold would expire, or when the gateway shuts down, is
settled at its worst case: never at $0.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from .._errors import NotFoundError, OCIError
from .governance._tool_calls import responses_usage

log = logging.getLogger("ocilm.gateway")
ENDED = frozenset({"completed", "failed", "cancelled", "incomplete"})
RUNNING = frozenset({"queued", "in_progress"})
POLL_FIRST, POLL_MOST = 1.0, 30.0


def runs_on(response: Any) -> bool:
    """Whether a Responses reply is a background response still running (its usage comes later)."""
    return isinstance(response, dict) and response.get("status") in RUNNING and isinstance(response.get("id"), str)


@dataclass
class _Pending:
    meter: Any
    deployment: Any
    worst_case: tuple[int, int]
    record: Any
    worst_tool_calls: dict[str, int]  # the dearest hosted-tool calls it may make (priced ones only)
    until: float  # when its hold expires: then it is settled at its worst case
    task: asyncio.Future | None = None


class BackgroundSettlements:
    """The background responses this process started and has not settled yet."""

    def __init__(self, gate: Any, client: Any, *, poll_first: float = POLL_FIRST, poll_most: float = POLL_MOST) -> None:
        self.gate, self.client = gate, client
        self.poll_first, self.poll_most = poll_first, poll_most
        self.pending: dict[str, _Pending] = {}

    def track(self, response_id: str, meter: Any, deployment: Any, worst_case: tuple[int, int], record: Any,
              worst_tool_calls: dict[str, int] | None = None) -> None:  # fmt: skip
        pending = _Pending(meter, deployment, worst_case, record, worst_tool_calls or {}, time.monotonic() + self.gate.hold_seconds)
        self.pending[response_id] = pending
        pending.task = asyncio.ensure_future(self._poll(response_id, pending))
        self.gate.later(pending.task)  # drained at shutdown like any settlement

    async def close(self, seconds: float = 5.0) -> None:
        """At shutdown: every response still running is settled now, at its worst case (a poller
        would otherwise hold the shutdown until the drain's deadline)."""
        tasks = [pending.task for pending in self.pending.values() if pending.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=seconds)

    async def seen(self, response_id: str, response: Any) -> None:
        """A caller read the response: if it has ended, settle it now."""
        pending = self.pending.get(response_id)
        if pending is not None and isinstance(response, dict) and response.get("status") in ENDED:
            await self._settle(response_id, pending, response)

    async def cancelled(self, response_id: str, response: Any) -> None:
        await self.seen(response_id, response)

    async def _poll(self, response_id: str, pending: _Pending) -> None:
        wait = self.poll_first
        try:
            while response_id in self.pending:
                await asyncio.sleep(min(wait, max(0.0, pending.until - time.monotonic())))
                if response_id not in self.pending:
                    return
                if time.monotonic() >= pending.until:
                    log.warning("background response %s did not end within its hold; settled at its worst case", pending.meter.request_id)
                    await self._settle(response_id, pending, None)
                    return
                try:
                    response = await self.client.get_responses(response_id, **{**pending.deployment.params, "max_retries": 0})
                except NotFoundError:  # deleted before it ended: what it used is unknown, so its worst case
                    await self._settle(response_id, pending, None)
                    return
                except OCIError as exc:
                    log.info("polling background response %s failed (%s); trying again", pending.meter.request_id, type(exc).__name__)
                else:
                    if dict(response).get("status") in ENDED:
                        await self._settle(response_id, pending, dict(response))
                        return
                wait = min(wait * 1.5, self.poll_most)
        except asyncio.CancelledError:  # shutting down: settled now, at its worst case (never lost, never $0)
            if response_id in self.pending:
                await self._settle(response_id, pending, None)
            raise

    async def _settle(self, response_id: str, pending: _Pending, response: dict | None) -> None:
        if self.pending.pop(response_id, None) is None:
            return  # settled already (a GET and the poller crossed)
        usage = responses_usage(response) if response is not None else None
        record = pending.record
        status = response.get("status") if response is not None else None
        if usage:
            cost = await pending.meter.settle(deployment=pending.deployment, usage=usage)
        elif status in ("failed", "cancelled"):  # stopped with no usage: its prompt was read (never $0)
            cost = await pending.meter.settle(deployment=pending.deployment, estimated=(max(1, -(-pending.worst_case[0] // 4)), 0))
        elif pending.worst_tool_calls:  # never seen to end: its worst case, its priced tool calls included
            worst = {"prompt_tokens": pending.worst_case[0], "completion_tokens": pending.worst_case[1], "tool_calls": pending.worst_tool_calls}
            cost = await pending.meter.settle(deployment=pending.deployment, usage=worst)
        else:  # never seen to end, or ended with no usage: its worst case
            cost = await pending.meter.settle(deployment=pending.deployment, estimated=pending.worst_case)
        if record is not None:
            record.cost = cost
        if pending.task is not None and pending.task is not asyncio.current_task():
            pending.task.cancel()
