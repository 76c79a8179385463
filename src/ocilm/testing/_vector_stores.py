"""The simulator's vector stores on ``/openai/v1`` (stores, their files and file batches, search),
as OCI documents them with OpenAI's shapes, isolated per principal as everything there is.

A store really searches what was uploaded: each file's text is cut into chunks, and a query scores
each chunk by the share of the query's words it holds. The ``file_search`` hosted tool of the
Responses API uses the same search.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

CHUNK_CHARS, CHUNK_OVERLAP = 800, 200
FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")
_WORD = re.compile(r"[A-Za-z0-9]+")


class StoreError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _chunks(text: str) -> list[str]:
    if len(text) <= CHUNK_CHARS:
        return [text] if text.strip() else []
    step = CHUNK_CHARS - CHUNK_OVERLAP
    return [text[i : i + CHUNK_CHARS] for i in range(0, len(text) - CHUNK_OVERLAP, step)]


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if len(w) > 2}


@dataclass
class StoreFile:
    meta: dict
    filename: str
    chunks: list[str]


@dataclass
class VectorStore:
    owner: str
    meta: dict
    files: dict[str, StoreFile] = field(default_factory=dict)
    batches: dict[str, dict] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        statuses = [f.meta["status"] for f in self.files.values()]
        return {**{s: statuses.count(s) for s in FILE_STATUSES}, "total": len(statuses)}

    def refreshed(self, now: int) -> dict:
        usage = sum(f.meta["usage_bytes"] for f in self.files.values())
        self.meta.update(file_counts=self.counts(), usage_bytes=usage, last_active_at=now)
        return self.meta


def page(items: list[dict], query: dict[str, str], *, default_limit: int = 20, most: int = 100) -> dict:
    """OpenAI's list: ``order`` by ``created_at`` (desc by default), ``after``/``before`` ids, ``limit``."""
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise StoreError(400, "InvalidParameter", "order: asc or desc")
    items = sorted(items, key=lambda m: (m["created_at"], m["id"]), reverse=order == "desc")
    ids = [m["id"] for m in items]
    if query.get("after"):
        items = items[ids.index(query["after"]) + 1 :] if query["after"] in ids else []
    if query.get("before"):
        ids = [m["id"] for m in items]
        items = items[: ids.index(query["before"])] if query["before"] in ids else []
    limit = int(query["limit"]) if query.get("limit", "").isdigit() else default_limit
    if not 1 <= limit <= most:
        raise StoreError(400, "InvalidParameter", f"limit: from 1 to {most}")
    chosen = items[:limit]
    return {"object": "list", "data": chosen, "first_id": chosen[0]["id"] if chosen else None,
            "last_id": chosen[-1]["id"] if chosen else None, "has_more": len(items) > limit}  # fmt: skip


