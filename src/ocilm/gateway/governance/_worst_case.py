"""The most a request can cost, as a function of the whole request (pure: no I/O).

A budget hold and a token-per-minute reservation must never be smaller than what OCI will
report. OCI counts as input every part of the prompt it renders: the messages, and also the tool
definitions, response schemas, documents and any other structured field; it bills ``n``
completions; reasoning models spend tokens beyond the visible answer. Every character is at most
one token (no tokenizer makes a token of less than one character), so counting characters is an
upper bound that needs no tokenizer.

Hostile numbers stop here: ``max_tokens`` and ``n`` are bounded where they enter, so that no
estimate can pass what a store's 64-bit column or Redis's integers hold.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

MAX_OUTPUT_TOKENS = 2**31 - 1  # OCI's maxTokens is a 32-bit integer
MAX_CHOICES = 128  # OpenAI's own ceiling for n
MAX_ESTIMATE_NANO = 2**62  # above every budget the admin API accepts, below what a bigint holds
FRAMING_TOKENS = 8  # per message and per tool: the role and separators a chat template adds
SCALAR_CHARS = 8  # a number, true, false or null inside a tool schema or a message
OUTPUT_LIMIT_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


class BadNumber(ValueError):
    """A request number out of range: (field, what is valid)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def _whole(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def check_numbers(params: dict[str, Any]) -> None:
    """Refuse output limits and ``n`` outside what OCI accepts, before anything is estimated."""
    for field in OUTPUT_LIMIT_FIELDS:
        value = params.get(field)
        if value is not None and not (_whole(value) and 1 <= value <= MAX_OUTPUT_TOKENS):
            raise BadNumber(field, f"expected a whole number from 1 to {MAX_OUTPUT_TOKENS}")
    n = params.get("n")
    if n is not None and not (_whole(n) and 1 <= n <= MAX_CHOICES):
        raise BadNumber("n", f"expected a whole number from 1 to {MAX_CHOICES}")


def json_chars(value: Any) -> int:
    """Characters of every string and object key in ``value``, each other scalar counted as
    ``SCALAR_CHARS``. Iterative, so no nesting depth can exhaust the stack; linear in the size."""
    total = 0
    stack = [value]
    pop, push = stack.pop, stack.extend
    while stack:
        item = pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, dict):
            for key in item:
                total += len(key) if isinstance(key, str) else SCALAR_CHARS
            push(item.values())
        elif isinstance(item, (list, tuple)):
            push(item)
        else:
            total += SCALAR_CHARS
    return total


def input_ceiling(first: Any, params: dict[str, Any]) -> int:
    """Input tokens at most: the messages (or embedding inputs) and every other structured part
    of the request that OCI renders into the prompt (tools, schemas, documents, ...)."""
    messages = len(first) if isinstance(first, list) else 1
    tools = params.get("tools")
    tool_count = len(tools) if isinstance(tools, list) else 0
    extra = sum(json_chars(v) for k, v in params.items() if k not in OUTPUT_LIMIT_FIELDS and isinstance(v, (str, dict, list)))
    return json_chars(first) + extra + FRAMING_TOKENS * (messages + tool_count + 1)


def output_limit_sent(params: dict[str, Any], max_output_tokens: int | None, default: int, door: bool) -> int:
    """The output limit one choice is called with on a deployment: what the caller asked (a door
    request's clamped to the deployment's ``max_output_tokens``, or to ``default``, since agent
    clients ask for more than OCI's on-demand cap), or the SDK's default when it asked none."""
    asked = params.get("max_completion_tokens", params.get("max_tokens", params.get("max_output_tokens")))
    if not (_whole(asked) and asked > 0):
        return max_output_tokens or default
    if door:
        return min(asked, max_output_tokens or default)
    return min(asked, max_output_tokens) if max_output_tokens else asked


def output_ceiling(params: dict[str, Any], max_output_tokens: int | None, default: int, door: bool, reasoning_allowance: int) -> int:
    """Output tokens at most: the limit each of the ``n`` choices is called with, plus, for a
    reasoning model, its allowance for thinking (OCI does not document that ``max_tokens`` bounds
    reasoning tokens, which it bills as output, so the hold assumes it may not)."""
    per_choice = output_limit_sent(params, max_output_tokens, default, door) + reasoning_allowance
    n = params.get("n")
    choices = n if _whole(n) and n > 0 else 1
    return per_choice * choices


def nano_cost(input_per_token: float, output_per_token: float, input_tokens: int, output_tokens: int) -> int:
    """A cost in whole nano-dollars, never past ``MAX_ESTIMATE_NANO`` (a hostile count or price
    cannot overflow a column or a float)."""
    value = (input_tokens * input_per_token + output_tokens * output_per_token) * 1_000_000_000
    if not math.isfinite(value) or value >= MAX_ESTIMATE_NANO:
        return MAX_ESTIMATE_NANO
    return max(0, math.ceil(value))
