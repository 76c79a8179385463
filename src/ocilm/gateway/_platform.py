"""OCI's agent platform through the gateway, one tenant at a time: files (``/v1/files`` and
``/files``), forwarded to an ``/openai/v1`` deployment with its credentials.

Every object the gateway makes belongs to the team of the key that made it (the key itself when it
has no team), recorded in the store (else in this process). Another tenant meets a 404 for it on
every route, and nothing reaches OCI for an id the caller does not own; lists show the caller's
objects only, paginated after filtering; the master key sees everything. Every call passes the
gate as a model call does (``Metered.side_call``: the key may use the deployment's model group,
rate limits, a spend-log row); an upload is bounded before any of it is read, then spooled (memory
up to a buffer, the rest on disk) and sent on in pieces, and a tenant's bytes held are bounded by
``general_settings.file_storage_quota_mb``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .._body import BodyLengthError, SpooledBody
from .._errors import NotFoundError, OCIError
from ._config import Deployment
from ._errors import GatewayError
from ._http import ClientGone, json_body
from ._metering import Metered, SideTarget
from ._ownership import ObjectHomes, tenant_of
from ._routing import gateway_error_for
from .governance._gate import Caller

Handler = Callable[[Request], Awaitable[Response]]
MAX_UPLOAD_BYTES = 512 * 1024 * 1024  # a file the gateway passes on, at most (OpenAI's cap; OCI states none)
LIST_PAGE = 10_000  # OCI's largest page of files: a tenant's list is filtered from it
MAX_STORE_PAGES = 100  # pages of 100 stores read for one list (a tenant's are filtered from all of them)


async def _passed_on(reply: Any) -> Any:
    """A streamed reply's pieces, the upstream reply closed however the passing on ends (the caller gone too)."""
    try:
        async for piece in reply.chunks():
            yield piece
    finally:
        await reply.aclose()


def list_options(query: Any, default: int, most: int) -> tuple[str, int]:
    """A list request's ``order`` and ``limit``, or a 400 naming what is valid."""
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise GatewayError(400, "order: expected asc or desc", param="order")
    limit = query.get("limit", str(default))
    if not limit.isdigit() or not 1 <= int(limit) <= most:
        raise GatewayError(400, f"limit: expected a whole number from 1 to {most}", param="limit")
    return order, int(limit)


def list_page(data: list[dict], query: Any, limit: int) -> dict[str, Any]:
    """OpenAI's list object over a tenant's (already filtered) objects, from ``after`` or up to ``before``."""
    for name in ("after", "before"):
        mark = query.get(name)
        if mark:
            ids = [item.get("id") for item in data]
            if mark not in ids:
                data = []
            else:
                data = data[ids.index(mark) + 1 :] if name == "after" else data[: ids.index(mark)]
    page = data[:limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None,
            "has_more": len(data) > len(page)}  # fmt: skip


