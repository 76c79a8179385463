"""The gateway's client face: one pooled ``ClientSession`` (the official ``mcp`` package) per
upstream server and set of forwarded caller headers, opened on first use, opened again after it
breaks, each call under the server's timeout, and a breaker per server like the router's (after
``allowed_fails`` failures in a row, calls fail fast for ``cooldown`` seconds, then one probe).

Upstream headers are built from the server's config and the caller headers its ``extra_headers``
names, never from a copy of the inbound set: the caller's gateway key never goes upstream, and an
upstream's own secret never comes back (errors name the server, not its credentials)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ._config import McpServer

log = logging.getLogger("ocilm.gateway")
IDLE_SECONDS = 300.0  # a pooled session unused this long is closed
POOLED_PER_SERVER = 32  # sessions kept per server (one per set of forwarded caller headers); past it, a call opens its own
OPEN_SECONDS = 15.0  # connecting and initialising an upstream, at most


class UpstreamError(Exception):
    """An upstream MCP server failed, timed out or is cooling down (the message is safe to show)."""

    def __init__(self, message: str, *, retry_after: float | None = None, jsonrpc: tuple[int, str] | None = None) -> None:
        super().__init__(message)
        self.retry_after, self.jsonrpc = retry_after, jsonrpc


@dataclass
class Breaker:
    """Consecutive failures of one server open it for ``cooldown`` seconds; then one probe decides."""

    allowed_fails: int = 3
    cooldown: float = 5.0
    failures: int = 0
    open_until: float = 0.0
    probing: bool = False

    def wait(self, now: float) -> float:
        """Seconds until a call may go (0: now). A half-open breaker lets one probe through."""
        if now < self.open_until:
            return self.open_until - now
        if self.failures >= self.allowed_fails:
            if self.probing:
                return 0.5
            self.probing = True
        return 0.0

    def succeeded(self) -> None:
        self.failures, self.probing, self.open_until = 0, False, 0.0

    def failed(self, now: float) -> None:
        self.failures += 1
        self.probing = False
        if self.failures >= self.allowed_fails:
            self.open_until = now + self.cooldown


class _OAuth:
    """OAuth 2 client credentials: a token fetched once, kept until shortly before it expires."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.token: str | None = None
        self.expires = 0.0
        self.lock = asyncio.Lock()

    async def header(self, *, renew: bool = False) -> str:
        async with self.lock:
            if renew or self.token is None or time.monotonic() >= self.expires:
                import httpx

                form = {"grant_type": "client_credentials", "client_id": self.settings["client_id"],
                        "client_secret": self.settings["client_secret"]}  # fmt: skip
                if self.settings.get("scopes"):
                    form["scope"] = " ".join(self.settings["scopes"])
                async with httpx.AsyncClient(timeout=15) as http:
                    reply = await http.post(self.settings["token_url"], data=form)
                if reply.status_code != 200:
                    raise UpstreamError(f"the OAuth token endpoint refused the server's client credentials ({reply.status_code})")
                body = reply.json()
                self.token = str(body.get("access_token") or "")
                if not self.token:
                    raise UpstreamError("the OAuth token endpoint returned no access_token")
                lifetime = body.get("expires_in")
                seconds = float(lifetime) if isinstance(lifetime, (int, float)) and not isinstance(lifetime, bool) else 3600.0
                self.expires = time.monotonic() + max(1.0, seconds - 30.0)
            return f"Bearer {self.token}"


def _token_auth(oauth: _OAuth) -> Any:
    """An httpx2 auth flow that puts the current OAuth token on every upstream request, and on a
    401 fetches a new one and tries once more (a token revoked or expired early)."""
    import httpx2

    class TokenAuth(httpx2.Auth):
        async def async_auth_flow(self, request: Any) -> Any:
            request.headers["authorization"] = await oauth.header()
            response = yield request
            if response.status_code == 401:
                request.headers["authorization"] = await oauth.header(renew=True)
                yield request

    return TokenAuth()


class _Held:
    """One open upstream session, held by its own task (the transport's cancel scopes live there)."""

    def __init__(self, server: McpServer, headers: dict[str, str], oauth: _OAuth | None = None) -> None:
        self.server, self.headers, self.oauth = server, headers, oauth
        self.session: Any = None
        self.used = time.monotonic()
        self.closing = asyncio.Event()
        self.ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.broken = False
        self.task = asyncio.ensure_future(self._run())

    def _transport(self) -> Any:
        server = self.server
        if server.transport == "stdio":
            from mcp.client.stdio import StdioServerParameters, stdio_client

            return stdio_client(StdioServerParameters(command=server.command or "", args=list(server.args), env=server.env or None))
        if server.transport == "sse":
            from mcp.client.sse import sse_client

            auth = _token_auth(self.oauth) if self.oauth is not None else None
            return sse_client(server.url or "", headers=self.headers, timeout=server.timeout, auth=auth)
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        http = httpx2.AsyncClient(headers=self.headers, timeout=httpx2.Timeout(server.timeout, read=server.timeout),
                                  auth=_token_auth(self.oauth) if self.oauth is not None else None)  # fmt: skip
        return _closing_too(streamable_http_client(server.url or "", http_client=http), http)

    async def _run(self) -> None:
        from mcp import ClientSession

        try:
            async with contextlib.AsyncExitStack() as stack:
                streams = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(ClientSession(streams[0], streams[1], read_timeout_seconds=self.server.timeout))
                await session.initialize()
                self.session = session
                self.ready.set_result(session)
                await self.closing.wait()
        except BaseException as exc:  # whatever ended it, the session is gone; its caller hears why
            if not self.ready.done():
                self.ready.set_exception(exc if isinstance(exc, Exception) else UpstreamError("closed"))
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self.broken = True

    async def close(self) -> None:
        self.closing.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 5)
        except BaseException:  # closing: nothing more to do with it
            self.task.cancel()


