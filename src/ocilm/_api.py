"""The module-level functions: each call uses a shared, pooled default client."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:
    from ._client import AsyncClient, AsyncStream, Client, Stream
    from ._types import ChatCompletion, EmbeddingResponse, Messages, RerankResponse

_lock = threading.Lock()
_sync: Client | None = None
# The AsyncClient of the event loop that made the last async call, and its closer. One at a
# time: a script that calls asyncio.run() many times gets a fresh client per loop, and each
# is closed when its loop shuts down (see _closed_with_loop).
_async: tuple[asyncio.AbstractEventLoop, AsyncClient, AsyncGenerator[None, None]] | None = None


def _client() -> Client:
    global _sync
    if _sync is None:
        from ._client import Client

        with _lock:
            if _sync is None:
                _sync = Client()
    return _sync


async def _closed_with_loop(client: AsyncClient) -> AsyncGenerator[None, None]:
    """Closes ``client`` when its event loop shuts down.

    An async generator that never finishes is closed by the loop's shutdown
    (``asyncio.run`` calls ``loop.shutdown_asyncgens()``), which runs this ``finally``.
    """
    try:
        yield
    finally:
        await client.aclose()


async def _async_client() -> AsyncClient:
    # httpx's async pool belongs to one event loop, so each loop gets its own client.
    global _async
    loop = asyncio.get_running_loop()
    current = _async
    if current is not None and current[0] is loop:
        return current[1]
    from ._client import AsyncClient

    client = AsyncClient()
    closer = _closed_with_loop(client)
    await closer.__anext__()  # started, so the loop tracks it and closes it at shutdown
    # The previous loop's client, if its loop is still open, is closed by that loop's shutdown
    # (or, once nothing holds its closer, by the loop's async-generator finaliser).
    _async = (loop, client, closer)
    return client


@overload
def completion(model: str, messages: Messages, *, stream: Literal[False] = False, **params: Any) -> ChatCompletion: ...
@overload
def completion(model: str, messages: Messages, *, stream: Literal[True], **params: Any) -> Stream: ...
@overload
def completion(model: str, messages: Messages, *, stream: bool, **params: Any) -> ChatCompletion | Stream: ...
def completion(model: str, messages: Messages, *, stream: bool = False, **params: Any) -> ChatCompletion | Stream:
    """Chat completion in OpenAI's format against an OCI model (``model="oci/<model id>"``).

    Returns a ``ChatCompletion``, or with ``stream=True`` an iterator of
    ``ChatCompletionChunk``. Takes OpenAI's parameters by their OpenAI names, plus the
    ``oci_*`` settings, ``api_base``, ``timeout``, ``max_retries``, ``drop_params`` and
    ``extra_headers``.
    """
    return _client().completion(model, messages, stream=stream, **params)


@overload
async def acompletion(model: str, messages: Messages, *, stream: Literal[False] = False, **params: Any) -> ChatCompletion: ...
@overload
async def acompletion(model: str, messages: Messages, *, stream: Literal[True], **params: Any) -> AsyncStream: ...
@overload
async def acompletion(model: str, messages: Messages, *, stream: bool, **params: Any) -> ChatCompletion | AsyncStream: ...
async def acompletion(model: str, messages: Messages, *, stream: bool = False, **params: Any) -> ChatCompletion | AsyncStream:
    """``completion`` for asyncio; with ``stream=True`` an async iterator of chunks."""
    return await (await _async_client()).completion(model, messages, stream=stream, **params)


def embedding(model: str, input: str | list[str], **params: Any) -> EmbeddingResponse:
    """Embeddings in OpenAI's format (``data[i].embedding``); more than 96 inputs are batched."""
    return _client().embedding(model, input, **params)


async def aembedding(model: str, input: str | list[str], **params: Any) -> EmbeddingResponse:
    return await (await _async_client()).embedding(model, input, **params)


def rerank(model: str, query: str, documents: list[Any], **params: Any) -> RerankResponse:
    """Rank ``documents`` by relevance to ``query``; Cohere-style ``results``."""
    return _client().rerank(model, query, documents, **params)


async def arerank(model: str, query: str, documents: list[Any], **params: Any) -> RerankResponse:
    return await (await _async_client()).rerank(model, query, documents, **params)


def responses(model: str, input: Any, *, stream: bool = False, **params: Any) -> Any:
    """OpenAI's Responses API against an OCI model: a ``Response`` (``output_text``, ``output``,
    ``usage``), or with ``stream=True`` an iterator of typed events. With an API key (or
    ``oci_api_mode="openai"``) it runs on OCI's OpenAI-compatible API, stored and chainable;
    with IAM credentials on the native API, translated onto chat and stateless."""
    return _client().responses(model, input, stream=stream, **params)


async def aresponses(model: str, input: Any, *, stream: bool = False, **params: Any) -> Any:
    return await (await _async_client()).responses(model, input, stream=stream, **params)


def list_models(**params: Any) -> list[Any]:
    """OCI's catalogue (ListModels on the Generative AI management API): each base model's name
    (``id``), OCID, vendor, version, capabilities, lifecycle state and its ``time_deprecated``,
    ``time_on_demand_retired`` and ``time_dedicated_retired`` (ISO 8601, or None)."""
    return _client().list_models(**params)


async def alist_models(**params: Any) -> list[Any]:
    return await (await _async_client()).list_models(**params)


def get_responses(response_id: str, **params: Any) -> Any:
    """A stored response (OCI's OpenAI-compatible API)."""
    return _client().get_responses(response_id, **params)


async def aget_responses(response_id: str, **params: Any) -> Any:
    return await (await _async_client()).get_responses(response_id, **params)


def delete_responses(response_id: str, **params: Any) -> Any:
    return _client().delete_responses(response_id, **params)


async def adelete_responses(response_id: str, **params: Any) -> Any:
    return await (await _async_client()).delete_responses(response_id, **params)


def list_input_items(response_id: str, **params: Any) -> Any:
    return _client().list_input_items(response_id, **params)


async def alist_input_items(response_id: str, **params: Any) -> Any:
    return await (await _async_client()).list_input_items(response_id, **params)


def cancel_responses(response_id: str, **params: Any) -> Any:
    """Cancel a background response that has not ended (LiteLLM's name)."""
    return _client().cancel_responses(response_id, **params)


async def acancel_responses(response_id: str, **params: Any) -> Any:
    return await (await _async_client()).cancel_responses(response_id, **params)


def apply_guardrails(input: str, **params: Any) -> Any:
    """OCI's ApplyGuardrails on one text: content moderation, personal information (spans with
    offsets) and prompt injection; OCI's result as it is."""
    return _client().apply_guardrails(input, **params)


async def aapply_guardrails(input: str, **params: Any) -> Any:
    return await (await _async_client()).apply_guardrails(input, **params)
