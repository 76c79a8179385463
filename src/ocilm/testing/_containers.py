"""The simulator's containers on ``/openai/v1`` (the sandboxes ``code_interpreter`` runs in), as OCI
documents them with OpenAI's shapes: create, list, retrieve, delete, and their files (uploaded as
multipart, or copied from a file by ``file_id``), isolated per principal. ``code_interpreter`` with
``{"type": "auto"}`` makes one on its own, as OCI does."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from ._vector_stores import StoreError, page

MEMORY_LIMITS = ("1g", "4g", "16g", "64g")


@dataclass
class Container:
    owner: str
    meta: dict
    files: dict[str, tuple[dict, bytes]] = field(default_factory=dict)


class Containers:
    """Every principal's containers. ``file_of(file_id, owner)`` gives an uploaded file's (filename, bytes)."""

    def __init__(self, file_of: Any, clock: Any) -> None:
        self.file_of, self.clock = file_of, clock
        self.containers: dict[str, Container] = {}
        self.lock = threading.Lock()

    def _container(self, container_id: Any, owner: str) -> Container:
        found = self.containers.get(container_id) if isinstance(container_id, str) else None
        if found is None or found.owner != owner:
            raise StoreError(404, "NotAuthorizedOrNotFound", f"No container found with id '{container_id}'.")
        return found

    def create(self, body: dict, owner: str) -> dict:
        for refused in ("skills", "network_policy"):
            if refused in body:
                raise StoreError(400, "InvalidParameter", f"{refused}: not supported on OCI")
        unknown = sorted(set(body) - {"name", "expires_after", "file_ids", "memory_limit"})
        if unknown:
            raise StoreError(400, "InvalidParameter", f"Unrecognized request argument supplied: {unknown[0]}")
        if not isinstance(body.get("name"), str) or not body["name"]:
            raise StoreError(400, "InvalidParameter", "name: required")
        memory = body.get("memory_limit", "1g")
        if memory not in MEMORY_LIMITS:
            raise StoreError(400, "InvalidParameter", f"memory_limit: one of {', '.join(MEMORY_LIMITS)}")
        now = int(self.clock())
        container_id = f"cntr_{uuid.uuid4().hex[:32]}"
        meta = {"id": container_id, "object": "container", "created_at": now, "status": "running", "name": body["name"],
                "expires_after": body.get("expires_after") or {"anchor": "last_active_at", "minutes": 20}, "last_active_at": now,
                "memory_limit": memory}  # fmt: skip
        container = Container(owner, meta)
        for file_id in body.get("file_ids") or []:
            self._copy(container, file_id, owner)
        with self.lock:
            self.containers[container_id] = container
        return meta

    def _copy(self, container: Container, file_id: Any, owner: str) -> dict:
        filename, content = self.file_of(file_id, owner)  # a 404 for another principal's file
        return self._add(container, filename, content)

    def _add(self, container: Container, filename: str, content: bytes, source: str = "user") -> dict:
        file_id = f"cfile_{uuid.uuid4().hex[:32]}"
        meta = {"id": file_id, "object": "container.file", "container_id": container.meta["id"], "created_at": int(self.clock()),
                "bytes": len(content), "path": f"/mnt/data/{filename}", "source": source}  # fmt: skip
        container.files[file_id] = (meta, content)
        return meta

    def route(self, method: str, parts: list[str], query: dict[str, str], body: dict, upload: tuple[str, bytes] | None, owner: str) -> Any:
        """``parts``: the path after ``containers``; ``upload``: a multipart file part, if any."""
        if not parts:
            if method == "POST":
                return self.create(body, owner)
            if method == "GET":
                return page([c.meta for c in self.containers.values() if c.owner == owner], query)
        container = self._container(parts[0], owner)
        if len(parts) == 1:
            if method == "GET":
                return container.meta
            if method == "DELETE":
                with self.lock:
                    del self.containers[parts[0]]
                return {"id": parts[0], "object": "container.deleted", "deleted": True}
        elif parts[1] == "files":
            if len(parts) == 2 and method == "POST":
                if upload is not None:
                    return self._add(container, *upload)
                return self._copy(container, body.get("file_id"), owner)
            if len(parts) == 2 and method == "GET":
                return page([meta for meta, _ in container.files.values()], query)
            found = container.files.get(parts[2]) if len(parts) >= 3 else None
            if found is None:
                raise StoreError(404, "NotAuthorizedOrNotFound", "No such file in this container")
            if len(parts) == 3 and method == "GET":
                return found[0]
            if len(parts) == 3 and method == "DELETE":
                del container.files[parts[2]]
                return {"id": parts[2], "object": "container.file.deleted", "deleted": True}
            if len(parts) == 4 and parts[3] == "content" and method == "GET":
                return found[1]
        raise StoreError(404, "NotAuthorizedOrNotFound", "No such route for containers")

    def for_code(self, tool: dict, owner: str) -> Container:
        """The container a ``code_interpreter`` tool runs in: the one it names, or (``{"type":
        "auto"}``) a new one made for this request, as OCI makes it."""
        spec = tool.get("container")
        if isinstance(spec, str):
            return self._container(spec, owner)
        if not isinstance(spec, dict) or spec.get("type") != "auto":
            raise StoreError(400, "InvalidParameter", "tools[].container: a container id, or {\"type\": \"auto\"}")
        made = self.create({"name": "code interpreter (auto)", "file_ids": spec.get("file_ids") or []}, owner)
        return self.containers[made["id"]]
