"""Sending one signed request and reading its reply: the clients' only I/O, over httpx or aiohttp.

The clients decide what to send (``_core``), when to retry (``_retry``) and what a reply means
(``_client._reply``); a transport only moves bytes and turns its library's failures into ours:
``OCIError`` when a request cannot be sent, ``ReadFailed`` when a reply's body breaks off.

The async client sends over aiohttp when it is installed (``pip install 'ocilm[fast]'``):
httpx's async pool scans every connection per request (encode/httpcore#1035), and its request
and response objects cost more than the whole call's signing. ``bench/RESULTS.md`` has the
figures. An ``httpx.AsyncClient`` passed as ``http_client`` is used as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from ._body import SpooledBody
from ._errors import APIConnectionError, APITimeoutError, OCIError

if TYPE_CHECKING:
    import aiohttp

    from ._core import PreparedCall
    from .auth._request import SignableRequest

LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100, keepalive_expiry=30)


class ReadFailed(Exception):
    """A reply's body broke off (``timed_out``: no data within the read timeout)."""

    def __init__(self, timed_out: bool, detail: str) -> None:
        super().__init__(detail)
        self.timed_out = timed_out
        self.detail = detail


def send_error(call: PreparedCall, *, timed_out: bool = False, pool_full: bool = False, refused: str = "",
               detail: str = "", during: str = "") -> OCIError:  # fmt: skip
    """The error for a request that got no usable reply; says whether a retry can help."""
    where = f" {during}" if during else ""
    err: OCIError
    if pool_full:
        # Our own pool was full for the whole timeout: another attempt would wait again.
        err = APITimeoutError(f"{call.context}: no free connection in the client's pool within {call.timeout_seconds:g} s (too many calls at once)")
        err.retryable = False
    elif timed_out:
        err = APITimeoutError(f"{call.context}: no reply from {call.url}{where} within {call.timeout_seconds:g} s (timeout)")
    elif refused:
        # The library refused what we built: retrying sends the same. No detail: it may quote a header value.
        err = APIConnectionError(f"{call.context}: the request could not be sent ({refused}); check extra_headers and api_base")
        err.retryable = False
    else:
        err = APIConnectionError(f"{call.context}: connection to {call.url} failed{where}: {detail}")
    return err


# ---------------------------------------------------------------- httpx


def httpx_send_error(exc: httpx.HTTPError, call: PreparedCall, during: str = "") -> OCIError:
    if isinstance(exc, httpx.PoolTimeout):
        return send_error(call, pool_full=True)
    if isinstance(exc, httpx.TimeoutException):
        return send_error(call, timed_out=True, during=during)
    if isinstance(exc, (httpx.LocalProtocolError, httpx.UnsupportedProtocol)):
        return send_error(call, refused=type(exc).__name__)
    return send_error(call, detail=f"{type(exc).__name__}: {exc}", during=during)


def httpx_read_failed(exc: httpx.HTTPError) -> ReadFailed:
    return ReadFailed(isinstance(exc, httpx.TimeoutException), f"{type(exc).__name__}: {exc}")


def _sent_body(request: SignableRequest, asynchronous: bool) -> Any:
    """What the HTTP library sends: the bytes, or a spooled upload's pieces (read again from the
    start on every attempt) with its length said, so it is never sent chunked."""
    content = request.content
    if isinstance(content, SpooledBody):
        request.headers["content-length"] = str(content.length)
        return content.__aiter__() if asynchronous else iter(content)
    return content or None


def httpx_request(http: httpx.Client | httpx.AsyncClient, call: PreparedCall, request: SignableRequest) -> httpx.Request:
    content = _sent_body(request, asynchronous=isinstance(http, httpx.AsyncClient))
    return http.build_request(request.method, call.url, content=content, headers=request.headers, timeout=httpx.Timeout(call.timeout))


def _is_encoded(headers: Mapping[str, str]) -> bool:
    return headers.get("content-encoding", "identity").lower() not in ("", "identity")


