"""Dropping pooled upstream connections that OCI (or a proxy) has closed while they sat idle.

httpx notices a closed idle connection only when it next looks for one to reuse, so after a
quiet spell the gateway would hold sockets in CLOSE_WAIT until traffic returned. A small
background task looks every few seconds instead.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("ocilm.gateway")
PRUNE_EVERY = 2.0


def httpx_client_of(client: Any) -> Any:
    """The ``httpx.AsyncClient`` an ``ocilm.AsyncClient`` sends with, or None (aiohttp, or none yet)."""
    from .._transport import HttpxTransport

    transport = client._transport
    return transport.http if isinstance(transport, HttpxTransport) else None


def _pool_of(http: Any) -> Any:
    transport = getattr(http, "_transport", None)  # httpx.AsyncHTTPTransport
    return getattr(transport, "_pool", None)  # httpcore.AsyncConnectionPool, or None for other transports


async def close_dropped_connections(http: Any) -> int:
    """Close each idle pooled connection whose peer has closed it; return how many."""
    pool = _pool_of(http)
    if pool is None:
        return 0
    dropped = [c for c in list(pool.connections) if c.is_idle() and c.has_expired()]
    for connection in dropped:
        await connection.aclose()  # marks it closed first: the pool will not hand it out again
    return len(dropped)


async def prune_forever(get_http: Any, every: float = PRUNE_EVERY) -> None:
    while True:
        await asyncio.sleep(every)
        http = get_http()
        if http is None:
            continue
        try:
            await close_dropped_connections(http)
        except Exception:  # never let housekeeping take the gateway down
            log.debug("pruning idle upstream connections failed", exc_info=True)
