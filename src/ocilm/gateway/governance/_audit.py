"""The audit trail's hash chain, pure: each entry's digest covers its own fields and the digest of
the entry before it, so a changed, removed or reordered row breaks the chain where it happened.

``digest(previous, entry)`` is SHA-256 over the previous digest and the entry's canonical JSON
(sorted keys, no spaces); the first entry's previous digest is ``GENESIS``. ``verify`` walks the
rows in sequence order and names the first that does not fit. Secrets never enter an entry:
``scrubbed`` drops every field that could hold one before it is recorded."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
SECRET_FIELDS = frozenset({"key", "key_hash", "previous_hash", "master_key", "password", "client_secret", "authentication_token",
                           "api_key", "token_secret"})  # fmt: skip
FIELDS = ("seq", "at", "actor", "action", "target", "before", "after")


def scrubbed(value: Any) -> Any:
    """``value`` with every secret-bearing field left out, at any depth."""
    if isinstance(value, Mapping):
        return {k: scrubbed(v) for k, v in value.items() if k not in SECRET_FIELDS}
    if isinstance(value, list):
        return [scrubbed(v) for v in value]
    return value


def canonical(entry: Mapping[str, Any]) -> str:
    return json.dumps({f: entry.get(f) for f in FIELDS}, sort_keys=True, separators=(",", ":"), default=str)


def digest(previous: str, entry: Mapping[str, Any]) -> str:
    return hashlib.sha256((previous + canonical(entry)).encode()).hexdigest()


@dataclass(frozen=True)
class Broken:
    """Where the chain breaks: the row's sequence number and what is wrong with it."""

    seq: int
    problem: str

    def __str__(self) -> str:
        return f"audit entry {self.seq}: {self.problem}"


def verify(rows: Iterable[Mapping[str, Any]]) -> tuple[int, Broken | None]:
    """(entries checked, the first break or None). ``rows`` in ascending ``seq``, each with its
    fields, ``previous`` (the digest it was chained to) and ``digest``."""
    previous, expected_seq, count = GENESIS, 1, 0
    for row in rows:
        count += 1
        seq = int(row["seq"])
        if seq != expected_seq:
            what = f"entries {expected_seq} to {seq - 1} are missing" if seq > expected_seq else "is out of order"
            return count, Broken(seq, what)
        if row["previous"] != previous:
            return count, Broken(seq, "does not follow the entry before it (removed, reordered or rewritten)")
        if digest(previous, row) != row["digest"]:
            return count, Broken(seq, "was changed after it was written (its digest does not match its contents)")
        previous, expected_seq = row["digest"], seq + 1
    return count, None
