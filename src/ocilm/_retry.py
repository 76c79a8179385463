"""When to retry and how long to wait (pure; the clients do the sleeping)."""

from __future__ import annotations

import contextvars
import email.utils
import random
import secrets
import time
from collections.abc import Callable

from ._errors import APIConnectionError, OCIError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

# Told of each retry the clients are about to make, with the error that caused it (the gateway
# counts them per request); unset, retries go unreported.
retry_listener: contextvars.ContextVar[Callable[[OCIError], None] | None] = contextvars.ContextVar("ocilm_retry_listener", default=None)


# Retries per error class for the calls made in this context (LiteLLM's retry_policy: the
# gateway's router sets it around a model's last deployment); unset, max_retries applies.
retry_counts: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar("ocilm_retry_counts", default=None)


def error_class_key(err: OCIError) -> str:
    """LiteLLM's name for an error's class in ``retry_policy`` and ``allowed_fails_policy``."""
    from ._errors import (
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        NotFoundError,
        RateLimitError,
        ServiceUnavailableError,
    )

    if isinstance(err, RateLimitError):
        return "RateLimitError"
    if isinstance(err, APITimeoutError):
        return "TimeoutError"
    if isinstance(err, ServiceUnavailableError):
        return "ServiceUnavailableError"
    if isinstance(err, AuthenticationError):
        return "AuthenticationError"
    if isinstance(err, NotFoundError):
        return "NotFoundError"
    if isinstance(err, BadRequestError):
        text = err.message.lower()
        return "ContentPolicyViolationError" if "content policy" in text or "content filter" in text else "BadRequestError"
    if err.status_code is not None and err.status_code >= 500:
        return "InternalServerError"
    return "Default"


def note_retry(err: OCIError) -> None:
    listener = retry_listener.get()
    if listener is not None:
        listener(err)
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


class RetryPolicy:
    """The retry decisions of one logical call, fed each failed attempt's error (sans-IO).

    ``next_delay(err)`` answers how long to wait before the next attempt, or re-raises
    ``err`` when the call is over: the error is not retryable, the attempts are used up, or
    the wait would end past ``deadline`` (a ``time.monotonic()`` value). The sync and async
    clients drive it, each with its own way of sending and sleeping.
    """

    def __init__(self, max_retries: int, deadline: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_retries = max_retries
        self.deadline = deadline
        self.clock = clock
        self.retry_token = new_retry_token()
        self.retries = 0

    def next_delay(self, err: OCIError) -> float:
        counts = retry_counts.get()
        limit = None
        if counts:
            key = error_class_key(err)
            limit = counts.get(f"{key}Retries", counts.get("DefaultRetries"))
        if limit is not None:  # the policy's count for this class of error (it may retry what is not retried by default)
            if self.retries >= limit or (err.status_code is None and not retryable(err)):
                raise err
        elif not retryable(err) or self.retries >= self.max_retries:
            raise err
        delay = backoff_delay(self.retries + 1, err.retry_after)
        if self.deadline is not None and self.clock() + delay >= self.deadline:
            raise err
        self.retries += 1
        return delay


def retryable(err: OCIError) -> bool:
    """429, 5xx but 501, and failures to connect or to get a reply in time; not local faults."""
    if isinstance(err, APIConnectionError):
        return err.retryable
    return err.status_code in RETRY_STATUSES