def platform_routes(router: Any, guarded: Callable[..., Handler], metered: Metered, homes: ObjectHomes,
                    quota_bytes: int | None = None) -> list[Route]:  # fmt: skip

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

    async def gated(request: Request, route: str, deployment: Deployment, method: str, path: str, body: bytes | SpooledBody,
                    content_type: str | None, query: str, streamed: bool) -> Any:  # fmt: skip
        """One call to OCI through the gate (the key's model groups, rate limits, a spend-log row)."""
        caller: Caller = request.state.caller
        allowed = not caller.models or deployment.model_name in caller.models
        opened: list[Any] = []

        async def call() -> Any:
            client = metered.router.client
            if streamed:  # a file's content: passed on in pieces as it comes
                opened.append(await client.openai_resource_stream(method, path, query, **deployment.params))
                return opened[-1]
            return await client.openai_resource(method, path, body, content_type, query, **deployment.params)

        try:
            reply, headers = await metered.side_call(request, route, deployment.model_name, call, target=SideTarget(deployment.model),
                                                     allowed=allowed)  # fmt: skip
        except BaseException:
            for stream in opened:  # opened, then the gate failed after it (the settlement): nothing will read it
                await stream.aclose()
            raise
        return reply, headers

    async def forward(request: Request, route: str, deployment: Deployment, method: str, path: str, body: bytes | SpooledBody = b"",
                      content_type: str | None = None, query: str = "", streamed: bool = False) -> Any:  # fmt: skip
        try:
            return await gated(request, route, deployment, method, path, body, content_type, query, streamed)
        except NotFoundError:
            raise GatewayError(404, f"no such object at OCI ({path.split('/')[0]})", code="not_found") from None
        except OCIError as exc:
            raise gateway_error_for(exc) from None

    def upload_length(request: Request) -> int:
        """An upload's announced size, bounded before anything of it is read."""
        length = request.headers.get("content-length")
        if not length or not length.isdigit():
            raise GatewayError(411, "content-length: an upload says its size first", param="content-length")
        if int(length) > MAX_UPLOAD_BYTES:
            raise GatewayError(413, f"file: at most {MAX_UPLOAD_BYTES} bytes an upload through this gateway", param="file")
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            raise GatewayError(415, "content-type: a file is uploaded as multipart/form-data", param="content-type")
        return int(length)

    async def spooled_body(request: Request) -> SpooledBody:
        """The upload in a spool, its digest taken on the way: memory bounded by the spool's buffer."""
        length = upload_length(request)
        try:
            return await SpooledBody.spool(request.stream(), length)
        except BodyLengthError as exc:
            raise GatewayError(400, f"content-length: {exc}", param="content-length") from None
        except ClientDisconnect:
            raise ClientGone from None

    async def upload(request: Request) -> Response:
        caller: Caller = request.state.caller
        owner = tenant_of(caller)
        content_type = request.headers.get("content-type", "")
        length = upload_length(request)  # refused before the body is read
        if owner is not None and quota_bytes is not None and await homes.bytes_held(owner) + length > quota_bytes:
            raise GatewayError(429, f"file storage quota: this tenant may hold at most {quota_bytes} bytes of files",
                               kind="rate_limit_error", code="storage_quota_exceeded")  # fmt: skip
        deployment = deployment_for(request)
        body = await spooled_body(request)
        try:
            reply, headers = await forward(request, "files.create", deployment, "POST", "files", body, content_type)
        finally:
            body.close()
        made = reply.json()
        if isinstance(made, dict) and isinstance(made.get("id"), str):
            await homes.remember(made["id"], "file", owner or "master", deployment.place, int(made.get("bytes") or len(body)))
        return JSONResponse(made, headers=headers)

    async def listing(request: Request) -> Response:
        caller: Caller = request.state.caller
        owner = tenant_of(caller)
        query = request.query_params
        order, limit = list_options(query, LIST_PAGE, LIST_PAGE)
        upstream = urlencode({"limit": LIST_PAGE, "order": order, **({"purpose": query["purpose"]} if query.get("purpose") else {})})
        reply, headers = await forward(request, "files.list", deployment_for(request), "GET", "files", query=upstream)
        data = list((reply.json() or {}).get("data") or [])
        if owner is not None:  # a tenant's own files only, paginated after filtering
            mine = await homes.owned(owner, "file")
            data = [item for item in data if isinstance(item, dict) and item.get("id") in mine]
        return JSONResponse(list_page(data, query, limit), headers=headers)

    async def one(request: Request, what: str) -> Response:
        caller: Caller = request.state.caller
        file_id = request.path_params["file_id"]
        place = await homes.find(file_id, "file", tenant_of(caller))  # a 404 before anything reaches OCI
        deployment = placed(place, request)
        suffix = "/content" if what == "content" else ""
        reply, headers = await forward(request, f"files.{what}", deployment, "DELETE" if what == "delete" else "GET", f"files/{file_id}{suffix}",
                                       streamed=what == "content")  # fmt: skip
        if what == "delete":
            await homes.forget(file_id)
        if what == "content":
            return StreamingResponse(_passed_on(reply), media_type=reply.content_type, headers=headers)
        return JSONResponse(reply.json(), headers=headers)

    async def retrieve(request: Request) -> Response:
        return await one(request, "retrieve")

    async def delete(request: Request) -> Response:
        return await one(request, "delete")

    async def content(request: Request) -> Response:
        return await one(request, "content")

    async def owned_files(body: dict[str, Any], owner: str | None, deployment: Deployment) -> None:
        """Every file a body names (``file_id``, ``file_ids``, ``files[].file_id``) is the caller's,
        and lives where the store does: else a 404 (or a 400 naming the field) before OCI hears of it."""
        named: list[Any] = []
        if "file_id" in body:
            named.append(body["file_id"])
        for field_name in ("file_ids", "files"):
            value = body.get(field_name)
            if value is not None and not isinstance(value, list):
                raise GatewayError(400, f"{field_name}: expected a list", param=field_name)
            for entry in value or ():
                named.append(entry.get("file_id") if isinstance(entry, dict) else entry)
        for file_id in named:
            if not isinstance(file_id, str) or not file_id:
                raise GatewayError(400, "file_id: expected a file id", param="file_id")
            place = await homes.find(file_id, "file", owner)
            if place is not None and place != deployment.place:
                raise GatewayError(400, f"file_id: {file_id[:64]!r} lives with another deployment than this vector store", param="file_id")

    async def created(request: Request, kind: str, collection: str, check: Callable[..., Awaitable[None]]) -> Response:
        """A new object of ``kind``: every id its body names checked, then made, then owned."""
        caller: Caller = request.state.caller
        owner = tenant_of(caller)
        body = await json_body(request)
        deployment = deployment_for(request, body.pop("target_model_names", None))
        await check(body, owner, deployment)
        reply, headers = await forward(request, f"{collection}.create", deployment, "POST", collection, json.dumps(body).encode(),
                                       "application/json")  # fmt: skip
        made = reply.json()
        if isinstance(made, dict) and isinstance(made.get("id"), str):
            await homes.remember(made["id"], kind, owner or "master", deployment.place, 0)
        return JSONResponse(made, headers=headers)

    async def owned_call(request: Request, kind: str, collection: str, check: Callable[..., Awaitable[None]]) -> Response:
        """Everything under one object (retrieve, modify, delete, and what hangs under it): the object
        must be the caller's tenant's, and so must every id a body names."""
        caller: Caller = request.state.caller
        owner = tenant_of(caller)
        object_id = request.path_params["object_id"]
        rest = request.path_params.get("rest", "").strip("/")
        deployment = placed(await homes.find(object_id, kind, owner), request)
        body: dict[str, Any] | None = None
        raw: SpooledBody | None = None
        content_type = request.headers.get("content-type", "")
        if request.method == "POST" and content_type.lower().startswith("multipart/form-data"):
            raw = await spooled_body(request)  # a file uploaded into the object (a container's files)
        elif request.method == "POST":
            body = await json_body(request)
            await check(body, owner, deployment)
        query = urlencode({k: v for k, v in request.query_params.items() if k in ("after", "before", "limit", "order", "filter", "include")})
        what = rest.split("/", 1)[0] if rest else {"GET": "retrieve", "POST": "update", "DELETE": "delete"}[request.method]
        path = f"{collection}/{object_id}" + (f"/{rest}" if rest else "")
        sent, sent_type = (raw, content_type) if raw is not None else (json.dumps(body).encode(), "application/json") if body is not None else (b"", None)
        content = request.method == "GET" and rest.endswith("/content")  # a file's content (a container's): passed on in pieces
        try:
            reply, headers = await forward(request, f"{collection}.{what}", deployment, request.method, path, sent, sent_type, query,
                                           streamed=content)  # fmt: skip
        finally:
            if raw is not None:
                raw.close()
        if request.method == "DELETE" and not rest:
            await homes.forget(object_id)
        if content:
            return StreamingResponse(_passed_on(reply), media_type=reply.content_type, headers=headers)
        if not reply.content_type.startswith("application/json"):  # anything else not JSON, as it came
            return Response(reply.body, media_type=reply.content_type, headers=headers)
        return JSONResponse(reply.json(), headers=headers)

    async def owned_items(body: dict[str, Any], owner: str | None, deployment: Deployment) -> None:
        """Input items a conversation is given: each file they name is the caller's."""
        for item in body.get("items") or () if isinstance(body.get("items"), list) else ():
            content = item.get("content") if isinstance(item, dict) else None
            for part in content if isinstance(content, list) else ():
                if isinstance(part, dict) and part.get("file_id") is not None:
                    await owned_files({"file_id": part["file_id"]}, owner, deployment)

    async def owned_list(request: Request, kind: str, collection: str) -> Response:
        """A tenant's objects of ``kind``, from every page OCI has (filtered, then paginated as asked)."""
        caller: Caller = request.state.caller
        owner = tenant_of(caller)
        query = request.query_params
        order, limit = list_options(query, 20, 100)
        deployment = deployment_for(request)
        data: list[dict] = []
        after: str | None = None
        headers: dict[str, str] = {}
        for _ in range(MAX_STORE_PAGES):
            upstream = urlencode({"limit": 100, "order": order, **({"after": after} if after else {})})
            reply, headers = await forward(request, f"{collection}.list", deployment, "GET", collection, query=upstream)
            listed = reply.json() or {}
            data += [item for item in listed.get("data") or [] if isinstance(item, dict)]
            after = listed.get("last_id")
            if not listed.get("has_more") or not after:
                break
        if owner is not None:
            mine = await homes.owned(owner, kind)
            data = [item for item in data if item.get("id") in mine]
        return JSONResponse(list_page(data, query, limit), headers=headers)

    def bound(work: Callable[..., Awaitable[Response]], *args: Any) -> Handler:
        async def handler(request: Request) -> Response:
            return await work(request, *args)

        return handler

    # (kind, collection, what every id a body names must be, whether a tenant lists its own)
    kinds = (("vector_store", "vector_stores", owned_files, True), ("container", "containers", owned_files, True),
             ("conversation", "conversations", owned_items, False))  # fmt: skip
    routes = []
    for prefix in ("/v1", ""):
        for kind, collection, check, listed in kinds:
            routes.append(Route(f"{prefix}/{collection}", guarded(bound(created, kind, collection, check)), methods=["POST"]))
            if listed:
                routes.append(Route(f"{prefix}/{collection}", guarded(bound(owned_list, kind, collection)), methods=["GET"]))
            one_of = guarded(bound(owned_call, kind, collection, check))
            routes += [Route(f"{prefix}/{collection}/{{object_id}}", one_of, methods=["GET", "POST", "DELETE"]),
                       Route(f"{prefix}/{collection}/{{object_id}}/{{rest:path}}", one_of, methods=["GET", "POST", "DELETE"])]  # fmt: skip
    for prefix in ("/v1", ""):
        routes += [
            Route(f"{prefix}/files", guarded(upload), methods=["POST"]),
            Route(f"{prefix}/files", guarded(listing), methods=["GET"]),
            Route(f"{prefix}/files/{{file_id}}", guarded(retrieve), methods=["GET"]),
            Route(f"{prefix}/files/{{file_id}}", guarded(delete), methods=["DELETE"]),
            Route(f"{prefix}/files/{{file_id}}/content", guarded(content), methods=["GET"]),
        ]
    return routes

