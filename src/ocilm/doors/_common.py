"""What the Responses and Messages doors share: ids, usage and finish-reason mapping, SSE frames."""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
MAX_TOOLS = 1024  # tools one request may define (a coding agent with many MCP servers sends a few hundred)


class DoorError(Exception):
    """A request a door cannot take: each door answers it in its own error envelope."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status


def json_size(value: Any) -> int:
    """Characters of ``value`` as compact JSON (what a stored conversation costs in memory, about)."""
    return len(_dumps(value))


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def safe_tool_id(raw: Any, prefix: str, seed: str) -> str:
    """A tool-call id the client can send back verbatim: upstream's when usable (characters other
    than letters, digits, ``_`` and ``-`` replaced, deterministically), else a new one."""
    if isinstance(raw, str) and raw:
        return _UNSAFE.sub("_", raw)[:64]
    return f"{prefix}_{seed}"


encode_text = json.encoder.encode_basestring  # type: ignore[attr-defined]
"""A str as a JSON string literal (the fast path for text deltas, which are most events)."""


def sse(event: str, payload: dict) -> bytes:
    """One server-sent event with its ``event:`` line (both SDKs and Claude Code dispatch on it)."""
    return b"event: " + event.encode() + b"\ndata: " + _dumps(payload).encode("utf-8") + b"\n\n"


def chat_usage(usage: Any) -> tuple[int, int, int, int]:
    """(prompt, cached, completion, reasoning) tokens of a chat usage object, as integers."""
    if not isinstance(usage, dict):
        return 0, 0, 0, 0
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    reasoning = int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    return prompt, cached, completion, reasoning


def read_chunk(chunk: dict) -> tuple[Any, dict | None, Any, str | None]:
    """(usage, delta, finish_reason, plain text) of a chat chunk's first choice, read from its raw
    dicts (``dict.get``: no response objects are made). ``plain text`` is the delta's text when
    that is all it carries and the choice does not finish: most chunks, sent on a fast path."""
    usage = dict.get(chunk, "usage")
    for choice in dict.get(chunk, "choices") or ():
        if dict.get(choice, "index", 0) == 0:
            delta = dict.get(choice, "delta") or {}
            finish = dict.get(choice, "finish_reason")
            text = dict.get(delta, "content")
            plain = text if text and not finish and len(delta) <= 2 and dict.get(delta, "tool_calls") is None else None
            return usage, delta, finish, plain
    return usage, None, None, None


def json_arguments(text: str) -> dict:
    """Tool arguments as an object; text that is not a JSON object becomes ``{}``."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def text_of(content: Any) -> str:
    """Text of a content value that is a string or a list of typed text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") in ("text", "input_text", "output_text"))
    return ""


def estimate_tokens(text: str) -> int:
    """A local token estimate (OCI offers no tokenizer endpoint): about four characters a token."""
    return max(1, (len(text) + 3) // 4) if text else 0
