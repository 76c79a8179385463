"""What the MCP gateway adds to a tool call (issue 37's target: at most 0.5 ms p50 over calling the
upstream directly). One upstream MCP server (the official package, Streamable HTTP, stateless,
JSON replies) and ``ocilm serve``'s app in front of it (no master key: loopback), each in its own
thread; the same ``tools/call`` POST sent straight to the upstream and through ``/mcp/{server}``,
interleaved, one at a time.

Usage: .venv/bin/python bench/mcp_overhead.py [calls]"""

from __future__ import annotations

import statistics
import sys
import time

import httpx
from mcp.server.mcpserver import MCPServer

from ocilm.gateway import create_app, parse_config
from ocilm.testing import BackgroundServer

CALLS = int(sys.argv[1]) if len(sys.argv) > 1 else 400
BODY = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hello"}}}
HEADERS = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}


def main() -> None:
    server = MCPServer("tools", log_level="WARNING")

    @server.tool()
    def echo(text: str) -> str:
        """Says it back."""
        return text

    with BackgroundServer(server.streamable_http_app(json_response=True, stateless_http=True)) as upstream:
        config = parse_config({"mcp_servers": {"tools": {"url": f"{upstream.base_url}/mcp", "transport": "http", "allow_all_keys": True}}})
        with BackgroundServer(create_app(config)) as gateway, httpx.Client(timeout=30) as http:
            targets = {"direct": f"{upstream.base_url}/mcp", "through the gateway": f"{gateway.base_url}/mcp/tools"}
            for url in targets.values():  # warm up: connections, the gateway's pooled upstream session
                for _ in range(20):
                    assert http.post(url, json=BODY, headers=HEADERS).json()["result"]["content"][0]["text"] == "hello"
            times: dict[str, list[float]] = {name: [] for name in targets}
            for _ in range(CALLS):
                for name, url in targets.items():
                    started = time.perf_counter()
                    http.post(url, json=BODY, headers=HEADERS).raise_for_status()
                    times[name].append((time.perf_counter() - started) * 1000)
    print(f"| path ({CALLS} tools/call, one at a time) | p50 ms | p95 ms |")
    print("| --- | --- | --- |")
    for name, samples in times.items():
        samples.sort()
        print(f"| {name} | {statistics.median(samples):.3f} | {samples[int(len(samples) * 0.95)]:.3f} |")
    added = statistics.median(times["through the gateway"]) - statistics.median(times["direct"])
    print(f"\nthe gateway adds {added:.3f} ms p50 (target: at most 0.5 ms)")


if __name__ == "__main__":
    main()
