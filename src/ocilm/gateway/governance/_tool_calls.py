"""Hosted tools OCI runs inside a Responses request (``file_search``, ``code_interpreter``, ``mcp``,
``web_search``): how many calls of each type a reply made, what they cost where the operator
prices them, and the most a request can make, so that its budget hold covers its tools too.

Pure: no I/O. OCI's ``usage`` carries tokens only; the calls are the reply's output items.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

# The output item each hosted tool leaves in a reply, and the tool's type in a request.
CALL_ITEMS = {
    "file_search_call": "file_search",
    "code_interpreter_call": "code_interpreter",
    "mcp_call": "mcp",
    "web_search_call": "web_search",
}
HOSTED_TYPES = tuple(CALL_ITEMS.values())
PRICE_FIELDS = {f"{kind}_cost_per_call": kind for kind in HOSTED_TYPES}  # model_info: USD per call
# LiteLLM's names for these prices that ocilm reads as they are meant, and those it cannot.
PER_THOUSAND_FIELDS = {"file_search_cost_per_1k_calls": "file_search"}
UNSUPPORTED_FIELDS = {
    "code_interpreter_cost_per_session": "OCI reports code_interpreter calls, not sessions; "
                                         "use code_interpreter_cost_per_call (USD per call)",
    "search_context_cost_per_query": "OCI's web_search has no search context sizes; use web_search_cost_per_call (USD per call)",
}  # fmt: skip
DEFAULT_MAX_HOSTED_CALLS = 20
MAX_HOSTED_CALLS = 1000
MAX_COUNT = 2**31 - 1


def count_calls(output: Any) -> dict[str, int]:
    """The hosted-tool calls in a reply's output items, by tool type (only the types that occur)."""
    counts: dict[str, int] = {}
    for item in output if isinstance(output, list) else ():
        kind = CALL_ITEMS.get(str(dict.get(item, "type"))) if isinstance(item, dict) else None
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def hosted_types(tools: Any) -> set[str]:
    """The hosted tool types a request offers the model."""
    return {t["type"] for t in tools if isinstance(t, dict) and t.get("type") in HOSTED_TYPES} if isinstance(tools, list) else set()


def parse_prices(info: Mapping[str, Any], place: str, problems: list[str]) -> tuple[tuple[str, float], ...]:
    """``(tool type, USD per call)`` from a deployment's ``model_info``; a bad value or a LiteLLM
    price ocilm cannot honour is a problem named by its field (never ignored)."""
    prices: dict[str, float] = {}
    for field, (kind, divisor) in {**{f: (k, 1) for f, k in PRICE_FIELDS.items()},
                                   **{f: (k, 1000) for f, k in PER_THOUSAND_FIELDS.items()}}.items():  # fmt: skip
        value = info.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 1e6:
            problems.append(f"{place}.{field}: expected a number of US dollars from 0 to 1000000")
            continue
        if kind in prices:
            problems.append(f"{place}.{field}: {kind} is priced twice; give one of {kind}_cost_per_call or file_search_cost_per_1k_calls")
            continue
        prices[kind] = float(value) / divisor
    for field, why in UNSUPPORTED_FIELDS.items():
        if info.get(field) is not None:
            problems.append(f"{place}.{field}: not supported: {why}")
    return tuple(sorted(prices.items()))


def calls_nano(prices: Iterable[tuple[str, float]], counts: Mapping[str, int] | None) -> int:
    """What ``counts`` calls cost at ``prices``, in whole nano-dollars (an unpriced type costs 0)."""
    if not counts:
        return 0
    value = sum(per_call * min(max(int(counts.get(kind, 0)), 0), MAX_COUNT) for kind, per_call in prices) * 1_000_000_000
    return max(0, math.ceil(value)) if math.isfinite(value) else 2**62


def worst_calls(prices: Iterable[tuple[str, float]], offered: set[str], most_calls: int) -> dict[str, int]:
    """The dearest calls a request may make: ``most_calls`` of the dearest priced type it offers
    (none priced or offered: no calls)."""
    priced = [(per_call, kind) for kind, per_call in prices if kind in offered and per_call > 0]
    return {max(priced)[1]: most_calls} if priced and most_calls > 0 else {}


def as_column(counts: Mapping[str, int] | None) -> str | None:
    """The spend log's ``tool_calls`` column: ``{"file_search": 2}`` as compact JSON, or None."""
    return json.dumps(dict(sorted(counts.items())), separators=(",", ":")) if counts else None


def responses_usage(response: Any) -> dict[str, Any] | None:
    """A Responses reply's usage under chat's names, with its hosted-tool calls by type (what its
    settlement bills), or None when it reports no usage."""
    usage = dict.get(response, "usage") if isinstance(response, dict) else None
    if not isinstance(usage, dict):
        return None
    if "prompt_tokens" in usage:  # chat's names already
        found: dict[str, Any] = dict(usage)
    else:
        found = {"prompt_tokens": usage.get("input_tokens"), "completion_tokens": usage.get("output_tokens")}
    calls = count_calls(dict.get(response, "output"))
    if calls:
        found["tool_calls"] = calls
    return found
