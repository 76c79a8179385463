"""The admin API (LiteLLM's names and fields, so existing scripts keep working): keys, teams and
spend logs. Master key only; every bad field is a 400 that names it."""

from __future__ import annotations

import base64
import datetime
import json
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._cache import cache_policy
from ._config import GatewayConfig
from ._errors import GatewayError
from ._http import json_body
from ._routing import MAX_MODEL_NAME, Router
from .governance._gate import Gate, presented_key, unavailable
from .governance._outcomes import StoreUnavailable
from .governance._policy import PolicyError, duration_seconds, to_nano, to_usd, token_of
from .observability._report import BUCKET_SECONDS, GROUPS
from .observability._report import spend_report as build_report

if TYPE_CHECKING:
    from .governance._store import Store

_COUNTS = frozenset({"rpm_limit", "tpm_limit", "max_parallel_requests"})
_PER_MODEL = frozenset({"model_rpm_limit", "model_tpm_limit"})
KEY_FIELDS = frozenset({"models", "max_budget", "budget_duration", "team_id", "user_id", "key_alias", "metadata", "duration", "blocked",
                        "guardrails", "cache", "object_permission",
                         *_COUNTS, *_PER_MODEL})  # fmt: skip
TEAM_FIELDS = frozenset({"team_id", "team_alias", "models", "max_budget", "budget_duration", "metadata", "blocked", "guardrails", "cache",
                         "object_permission", *_COUNTS})  # fmt: skip


def _bad(field: str, problem: str) -> GatewayError:
    return GatewayError(400, f"{field}: {problem}", param=field, code="invalid_field")


MAX_COUNT = 2**31 - 1  # the columns are 32-bit integers on every store
_STRING_COLUMNS = {"team_id": 64}  # the other string fields' columns hold 256 characters


def _model_name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_MODEL_NAME and value.isprintable()


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_COUNT


def admin_fields(body: dict[str, Any], allowed: frozenset[str], config: GatewayConfig, limits_refused: str | None = None) -> dict[str, Any]:
    """Validated columns from an admin body (money in nano-dollars, durations checked)."""
    out: dict[str, Any] = {}
    for name, value in body.items():
        if name in _COUNTS | _PER_MODEL and value and limits_refused:
            raise _bad(name, limits_refused)
        if name not in allowed:
            raise _bad(name, f"unknown field; expected one of {', '.join(sorted(allowed))}")
        try:
            if name == "models":
                if not isinstance(value, list) or not all(_model_name(m) for m in value):
                    raise PolicyError(name, f"expected a list of model names (each at most {MAX_MODEL_NAME} printable characters)")
                unknown = [m for m in value if config.resolve(m) not in config.deployments]
                if unknown:
                    raise PolicyError(name, f"not served by this gateway: {', '.join(unknown)}")
                out[name] = list(value)
            elif name == "max_budget":
                out[name] = to_nano(value, name)
            elif name == "budget_duration":
                if value is not None:
                    duration_seconds(value, name)
                out[name] = value
            elif name == "duration":
                out["expires_at"] = None if value is None else time.time() + duration_seconds(value, name)
            elif name == "metadata":
                if not isinstance(value, dict):
                    raise PolicyError(name, "expected an object")
                out["metadata_"] = value
            elif name in _COUNTS:
                if value is not None and not _count(value):
                    raise PolicyError(name, f"expected a whole number from 1 to {MAX_COUNT}, or null for no limit")
                out[name] = value
            elif name in _PER_MODEL:
                if value is not None and not (isinstance(value, dict) and all(_model_name(m) and _count(n) for m, n in value.items())):
                    raise PolicyError(name, f'expected an object of model name to a whole number from 1 to {MAX_COUNT}, such as {{"llama": 60}}')
                unknown = [m for m in value or {} if config.resolve(m) not in config.deployments]
                if unknown:
                    raise PolicyError(name, f"not served by this gateway: {', '.join(unknown)}")
                # Keyed by the name an alias resolves to: a request through any alias counts against it.
                out[name] = {config.resolve(m): n for m, n in value.items()} if value else None
            elif name == "guardrails":
                known = {spec.name for spec in config.guardrails}
                if value is not None and not (isinstance(value, list) and all(isinstance(g, str) and g in known for g in value)):
                    raise PolicyError(name, f"expected a list of guardrail names of the config ({', '.join(sorted(known)) or 'none configured'})")
                out[name] = list(value) if value else None
            elif name == "cache":
                out[name] = cache_policy(value)
            elif name == "object_permission":
                out[name] = object_permission(value, config)
            elif name == "blocked":
                if not isinstance(value, bool):
                    raise PolicyError(name, "expected true or false")
                out[name] = value
            else:
                longest = _STRING_COLUMNS.get(name, 256)
                if value is not None and (not isinstance(value, str) or not value or len(value) > longest or not value.isprintable()):
                    raise PolicyError(name, f"expected a non-empty string of at most {longest} printable characters")
                out[name] = value
        except PolicyError as exc:
            raise _bad(exc.field, str(exc).split(": ", 1)[1]) from None
    return out


