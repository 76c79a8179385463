"""Responses compaction (``POST /v1/responses/compact``): a long conversation summarised by the
model into one opaque ``compaction`` item, which a later request sends back in ``input``.

The item's content is sealed, not merely encoded: Fernet (AES-128-CBC with an HMAC-SHA256 over the
whole token, from ``cryptography``) under a key derived with HKDF from the gateway's master key,
so every replica opens what any replica sealed, and nobody without that key can read it, forge it
or alter it (either is a 400 naming the item). A sealed item names the tenant that made it: a
team (or a key without one) opens only its own.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from typing import Any

from ._errors import GatewayError

log = logging.getLogger("ocilm.gateway")
PREFIX = "ocilm-compaction-1:"
SUMMARY_PROMPT = (
    "Compact this conversation: write a summary that lets it continue without the messages above. Keep the user's goals and "
    "constraints, decisions made, facts and names established, files and commands involved, tool results that still matter, "
    "and what remains to do. Reply with the summary only."
)
MAX_SUMMARY_TOKENS = 2000


class Sealer:
    """Seals and opens compaction items. Without a master key (an open gateway on loopback) the
    key is drawn per process: its items do not outlive it."""

    def __init__(self, secret: str | None) -> None:
        from cryptography.fernet import Fernet
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        if secret is None:
            material = os.urandom(32)
        else:
            material = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"ocilm", info=b"responses compaction v1").derive(secret.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(material))

    def seal(self, owner: str, model: str, summary: str) -> str:
        payload = json.dumps({"owner": owner, "model": model, "summary": summary}, separators=(",", ":")).encode()
        return PREFIX + self._fernet.encrypt(payload).decode()

    def open(self, sealed: Any, owner: str, where: str) -> str:
        """The summary a sealed item carries, for its own tenant; else a 400 naming the item."""
        from cryptography.fernet import InvalidToken

        refused = GatewayError(400, f"{where}: not a compaction item this gateway made for this key or team (altered, forged, "
                                    "another tenant's, or sealed under another master key)",
                               param=where, code="invalid_compaction")  # fmt: skip
        if not isinstance(sealed, str) or not sealed.startswith(PREFIX):
            raise refused
        try:
            payload = json.loads(self._fernet.decrypt(sealed[len(PREFIX):].encode()))
        except (InvalidToken, ValueError):
            raise refused from None
        if not isinstance(payload, dict) or payload.get("owner") != owner or not isinstance(payload.get("summary"), str):
            raise refused
        return payload["summary"]


def summary_message(summary: str) -> dict[str, Any]:
    """What a compaction item becomes for the model: the summary, as context it is told about."""
    return {"role": "user", "content": f"(A summary of the earlier conversation, which was compacted.)\n{summary}"}


def expand(items: Any, sealer: Sealer, owner: str) -> Any:
    """``input`` with each ``compaction`` item replaced by the summary it seals (checked first)."""
    if not isinstance(items, list) or not any(isinstance(i, dict) and i.get("type") == "compaction" for i in items):
        return items
    out = []
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("type") == "compaction":
            out.append(summary_message(sealer.open(item.get("encrypted_content"), owner, f"input[{index}].encrypted_content")))
        else:
            out.append(item)
    return out


def compaction_object(response_id: str, created: int, sealed: str, usage: dict[str, Any] | None) -> dict[str, Any]:
    """OpenAI's ``response.compaction``: its output ends with the sealed ``compaction`` item."""
    return {"id": response_id, "object": "response.compaction", "created_at": created,
            "output": [{"type": "compaction", "id": response_id.replace("resp_", "cmp_", 1), "encrypted_content": sealed}],
            "usage": usage}  # fmt: skip
