"""``Client`` and ``AsyncClient``: pooled connections, retries and timeouts. The only I/O."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any, Literal, overload

import httpx

from ._core import ChunkAssembler, PreparedCall, decode_json, prepare_chat
from ._errors import APIConnectionError, APITimeoutError, OCIError, error_from_response
from ._retry import RETRY_STATUSES, backoff_delay, new_retry_token, retry_after_seconds
from ._settings import SECRET_PARAMS, SettingsCache
from ._types import (
    ChatCompletion,
    ChatCompletionChunk,
    EmbeddingResponse,
    Messages,
    OpenAIObject,
    RerankResponse,
)
from .auth._httpx import OCIAuth

_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100, keepalive_expiry=30)


def _request(http: httpx.Client | httpx.AsyncClient, call: PreparedCall, retry_token: str) -> httpx.Request:
    headers = {**call.headers, "opc-retry-token": retry_token}
    return http.build_request("POST", call.url, content=call.body, headers=headers, timeout=httpx.Timeout(call.timeout))


def _transport_error(exc: Exception, call: PreparedCall, during: str = "") -> OCIError:
    where = f" {during}" if during else ""
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"{call.context}: no reply from {call.url}{where} within {call.timeout:g} s (timeout)")
    return APIConnectionError(f"{call.context}: connection to {call.url} failed{where}: {type(exc).__name__}: {exc}")


def _reply_error(call: PreparedCall, response: httpx.Response, body: bytes) -> OCIError:
    err = error_from_response(response.status_code, body, response.headers.get("opc-request-id"), context=call.context)
    err.retry_after = retry_after_seconds(response.headers.get("retry-after"))
    return err


def _result(call: PreparedCall, body: bytes, request_id: str | None) -> Any:
    result = call.parse(decode_json(body, call.context, request_id), request_id)
    if isinstance(result, OpenAIObject):
        result.opc_request_id = request_id
    return result


def _retryable(err: OCIError) -> bool:
    return isinstance(err, APIConnectionError) or err.status_code in RETRY_STATUSES


class _Base:
    def __init__(self, **defaults: Any) -> None:
        self._sleep_hook = defaults.pop("sleep", None)
        self._defaults = defaults
        self._settings = SettingsCache()

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**self._defaults, **params}

    def __repr__(self) -> str:
        shown = {k: v for k, v in self._defaults.items() if k not in SECRET_PARAMS}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in sorted(shown.items()))})"


class Client(_Base):
    """Holds default settings and a connection pool; methods take the same arguments as
    ``ocilm.completion`` / ``embedding`` / ``rerank`` and override the defaults per call."""

    def __init__(self, **defaults: Any) -> None:
        super().__init__(**defaults)
        self._http: httpx.Client | None = None
        self._sleep: Callable[[float], None] = time.sleep if self._sleep_hook is None else self._sleep_hook

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(limits=_LIMITS, timeout=None)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- API

    @overload
    def completion(self, model: str, messages: Messages, *, stream: Literal[False] = False, **params: Any) -> ChatCompletion: ...
    @overload
    def completion(self, model: str, messages: Messages, *, stream: Literal[True], **params: Any) -> Stream: ...
    @overload
    def completion(self, model: str, messages: Messages, *, stream: bool, **params: Any) -> ChatCompletion | Stream: ...
    def completion(self, model: str, messages: Messages, *, stream: bool = False, **params: Any) -> ChatCompletion | Stream:
        call = prepare_chat(self._settings, model, messages, stream, self._params(params))
        return self._run(call)  # type: ignore[return-value]

    def embedding(self, model: str, input: str | list[str], **params: Any) -> EmbeddingResponse:
        from ._embed import merge_embeddings, prepare_embedding

        calls, merge = prepare_embedding(self._settings, model, input, self._params(params))
        if len(calls) == 1:
            return merge_embeddings(merge, [self._run(calls[0])])
        from concurrent.futures import ThreadPoolExecutor

        from ._embed import MAX_CONCURRENT_BATCHES, batch_error

        with ThreadPoolExecutor(max_workers=min(MAX_CONCURRENT_BATCHES, len(calls))) as pool:
            futures = [pool.submit(self._run, call) for call in calls]
            results = []
            for i, future in enumerate(futures):
                try:
                    results.append(future.result())
                except OCIError as exc:
                    raise batch_error(exc, i, merge) from exc
        return merge_embeddings(merge, results)

    def rerank(self, model: str, query: str, documents: list[Any], **params: Any) -> RerankResponse:
        from ._embed import prepare_rerank

        return self._run(prepare_rerank(self._settings, model, query, documents, self._params(params)))  # type: ignore[return-value]

    # -------------------------------------------------------------- transport

    def _run(self, call: PreparedCall) -> OpenAIObject | Stream:
        token = new_retry_token()
        auth = OCIAuth(call.signer)
        for attempt in range(call.max_retries + 1):
            try:
                response = self.http.send(_request(self.http, call, token), auth=auth, stream=True)
            except httpx.HTTPError as exc:
                err = _transport_error(exc, call)
            else:
                request_id = response.headers.get("opc-request-id")
                if response.status_code >= 400:
                    try:
                        body = response.read()
                    except httpx.HTTPError:
                        body = b""
                    finally:
                        response.close()
                    err = _reply_error(call, response, body)
                elif call.stream:
                    try:
                        return Stream.open(response, call.new_assembler(request_id))  # type: ignore[misc]
                    except OCIError as exc:
                        err = exc
                else:
                    try:
                        body = response.read()
                    except httpx.HTTPError as exc:
                        err = _transport_error(exc, call, "while reading the reply")
                    else:
                        return _result(call, body, request_id)
                    finally:
                        response.close()
            if not _retryable(err) or attempt == call.max_retries:
                raise err
            self._sleep(backoff_delay(attempt + 1, err.retry_after))
        raise AssertionError("unreachable")


class Stream:
    """An iterator of ``ChatCompletionChunk``; closes the HTTP stream when done or closed."""

    def __init__(self, response: httpx.Response, assembler: ChunkAssembler, source: Iterator[bytes], first: list[ChatCompletionChunk]) -> None:
        self.response = response
        self.opc_request_id = assembler.request_id
        self._assembler = assembler
        self._source = source
        self._chunks = self._generate(first)

    @classmethod
    def open(cls, response: httpx.Response, assembler: ChunkAssembler) -> Stream:
        """Read until the first chunk exists, so failures before it can still be retried."""
        first: list[ChatCompletionChunk] = []
        try:
            source = _body_reader(response, asynchronous=False)
            while not first:
                data = next(source, None)
                if data is None:
                    first = assembler.close()
                    response.close()
                    break
                first = assembler.feed(data)
        except httpx.HTTPError as exc:
            response.close()
            raise _stream_error(exc, assembler) from exc
        except BaseException:
            response.close()
            raise
        return cls(response, assembler, source, first)

    def _generate(self, first: list[ChatCompletionChunk]) -> Generator[ChatCompletionChunk, None, None]:
        try:
            yield from first
            if self.response.is_closed:
                return
            while not self._assembler.done:
                try:
                    data = next(self._source, None)
                except httpx.HTTPError as exc:
                    raise _stream_error(exc, self._assembler) from exc
                if data is None:
                    break
                yield from self._assembler.feed(data)
            yield from self._assembler.close()
            _drain(self._source)
        finally:
            self.response.close()

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self._chunks

    def __next__(self) -> ChatCompletionChunk:
        return next(self._chunks)

    def close(self) -> None:
        self._chunks.close()
        self.response.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.response.close()
        except Exception:
            pass


def _body_reader(response: httpx.Response, *, asynchronous: bool) -> Any:
    """The body as it arrives: raw reads skip httpx's decoding layers when nothing is encoded."""
    encoded = response.headers.get("content-encoding", "identity").lower() not in ("", "identity")
    if asynchronous:
        return response.aiter_bytes() if encoded else response.aiter_raw()
    return response.iter_bytes() if encoded else response.iter_raw()


