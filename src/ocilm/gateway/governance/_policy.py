"""Governance rules without I/O: key format, durations, money, prices and estimates."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from typing import Any

NANO = 1_000_000_000  # nano-dollars per dollar: money is stored in whole nano-dollars
MAX_USD = 1_000_000_000  # well inside a 64-bit count of nano-dollars, with room for spend to add up
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_KEY = re.compile(r"^sk-(k[0-9a-f]{16})-[A-Za-z0-9_-]{20,}$")


class PolicyError(ValueError):
    """A bad value for a named field (the admin API answers it as a 400)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def duration_seconds(value: Any, field: str) -> float:
    """``30s``, ``15m``, ``1h``, ``30d`` -> seconds."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) == 0:
        raise PolicyError(field, "expected a duration such as '30s', '15m', '1h' or '30d'")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def to_nano(value: Any, field: str) -> int | None:
    """A USD amount from the API (None: no limit) as whole nano-dollars."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= MAX_USD:
        raise PolicyError(field, f"expected a number of US dollars from 0 to {MAX_USD:,}, or null for no limit")
    return round(value * NANO)


def to_usd(nano: int | None) -> float | None:
    return None if nano is None else nano / NANO


def new_key(token: str | None = None) -> tuple[str, str]:
    """A new secret key and its public id (``token``, new unless given): ``sk-<token>-<secret>``."""
    token = token or "k" + secrets.token_hex(8)
    return f"sk-{token}-{secrets.token_urlsafe(32)}", token


def token_of(key: str) -> str | None:
    """The public id inside a virtual key, or None if ``key`` is not one."""
    match = _KEY.match(key)
    return match.group(1) if match else None


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def masked(key: str) -> str:
    return f"sk-...{key[-4:]}"


@dataclass(frozen=True)
class Price:
    """USD per input and per output token, and where the figures came from (the deployment's
    config, or the built-in OCI table)."""

    input_per_token: float
    output_per_token: float
    source: str = "config"

    def nano(self, input_tokens: int, output_tokens: int) -> int:
        return math.ceil((input_tokens * self.input_per_token + output_tokens * self.output_per_token) * NANO)


def text_chars(value: Any) -> int:
    """Characters of every string in a request body part (messages, input): an upper bound on
    its tokens, since no tokenizer makes a token of less than one character."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(text_chars(v) for v in value.values())
    if isinstance(value, list):
        return sum(text_chars(v) for v in value)
    return 0


def input_token_ceiling(messages: Any) -> int:
    """At most this many input tokens: every character a token, plus each message's framing."""
    count = len(messages) if isinstance(messages, list) else 1
    return text_chars(messages) + 8 * count + 8
