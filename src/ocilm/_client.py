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
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any, Literal, overload

import httpx

from ._body import SpooledBody
from ._core import ChunkAssembler, PreparedCall, decode_json, prepare_chat, reply_shape
from ._embed import MAX_CONCURRENT_BATCHES, batch_error, merge_embeddings, prepare_embedding
from ._errors import (
    API_KEY_401_HINT,
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    OCIError,
    error_from_response,
)
from ._guardrails import prepare_guardrails
from ._lifecycle import retirement_info, warn_once
from ._openai_api import (
    RawReply,
    prepare_openai_resource,
    prepare_responses_create,
    prepare_stored_response,
)
from ._rerank import prepare_rerank
from ._responses_native import anative_events, native_events, native_request, native_response
from ._retry import RetryPolicy, note_retry, retry_after_seconds
from ._settings import SECRET_PARAMS, SettingsCache
from ._transport import (
    LIMITS,
    AsyncReply,
    AsyncTransport,
    ReadFailed,
    default_async_transport,
    httpx_read_failed,
    httpx_request,
    httpx_send_error,
    send_error,
)
from ._types import (
    ChatCompletion,
    ChatCompletionChunk,
    EmbeddingResponse,
    Messages,
    OpenAIObject,
    RerankResponse,
)
from .auth._request import SignableRequest
from .auth._signers import BearerKeySigner

_EVENT_STREAM = "text/event-stream"


def _outgoing(call: PreparedCall, retry_token: str) -> SignableRequest:
    """One attempt's request, ready for its signer: every attempt of a call shares the retry token."""
    return SignableRequest(call.method, call.url, call.body, {**call.headers, "opc-retry-token": retry_token})


def _is_event_stream(response: httpx.Response | AsyncReply) -> bool:
    return response.headers.get("content-type", "").split(";")[0].strip().lower() == _EVENT_STREAM


def _reply(call: PreparedCall, response: httpx.Response | AsyncReply, body: bytes) -> Any:
    """What a whole reply means: the call's result, or the error to raise (pure)."""
    request_id = response.headers.get("opc-request-id")
    if response.status_code >= 400:
        err = error_from_response(response.status_code, body, request_id, context=call.context,
                                  hint_401=API_KEY_401_HINT if isinstance(call.signer, BearerKeySigner) else "")  # fmt: skip
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
    if call.raw:
        return RawReply(body, response.headers.get("content-type") or "application/octet-stream", request_id, response.headers.get("opc-next-page"))
    data = decode_json(body, call.context, request_id)
    with reply_shape(call.context, request_id):
        result = call.parse(data, request_id)
    if isinstance(result, OpenAIObject):
        result.opc_request_id = request_id
        notice = retirement_info(response.headers)
        if notice is not None:
            result.model_retirement_info = notice
            warn_once(dict.get(result, "model"), notice)
    return result


