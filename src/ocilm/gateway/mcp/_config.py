"""LiteLLM's ``mcp_servers:`` map and ``litellm_settings.mcp_aliases``, read into ``McpServer``
entries: every field is checked and named when it is wrong, and a LiteLLM field ocilm does not
honour is refused with the reason (never ignored)."""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field
from typing import Any

SERVER_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")  # the first "-" of "<server>-<tool>" splits a prefixed name
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
TRANSPORTS = ("http", "sse", "stdio")
AUTH_TYPES = ("none", "api_key", "bearer_token", "basic", "authorization", "oauth2")
GATEWAY_KEY_HEADERS = frozenset({"authorization", "x-api-key", "x-litellm-api-key"})  # may carry the caller's gateway key
_FIELDS = frozenset({"url", "transport", "command", "args", "env", "auth_type", "authentication_token", "auth_value", "static_headers",
                     "extra_headers", "allowed_tools", "disallowed_tools", "allow_all_keys", "description", "mcp_info", "client_id",
                     "client_secret", "token_url", "scopes", "timeout"})  # fmt: skip
_REFUSED = {
    "spec_path": "OpenAPI-to-MCP servers are not supported; run the API behind an MCP server",
    "access_groups": "use object_permission.mcp_servers on keys and teams",
    "mcp_access_groups": "use object_permission.mcp_servers on keys and teams",
    "allowed_params": "not supported; narrow a server's tools with allowed_tools",
    "authorization_url": "only OAuth 2 client credentials (token_url) are supported",
    "registration_url": "only OAuth 2 client credentials (token_url) are supported",
    "available_on_public_internet": "not supported; every server is reached only by keys its permissions allow",
    "tool_name_to_display_name": "not supported; tools keep their upstream names",
    "tool_name_to_description": "not supported; tools keep their upstream descriptions",
}
_REFUSED_AUTH = {
    "aws_sigv4": "AWS SigV4 upstreams are not supported",
    "true_passthrough": "the caller's credentials never go upstream on this gateway; name a header in extra_headers instead",
    "oauth_delegate": "the caller's credentials never go upstream on this gateway",
}
DEFAULT_TIMEOUT = 60.0
MAX_COST = 1e6


