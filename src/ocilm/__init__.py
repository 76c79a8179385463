"""ocilm: OCI Generative AI with the OpenAI calling convention.

``completion``/``acompletion``, ``embedding``/``aembedding``, ``rerank``/``arerank``,
``responses``/``aresponses`` (with ``get_responses``, ``delete_responses``, ``list_input_items``,
``cancel_responses``),
``Client``/``AsyncClient`` for pooled use, ``OpenAI``/``AsyncOpenAI`` (openai-python's clients on
OCI's ``/openai/v1``, extra ``[openai]``), and the error classes. Heavy modules (httpx,
cryptography) load on first use, so ``import ocilm`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._api import (
    aapply_guardrails,
    acancel_responses,
    acompletion,
    adelete_responses,
    aembedding,
    aget_responses,
    alist_input_items,
    alist_models,
    apply_guardrails,
    arerank,
    aresponses,
    cancel_responses,
    completion,
    delete_responses,
    embedding,
    get_responses,
    list_input_items,
    list_models,
    rerank,
    responses,
)
from ._errors import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    InternalServerError,
    InvalidParameterError,
    NotFoundError,
    OCIError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ServiceUnavailableError,
    UnprocessableEntityError,
    UnsupportedParamsError,
)

if TYPE_CHECKING:
    from ._client import AsyncClient, AsyncStream, Client, Stream
    from ._openai_clients import AsyncOpenAI, OpenAI
    from ._types import (
        ChatCompletion,
        ChatCompletionChunk,
        EmbeddingResponse,
        RerankResponse,
        Response,
        ResponseStreamEvent,
    )

__version__ = "0.1.0"

_LAZY = {
    "Client": "._client", "AsyncClient": "._client", "Stream": "._client", "AsyncStream": "._client",
    "ChatCompletion": "._types", "ChatCompletionChunk": "._types", "EmbeddingResponse": "._types",
    "RerankResponse": "._types", "Response": "._types", "ResponseStreamEvent": "._types",
    "OpenAI": "._openai_clients", "AsyncOpenAI": "._openai_clients",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ocilm' has no attribute {name!r}")


__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncOpenAI",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "ChatCompletion",
    "ChatCompletionChunk",
    "Client",
    "ConfigurationError",
    "ConflictError",
    "EmbeddingResponse",
    "InternalServerError",
    "InvalidParameterError",
    "NotFoundError",
    "OCIError",
    "OpenAI",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "RerankResponse",
    "Response",
    "ResponseStreamEvent",
    "ServiceUnavailableError",
    "Stream",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
    "__version__",
    "aapply_guardrails",
    "acancel_responses",
    "acompletion",
    "adelete_responses",
    "aembedding",
    "aget_responses",
    "alist_input_items",
    "alist_models",
    "apply_guardrails",
    "arerank",
    "aresponses",
    "cancel_responses",
    "completion",
    "delete_responses",
    "embedding",
    "get_responses",
    "list_input_items",
    "list_models",
    "rerank",
    "responses",
]