def _opens_stream(call: PreparedCall, response: httpx.Response | AsyncReply) -> bool:
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
                    self._http = httpx.Client(limits=LIMITS, timeout=None)
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

    def apply_guardrails(self, input: str, **params: Any) -> Any:
        """OCI's ApplyGuardrails on one text (``content_moderation``, ``pii``, ``prompt_injection``)."""
        return self._run(prepare_guardrails(self._settings, input, self._params(params)))

    def responses(self, model: str, input: Any, *, stream: bool = False, **params: Any) -> Any:
        """OpenAI's Responses API: a ``Response``, or with ``stream=True`` an iterator of typed
        events. On /openai/v1 the request passes through (stored responses, background, hosted
        tools); on the native API it is translated onto chat, statelessly."""
        merged = self._params(params)
        _, call = prepare_responses_create(self._settings, model, input, {**merged, "stream": stream})
        if call is not None:
            return self._run(call)
        door_call, messages, chat, settings = native_request(model, input, merged)
        if not stream:
            return native_response(door_call, self.completion(model, messages, **chat, **settings))
        return native_events(door_call, self.completion(model, messages, stream=True, **chat, **settings,
                                                        stream_options={"include_usage": True}))  # fmt: skip

    def list_models(self, **params: Any) -> list[Any]:
        """OCI's catalogue of base models in the compartment (ListModels, every page)."""
        from ._catalog import MAX_PAGES, catalog_page, prepare_list_models

        found: list[Any] = []
        page = None
        for _ in range(MAX_PAGES):
            models, page = catalog_page(self._run(prepare_list_models(self._settings, self._params(params), page)))
            found += models
            if not page:
                break
        return found

    def get_responses(self, response_id: str, **params: Any) -> Any:
        """A stored response (OCI's OpenAI-compatible API)."""
        return self._run(prepare_stored_response(self._settings, "get", response_id, self._params(params)))

    def delete_responses(self, response_id: str, **params: Any) -> Any:
        return self._run(prepare_stored_response(self._settings, "delete", response_id, self._params(params)))

    def list_input_items(self, response_id: str, **params: Any) -> Any:
        return self._run(prepare_stored_response(self._settings, "input_items", response_id, self._params(params)))

    def cancel_responses(self, response_id: str, **params: Any) -> Any:
        """Cancel a background response that has not ended (OCI's OpenAI-compatible API)."""
        return self._run(prepare_stored_response(self._settings, "cancel", response_id, self._params(params)))

    # -------------------------------------------------------------- transport

    def _run(self, call: PreparedCall) -> OpenAIObject | Stream:
        policy = RetryPolicy(call.max_retries, call.deadline)
        while True:
            try:
                return self._attempt(call, policy.retry_token)
            except OCIError as err:
                self._note_error(err)
                delay = policy.next_delay(err)
                note_retry(err)
            self._sleep(delay)

    def _send(self, call: PreparedCall, retry_token: str) -> httpx.Response:
        http = self.http
        request = _outgoing(call, retry_token)
        call.signer.sign(request)
        try:
            response = http.send(httpx_request(http, call, request), stream=True)
            if response.status_code == 401 and call.signer.on_unauthorized():  # refreshed: once more
                response.close()
                request = _outgoing(call, retry_token)
                call.signer.sign(request)
                response = http.send(httpx_request(http, call, request), stream=True)
        except httpx.HTTPError as exc:
            raise httpx_send_error(exc, call) from None
        return response

    def _attempt(self, call: PreparedCall, retry_token: str) -> OpenAIObject | Stream:
        response = self._send(call, retry_token)
        if _opens_stream(call, response):
            assembler = call.new_assembler(response.headers.get("opc-request-id"))  # type: ignore[misc]
            return Stream.open(response, assembler)
        try:
            body = response.read()
        except httpx.HTTPError as exc:
            if response.status_code < 400:
                raise httpx_send_error(exc, call, "while reading the reply") from None
            body = b""  # the status alone says what went wrong
        finally:
            response.close()
        return _reply(call, response, body)


class Stream:
    """An iterator of ``ChatCompletionChunk``; closes the HTTP stream when done or closed."""

    def __init__(self, response: httpx.Response, assembler: ChunkAssembler, source: Iterator[bytes], first: list[ChatCompletionChunk]) -> None:
        self.response = response
        self.opc_request_id = assembler.request_id
        self.model_retirement_info = retirement_info(response.headers)  # OCI's notice for a deprecated model, before the first chunk
        if self.model_retirement_info is not None:
            warn_once(first[0].get("model") if first else None, self.model_retirement_info)
        self._assembler = assembler
        self._source = source
        self._chunks = self._generate(first)

    @classmethod
    def open(cls, response: httpx.Response, assembler: ChunkAssembler) -> Stream:
        """Read until the first chunk exists, so failures before it can still be retried."""
        first: list[ChatCompletionChunk] = []
        try:
            source = response.iter_bytes() if _is_encoded(response) else response.iter_raw()
            while not first:
                data = next(source, None)
                if data is None:
                    first = assembler.close()
                    response.close()
                    break
                first = assembler.feed(data)
        except httpx.HTTPError as exc:
            response.close()
            raise _stream_error(httpx_read_failed(exc), assembler) from exc
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
                    raise _stream_error(httpx_read_failed(exc), self._assembler) from exc
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


def _is_encoded(response: httpx.Response) -> bool:
    # Raw reads skip httpx's decoding layers when nothing is encoded.
    return response.headers.get("content-encoding", "identity").lower() not in ("", "identity")


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
    except ReadFailed:
        return


def _stream_error(failure: ReadFailed, assembler: ChunkAssembler) -> OCIError:
    known = f"after {assembler.delivered} chunk(s)"
    if failure.timed_out:
        return APITimeoutError(f"the stream stalled {known}: no event within the timeout", opc_request_id=assembler.request_id)
    return APIConnectionError(f"the stream broke {known}: {failure.detail}", opc_request_id=assembler.request_id)


