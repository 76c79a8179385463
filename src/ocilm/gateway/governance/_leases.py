"""Budget leases: a replica admits budgeted requests against budget it has set aside in the
store, so most requests hold their worst case without a round trip.

Each replica keeps one lease per key (and team) it serves: a hold in the store whose amount the
replica sets, absolutely, to the worst case of its requests in flight plus room for about
``LEASE_REQUESTS`` more, never more than an eighth of what the budget has left (the store decides
that, under the same row locks as a hold). A request whose worst case fits in what the lease has
left is admitted at once; otherwise the lease is set again, which is a hold's check: the lease is
refused, and the request with it (429), only when the budget cannot take the worst case of every
request this replica has in flight plus this one, every other hold and lease counted.

What keeps the budget safe: the store counts the budget's spend plus every hold and lease. Here,
what a lease has left is its amount less the worst case of each request admitted under it and
not yet settled, less the cost of each settled since the amount was set (those costs are in the
budget's spend from then on, and the lease's amount still counts them until it is set again).
While a lease is being set no request is admitted under it. A lease admits requests for
``hold_seconds / 8`` after it was last set (a busy lease is set again then) and lives
``hold_seconds`` more in the store, so every request admitted under it is over (its hold would
have expired) before the lease expires: a replica killed, or cut from the store, holds the budget
no longer than ``1.125 * hold_seconds`` after it last set its lease, and stops admitting soon
after it loses the store. A lease nobody uses for ``IDLE_SECONDS`` is given
back. A change of the key's or its team's budget, seen with the key (within a second, as
revocation), sets the lease again before the next request: a lowered budget binds as quickly.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
import time
from collections.abc import Callable, Hashable
from typing import Any

from ._outcomes import BudgetExceeded

LEASE_REQUESTS = 32  # a lease is set for the request that asked and room for about this many more like it
IDLE_SECONDS = 2.0  # a lease with nothing in flight for this long is given back


class Lease:
    __slots__ = ("amount", "consumed", "granted_at", "holds", "idle_check", "in_flight", "lease_id", "mark", "pending", "team_id", "token",
                 "used_at")

    def __init__(self, lease_id: str, token: str, team_id: str | None) -> None:
        self.lease_id, self.token, self.team_id = lease_id, token, team_id
        self.mark: Hashable = None  # the budgets it was set against
        self.amount = 0  # nano-USD set aside in the store
        self.consumed = 0  # costs settled since the amount was asked for
        self.holds: dict[str, tuple[int, float]] = {}  # request id: (worst case, admitted at)
        self.in_flight = 0  # the sum of the holds' worst cases
        self.granted_at = -float("inf")
        self.pending: asyncio.Future[None] | None = None  # the amount being set
        self.used_at = 0.0
        self.idle_check: asyncio.TimerHandle | None = None  # one at a time, not one per settlement

    def room(self) -> int:
        return self.amount - self.in_flight - self.consumed

    def busy(self) -> bool:
        """Being set (a set that just ended may not have cleared ``pending`` yet: awaiting it
        again would not yield to the loop)."""
        return self.pending is not None and not self.pending.done()


class Leases:
    """The leases of one gateway process. ``store.lease`` sets a lease's amount; ``later`` runs
    work off the request's path (giving an idle lease back)."""

    def __init__(self, store: Any, hold_seconds: float, later: Callable[[Any], None], replica: str | None = None) -> None:
        self.store = store
        self.hold_seconds = hold_seconds
        self.admit_seconds = hold_seconds / 8  # a lease admits for this long after it was last set
        self.later = later
        self.replica = replica or secrets.token_hex(8)
        self._leases: dict[tuple[str, str | None], Lease] = {}

    def lease_of(self, token: str, team_id: str | None) -> Lease | None:
        return self._leases.get((token, team_id))

    async def hold(self, request_id: str, token: str, team_id: str | None, mark: Hashable, estimate: int) -> None:
        """Admit ``estimate`` nano-USD of worst case under this replica's lease for the key, or
        raise BudgetExceeded (StoreUnavailable when the lease had to be set and could not be)."""
        lease = self._leases.get((token, team_id))
        if lease is None:
            digest = hashlib.sha256(f"{self.replica}\x00{token}\x00{team_id or ''}".encode()).hexdigest()[:40]
            lease = self._leases[(token, team_id)] = Lease(f"lease:{digest}", token, team_id)
        while True:
            if lease.pending is not None and lease.busy():
                try:
                    await asyncio.shield(lease.pending)
                except BudgetExceeded:  # no room for the asker's worst case: this one's may fit
                    pass
                # Anything else (the store unavailable) is every waiter's answer at once: each
                # trying again in turn would make a stalled store's 503 take a deadline per waiter.
                continue
            now = time.monotonic()
            if lease.mark == mark and now - lease.granted_at < self.admit_seconds and lease.room() >= estimate:
                _admit(lease, request_id, estimate)
                return
            # The set admits the request itself, in the same step as it records the amount: a
            # request arriving in between must not take the room asked for this one.
            pending = lease.pending = asyncio.ensure_future(self._set(lease, mark, estimate, request_id))
            pending.add_done_callback(functools.partial(_clear, lease))
            await asyncio.shield(pending)  # a caller that leaves does not cancel the lease its batch-mates wait for
            return

    async def _set(self, lease: Lease, mark: Hashable, estimate: int, request_id: str | None = None) -> None:
        now = time.monotonic()
        for held_id, (worst, admitted) in list(lease.holds.items()):
            if now - admitted >= self.hold_seconds:  # never settled: its hold would have expired by now
                del lease.holds[held_id]
                lease.in_flight -= worst
        asked_consumed = lease.consumed
        need = lease.in_flight + estimate
        try:
            lease.amount = await self.store.lease(lease.lease_id, lease.token, lease.team_id, need, LEASE_REQUESTS * estimate,
                                                  self.hold_seconds + self.admit_seconds)  # fmt: skip
        except BudgetExceeded as exc:  # what this replica has in flight is part of what is held
            raise BudgetExceeded(exc.scope, exc.max_budget, exc.committed, exc.held + lease.in_flight, estimate) from None
        lease.consumed -= asked_consumed  # those costs were in the budget's spend when the store set the amount
        lease.granted_at = now
        lease.mark = mark
        if request_id is not None:
            _admit(lease, request_id, estimate)

    def settled(self, request_id: str, token: str, team_id: str | None, cost: int | None) -> None:
        """The request's spend is in the store (``cost`` None: unknown, counted as its worst
        case), or was given up on: its hold leaves the lease, its cost is taken from it."""
        lease = self._leases.get((token, team_id))
        if lease is None:
            return
        held = lease.holds.pop(request_id, None)
        if held is None:
            return
        lease.in_flight -= held[0]
        lease.consumed += held[0] if cost is None else cost
        if not lease.holds and lease.idle_check is None:
            lease.idle_check = asyncio.get_running_loop().call_later(IDLE_SECONDS, self._give_back_if_idle, lease)

    def _give_back_if_idle(self, lease: Lease) -> None:
        lease.idle_check = None
        if lease.holds or lease.busy():
            return
        idle = time.monotonic() - lease.used_at
        if idle < IDLE_SECONDS:  # used since: look again when it would have been idle long enough
            lease.idle_check = asyncio.get_running_loop().call_later(IDLE_SECONDS - idle, self._give_back_if_idle, lease)
            return
        if self._leases.get((lease.token, lease.team_id)) is lease:
            self.later(self._give_back(lease))

    async def _give_back(self, lease: Lease) -> None:
        if lease.holds or lease.busy():
            return
        # Set to nothing: the row is removed. Requests arriving meanwhile wait, then set it again.
        pending = lease.pending = asyncio.ensure_future(self._set(lease, lease.mark, 0))
        pending.add_done_callback(functools.partial(_clear, lease))
        await pending

    async def close(self) -> None:
        """At shutdown: give back every lease with nothing in flight."""
        for lease in list(self._leases.values()):
            if not lease.holds and not lease.busy() and lease.amount:
                try:
                    await self._give_back(lease)
                except Exception:  # the store is away: the lease expires on its own
                    return


def _admit(lease: Lease, request_id: str, estimate: int) -> None:
    lease.holds[request_id] = (estimate, time.monotonic())
    lease.in_flight += estimate
    lease.used_at = time.monotonic()


def _clear(lease: Lease, done: asyncio.Future[None]) -> None:
    if lease.pending is done:
        lease.pending = None
    if not done.cancelled():
        done.exception()  # read: its asker heard it
