"""Who owns what a tenant makes on OCI's agent platform through the gateway: the team of the key
that made it (the key itself when it has no team). Kept in the governance store (every replica,
every restart), else in this process. The platform routes and the Responses pass-through read it."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from ._errors import GatewayError
from .governance._gate import Caller, unavailable
from .governance._outcomes import StoreUnavailable

MAX_REMEMBERED = 100_000  # objects one process remembers without a governance store


def tenant_of(caller: Caller) -> str | None:
    """Who owns what a caller makes: its team, else its key; None for the master key (sees all)."""
    if caller.is_master:
        return None
    return f"team:{caller.team_id}" if caller.team_id else f"key:{caller.token}"


class ObjectHomes:
    """Who owns each object, and where it lives: in the governance store, else in this process."""

    def __init__(self, gate: Any) -> None:
        self.gate = gate
        self._local: OrderedDict[str, tuple[str, str, str, int]] = OrderedDict()  # id -> (kind, owner, place, bytes)

    async def _store(self, work: Callable[[Any], Awaitable[Any]]) -> Any:
        try:
            return await work(self.gate.store)
        except StoreUnavailable:
            raise unavailable() from None

    async def remember(self, object_id: str, kind: str, owner: str, place: str, size: int) -> None:
        if self.gate.store is None:
            self._local[object_id] = (kind, owner, place, size)
            while len(self._local) > MAX_REMEMBERED:
                self._local.popitem(last=False)
            return
        await self._store(lambda store: store.record_object(object_id, kind, owner, place, size))

    async def find(self, object_id: str, kind: str, owner: str | None) -> str | None:
        """Where an object the caller may reach lives (None: not one the gateway made, which only
        the master key may name); else a 404 as if it did not exist."""
        home = None
        if 0 < len(object_id) <= 256:
            if self.gate.store is None:
                local = self._local.get(object_id)
                home = None if local is None else local[:3]
            else:
                home = await self._store(lambda store: store.object_home(object_id))
        if home is not None and home[0] == kind and (owner is None or home[1] == owner):
            return str(home[2])
        if owner is None and home is None:
            return None
        raise GatewayError(404, f"no {kind} {object_id[:256]!r}", param=f"{kind}_id", code="not_found")

    async def owned(self, owner: str, kind: str) -> set[str]:
        if self.gate.store is None:
            return {i for i, (k, o, _, _) in self._local.items() if o == owner and k == kind}
        return set(await self._store(lambda store: store.owned_objects(owner, kind)))

    async def bytes_held(self, owner: str) -> int:
        if self.gate.store is None:
            return sum(size for _, o, _, size in self._local.values() if o == owner)
        return int(await self._store(lambda store: store.bytes_held(owner)))

    async def forget(self, object_id: str) -> None:
        if self.gate.store is None:
            self._local.pop(object_id, None)
        else:
            await self._store(lambda store: store.forget_object(object_id))
