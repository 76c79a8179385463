"""Where the translated Responses door keeps conversations for ``previous_response_id``: the
governance store when there is one (every replica, every restart), else this process's memory,
bounded by size. Either way a conversation is readable only by the team (or teamless key) that
made it."""

from __future__ import annotations

import json
from typing import Any

from ..doors import responses as openai_responses
from ..doors._common import json_size
from .governance._gate import Gate, unavailable
from .governance._outcomes import StoreUnavailable

RETENTION_SECONDS = 30 * 86400  # as OCI's own stored responses (720 h at most)
MAX_CONVERSATION_CHARS = 8 * 1024 * 1024
# what one tenant (a team, or a key without one) keeps at most; past it, its own oldest go first
MAX_OWNER_CHARS = 256 * 1024 * 1024
MAX_OWNER_CONVERSATIONS = 10_000
MEMORY_OWNER_CHARS = 16 * 1024 * 1024  # without a store: of the process's 64 MiB, so no tenant evicts the others


class Conversations:
    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.memory = openai_responses.ResponseStore(max_entry_chars=MAX_CONVERSATION_CHARS, max_owner_chars=MEMORY_OWNER_CHARS)

    async def get(self, response_id: Any, owner: str) -> list[dict] | None:
        if not isinstance(response_id, str) or not 0 < len(response_id) <= 128:
            return None
        if self.gate.store is None:
            return self.memory.get(response_id, owner)
        try:
            found = await self.gate.store.load_conversation(response_id, owner)
        except StoreUnavailable:
            raise unavailable() from None
        return None if found is None else json.loads(found)  # type: ignore[no-any-return]

    async def put(self, response_id: str, owner: str, conversation: list[dict]) -> None:
        if self.gate.store is None:
            self.memory.put(response_id, owner, conversation)
            return
        if json_size(conversation) > MAX_CONVERSATION_CHARS:
            return  # too large to keep: a later previous_response_id finds nothing, and says so
        try:
            await self.gate.store.save_conversation(response_id, owner, json.dumps(conversation), RETENTION_SECONDS,
                                                    max_owner_chars=MAX_OWNER_CHARS, max_owner_count=MAX_OWNER_CONVERSATIONS)  # fmt: skip
        except StoreUnavailable:
            pass  # the reply went out; the conversation is not kept, and the next turn is told so (404)
