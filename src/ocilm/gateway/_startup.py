"""Starting the gateway: the governance store (migrated, reachable) and the rate-limit counters
that suit the deployment (Redis, the SQLite file shared by workers, or one process)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ._config import GatewayConfig, GovernanceSettings
from .governance._limits import Limits, MemoryLimiter

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")

def tracing_for(enabled: bool) -> Any:
    if not enabled:
        return None
    from .observability._tracing import Tracing

    return Tracing()


def limits_for(config: GatewayConfig) -> Limits:
    if config.redis_url:
        from .governance._limits import RedisLimiter

        return Limits(RedisLimiter(config.redis_url, config.rate_limit_window_seconds), config.rate_limit_failure)
    return Limits(MemoryLimiter(config.rate_limit_window_seconds))


def _sqlite_store(config: GatewayConfig) -> bool:
    return config.governance is not None and config.governance.database_url.startswith("sqlite:///")


def store_counts_limits(config: GatewayConfig, workers: int) -> bool:
    """Several workers without Redis count in their shared SQLite file."""
    return not config.redis_url and workers > 1 and _sqlite_store(config)


def limits_refused(config: GatewayConfig, workers: int) -> str | None:
    """Why rate limits cannot be enforced exactly here, or None: counters in one process hold
    only for that process; several workers share them in their SQLite file, and replicas sharing a
    PostgreSQL store share them through Redis."""
    if config.redis_url or store_counts_limits(config, workers):
        return None
    if workers > 1:
        return (f"rate limits need general_settings.redis_url, or a sqlite:/// database_url, with --workers {workers} "
                "(each worker would count alone)")  # fmt: skip
    if config.governance is not None and config.governance.database_url.startswith(("postgresql://", "postgres://")):
        return "rate limits need general_settings.redis_url with a PostgreSQL store (its replicas would each count alone)"
    return None


async def open_store(settings: GovernanceSettings) -> Any:
    """The governance store, migrated. A database that cannot be reached stops the start with a
    message that names it without its password."""
    from .governance._outcomes import SchemaAhead
    from .governance._store import Store, StoreUnavailable

    where = where_is(settings.database_url)
    try:
        store = await Store.open(settings.database_url)
        store.synchronous_commit = settings.synchronous_commit
        if settings.auto_migrate:
            await store.upgrade()
        elif not await store.schema_is_current():
            await store.close()
            raise GatewayStartError(f"general_settings.database_url: the database at {where} has no ocilm tables or older ones; "
                                    "run 'ocilm db upgrade --config FILE' once (replicas do not migrate by themselves)")  # fmt: skip
    except StoreUnavailable as exc:
        raise GatewayStartError(f"general_settings.database_url: {exc} at {where}") from None
    except SchemaAhead as exc:
        await store.close()
        raise GatewayStartError(f"general_settings.database_url: {exc}") from None
    return store


class GatewayStartError(RuntimeError):
    """The gateway cannot start (its database is unreachable, say)."""


def where_is(url: str) -> str:
    """A database URL as scheme, user, host, port and database: never its password, wherever the
    URL carries it (``user:pass@`` or a ``?password=`` query)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username else ""
    except ValueError:
        return url.partition("://")[0] + "://..."
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"
