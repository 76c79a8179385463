"""When to retry and how long to wait (pure; the clients do the sleeping)."""

from __future__ import annotations

import email.utils
import random
import secrets
import time

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
RETRY_AFTER_CAP = 60.0


def new_retry_token() -> str:
    """``opc-retry-token``: one per logical call, reused by every attempt of it (30 alphanumerics)."""
    return secrets.token_hex(15)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse ``Retry-After`` (delta seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def backoff_delay(retry_number: int, retry_after: float | None = None, rand: float | None = None) -> float:
    """Seconds to wait before retry ``retry_number`` (1 for the first retry).

    ``Retry-After`` wins, capped at RETRY_AFTER_CAP; otherwise exponential from
    BACKOFF_BASE, capped at BACKOFF_CAP, with jitter between 50% and 100% of it.
    """
    if retry_after is not None:
        return min(retry_after, RETRY_AFTER_CAP)
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (retry_number - 1))
    return ceiling * (0.5 + 0.5 * (random.random() if rand is None else rand))