class AsyncClient(_Base):
    """The asyncio twin of ``Client``: the same arguments, awaited.

    Sends over aiohttp when it is installed (``ocilm[fast]``, several times faster under
    concurrency), else over httpx. ``http_client``: an ``aiohttp.ClientSession`` or an
    ``httpx.AsyncClient`` of your own (proxies, certificates, pool limits); ocilm uses it
    and leaves closing it to you.
    """

    def __init__(self, *, http_client: Any = None, **defaults: Any) -> None:
        super().__init__(**defaults)
        self._given_http = http_client
        self._transport: AsyncTransport | None = None
        self._sleep: Callable[[float], Any] = asyncio.sleep
        if http_client is not None:
            self._transport = default_async_transport(http_client)  # a wrong type fails here, not at the first call

    @property
    def transport(self) -> AsyncTransport:
        transport = self._transport
        if transport is None:
            with self._http_lock:  # one pool, however many tasks make the first call
                if self._transport is None:
                    self._transport = default_async_transport()
                transport = self._transport
        return transport

    @property
    def http(self) -> Any:
        """The HTTP client calls go through: an ``aiohttp.ClientSession`` or an ``httpx.AsyncClient``."""
        return self.transport.http

    async def aclose(self) -> None:
        with self._http_lock:
            transport = self._transport
            self._transport = None if self._given_http is None else transport
        if transport is not None:
            await transport.aclose()  # closes only what ocilm opened

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

    async def apply_guardrails(self, input: str, **params: Any) -> Any:
        return await self._run(prepare_guardrails(self._settings, input, self._params(params)))

    async def responses(self, model: str, input: Any, *, stream: bool = False, **params: Any) -> Any:
        """``Client.responses`` for asyncio; with ``stream=True`` an async iterator of events."""
        merged = self._params(params)
        _, call = prepare_responses_create(self._settings, model, input, {**merged, "stream": stream})
        if call is not None:
            return await self._run(call)
        door_call, messages, chat, settings = native_request(model, input, merged)
        if not stream:
            return native_response(door_call, await self.completion(model, messages, **chat, **settings))
        chunks = await self.completion(model, messages, stream=True, **chat, **settings, stream_options={"include_usage": True})
        return anative_events(door_call, chunks)

    async def list_models(self, **params: Any) -> list[Any]:
        """OCI's catalogue of base models in the compartment (ListModels, every page)."""
        from ._catalog import MAX_PAGES, catalog_page, prepare_list_models

        found: list[Any] = []
        page = None
        for _ in range(MAX_PAGES):
            models, page = catalog_page(await self._run(prepare_list_models(self._settings, self._params(params), page)))
            found += models
            if not page:
                break
        return found

    async def get_responses(self, response_id: str, **params: Any) -> Any:
        return await self._run(prepare_stored_response(self._settings, "get", response_id, self._params(params)))

    async def delete_responses(self, response_id: str, **params: Any) -> Any:
        return await self._run(prepare_stored_response(self._settings, "delete", response_id, self._params(params)))

    async def list_input_items(self, response_id: str, **params: Any) -> Any:
        return await self._run(prepare_stored_response(self._settings, "input_items", response_id, self._params(params)))

    async def cancel_responses(self, response_id: str, **params: Any) -> Any:
        return await self._run(prepare_stored_response(self._settings, "cancel", response_id, self._params(params)))

    async def openai_resource(self, method: str, path: str, body: bytes | SpooledBody = b"", content_type: str | None = None, query: str = "",
                              **params: Any) -> RawReply:  # fmt: skip
        """One call to a resource of OCI's ``/openai/v1`` (files, vector stores, conversations,
        containers), body and reply as bytes, authenticated as every call is: what the gateway
        forwards a tenant's request with. A ``SpooledBody`` (an upload) is sent in pieces from its spool."""
        return await self._run(prepare_openai_resource(self._settings, method, path, body, content_type, query, self._params(params)))  # type: ignore[return-value]

    async def openai_resource_stream(self, method: str, path: str, query: str = "", **params: Any) -> RawStream:
        """``openai_resource`` for a large reply (a file's content): the reply open, its bytes read
        in pieces as they come (``chunks()``; ``aclose()`` when done). An error reply is raised
        as ``openai_resource`` raises it, and retried as it is, before any byte is passed on."""
        call = prepare_openai_resource(self._settings, method, path, b"", None, query, self._params(params))
        return await self._run(call, self._open_reply)  # type: ignore[return-value]

    arerank = rerank

    async def _run(self, call: PreparedCall, attempt: Callable[[PreparedCall, str], Awaitable[Any]] | None = None) -> Any:
        """The call's attempts (``_attempt``'s, or ``attempt``'s) under its retry policy."""
        attempt = attempt or self._attempt
        policy = RetryPolicy(call.max_retries, call.deadline)
        while True:
            try:
                return await attempt(call, policy.retry_token)
            except OCIError as err:
                self._note_error(err)
                delay = policy.next_delay(err)
                note_retry(err)
            await self._sleep(delay)

    @staticmethod
    async def _signer_does(call: PreparedCall, work: Callable[..., Any], *args: Any) -> Any:
        """Run one of the signer's steps: on a worker thread when it may block (a principal
        signer fetching a token), inline otherwise (~0.3 ms of RSA: cheaper than a thread hop)."""
        if call.signer.may_block:
            from anyio import to_thread

            return await to_thread.run_sync(work, *args)
        return work(*args)

    async def _send(self, call: PreparedCall, retry_token: str) -> AsyncReply:
        transport = self.transport
        request = _outgoing(call, retry_token)
        await self._signer_does(call, call.signer.sign, request)
        response = await transport.send(call, request)
        # After a 401, a signer that can refresh (a principal's token) is refreshed and the attempt sent once more.
        if response.status_code == 401 and await self._signer_does(call, call.signer.on_unauthorized):
            await response.aclose()
            request = _outgoing(call, retry_token)
            await self._signer_does(call, call.signer.sign, request)
            response = await transport.send(call, request)
        return response

    async def _open_reply(self, call: PreparedCall, retry_token: str) -> RawStream:
        """One attempt whose reply is left open to be read in pieces; an error reply is raised."""
        response = await self._send(call, retry_token)
        if response.status_code < 400:
            return RawStream(response)
        try:
            body = await response.aread()
        except ReadFailed:
            body = b""
        finally:
            await response.aclose()
        return _reply(call, response, body)  # an error status: it raises

    async def _attempt(self, call: PreparedCall, retry_token: str) -> OpenAIObject | AsyncStream:
        response = await self._send(call, retry_token)
        if _opens_stream(call, response):
            assembler = call.new_assembler(response.headers.get("opc-request-id"))  # type: ignore[misc]
            return await AsyncStream.open(response, assembler)
        try:
            body = await response.aread()
        except ReadFailed as failure:
            if response.status_code < 400:
                raise _read_error(call, failure) from None
            body = b""
        finally:
            await response.aclose()
        return _reply(call, response, body)