@dataclass(frozen=True)
class McpServer:
    """One upstream MCP server. ``headers`` holds its own credentials (never shown; not in repr)."""

    name: str
    transport: str = "http"
    url: str | None = None
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict, repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # static_headers and the auth_type's header
    oauth: dict[str, Any] | None = field(default=None, repr=False)  # client_id, client_secret, token_url, scopes
    extra_headers: tuple[str, ...] = ()  # caller headers forwarded (lower-case), never one carrying the gateway key
    allowed_tools: frozenset[str] | None = None
    disallowed_tools: frozenset[str] = frozenset()
    allow_all_keys: bool = False
    description: str | None = None
    default_cost: float = 0.0  # USD per tool call
    tool_costs: dict[str, float] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT

    def offers(self, tool: str) -> bool:
        """The server-wide filter: the allow-list wins over the deny-list when both are given."""
        if self.allowed_tools is not None:
            return tool in self.allowed_tools
        return tool not in self.disallowed_tools

    def cost(self, tool: str) -> float:
        return self.tool_costs.get(tool, self.default_cost)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _cost(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= MAX_COST


def _server(name: str, spec: Any, problems: list[str]) -> McpServer | None:
    place = f"mcp_servers.{name}"
    if not SERVER_NAME.match(name):
        problems.append(f"{place}: a server's name is 1 to 64 letters, digits and _ (its tools are named <server>-<tool>); rename it")
        return None
    if not isinstance(spec, dict):
        problems.append(f"{place}: expected a mapping with url (or command for transport: stdio)")
        return None
    before = len(problems)
    for key in spec:
        if key in _REFUSED:
            problems.append(f"{place}.{key}: not supported: {_REFUSED[key]}")
        elif key not in _FIELDS:
            problems.append(f"{place}.{key}: unknown setting; expected one of {', '.join(sorted(_FIELDS))}")
    transport = spec.get("transport", "sse" if "url" in spec else "stdio" if "command" in spec else None)
    if transport == "streamable_http":  # LiteLLM's other spelling
        transport = "http"
    if transport not in TRANSPORTS:
        problems.append(f"{place}.transport: expected one of {', '.join(TRANSPORTS)}")
        return None
    url, command = spec.get("url"), spec.get("command")
    if transport in ("http", "sse"):
        if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            problems.append(f"{place}.url: expected an http:// or https:// URL for transport: {transport}")
        if command is not None:
            problems.append(f"{place}.command: applies to transport: stdio only")
    else:
        if not (isinstance(command, str) and command):
            problems.append(f"{place}.command: expected the program to run for transport: stdio")
        if url is not None:
            problems.append(f"{place}.url: applies to transport: http or sse only")
    args = spec.get("args") or []
    if not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
        problems.append(f"{place}.args: expected a list of strings")
    env = spec.get("env") or {}
    if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
        problems.append(f"{place}.env: expected a mapping of names to strings")
    headers: dict[str, str] = {}
    static = spec.get("static_headers") or {}
    if not (isinstance(static, dict) and all(isinstance(k, str) and HEADER_NAME.match(k) and isinstance(v, str) for k, v in static.items())):
        problems.append(f"{place}.static_headers: expected a mapping of header names to strings")
    else:
        headers.update({k.lower(): v for k, v in static.items()})
    auth_type = spec.get("auth_type", "none") or "none"
    token = spec.get("authentication_token", spec.get("auth_value"))
    oauth = None
    if auth_type in _REFUSED_AUTH:
        problems.append(f"{place}.auth_type: {auth_type} is not supported: {_REFUSED_AUTH[auth_type]}")
    elif auth_type not in AUTH_TYPES:
        problems.append(f"{place}.auth_type: expected one of {', '.join(AUTH_TYPES)}")
    elif auth_type == "oauth2":
        oauth = {k: spec.get(k) for k in ("client_id", "client_secret", "token_url", "scopes")}
        for key in ("client_id", "client_secret", "token_url"):
            if not isinstance(oauth[key], str) or not oauth[key]:
                problems.append(f"{place}.{key}: required for auth_type: oauth2 (client credentials)")
        if not str(oauth.get("token_url") or "").startswith(("http://", "https://")):
            problems.append(f"{place}.token_url: expected an http:// or https:// URL")
        if oauth["scopes"] is not None and not _strings(oauth["scopes"]):
            problems.append(f"{place}.scopes: expected a list of scope names")
    elif auth_type != "none":
        if not isinstance(token, str) or not token:
            problems.append(f"{place}.authentication_token: required for auth_type: {auth_type}")
        elif auth_type == "api_key":
            headers["x-api-key"] = token
        elif auth_type == "bearer_token":
            headers["authorization"] = f"Bearer {token}"
        elif auth_type == "basic":
            headers["authorization"] = "Basic " + (base64.b64encode(token.encode()).decode() if ":" in token else token)
        else:
            headers["authorization"] = token
    if auth_type != "oauth2":
        for key in ("client_id", "client_secret", "token_url", "scopes"):
            if key in spec:
                problems.append(f"{place}.{key}: applies to auth_type: oauth2 only")
    if transport == "stdio" and (headers or oauth):
        problems.append(f"{place}.auth_type: a stdio server takes no HTTP credentials; give them in env")
    extra = spec.get("extra_headers") or []
    if not (_strings(extra) and all(HEADER_NAME.match(h) for h in extra)):
        problems.append(f"{place}.extra_headers: expected a list of header names")
        extra = []
    carrying = sorted({h.lower() for h in extra} & GATEWAY_KEY_HEADERS)
    if carrying:
        problems.append(f"{place}.extra_headers: {', '.join(carrying)} may carry the caller's gateway key, which never goes upstream; "
                        "give the upstream's credential with auth_type or static_headers")  # fmt: skip
    allowed, disallowed = spec.get("allowed_tools"), spec.get("disallowed_tools")
    for key, value in (("allowed_tools", allowed), ("disallowed_tools", disallowed)):
        if value is not None and not _strings(value):
            problems.append(f"{place}.{key}: expected a list of tool names")
    allow_all = spec.get("allow_all_keys", False)
    if not isinstance(allow_all, bool):
        problems.append(f"{place}.allow_all_keys: expected true or false")
    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        problems.append(f"{place}.description: expected a string")
    timeout = spec.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
        problems.append(f"{place}.timeout: expected seconds, more than 0 and at most 3600")
    default_cost, tool_costs = 0.0, {}
    info = spec.get("mcp_info") or {}
    if not isinstance(info, dict):
        problems.append(f"{place}.mcp_info: expected a mapping")
        info = {}
    for key in info:
        if key not in ("mcp_server_cost_info", "description"):
            problems.append(f"{place}.mcp_info.{key}: unknown or unsupported; ocilm reads mcp_server_cost_info and description")
    if description is None and isinstance(info.get("description"), str):
        description = info["description"]
    costs = info.get("mcp_server_cost_info") or {}
    if not isinstance(costs, dict) or set(costs) - {"default_cost_per_query", "tool_name_to_cost_per_query"}:
        problems.append(f"{place}.mcp_info.mcp_server_cost_info: expected default_cost_per_query and tool_name_to_cost_per_query")
        costs = {}
    if costs.get("default_cost_per_query") is not None:
        if _cost(costs["default_cost_per_query"]):
            default_cost = float(costs["default_cost_per_query"])
        else:
            problems.append(f"{place}.mcp_info.mcp_server_cost_info.default_cost_per_query: expected US dollars from 0 to {MAX_COST:.0f}")
    per_tool = costs.get("tool_name_to_cost_per_query") or {}
    if not (isinstance(per_tool, dict) and all(isinstance(k, str) and _cost(v) for k, v in per_tool.items())):
        problems.append(f"{place}.mcp_info.mcp_server_cost_info.tool_name_to_cost_per_query: expected tool names to US dollars")
    else:
        tool_costs = {k: float(v) for k, v in per_tool.items()}
    if len(problems) > before:
        return None
    return McpServer(
        name=name, transport=transport, url=url, command=command, args=tuple(args), env=dict(env), headers=headers, oauth=oauth,
        extra_headers=tuple(dict.fromkeys(h.lower() for h in extra)),
        allowed_tools=frozenset(allowed) if allowed is not None else None, disallowed_tools=frozenset(disallowed or ()),
        allow_all_keys=allow_all, description=description, default_cost=default_cost, tool_costs=tool_costs, timeout=float(timeout),
    )  # fmt: skip


def mcp_settings(raw: dict[str, Any], problems: list[str]) -> tuple[dict[str, McpServer], dict[str, str]]:
    """(servers by name, aliases: alias -> server name) from a LiteLLM config."""
    section = raw.get("mcp_servers")
    servers: dict[str, McpServer] = {}
    if section is not None and not isinstance(section, dict):
        problems.append("mcp_servers: expected a mapping of server names to their settings")
        section = None
    for name, spec in (section or {}).items():
        found = _server(str(name), spec, problems)
        if found is not None:
            servers[found.name] = found
    aliases: dict[str, str] = {}
    given = (raw.get("litellm_settings") or {}).get("mcp_aliases") if isinstance(raw.get("litellm_settings"), dict) else None
    if given is not None:
        if not isinstance(given, dict):
            problems.append("litellm_settings.mcp_aliases: expected a mapping of alias to server name")
        else:
            for alias, target in given.items():
                if not (isinstance(alias, str) and SERVER_NAME.match(alias)):
                    problems.append(f"litellm_settings.mcp_aliases.{alias}: an alias is 1 to 64 letters, digits and _")
                elif alias in servers:
                    problems.append(f"litellm_settings.mcp_aliases.{alias}: already a server's name")
                elif target not in servers and not (section and target in section):
                    problems.append(f"litellm_settings.mcp_aliases.{alias}: names no server in mcp_servers")
                else:
                    aliases[alias] = str(target)
    return servers, aliases
