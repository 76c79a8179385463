"""Who may reach which MCP server and tool: deny by default, one rule for every method.

A key reaches the servers marked ``allow_all_keys`` and those its grants allow. A grant is an
``object_permission``'s ``mcp_servers`` (server names) and ``mcp_tool_permissions`` (``{server:
[tool, ...]}``; a server named only there is granted too, with just those tools). When the key and
its team both grant, the key gets what both allow (the intersection); when one does, that one.
Within a server the server-wide ``allowed_tools``/``disallowed_tools`` apply on top. ``tools/list``,
``tools/call``, prompts, resources and the REST routes all ask ``Access``, so a list shows exactly
what a call allows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._config import McpServer

GRANT_FIELDS = ("mcp_servers", "mcp_tool_permissions")
ALL_TOOLS = None  # a server granted without a tool list: every tool it offers


@dataclass(frozen=True)
class Grant:
    """One ``object_permission``'s MCP part: server -> its granted tools (None: all)."""

    servers: Mapping[str, frozenset[str] | None]


def grant_of(permission: Any) -> Grant | None:
    """The MCP grant of a stored ``object_permission`` (None when it grants no server: the
    other side of the key/team pair then decides alone)."""
    if not isinstance(permission, dict):
        return None
    servers: dict[str, frozenset[str] | None] = {str(s): ALL_TOOLS for s in permission.get("mcp_servers") or ()}
    for server, tools in (permission.get("mcp_tool_permissions") or {}).items():
        servers[str(server)] = frozenset(tools or ())
    return Grant(servers) if servers else None


def _meet(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def combined(key: Grant | None, team: Grant | None) -> Grant | None:
    if key is None or team is None:
        return key or team
    return Grant({s: _meet(key.servers[s], team.servers[s]) for s in key.servers if s in team.servers})


class Access:
    """What one caller may reach among ``servers`` (the master key: everything)."""

    def __init__(self, servers: Mapping[str, McpServer], grant: Grant | None, *, master: bool) -> None:
        self.servers, self.grant, self.master = servers, grant, master

    def server(self, name: str) -> bool:
        spec = self.servers.get(name)
        if spec is None:
            return False
        return self.master or spec.allow_all_keys or (self.grant is not None and name in self.grant.servers)

    def visible(self) -> list[str]:
        return [name for name in self.servers if self.server(name)]

    def tool(self, server: str, tool: str) -> bool:
        if not self.server(server) or not self.servers[server].offers(tool):
            return False
        if self.master or self.grant is None or server not in self.grant.servers:
            return True  # allow_all_keys, or the master key: every tool the server offers
        tools = self.grant.servers[server]
        return tools is None or tool in tools


def prefixed(server: str, name: str) -> str:
    return f"{server}-{name}"


def split(prefixed_name: str) -> tuple[str, str] | None:
    """``alpha-echo`` -> (``alpha``, ``echo``): a server's name has no ``-``, so the first splits."""
    server, dash, name = prefixed_name.partition("-")
    return (server, name) if dash and server and name else None