_PERMISSION_REFUSED = {
    "vector_stores": "vector stores belong to the tenant that made them (every other tenant gets 404); no grant is needed",
    "mcp_access_groups": "name the servers in mcp_servers",
    "agents": "not supported",
    "agent_access_groups": "not supported",
}


def object_permission(value: Any, config: GatewayConfig) -> dict[str, Any] | None:
    """LiteLLM's ``object_permission``: ``mcp_servers`` (server names or aliases, stored as the
    server's name) and ``mcp_tool_permissions`` (``{server: [tool, ...]}``); null clears it."""
    field = "object_permission"
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PolicyError(field, 'expected an object such as {"mcp_servers": ["alpha"], "mcp_tool_permissions": {"alpha": ["echo"]}}')
    servers, aliases = config.mcp_servers, config.mcp_aliases
    out: dict[str, Any] = {}
    for key, given in value.items():
        if key in _PERMISSION_REFUSED:
            if given:
                raise PolicyError(f"{field}.{key}", f"not supported: {_PERMISSION_REFUSED[key]}")
            continue
        if key == "mcp_servers":
            if given is None:
                continue
            if not isinstance(given, list) or not all(isinstance(s, str) for s in given):
                raise PolicyError(f"{field}.mcp_servers", "expected a list of MCP server names")
            unknown = [s for s in given if aliases.get(s, s) not in servers]
            if unknown:
                raise PolicyError(f"{field}.mcp_servers", f"no such MCP server: {', '.join(u[:64] for u in unknown)}; "
                                  f"this gateway has: {', '.join(servers) or 'none'}")  # fmt: skip
            out["mcp_servers"] = list(dict.fromkeys(aliases.get(s, s) for s in given))
        elif key == "mcp_tool_permissions":
            if given is None:
                continue
            if not (isinstance(given, dict) and all(isinstance(t, list) and all(isinstance(n, str) and n for n in t) for t in given.values())):
                raise PolicyError(f"{field}.mcp_tool_permissions", 'expected an object of server name to a list of tool names, such as {"alpha": ["echo"]}')
            unknown = [s for s in given if aliases.get(s, s) not in servers]
            if unknown:
                raise PolicyError(f"{field}.mcp_tool_permissions", f"no such MCP server: {', '.join(u[:64] for u in unknown)}; "
                                  f"this gateway has: {', '.join(servers) or 'none'}")  # fmt: skip
            out["mcp_tool_permissions"] = {aliases.get(s, s): list(dict.fromkeys(t)) for s, t in given.items()}
        else:
            raise PolicyError(f"{field}.{key}", "unknown; expected mcp_servers or mcp_tool_permissions")
    return out or None


def key_token(value: Any, field: str = "key") -> str:
    """A key's public id from the key itself or from its id."""
    if not isinstance(value, str) or not value:
        raise _bad(field, "expected a virtual key (sk-...) or its token")
    return token_of(value) or value