# After [DONE] only the end of the HTTP body is left; reading it lets the connection go
# back to the pool instead of being closed (and reopened for the next call).
_DRAIN_LIMIT = 64 * 1024


def _drain(source: Iterator[bytes]) -> None:
    seen = 0
    try:
        for data in source:
            seen += len(data)
            if seen > _DRAIN_LIMIT:
                return
    except httpx.HTTPError:
        return


async def _adrain(source: AsyncIterator[bytes]) -> None:
    seen = 0
    try:
        async for data in source:
            seen += len(data)
            if seen > _DRAIN_LIMIT:
                return
    except httpx.HTTPError:
        return


def _stream_error(exc: Exception, assembler: ChunkAssembler) -> OCIError:
    known = f"after {assembler.delivered} chunk(s)"
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"the stream stalled {known}: no event within the timeout", opc_request_id=assembler.request_id)
    return APIConnectionError(f"the stream broke {known}: {type(exc).__name__}: {exc}", opc_request_id=assembler.request_id)


class AsyncClient(_Base):
    """The asyncio twin of ``Client``: the same arguments, awaited."""

    def __init__(self, **defaults: Any) -> None:
        super().__init__(**defaults)
        self._http: httpx.AsyncClient | None = None
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep if self._sleep_hook is None else self._sleep_hook

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(limits=_LIMITS, timeout=None)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @overload
    async def completion(self, model: str, messages: Messages, *, stream: Literal[False] = False, **params: Any) -> ChatCompletion: ...
    @overload
    async def completion(self, model: str, messages: Messages, *, stream: Literal[True], **params: Any) -> AsyncStream: ...
    @overload
    async def completion(self, model: str, messages: Messages, *, stream: bool, **params: Any) -> ChatCompletion | AsyncStream: ...
    async def completion(self, model: str, messages: Messages, *, stream: bool = False, **params: Any) -> ChatCompletion | AsyncStream:
        call = prepare_chat(self._settings, model, messages, stream, self._params(params))
        return await self._run(call)  # type: ignore[return-value]

    acompletion = completion

    async def embedding(self, model: str, input: str | list[str], **params: Any) -> EmbeddingResponse:
        from ._embed import MAX_CONCURRENT_BATCHES, batch_error, merge_embeddings, prepare_embedding

        calls, merge = prepare_embedding(self._settings, model, input, self._params(params))
        gate = asyncio.Semaphore(MAX_CONCURRENT_BATCHES)

        async def one(i: int, call: PreparedCall) -> Any:
            async with gate:
                try:
                    return await self._run(call)
                except OCIError as exc:
                    raise batch_error(exc, i, merge) from exc

        results = await asyncio.gather(*(one(i, c) for i, c in enumerate(calls)))
        return merge_embeddings(merge, list(results))

    aembedding = embedding

    async def rerank(self, model: str, query: str, documents: list[Any], **params: Any) -> RerankResponse:
        from ._embed import prepare_rerank

        return await self._run(prepare_rerank(self._settings, model, query, documents, self._params(params)))  # type: ignore[return-value]

    arerank = rerank

    async def _run(self, call: PreparedCall) -> OpenAIObject | AsyncStream:
        token = new_retry_token()
        auth = OCIAuth(call.signer)
        for attempt in range(call.max_retries + 1):
            try:
                response = await self.http.send(_request(self.http, call, token), auth=auth, stream=True)
            except httpx.HTTPError as exc:
                err = _transport_error(exc, call)
            else:
                request_id = response.headers.get("opc-request-id")
                if response.status_code >= 400:
                    try:
                        body = await response.aread()
                    except httpx.HTTPError:
                        body = b""
                    finally:
                        await response.aclose()
                    err = _reply_error(call, response, body)
                elif call.stream:
                    try:
                        return await AsyncStream.open(response, call.new_assembler(request_id))  # type: ignore[misc]
                    except OCIError as exc:
                        err = exc
                else:
                    try:
                        body = await response.aread()
                    except httpx.HTTPError as exc:
                        err = _transport_error(exc, call, "while reading the reply")
                    else:
                        return _result(call, body, request_id)
                    finally:
                        await response.aclose()
            if not _retryable(err) or attempt == call.max_retries:
                raise err
            await self._sleep(backoff_delay(attempt + 1, err.retry_after))
        raise AssertionError("unreachable")


