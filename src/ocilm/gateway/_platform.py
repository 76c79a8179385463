"""OCI's agent platform through the gateway, one tenant at a time: files (``/v1/files`` and
``/files``), forwarded to an ``/openai/v1`` deployment with its credentials.

Every object the gateway makes belongs to the team of the key that made it (the key itself when it
has no team), recorded in the store (else in this process). Another tenant meets a 404 for it on
every route, and nothing reaches OCI for an id the caller does not own; lists show the caller's
objects only, paginated after filtering; the master key sees everything. Every call passes the
gate as a model call does (``Metered.side_call``: the key may use the deployment's model group,
rate limits, a spend-log row); an upload is bounded before its body is read whole, and a tenant's
bytes held are bounded by ``general_settings.file_storage_quota_mb``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._errors import NotFoundError, OCIError
from ._config import Deployment
from ._errors import GatewayError
from ._http import ClientGone
from ._metering import Metered, SideTarget
from ._routing import gateway_error_for
from .governance._gate import Caller, unavailable
from .governance._outcomes import StoreUnavailable

Handler = Callable[[Request], Awaitable[Response]]
MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # a file the gateway passes on, at most (read whole: IAM signs its digest)
MAX_REMEMBERED = 100_000  # objects one process remembers without a governance store
LIST_PAGE = 10_000  # OCI's largest page of files: a tenant's list is filtered from it


def tenant_of(caller: Caller) -> str | None:
    """Who owns what a caller makes: its team, else its key; None for the master key (sees all)."""
    if caller.is_master:
        return None
    return f"team:{caller.team_id}" if caller.team_id else f"key:{caller.token}"


class ObjectHomes:
    """Who owns each object, and where it lives: in the governance store, else in this process."""

    def __init__(self, gate: Any) -> None:
        self.gate = gate
        self._local: OrderedDict[str, tuple[str, str, str, int]] = OrderedDict()  # id -> (kind, owner, place, bytes)

    async def _store(self, work: Callable[[Any], Awaitable[Any]]) -> Any:
        try:
            return await work(self.gate.store)
        except StoreUnavailable:
            raise unavailable() from None

    async def remember(self, object_id: str, kind: str, owner: str, place: str, size: int) -> None:
        if self.gate.store is None:
            self._local[object_id] = (kind, owner, place, size)
            while len(self._local) > MAX_REMEMBERED:
                self._local.popitem(last=False)
            return
        await self._store(lambda store: store.record_object(object_id, kind, owner, place, size))

    async def find(self, object_id: str, kind: str, owner: str | None) -> str | None:
        """Where an object the caller may reach lives (None: not one the gateway made, which only
        the master key may name); else a 404 as if it did not exist."""
        home = None
        if 0 < len(object_id) <= 256:
            if self.gate.store is None:
                local = self._local.get(object_id)
                home = None if local is None else local[:3]
            else:
                home = await self._store(lambda store: store.object_home(object_id))
        if home is not None and home[0] == kind and (owner is None or home[1] == owner):
            return str(home[2])
        if owner is None and home is None:
            return None
        raise GatewayError(404, f"no {kind} {object_id[:256]!r}", param=f"{kind}_id", code="not_found")

    async def owned(self, owner: str, kind: str) -> set[str]:
        if self.gate.store is None:
            return {i for i, (k, o, _, _) in self._local.items() if o == owner and k == kind}
        return set(await self._store(lambda store: store.owned_objects(owner, kind)))

    async def bytes_held(self, owner: str) -> int:
        if self.gate.store is None:
            return sum(size for _, o, _, size in self._local.values() if o == owner)
        return int(await self._store(lambda store: store.bytes_held(owner)))

    async def forget(self, object_id: str) -> None:
        if self.gate.store is None:
            self._local.pop(object_id, None)
        else:
            await self._store(lambda store: store.forget_object(object_id))


def platform_routes(router: Any, guarded: Callable[..., Handler], metered: Metered, quota_bytes: int | None = None) -> list[Route]:
    homes = ObjectHomes(metered.gate)

    def deployment_for(request: Request, asked: Any = None) -> Deployment:
        """The ``/openai/v1`` deployment that serves the platform for this request: the model group
        ``target_model_names`` names (LiteLLM's managed-files field), else the first one configured."""
        name = asked if asked is not None else request.query_params.get("target_model_names")
        if name is not None:
            group = router.deployments(str(name).split(",")[0].strip())
            found = next((d for d in group if d.api_mode == "openai"), None)
            if found is None:
                raise GatewayError(400, f"target_model_names: model {name!r} has no /openai/v1 deployment", param="target_model_names")
            return found  # type: ignore[no-any-return]
        for group in router.config.deployments.values():
            for deployment in group:
                if deployment.api_mode == "openai":
                    return deployment  # type: ignore[no-any-return]
        raise GatewayError(404, "files need a deployment served through OCI's /openai/v1 (oci_api_key, or oci_api_mode: openai)",
                           code="not_found")  # fmt: skip

    def placed(place: str | None, request: Request) -> Deployment:
        if place is not None:
            for group in router.config.deployments.values():
                for deployment in group:
                    if deployment.place == place:
                        return deployment  # type: ignore[no-any-return]
        return deployment_for(request)

    async def forward(request: Request, route: str, deployment: Deployment, method: str, path: str, body: bytes = b"",
                      content_type: str | None = None, query: str = "") -> Any:  # fmt: skip
        caller: Caller = request.state.caller
        allowed = not caller.models or deployment.model_name in caller.models

        async def call() -> Any:
            return await metered.router.client.openai_resource(method, path, body, content_type, query, **deployment.params)

        try:
            reply, headers = await metered.side_call(request, route, deployment.model_name, call, target=SideTarget(deployment.model),
                                                     allowed=allowed)  # fmt: skip
        except NotFoundError:
            raise GatewayError(404, f"no such object at OCI ({path.split('/')[0]})", code="not_found") from None
        except OCIError as exc:
            raise gateway_error_for(exc) from None
        return reply, headers

    async def upload(request: Request) -> Response:
        caller: Caller = request.state.caller
        owner = tenant_of(caller)
        length = request.headers.get("content-length")
        if not length or not length.isdigit():
            raise GatewayError(411, "content-length: an upload says its size first", param="content-length")
        if int(length) > MAX_UPLOAD_BYTES:  # refused before the body is read
            raise GatewayError(413, f"file: at most {MAX_UPLOAD_BYTES} bytes an upload through this gateway", param="file")
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise GatewayError(415, "content-type: a file is uploaded as multipart/form-data", param="content-type")
        if owner is not None and quota_bytes is not None and await homes.bytes_held(owner) + int(length) > quota_bytes:
            raise GatewayError(429, f"file storage quota: this tenant may hold at most {quota_bytes} bytes of files",
                               kind="rate_limit_error", code="storage_quota_exceeded")  # fmt: skip
        body = bytearray()
        try:
            async for part in request.stream():
                body += part
                if len(body) > int(length):
                    raise GatewayError(400, "content-length: the body is longer than it said", param="content-length")
        except ClientDisconnect:
            raise ClientGone from None
        deployment = deployment_for(request)
        reply, headers = await forward(request, "files.create", deployment, "POST", "files", bytes(body), content_type)
        made = reply.json()
        if isinstance(made, dict) and isinstance(made.get("id"), str):
            await homes.remember(made["id"], "file", owner or "master", deployment.place, int(made.get("bytes") or len(body)))
        return JSONResponse(made, headers=headers)

    async def listing(request: Request) -> Response:
        caller: Caller = request.state.caller
        owner = tenant_of(caller)
        query = request.query_params
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise GatewayError(400, "order: expected asc or desc", param="order")
        limit_text = query.get("limit", str(LIST_PAGE))
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= LIST_PAGE:
            raise GatewayError(400, f"limit: expected a whole number from 1 to {LIST_PAGE}", param="limit")
        upstream = f"limit={LIST_PAGE}&order={order}" + (f"&purpose={query['purpose']}" if query.get("purpose") else "")
        reply, headers = await forward(request, "files.list", deployment_for(request), "GET", "files", query=upstream)
        data = list((reply.json() or {}).get("data") or [])
        if owner is not None:  # a tenant's own files only, paginated after filtering
            mine = await homes.owned(owner, "file")
            data = [item for item in data if isinstance(item, dict) and item.get("id") in mine]
        after = query.get("after")
        if after:
            ids = [item.get("id") for item in data]
            data = data[ids.index(after) + 1 :] if after in ids else []
        page = data[: int(limit_text)]
        return JSONResponse({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                             "last_id": page[-1]["id"] if page else None, "has_more": len(data) > len(page)}, headers=headers)  # fmt: skip

    async def one(request: Request, what: str) -> Response:
        caller: Caller = request.state.caller
        file_id = request.path_params["file_id"]
        place = await homes.find(file_id, "file", tenant_of(caller))  # a 404 before anything reaches OCI
        deployment = placed(place, request)
        suffix = "/content" if what == "content" else ""
        reply, headers = await forward(request, f"files.{what}", deployment, "DELETE" if what == "delete" else "GET", f"files/{file_id}{suffix}")
        if what == "delete":
            await homes.forget(file_id)
        if what == "content":
            return Response(reply.body, media_type=reply.content_type, headers=headers)
        return JSONResponse(reply.json(), headers=headers)

    async def retrieve(request: Request) -> Response:
        return await one(request, "retrieve")

    async def delete(request: Request) -> Response:
        return await one(request, "delete")

    async def content(request: Request) -> Response:
        return await one(request, "content")

    routes = []
    for prefix in ("/v1", ""):
        routes += [
            Route(f"{prefix}/files", guarded(upload), methods=["POST"]),
            Route(f"{prefix}/files", guarded(listing), methods=["GET"]),
            Route(f"{prefix}/files/{{file_id}}", guarded(retrieve), methods=["GET"]),
            Route(f"{prefix}/files/{{file_id}}", guarded(delete), methods=["DELETE"]),
            Route(f"{prefix}/files/{{file_id}}/content", guarded(content), methods=["GET"]),
        ]
    return routes

