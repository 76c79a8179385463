"""``Client`` and ``AsyncClient``: pooled connections, retries and timeouts. The only I/O.

What a call sends is prepared by ``_core`` (pure), when to retry is decided by
``_retry.RetryPolicy`` (pure), and what a reply means is decided by ``_reply`` below (pure).
The two clients are thin drivers around them that differ only in how they send, read and
sleep.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any, Literal, overload

import httpx

from ._core import ChunkAssembler, PreparedCall, decode_json, prepare_chat, reply_shape
from ._embed import MAX_CONCURRENT_BATCHES, batch_error, merge_embeddings, prepare_embedding
from ._errors import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    OCIError,
    error_from_response,
)
from ._rerank import prepare_rerank
from ._retry import RetryPolicy, retry_after_seconds
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
_EVENT_STREAM = "text/event-stream"


def _request(http: httpx.Client | httpx.AsyncClient, call: PreparedCall, retry_token: str) -> httpx.Request:
    headers = {**call.headers, "opc-retry-token": retry_token}
    return http.build_request("POST", call.url, content=call.body, headers=headers, timeout=httpx.Timeout(call.timeout))


def _transport_error(exc: Exception, call: PreparedCall, during: str = "") -> OCIError:
    where = f" {during}" if during else ""
    err: OCIError
    if isinstance(exc, httpx.PoolTimeout):
        # Our own pool was full for the whole timeout: another attempt would wait again.
        err = APITimeoutError(f"{call.context}: no free connection in the client's pool within {call.timeout_seconds:g} s (too many calls at once)")
        err.retryable = False
    elif isinstance(exc, httpx.TimeoutException):
        err = APITimeoutError(f"{call.context}: no reply from {call.url}{where} within {call.timeout_seconds:g} s (timeout)")
    elif isinstance(exc, (httpx.LocalProtocolError, httpx.UnsupportedProtocol)):
        # httpx refused to send what we built: retrying sends the same. No detail: it may quote a header value.
        err = APIConnectionError(f"{call.context}: the request could not be sent ({type(exc).__name__}); check extra_headers and api_base")
        err.retryable = False
    else:
        err = APIConnectionError(f"{call.context}: connection to {call.url} failed{where}: {type(exc).__name__}: {exc}")
    return err


def _is_event_stream(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").split(";")[0].strip().lower() == _EVENT_STREAM


def _reply(call: PreparedCall, response: httpx.Response, body: bytes) -> Any:
    """What a whole reply means: the call's result, or the error to raise (pure)."""
    request_id = response.headers.get("opc-request-id")
    if response.status_code >= 400:
        err = error_from_response(response.status_code, body, request_id, context=call.context)
        err.retry_after = retry_after_seconds(response.headers.get("retry-after"))
        raise err
    if call.stream:  # a stream was asked for and this is not one
        found = error_from_response(502, body, request_id)
        detail = f" ({found.code}: {found.message})" if found.code else ""
        raise APIResponseValidationError(
            f"{call.context}: OCI answered a stream request with {response.headers.get('content-type') or 'no content type'}, "
            f"not {_EVENT_STREAM}{detail}",
            status_code=response.status_code, code=found.code, opc_request_id=request_id,
        )  # fmt: skip
    data = decode_json(body, call.context, request_id)
    with reply_shape(call.context, request_id):
        result = call.parse(data, request_id)
    if isinstance(result, OpenAIObject):
        result.opc_request_id = request_id
    return result


def _opens_stream(call: PreparedCall, response: httpx.Response) -> bool:
    return call.stream and response.status_code < 400 and _is_event_stream(response)


class _Base:
    def __init__(self, **defaults: Any) -> None:
        self._defaults = defaults
        self._settings = SettingsCache()
        self._http_lock = threading.Lock()

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**self._defaults, **params}

    def _note_error(self, err: OCIError) -> None:
        if err.status_code == 401 and err.opc_request_id is not None:
            self._settings.clear()  # credentials may have been rotated: read them again

    def __repr__(self) -> str:
        shown = {k: v for k, v in self._defaults.items() if k not in SECRET_PARAMS}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in sorted(shown.items()))})"