class AsyncStream:
    """An async iterator of ``ChatCompletionChunk``; use ``async with`` or ``aclose()`` to stop early."""

    def __init__(self, response: httpx.Response, assembler: ChunkAssembler, source: AsyncIterator[bytes], first: list[ChatCompletionChunk]) -> None:
        self.response = response
        self.opc_request_id = assembler.request_id
        self._assembler = assembler
        self._source = source
        self._pending = list(first)

    @classmethod
    async def open(cls, response: httpx.Response, assembler: ChunkAssembler) -> AsyncStream:
        first: list[ChatCompletionChunk] = []
        source = _body_reader(response, asynchronous=True)
        try:
            while not first:
                try:
                    data = await source.__anext__()
                except StopAsyncIteration:
                    first = assembler.close()
                    await response.aclose()
                    break
                first = assembler.feed(data)
        except httpx.HTTPError as exc:
            await response.aclose()
            raise _stream_error(exc, assembler) from exc
        except BaseException:
            await response.aclose()
            raise
        return cls(response, assembler, source, first)

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        while not self._pending:
            if self.response.is_closed:
                raise StopAsyncIteration
            try:
                if self._assembler.done:
                    await _adrain(self._source)
                    raise StopAsyncIteration
                data = await self._source.__anext__()
                self._pending.extend(self._assembler.feed(data))
            except StopAsyncIteration:
                self._pending.extend(self._assembler.close())
                await self.response.aclose()
                if not self._pending:
                    raise
            except httpx.HTTPError as exc:
                await self.response.aclose()
                raise _stream_error(exc, self._assembler) from exc
            except BaseException:
                await self.response.aclose()
                raise
        chunk = self._pending[0]
        del self._pending[0]
        return chunk

    async def pump(self, emit: Callable[[list[ChatCompletionChunk]], Awaitable[None]]) -> None:
        """Hand every chunk to ``emit``, grouped by the network read it came from, then close.

        The same chunks as iterating the stream, in one loop with no generator in between:
        the cheapest way for a relay (the gateway) to pass a stream on.
        """
        try:
            if self._pending:
                batch, self._pending = self._pending, []
                await emit(batch)
            if self.response.is_closed:
                return
            feed = self._assembler.feed
            async for data in self._source:
                batch = feed(data)
                if batch:
                    await emit(batch)
                if self._assembler.done:
                    await _adrain(self._source)
                    break
            tail = self._assembler.close()
            if tail:
                await emit(tail)
        except httpx.HTTPError as exc:
            raise _stream_error(exc, self._assembler) from exc
        finally:
            await self.response.aclose()

    async def aclose(self) -> None:
        await self.response.aclose()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
