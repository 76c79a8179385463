"""The simulator's side of the ``mcp`` hosted tool: as OCI does, it calls the remote MCP server the
request names, over Streamable HTTP (JSON-RPC 2.0 in POSTs, answers as JSON or as an SSE event),
with the headers the tool gives and nothing of the caller's own credentials."""

from __future__ import annotations

import json
from typing import Any

import httpx

PROTOCOL_VERSION = "2025-06-18"


class MCPError(Exception):
    pass


class MCPSession:
    """One short session with a remote MCP server: initialize, then list or call tools."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> None:
        self.url = url
        self.http = httpx.Client(timeout=timeout, headers={**(headers or {}), "accept": "application/json, text/event-stream"})
        self.session_id: str | None = None
        self.next_id = 0

    def __enter__(self) -> MCPSession:
        self.request("initialize", {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                                    "clientInfo": {"name": "ocilm-simulator", "version": "1"}})  # fmt: skip
        self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def _post(self, message: dict) -> httpx.Response:
        headers = {"mcp-session-id": self.session_id} if self.session_id else {}
        if self.session_id:
            headers["mcp-protocol-version"] = PROTOCOL_VERSION
        response = self.http.post(self.url, json=message, headers=headers)
        if response.status_code >= 400:
            raise MCPError(f"the MCP server answered HTTP {response.status_code}")
        self.session_id = response.headers.get("mcp-session-id", self.session_id)
        return response

    def request(self, method: str, params: dict) -> Any:
        self.next_id += 1
        response = self._post({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            answer = next((json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")
                           and json.loads(line[5:]).get("id") == self.next_id), None)  # fmt: skip
        else:
            answer = response.json()
        if not isinstance(answer, dict):
            raise MCPError("the MCP server gave no answer")
        if "error" in answer:
            raise MCPError(str((answer["error"] or {}).get("message") or "error"))
        return answer.get("result")

    def tools(self) -> list[dict]:
        return list((self.request("tools/list", {}) or {}).get("tools") or [])

    def call(self, name: str, arguments: dict) -> tuple[str, bool]:
        """The tool's text, and whether the server says it failed."""
        result = self.request("tools/call", {"name": name, "arguments": arguments}) or {}
        text = "".join(part.get("text", "") for part in result.get("content") or [] if isinstance(part, dict))
        return text, bool(result.get("isError"))