@contextlib.asynccontextmanager
async def _closing_too(transport: Any, http: Any) -> Any:
    try:
        async with transport as streams:
            yield streams
    finally:
        await http.aclose()


class Upstreams:
    """Every upstream session of this process, and a breaker per server."""

    def __init__(self, servers: dict[str, McpServer], *, allowed_fails: int = 3, cooldown: float = 5.0) -> None:
        self.servers = servers
        self.held: dict[tuple[str, str], _Held] = {}
        self.breakers = {name: Breaker(allowed_fails, cooldown) for name in servers}
        self.oauth = {name: _OAuth(s.oauth) for name, s in servers.items() if s.oauth}
        self.opening: dict[tuple[str, str], asyncio.Lock] = {}

    @staticmethod
    def _key(server_name: str, forwarded: dict[str, str]) -> tuple[str, str]:
        return server_name, hashlib.sha256(repr(sorted(forwarded.items())).encode()).hexdigest()  # holds no header in clear

    async def _session(self, server: McpServer, forwarded: dict[str, str]) -> tuple[_Held, bool]:
        """The pooled session for these headers, or (the pool of this server full: callers sending
        ever new header values must not grow it without end) one of the call's own, to close after
        it; the second value says which."""
        key = self._key(server.name, forwarded)
        own = key not in self.held and sum(1 for name, _ in self.held if name == server.name) >= POOLED_PER_SERVER
        if own:
            single = _Held(server, {**server.headers, **forwarded}, self.oauth.get(server.name))
            try:
                await asyncio.wait_for(asyncio.shield(single.ready), OPEN_SECONDS)
            except BaseException:
                await single.close()
                raise
            return single, True
        lock = self.opening.setdefault(key, asyncio.Lock())
        async with lock:
            held = self.held.get(key)
            if held is None or held.broken:
                if held is not None:
                    await held.close()
                held = self.held[key] = _Held(server, {**server.headers, **forwarded}, self.oauth.get(server.name))
            try:
                await asyncio.wait_for(asyncio.shield(held.ready), OPEN_SECONDS)
            except BaseException:
                self.held.pop(key, None)
                await held.close()
                raise
        held.used = time.monotonic()
        return held, False

    async def call(self, server_name: str, forwarded: dict[str, str], work: Callable[[Any], Awaitable[Any]]) -> Any:
        """``work(session)`` on the server's pooled session, under its timeout and breaker."""
        from mcp.shared.exceptions import MCPError

        server = self.servers[server_name]
        breaker = self.breakers[server_name]
        wait = breaker.wait(time.monotonic())
        if wait > 0:
            raise UpstreamError(f"MCP server {server_name} is cooling down after failing; try again in {wait:.1f} s", retry_after=wait)
        own = None
        try:
            held, transient = await self._session(server, forwarded)
            own = held if transient else None
            result = await asyncio.wait_for(work(held.session), server.timeout)
        except MCPError as exc:  # the server answered with a JSON-RPC error: it is up; its answer passes on
            breaker.succeeded()
            raise UpstreamError(f"MCP server {server_name}: {exc.error.message}", jsonrpc=(exc.error.code, exc.error.message)) from None
        except asyncio.TimeoutError:
            breaker.failed(time.monotonic())
            await self._drop(server_name, forwarded)
            raise UpstreamError(f"MCP server {server_name} did not answer within {server.timeout:g} s") from None
        except UpstreamError:
            breaker.failed(time.monotonic())
            raise
        except Exception as exc:  # a transport failure of any kind: named, never a 500
            breaker.failed(time.monotonic())
            await self._drop(server_name, forwarded)
            log.info("MCP server %s failed: %s", server_name, type(exc).__name__)
            raise UpstreamError(f"MCP server {server_name} is unreachable or failed ({type(exc).__name__})") from None
        finally:
            if own is not None:
                await own.close()
        breaker.succeeded()
        return result

    async def _drop(self, server_name: str, forwarded: dict[str, str]) -> None:
        held = self.held.pop(self._key(server_name, forwarded), None)
        if held is not None:
            await held.close()

    async def prune(self) -> None:
        now = time.monotonic()
        for key, held in list(self.held.items()):
            if held.broken or now - held.used > IDLE_SECONDS:
                self.held.pop(key, None)
                self.opening.pop(key, None)
                await held.close()

    async def close(self) -> None:
        held, self.held = list(self.held.values()), {}
        await asyncio.gather(*(h.close() for h in held), return_exceptions=True)