class AsyncReply(Protocol):
    """What the async client reads from a reply, whichever library carried it."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...  # looked up case-insensitively
    @property
    def is_closed(self) -> bool: ...
    async def aread(self) -> bytes: ...
    def chunks(self) -> AsyncIterator[bytes]: ...
    async def aclose(self) -> None: ...


class AsyncTransport(Protocol):
    http: Any  # the library's client: an aiohttp.ClientSession or an httpx.AsyncClient

    @property
    def is_closed(self) -> bool: ...
    async def send(self, call: PreparedCall, request: SignableRequest) -> AsyncReply: ...
    async def aclose(self) -> None: ...


class _HttpxReply:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.status_code = response.status_code
        self.headers = response.headers

    @property
    def is_closed(self) -> bool:
        return self.response.is_closed

    async def aread(self) -> bytes:
        try:
            return await self.response.aread()
        except httpx.HTTPError as exc:
            raise httpx_read_failed(exc) from exc

    async def chunks(self) -> AsyncIterator[bytes]:
        # Raw reads skip httpx's decoding layers when nothing is encoded.
        source = self.response.aiter_bytes() if _is_encoded(self.headers) else self.response.aiter_raw()
        try:
            async for data in source:
                yield data
        except httpx.HTTPError as exc:
            raise httpx_read_failed(exc) from exc

    async def aclose(self) -> None:
        await self.response.aclose()


class HttpxTransport:
    """Sends with an ``httpx.AsyncClient`` (the caller's, or our own when aiohttp is absent)."""

    def __init__(self, http: httpx.AsyncClient | None = None) -> None:
        self.owned = http is None
        self.http = http if http is not None else httpx.AsyncClient(limits=LIMITS, timeout=None)

    @property
    def is_closed(self) -> bool:
        return self.http.is_closed

    async def send(self, call: PreparedCall, request: SignableRequest) -> AsyncReply:
        try:
            response = await self.http.send(httpx_request(self.http, call, request), stream=True)
        except httpx.HTTPError as exc:
            raise httpx_send_error(exc, call) from None
        return _HttpxReply(response)

    async def aclose(self) -> None:
        if self.owned:
            await self.http.aclose()


# ---------------------------------------------------------------- aiohttp


@lru_cache(maxsize=64)
def _aiohttp_timeout(connect: float | None, read: float | None, pool: float | None) -> aiohttp.ClientTimeout:
    import aiohttp

    # aiohttp's `connect` covers waiting for a pooled connection and opening one; no total:
    # the call's deadline is the retry policy's (and the gateway's) to keep.
    waiting = None if connect is None and pool is None else (connect or 0.0) + (pool or 0.0)
    return aiohttp.ClientTimeout(total=None, connect=waiting, sock_connect=connect, sock_read=read)


def aiohttp_timeout(timeout: Any) -> aiohttp.ClientTimeout:
    if isinstance(timeout, httpx.Timeout):
        return _aiohttp_timeout(timeout.connect, timeout.read, timeout.pool)
    seconds = None if timeout is None else float(timeout)
    return _aiohttp_timeout(seconds, seconds, seconds)


@lru_cache(maxsize=64)
def _yarl_url(url: str) -> Any:
    import yarl

    return yarl.URL(url, encoded=True)  # sent exactly as signed: no re-quoting


@lru_cache(maxsize=64)
def _env_proxy(url: Any) -> tuple[Any, Any]:
    """The proxy (and its credentials) HTTP(S)_PROXY / NO_PROXY name for ``url``, or none."""
    from aiohttp.helpers import get_env_proxy_for_url

    try:
        return get_env_proxy_for_url(url)
    except LookupError:
        return None, None


def _no_proxy(url: Any) -> tuple[Any, Any]:
    return None, None  # a caller's own session: its trust_env decides


def _aiohttp_errors() -> tuple[type[BaseException], ...]:
    import aiohttp

    return (aiohttp.ClientError, asyncio.TimeoutError)


def _aiohttp_read_failed(exc: BaseException) -> ReadFailed:
    return ReadFailed(isinstance(exc, asyncio.TimeoutError), f"{type(exc).__name__}: {exc}")


class _AiohttpReply:
    def __init__(self, response: aiohttp.ClientResponse, errors: tuple[type[BaseException], ...]) -> None:
        self.response = response
        self.status_code = response.status
        self.headers = response.headers
        self._errors = errors
        self._closed = False

    @property
    def is_closed(self) -> bool:
        # Not ``response.closed``: aiohttp sets that once the whole body has *arrived*, while
        # the part not yet read still waits in its buffer.
        return self._closed

    async def aread(self) -> bytes:
        try:
            return await self.response.read()
        except self._errors as exc:
            raise _aiohttp_read_failed(exc) from exc

    async def chunks(self) -> AsyncIterator[bytes]:
        content = self.response.content
        try:
            while data := await content.readany():
                yield data
        except self._errors as exc:
            raise _aiohttp_read_failed(exc) from exc

    async def aclose(self) -> None:
        # Back to the pool when the body was read to its end; closed otherwise.
        self._closed = True
        self.response.release()


class AiohttpTransport:
    """Sends with one ``aiohttp.ClientSession`` (the caller's, or our own)."""

    def __init__(self, session: aiohttp.ClientSession | None = None) -> None:
        import aiohttp

        self.owned = session is None
        if session is None:
            connector = aiohttp.TCPConnector(limit=LIMITS.max_connections or 0, limit_per_host=0,
                                             keepalive_timeout=LIMITS.keepalive_expiry or 0, ttl_dns_cache=300)  # fmt: skip
            # No cookies (OCI sets none). Proxies come from the environment as with httpx, but
            # looked up once per URL: aiohttp's trust_env does it in a thread on every request.
            session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        self.http = session
        self._proxy_for = _env_proxy if self.owned else _no_proxy
        self._errors = _aiohttp_errors()
        self._refused = (aiohttp.InvalidURL, ValueError)

    @property
    def is_closed(self) -> bool:
        return self.http.closed

    async def send(self, call: PreparedCall, request: SignableRequest) -> AsyncReply:
        try:
            url = _yarl_url(call.url)
            proxy, proxy_auth = self._proxy_for(url)
            response = await self.http.request(
                request.method, url, data=_sent_body(request, asynchronous=True), headers=request.headers, timeout=aiohttp_timeout(call.timeout),
                allow_redirects=False, proxy=proxy, proxy_auth=proxy_auth,
            )  # fmt: skip
        except self._refused as exc:
            raise send_error(call, refused=type(exc).__name__) from None
        except self._errors as exc:
            raise send_error(call, timed_out=isinstance(exc, asyncio.TimeoutError), detail=f"{type(exc).__name__}: {exc}") from None
        return _AiohttpReply(response, self._errors)

    async def aclose(self) -> None:
        if self.owned:
            await self.http.close()


def default_async_transport(http_client: Any = None) -> AsyncTransport:
    """The caller's client wrapped, or aiohttp when it is installed, else httpx."""
    if isinstance(http_client, httpx.AsyncClient):
        return HttpxTransport(http_client)
    if http_client is not None:
        import aiohttp

        if isinstance(http_client, aiohttp.ClientSession):
            return AiohttpTransport(http_client)
        raise TypeError(f"http_client must be an httpx.AsyncClient or an aiohttp.ClientSession, not {type(http_client).__name__}")
    try:
        import aiohttp
    except ImportError:
        return HttpxTransport()
    return AiohttpTransport()