class Client(_Base):
    """Holds default settings and a connection pool; methods take the same arguments as
    ``ocilm.completion`` / ``embedding`` / ``rerank`` and override the defaults per call.

    ``http_client``: an ``httpx.Client`` of your own (proxies, certificates, pool limits);
    ocilm uses it and leaves closing it to you.
    """

    def __init__(self, *, http_client: httpx.Client | None = None, **defaults: Any) -> None:
        super().__init__(**defaults)
        self._http = http_client
        self._owns_http = http_client is None
        self._sleep: Callable[[float], None] = time.sleep

    @property
    def http(self) -> httpx.Client:
        http = self._http
        if http is None:
            with self._http_lock:  # one pool, however many threads make the first call
                if self._http is None:
                    self._http = httpx.Client(limits=_LIMITS, timeout=None)
                http = self._http
        return http

    def close(self) -> None:
        with self._http_lock:
            http, self._http = self._http, (None if self._owns_http else self._http)
        if http is not None and self._owns_http:
            http.close()

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
        calls, merge = prepare_embedding(self._settings, model, input, self._params(params))
        if len(calls) == 1:
            return merge_embeddings(merge, [self._run(calls[0])])
        from concurrent.futures import ThreadPoolExecutor, as_completed

        results: list[Any] = [None] * len(calls)
        pool = ThreadPoolExecutor(max_workers=min(MAX_CONCURRENT_BATCHES, len(calls)))
        try:
            futures = {pool.submit(self._run, call): i for i, call in enumerate(calls)}
            for future in as_completed(futures):
                i = futures[future]
                try:
                    results[i] = future.result()
                except OCIError as exc:
                    raise batch_error(exc, i, merge) from exc
        finally:
            # On a failure, batches not yet started are cancelled and the error is raised at once.
            pool.shutdown(wait=False, cancel_futures=True)
        return merge_embeddings(merge, results)

    def rerank(self, model: str, query: str, documents: list[Any], **params: Any) -> RerankResponse:
        return self._run(prepare_rerank(self._settings, model, query, documents, self._params(params)))  # type: ignore[return-value]

    # -------------------------------------------------------------- transport

    def _run(self, call: PreparedCall) -> OpenAIObject | Stream:
        policy = RetryPolicy(call.max_retries, call.deadline)
        auth = OCIAuth(call.signer)
        while True:
            try:
                return self._attempt(call, policy.retry_token, auth)
            except OCIError as err:
                self._note_error(err)
                delay = policy.next_delay(err)
            self._sleep(delay)

    def _attempt(self, call: PreparedCall, retry_token: str, auth: OCIAuth) -> OpenAIObject | Stream:
        http = self.http
        try:
            response = http.send(_request(http, call, retry_token), auth=auth, stream=True)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, call) from None
        if _opens_stream(call, response):
            assembler = call.new_assembler(response.headers.get("opc-request-id"))  # type: ignore[misc]
            return Stream.open(response, assembler)
        try:
            body = response.read()
        except httpx.HTTPError as exc:
            if response.status_code < 400:
                raise _transport_error(exc, call, "while reading the reply") from None
            body = b""  # the status alone says what went wrong
        finally:
            response.close()
        return _reply(call, response, body)


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
    """The asyncio twin of ``Client``: the same arguments, awaited.

    ``http_client``: an ``httpx.AsyncClient`` of your own; ocilm leaves closing it to you.
    """

    def __init__(self, *, http_client: httpx.AsyncClient | None = None, **defaults: Any) -> None:
        super().__init__(**defaults)
        self._http = http_client
        self._owns_http = http_client is None
        self._sleep: Callable[[float], Any] = asyncio.sleep

    @property
    def http(self) -> httpx.AsyncClient:
        http = self._http
        if http is None:
            with self._http_lock:
                if self._http is None:
                    self._http = httpx.AsyncClient(limits=_LIMITS, timeout=None)
                http = self._http
        return http

    async def aclose(self) -> None:
        with self._http_lock:
            http, self._http = self._http, (None if self._owns_http else self._http)
        if http is not None and self._owns_http:
            await http.aclose()

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
        calls, merge = prepare_embedding(self._settings, model, input, self._params(params))
        if len(calls) == 1:
            return merge_embeddings(merge, [await self._run(calls[0])])
        gate = asyncio.Semaphore(MAX_CONCURRENT_BATCHES)

        async def one(i: int, call: PreparedCall) -> Any:
            async with gate:
                try:
                    return await self._run(call)
                except OCIError as exc:
                    raise batch_error(exc, i, merge) from exc

        tasks = [asyncio.ensure_future(one(i, c)) for i, c in enumerate(calls)]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # the first failure ends the call: stop the other batches
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return merge_embeddings(merge, list(results))

    aembedding = embedding

    async def rerank(self, model: str, query: str, documents: list[Any], **params: Any) -> RerankResponse:
        return await self._run(prepare_rerank(self._settings, model, query, documents, self._params(params)))  # type: ignore[return-value]

    arerank = rerank

    async def _run(self, call: PreparedCall) -> OpenAIObject | AsyncStream:
        policy = RetryPolicy(call.max_retries, call.deadline)
        auth = OCIAuth(call.signer)
        while True:
            try:
                return await self._attempt(call, policy.retry_token, auth)
            except OCIError as err:
                self._note_error(err)
                delay = policy.next_delay(err)
            await self._sleep(delay)

    async def _attempt(self, call: PreparedCall, retry_token: str, auth: OCIAuth) -> OpenAIObject | AsyncStream:
        http = self.http
        try:
            response = await http.send(_request(http, call, retry_token), auth=auth, stream=True)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, call) from None
        if _opens_stream(call, response):
            assembler = call.new_assembler(response.headers.get("opc-request-id"))  # type: ignore[misc]
            return await AsyncStream.open(response, assembler)
        try:
            body = await response.aread()
        except httpx.HTTPError as exc:
            if response.status_code < 400:
                raise _transport_error(exc, call, "while reading the reply") from None
            body = b""
        finally:
            await response.aclose()
        return _reply(call, response, body)


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

    async def _batches(self) -> AsyncIterator[list[ChatCompletionChunk]]:
        """The same chunks as iterating the stream, grouped by the network read they came
        from: a relay (the gateway) writes each group at once. Closes the stream at the end."""
        try:
            if self._pending:
                batch, self._pending = self._pending, []
                yield batch
            if self.response.is_closed:
                return
            feed = self._assembler.feed
            async for data in self._source:
                batch = feed(data)
                if batch:
                    yield batch
                if self._assembler.done:
                    await _adrain(self._source)
                    break
            tail = self._assembler.close()
            if tail:
                yield tail
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