def _time(value: Any, field: str) -> float | None:
    if value is None:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(str(value))
    except ValueError:
        raise _bad(field, "expected a date or time such as 2026-12-01 or 2026-12-01T10:00:00Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


REPORT_ROWS = 100_000  # the newest rows of the range a report reads


def _limit(value: Any, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= 10_000:
        raise _bad("limit", "expected a whole number from 1 to 10000")
    return int(value)


SPEND_FILTERS = frozenset({"request_id", "api_key", "team_id", "model", "status", "start_date", "end_date", "limit", "cursor"})


def _next_cursor(row: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps([row["started_at"], row["request_id"]]).encode()).decode()


def _cursor(value: str | None) -> tuple[float, str] | None:
    if value is None:
        return None
    try:
        at, last = json.loads(base64.urlsafe_b64decode(value.encode()))
        if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at) or not isinstance(last, str):
            raise ValueError
        return float(at), last
    except (ValueError, TypeError):
        raise _bad("cursor", "expected the x-next-cursor header of the previous page") from None


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat()


def _spend_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "request_id": row["request_id"], "api_key": row["token"], "team_id": row["team_id"], "model": row["model"],
        "model_id": row["deployment"], "cache_hit": row["deployment"] == "ocilm-cache", "call_type": row["route"], "spend": to_usd(row["cost"]), "prompt_tokens": row["input_tokens"],
        "completion_tokens": row["output_tokens"], "total_tokens": row["input_tokens"] + row["output_tokens"], "status": row["status"],
        "latency_ms": round(row["latency_ms"], 3), "startTime": _iso(row["started_at"]),
        "endTime": _iso(row["started_at"] + row["latency_ms"] / 1000),
        "tool_calls": json.loads(row["tool_calls"]) if row.get("tool_calls") else None,
    }  # fmt: skip


TEAM_READABLE = frozenset({"/key/list", "/key/info", "/team/list", "/team/info", "/spend/logs"})  # what a team member signed in may read