class RawStream:
    """A reply passed on in pieces as it comes (a file's content): ``chunks()``, then ``aclose()``."""

    def __init__(self, response: AsyncReply) -> None:
        self.response = response
        self.content_type = response.headers.get("content-type") or "application/octet-stream"
        self.opc_request_id = response.headers.get("opc-request-id")

    def chunks(self) -> AsyncIterator[bytes]:
        return self.response.chunks()

    async def aclose(self) -> None:
        await self.response.aclose()


def _read_error(call: PreparedCall, failure: ReadFailed) -> OCIError:
    return send_error(call, timed_out=failure.timed_out, detail=failure.detail, during="while reading the reply")


class AsyncStream:
    """An async iterator of ``ChatCompletionChunk``; use ``async with`` or ``aclose()`` to stop early."""

    def __init__(self, response: AsyncReply, assembler: ChunkAssembler, source: AsyncIterator[bytes], first: list[ChatCompletionChunk]) -> None:
        self.response = response
        self.opc_request_id = assembler.request_id
        self.model_retirement_info = retirement_info(response.headers)
        if self.model_retirement_info is not None:
            warn_once(first[0].get("model") if first else None, self.model_retirement_info)
        self._assembler = assembler
        self._source = source
        self._pending = list(first)

    @classmethod
    async def open(cls, response: AsyncReply, assembler: ChunkAssembler) -> AsyncStream:
        """Read until the first chunk exists, so failures before it can still be retried."""
        first: list[ChatCompletionChunk] = []
        source = response.chunks()
        try:
            while not first:
                try:
                    data = await source.__anext__()
                except StopAsyncIteration:
                    first = assembler.close()
                    await response.aclose()
                    break
                first = assembler.feed(data)
        except ReadFailed as failure:
            await response.aclose()
            raise _stream_error(failure, assembler) from failure
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
            except ReadFailed as failure:
                await self.response.aclose()
                raise _stream_error(failure, self._assembler) from failure
            except BaseException:
                await self.response.aclose()
                raise
        chunk = self._pending[0]
        del self._pending[0]
        return chunk

    async def _batches(self, *, plain: bool = False) -> AsyncIterator[list[Any]]:
        """The same chunks as iterating the stream, grouped by the network read they came
        from: a relay (the gateway) writes each group at once. Closes the stream at the end.

        ``plain``: chunks after the first read come as plain dicts, not response objects (a
        relay that only serialises them saves a microsecond per event)."""
        self._assembler.wrap = not plain
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
        except ReadFailed as failure:
            raise _stream_error(failure, self._assembler) from failure
        finally:
            await self.response.aclose()

    async def aclose(self) -> None:
        await self.response.aclose()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