class VectorStores:
    """Every principal's stores. ``text_of(file_id, owner)`` gives an uploaded file's (filename, text)."""

    def __init__(self, text_of: Any, clock: Any) -> None:
        self.text_of, self.clock = text_of, clock
        self.stores: dict[str, VectorStore] = {}
        self.lock = threading.Lock()

    def _store(self, store_id: str, owner: str) -> VectorStore:
        found = self.stores.get(store_id)
        if found is None or found.owner != owner:
            raise StoreError(404, "NotAuthorizedOrNotFound", f"No vector store found with id '{store_id}'.")
        return found

    def route(self, method: str, parts: list[str], query: dict[str, str], body: dict, owner: str) -> dict:
        """``parts``: the path after ``vector_stores``."""
        if not parts:
            if method == "POST":
                return self.create(body, owner)
            if method == "GET":
                return page([s.refreshed(int(self.clock())) for s in self.stores.values() if s.owner == owner], query)
        elif len(parts) == 1:
            store = self._store(parts[0], owner)
            if method == "GET":
                return store.refreshed(int(self.clock()))
            if method == "POST":
                for name in ("name", "metadata", "expires_after"):
                    if name in body:
                        store.meta[name] = body[name]
                return store.refreshed(int(self.clock()))
            if method == "DELETE":
                with self.lock:
                    del self.stores[parts[0]]
                return {"id": parts[0], "object": "vector_store.deleted", "deleted": True}
        elif parts[1] == "search" and len(parts) == 2 and method == "POST":
            return self.search(self._store(parts[0], owner), body)
        elif parts[1] == "files":
            return self._files(self._store(parts[0], owner), method, parts[2:], query, body, owner)
        elif parts[1] == "file_batches":
            return self._batches(self._store(parts[0], owner), method, parts[2:], query, body, owner)
        raise StoreError(404, "NotAuthorizedOrNotFound", "No such route for vector stores")

    def create(self, body: dict, owner: str) -> dict:
        unknown = sorted(set(body) - {"name", "file_ids", "description", "metadata", "expires_after", "chunking_strategy"})
        if unknown:
            raise StoreError(400, "InvalidParameter", f"Unrecognized request argument supplied: {unknown[0]}")
        now = int(self.clock())
        store_id = f"vs_{uuid.uuid4().hex[:24]}"
        meta = {"id": store_id, "object": "vector_store", "created_at": now, "name": body.get("name"),
                "description": body.get("description"), "metadata": body.get("metadata") or {}, "status": "completed",
                "expires_after": body.get("expires_after"), "expires_at": None, "last_active_at": now, "usage_bytes": 0,
                "file_counts": {}}  # fmt: skip
        store = VectorStore(owner, meta)
        for file_id in body.get("file_ids") or []:
            self._attach(store, file_id, {}, owner)
        with self.lock:
            self.stores[store_id] = store
        return store.refreshed(now)

    def _attach(self, store: VectorStore, file_id: Any, attributes: Any, owner: str) -> dict:
        if not isinstance(file_id, str):
            raise StoreError(400, "InvalidParameter", "file_id: required")
        filename, text = self.text_of(file_id, owner)  # a 404 for another principal's file
        if attributes is not None and (not isinstance(attributes, dict) or len(attributes) > 16):
            raise StoreError(400, "InvalidParameter", "attributes: at most 16 keys")
        meta = {"id": file_id, "object": "vector_store.file", "vector_store_id": store.meta["id"], "status": "completed",
                "created_at": int(self.clock()), "usage_bytes": len(text.encode()), "last_error": None,
                "attributes": attributes or {}, "chunking_strategy": {"type": "static", "static": {
                    "max_chunk_size_tokens": CHUNK_CHARS // 4, "chunk_overlap_tokens": CHUNK_OVERLAP // 4}}}  # fmt: skip
        store.files[file_id] = StoreFile(meta, filename, _chunks(text))
        return meta

    def _files(self, store: VectorStore, method: str, parts: list[str], query: dict, body: dict, owner: str) -> dict:
        if not parts and method == "POST":
            return self._attach(store, body.get("file_id"), body.get("attributes"), owner)
        if not parts and method == "GET":
            wanted = query.get("filter")
            return page([f.meta for f in store.files.values() if not wanted or f.meta["status"] == wanted], query)
        found = store.files.get(parts[0]) if parts else None
        if found is None:
            raise StoreError(404, "NotAuthorizedOrNotFound", "No file found in this vector store")
        if len(parts) == 1 and method == "GET":
            return found.meta
        if len(parts) == 1 and method == "POST":
            found.meta["attributes"] = body.get("attributes") or {}
            return found.meta
        if len(parts) == 1 and method == "DELETE":
            del store.files[parts[0]]
            return {"id": parts[0], "object": "vector_store.file.deleted", "deleted": True}
        raise StoreError(404, "NotAuthorizedOrNotFound", "No such route for vector store files")

    def _batches(self, store: VectorStore, method: str, parts: list[str], query: dict, body: dict, owner: str) -> dict:
        if not parts and method == "POST":
            entries = [{"file_id": f} for f in body.get("file_ids") or []] + list(body.get("files") or [])
            if not entries:
                raise StoreError(400, "InvalidParameter", "file_ids or files: required")
            attached = [self._attach(store, e.get("file_id"), e.get("attributes"), owner) for e in entries]
            batch_id = f"vsfb_{uuid.uuid4().hex[:24]}"
            batch = {"id": batch_id, "object": "vector_store.files_batch", "vector_store_id": store.meta["id"], "status": "completed",
                     "created_at": int(self.clock()), "file_counts": {"in_progress": 0, "completed": len(attached), "failed": 0,
                                                                      "cancelled": 0, "total": len(attached)},
                     "file_ids": [m["id"] for m in attached]}  # fmt: skip
            store.batches[batch_id] = batch
            return {k: v for k, v in batch.items() if k != "file_ids"}
        found_batch = store.batches.get(parts[0]) if parts else None
        if found_batch is None:
            raise StoreError(404, "NotAuthorizedOrNotFound", "No file batch found in this vector store")
        batch = found_batch
        public = {k: v for k, v in batch.items() if k != "file_ids"}
        if len(parts) == 1 and method == "GET":
            return public
        if len(parts) == 2 and parts[1] == "cancel" and method == "POST":
            return public  # every batch here completes at once: nothing is left to cancel
        if len(parts) == 2 and parts[1] == "files" and method == "GET":
            return page([store.files[f].meta for f in batch["file_ids"] if f in store.files], query)
        raise StoreError(404, "NotAuthorizedOrNotFound", "No such route for file batches")

    def search(self, store: VectorStore, body: dict) -> dict:
        query = body.get("query")
        queries = [query] if isinstance(query, str) else query if isinstance(query, list) else None
        if not queries or not all(isinstance(q, str) and q for q in queries):
            raise StoreError(400, "InvalidParameter", "query: required, a string or a list of strings")
        most = body.get("max_num_results", 10)
        if isinstance(most, bool) or not isinstance(most, int) or not 1 <= most <= 50:
            raise StoreError(400, "InvalidParameter", "max_num_results: from 1 to 50")
        return {"object": "vector_store.search_results.page", "search_query": queries, "data": self.hits(store, " ".join(queries), most),
                "has_more": False, "next_page": None}  # fmt: skip

    @staticmethod
    def hits(store: VectorStore, query: str, most: int) -> list[dict]:
        wanted = _words(query)
        scored = []
        for file_id, stored in store.files.items():
            for chunk in stored.chunks:
                score = len(wanted & _words(chunk)) / len(wanted) if wanted else 0.0
                if score > 0:
                    scored.append((score, file_id, stored, chunk))
        scored.sort(key=lambda s: -s[0])
        return [{"file_id": file_id, "filename": stored.filename, "score": round(score, 4), "attributes": stored.meta["attributes"],
                 "content": [{"type": "text", "text": chunk}]} for score, file_id, stored, chunk in scored[:most]]  # fmt: skip