def admin_routes(gate: Gate, router: Router, sso: Any = None) -> list[Route]:
    async def who(request: Request) -> None:
        """The master key, or a console session (``ui_sso``): an administrator, or a member of
        teams who may read their teams' keys and spend. A session's changes need its CSRF token."""
        if sso is None or presented_key(request.headers):
            caller = await gate.caller(request.headers)
            if not caller.is_master:
                raise GatewayError(403, "the admin API needs the master key", kind="permission_error", code="admin_only")
            request.state.actor, request.state.scope_teams = "master key", None
            return
        user = sso.user(request)
        if user is None:
            raise GatewayError(401, "sign in: the master key, or the console's sign-in (/ui/sso/login)", kind="authentication_error",
                               code="invalid_api_key")  # fmt: skip
        if request.method != "GET" and not sso.csrf_ok(request, user):
            raise GatewayError(403, "x-csrf-token: missing or wrong for this session", kind="permission_error", code="csrf")
        if not user.admin and (request.method != "GET" or request.url.path not in TEAM_READABLE or not user.teams):
            raise GatewayError(403, f"{user.name} is not an administrator (general_settings.ui_sso.admin_groups)",
                               kind="permission_error", code="admin_only")  # fmt: skip
        request.state.actor = f"sso:{user.name}"
        request.state.scope_teams = None if user.admin else set(user.teams)

    def admin(handler: Callable[[Request, Store], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                await who(request)
                if gate.store is None:
                    raise GatewayError(400, "keys and budgets need a database: set general_settings.database_url "
                                       "(sqlite:///ocilm.db for a file beside the config)", code="governance_off")  # fmt: skip
                result = await handler(request, gate.store)
                gate.forget()  # this replica sees a change at once; others within a second
                return result if isinstance(result, Response) else JSONResponse(result)
            except GatewayError as err:
                return err.response()
            except StoreUnavailable:
                return unavailable().response()

        return endpoint

    async def body_of(request: Request) -> dict[str, Any]:
        return await json_body(request)


    async def key_generate(request: Request, store: Store) -> Any:
        fields = admin_fields(await body_of(request), KEY_FIELDS, router.config, gate.limits_refused)
        try:
            key, info = await store.create_key(fields, actor=request.state.actor)  # every change in the audit trail, in its transaction
        except LookupError as exc:
            raise _bad("team_id", str(exc).split(": ", 1)[1]) from None
        return {"key": key, **info, "expires": info["expires"]}

    async def found_key(store: Store, token: str) -> dict[str, Any]:
        info = await store.key_info(token)
        if info is None:
            raise GatewayError(404, f"no key {token!r}", param="key", code="key_not_found")
        return info

    def in_scope(request: Request, team_id: Any) -> bool:
        scope = request.state.scope_teams
        return scope is None or team_id in scope

    async def key_info(request: Request, store: Store) -> Any:
        token = key_token(request.query_params.get("key"))
        info = await found_key(store, token)
        if not in_scope(request, info.get("team_id")):
            raise GatewayError(404, f"no key {token!r}", param="key", code="key_not_found")
        # the files its tenant holds (the team's when the key has one: files belong to the team)
        owner = f"team:{info['team_id']}" if info.get("team_id") else f"key:{token}"
        return {"key": token, "info": {**info, "file_bytes_held": await store.bytes_held(owner)}}

    async def key_list(request: Request, store: Store) -> Any:
        return {"keys": [k for k in await store.list_keys() if in_scope(request, k.get("team_id"))]}

    async def key_update(request: Request, store: Store) -> Any:
        body = await body_of(request)
        token = key_token(body.pop("key", None))
        fields = admin_fields(body, KEY_FIELDS, router.config, gate.limits_refused)
        try:
            info = await store.update_key(token, fields, actor=request.state.actor)
        except LookupError as exc:
            raise _bad("team_id", str(exc).split(": ", 1)[1]) from None
        if info is None:
            raise GatewayError(404, f"no key {token!r}", param="key", code="key_not_found")
        return info

    async def key_delete(request: Request, store: Store) -> Any:
        body = await body_of(request)
        keys = body.get("keys")
        if not isinstance(keys, list) or not keys:
            raise _bad("keys", "expected a list of virtual keys or their tokens")
        tokens = [key_token(k, "keys") for k in keys]
        for token in tokens:  # all or nothing: a wrong id deletes none
            await found_key(store, token)
        return {"deleted_keys": await store.delete_keys(tokens, actor=request.state.actor)}

    def set_blocked(blocked: bool) -> Callable[[Request, Store], Awaitable[Any]]:
        async def handler(request: Request, store: Store) -> Any:
            token = key_token((await body_of(request)).get("key"))
            info = await store.update_key(token, {"blocked": blocked}, actor=request.state.actor, action="key.block" if blocked else "key.unblock")
            if info is None:
                raise GatewayError(404, f"no key {token!r}", param="key", code="key_not_found")
            return info

        return handler

    async def key_regenerate(request: Request, store: Store) -> Any:
        body = await body_of(request)
        token = key_token(body.get("key"))
        grace = body.get("grace_period")
        try:
            seconds = 0.0 if grace is None else duration_seconds(grace, "grace_period")
        except PolicyError as exc:
            raise _bad("grace_period", str(exc).split(": ", 1)[1]) from None
        result = await store.regenerate(token, seconds, actor=request.state.actor)
        if result is None:
            raise GatewayError(404, f"no key {token!r}", param="key", code="key_not_found")
        key, info = result
        return {"key": key, **info}

    async def team_new(request: Request, store: Store) -> Any:
        fields = admin_fields(await body_of(request), TEAM_FIELDS, router.config, gate.limits_refused)
        fields.setdefault("team_id", f"team-{secrets.token_hex(6)}")
        if fields["team_id"] is None:
            raise _bad("team_id", "expected a non-empty string, or leave it out for a new id")
        if await store.team_info(fields["team_id"]) is not None:
            raise GatewayError(409, f"team {fields['team_id']!r} exists; use /team/update", param="team_id", code="team_exists")
        return await store.create_team(fields, actor=request.state.actor)

    async def team_info(request: Request, store: Store) -> Any:
        team_id = request.query_params.get("team_id")
        if not team_id:
            raise _bad("team_id", "required, as a query parameter")
        info = await store.team_info(team_id) if in_scope(request, team_id) else None
        if info is None:
            raise GatewayError(404, f"no team {team_id!r}", param="team_id", code="team_not_found")
        return {"team_id": team_id, "team_info": {**info, "file_bytes_held": await store.bytes_held(f"team:{team_id}")}}

    async def team_update(request: Request, store: Store) -> Any:
        body = await body_of(request)
        team_id = body.pop("team_id", None)
        if not isinstance(team_id, str) or not team_id:
            raise _bad("team_id", "required, the team to update")
        info = await store.update_team(team_id, admin_fields(body, TEAM_FIELDS - {"team_id"}, router.config, gate.limits_refused),
                                       actor=request.state.actor)  # fmt: skip
        if info is None:
            raise GatewayError(404, f"no team {team_id!r}", param="team_id", code="team_not_found")
        return info

    async def spend_logs(request: Request, store: Store) -> Any:
        """Searched in the database: ``request_id`` (the ``x-litellm-call-id`` of a reply),
        ``api_key``, ``team_id``, ``model``, ``status``, ``start_date``/``end_date``, newest
        first; ``cursor`` (from the ``x-next-cursor`` header) pages on."""
        q = request.query_params
        unknown = set(q) - SPEND_FILTERS
        if unknown:
            raise _bad(sorted(unknown)[0], f"unknown filter; expected one of {', '.join(sorted(SPEND_FILTERS))}")
        api_key, status, team_id = q.get("api_key"), q.get("status"), q.get("team_id")
        scope = request.state.scope_teams
        if scope is not None:  # a team member reads their teams' rows only
            if team_id is None and len(scope) == 1:
                team_id = next(iter(scope))
            if team_id not in scope:
                raise _bad("team_id", f"expected one of your teams: {', '.join(sorted(scope))}")
        if status is not None and not (status.isdigit() and 100 <= int(status) <= 599):
            raise _bad("status", "expected an HTTP status, 100 to 599")
        limit = _limit(q.get("limit"), 1000)
        rows = await store.spend_logs(token=key_token(api_key, "api_key") if api_key else None, team_id=team_id,
                                      start=_time(q.get("start_date"), "start_date"), end=_time(q.get("end_date"), "end_date"),
                                      limit=limit, request_id=q.get("request_id"), model=q.get("model"),
                                      status=int(status) if status is not None else None, before=_cursor(q.get("cursor")))  # fmt: skip
        headers = {"x-next-cursor": _next_cursor(rows[-1])} if len(rows) == limit else None
        return JSONResponse([_spend_row(r) for r in rows], headers=headers)

    async def audit_logs(request: Request, store: Store) -> Any:
        """The audit trail, oldest first: ``after`` (a sequence number) pages on; ``action`` and
        ``target`` narrow it."""
        q = request.query_params
        after = q.get("after", "0")
        if not (after.isdigit() and len(after) <= 18):  # the column is a 64-bit integer
            raise _bad("after", "expected the sequence number of the last entry already read (a whole number)")
        rows = await store.audit_entries(after_seq=int(after), limit=_limit(q.get("limit"), 1000), action=q.get("action"),
                                         target=q.get("target"))  # fmt: skip
        return [{**r, "at": _iso(r["at"])} for r in rows]

    async def spend_report(request: Request, store: Store) -> Any:
        q = request.query_params
        group_by, bucket = q.get("group_by", "model"), q.get("bucket", "hour")
        if group_by not in GROUPS:
            raise _bad("group_by", f"expected one of {', '.join(GROUPS)}")
        if bucket not in BUCKET_SECONDS:
            raise _bad("bucket", f"expected one of {', '.join(BUCKET_SECONDS)}")
        end = _time(q.get("end_date"), "end_date")
        start = _time(q.get("start_date"), "start_date")
        if start is None:
            start = (end or time.time()) - 86400
        rows = await store.spend_logs(start=start, end=end, limit=REPORT_ROWS)
        return build_report(rows, group_by, bucket)

    async def team_list(request: Request, store: Store) -> Any:
        return [t for t in await store.list_teams() if in_scope(request, t["team_id"])]

    return [
        Route("/key/generate", admin(key_generate), methods=["POST"]),
        Route("/key/info", admin(key_info), methods=["GET"]),
        Route("/key/list", admin(key_list), methods=["GET"]),
        Route("/key/update", admin(key_update), methods=["POST"]),
        Route("/key/delete", admin(key_delete), methods=["POST"]),
        Route("/key/block", admin(set_blocked(True)), methods=["POST"]),
        Route("/key/unblock", admin(set_blocked(False)), methods=["POST"]),
        Route("/key/regenerate", admin(key_regenerate), methods=["POST"]),
        Route("/team/new", admin(team_new), methods=["POST"]),
        Route("/team/info", admin(team_info), methods=["GET"]),
        Route("/team/update", admin(team_update), methods=["POST"]),
        Route("/team/list", admin(team_list), methods=["GET"]),
        Route("/spend/logs", admin(spend_logs), methods=["GET"]),
        Route("/spend/report", admin(spend_report), methods=["GET"]),
        Route("/audit/logs", admin(audit_logs), methods=["GET"]),
    ]
