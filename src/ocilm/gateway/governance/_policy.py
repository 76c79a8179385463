"""Governance rules without I/O: key format, durations, money, prices and estimates."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from typing import Any

from ._tool_calls import calls_nano, worst_calls
from ._worst_case import MAX_ESTIMATE_NANO, nano_cost

NANO = 1_000_000_000  # nano-dollars per dollar: money is stored in whole nano-dollars
MAX_USD = 1_000_000_000  # well inside a 64-bit count of nano-dollars, with room for spend to add up
_DURATION = re.compile(r"^([1-9][0-9]{0,8})(s|m|h|d)$")  # the same pattern as ocilm_duration_seconds (migration 0007)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_KEY = re.compile(r"^sk-(k[0-9a-f]{16})-[A-Za-z0-9_-]{20,}$")


class PolicyError(ValueError):
    """A bad value for a named field (the admin API answers it as a 400)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def duration_seconds(value: Any, field: str) -> float:
    """``30s``, ``15m``, ``1h``, ``30d`` -> seconds."""
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise PolicyError(field, "expected a duration such as '30s', '15m', '1h' or '30d' (a whole number from 1 to 999999999, then s, m, h or d)")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def stored_duration_seconds(value: Any) -> float | None:
    """A budget window's length as stored, or None for none (or for a value an older version let
    in: the budget then holds with no window rather than failing every request of its key)."""
    try:
        return duration_seconds(value, "budget_duration") if value else None
    except PolicyError:
        return None


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
    """How a key is shown once made: its last four characters."""
    return f"sk-...{key[-4:]}"


@dataclass(frozen=True)
class Price:
    """USD per input and per output token, where the figures came from (the deployment's
    config, or the built-in OCI table), and USD per call of each hosted tool the operator prices
    (``model_info.<tool>_cost_per_call``)."""

    input_per_token: float
    output_per_token: float
    source: str = "config"
    per_tool_call: tuple[tuple[str, float], ...] = ()

    def nano(self, input_tokens: int, output_tokens: int, tool_calls: dict[str, int] | None = None) -> int:
        tokens = nano_cost(self.input_per_token, self.output_per_token, input_tokens, output_tokens)
        if not (tool_calls and self.per_tool_call):
            return tokens
        return min(tokens + calls_nano(self.per_tool_call, tool_calls), MAX_ESTIMATE_NANO)

    def worst_tools_nano(self, offered: set[str], most_calls: int) -> int:
        """The most a request's hosted-tool calls can cost (none priced: 0)."""
        return calls_nano(self.per_tool_call, self.worst_calls(offered, most_calls))

    def worst_calls(self, offered: set[str], most_calls: int) -> dict[str, int]:
        """The calls of that worst case: ``most_calls`` of the dearest priced tool offered."""
        return worst_calls(self.per_tool_call, offered, most_calls) if self.per_tool_call and offered and most_calls else {}
