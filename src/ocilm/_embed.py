"""Embeddings: OpenAI's shape ⇄ OCI embedText, batched (no I/O)."""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any

from ._core import (
    PreparedCall,
    base_headers,
    call_arguments,
    encode,
    reply_shape,
    serving_mode,
    unsupported_param,
)
from ._endpoint import action_url
from ._errors import (
    APIConnectionError,
    APIResponseValidationError,
    OCIError,
)
from ._openai_api import refuse_on_openai_api
from ._settings import SettingsCache
from ._types import EmbeddingResponse, OpenAIObject
from .formats._common import bad

MAX_INPUTS_PER_CALL = 96
MAX_CONCURRENT_BATCHES = 4
EMBED_PARAMS = frozenset({"dimensions", "encoding_format", "input_type", "truncate", "user"})
INPUT_TYPES = {"search_document", "search_query", "classification", "clustering", "image"}
IMAGE_MODELS = ("cohere.embed-v4", "cohere.embed-english-image", "cohere.embed-multilingual-image")


@dataclass
class EmbeddingMerge:
    model: str
    encoding_format: str
    batches: list[tuple[int, int]]  # (first input index, count)


def prepare_embedding(cache: SettingsCache, model: Any, inputs: Any, params: dict) -> tuple[list[PreparedCall], EmbeddingMerge]:
    name, oci, rest, (timeout, retries, extra), drop = call_arguments(model, params, EMBED_PARAMS, "an embedding")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(x, str) for x in inputs):
        raise bad("input", "expected a string or a non-empty list of strings (images as data:image/... URIs)")
    settings = cache.resolve(oci)
    refuse_on_openai_api(settings, "embeddings")
    compartment = settings.require_compartment()
    base: dict[str, Any] = {"servingMode": serving_mode(settings, name), "compartmentId": compartment}
    images = [x.startswith("data:image/") for x in inputs]
    input_type = rest.get("input_type")
    if input_type is not None:
        if str(input_type).lower() not in INPUT_TYPES:
            raise bad("input_type", f"expected one of {', '.join(sorted(INPUT_TYPES))}, got {input_type!r}")
        base["inputType"] = str(input_type).upper()
    if rest.get("dimensions") is not None:
        dims = rest["dimensions"]
        if isinstance(dims, bool) or not isinstance(dims, int):
            raise bad("dimensions", f"expected an integer, got {dims!r}")
        if not name.startswith("cohere.embed-v4"):
            unsupported_param("dimensions", name, drop, "only embed-v4 models take outputDimensions")
        elif dims not in (256, 512, 1024, 1536):
            raise bad("dimensions", f"{name} supports 256, 512, 1024 or 1536, got {dims}")
        else:
            base["outputDimensions"] = dims
    if rest.get("truncate") is not None:
        if str(rest["truncate"]).upper() not in ("NONE", "START", "END"):
            raise bad("truncate", f"expected NONE, START or END, got {rest['truncate']!r}")
        base["truncate"] = str(rest["truncate"]).upper()
    # user: OpenAI bookkeeping (an end-user id) with no OCI meaning, accepted and not sent.
    encoding = rest.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise bad("encoding_format", f"expected 'float' or 'base64', got {encoding!r}")

    bodies: list[dict] = []
    batches: list[tuple[int, int]] = []
    if any(images):
        if not name.startswith(IMAGE_MODELS):
            raise bad("input", f"{name} does not embed images; use cohere.embed-v4.0 or an embed-*-image-v3.0 model")
        if name.startswith("cohere.embed-v4"):  # mixed text and images, via embedContents
            for start in range(0, len(inputs), MAX_INPUTS_PER_CALL):
                part = inputs[start : start + MAX_INPUTS_PER_CALL]
                contents = [{"type": "IMAGE", "imageUrl": {"url": x}} if x.startswith("data:image/") else {"type": "TEXT", "text": x} for x in part]
                bodies.append({**base, "embedContents": contents})
                batches.append((start, len(part)))
        else:  # v3 image models embed one image per call
            if not all(images):
                raise bad("input", f"{name} takes either text inputs or images, not both in one call")
            for i, x in enumerate(inputs):
                bodies.append({**base, "inputs": [x], "inputType": "IMAGE"})
                batches.append((i, 1))
    else:
        for start in range(0, len(inputs), MAX_INPUTS_PER_CALL):
            part = inputs[start : start + MAX_INPUTS_PER_CALL]
            bodies.append({**base, "inputs": part})
            batches.append((start, len(part)))
    url = action_url("embedText", region=settings.region, api_base=settings.api_base)
    calls = [
        PreparedCall(
            url=url, body=encode(body), headers=base_headers("application/json", extra),
            signer=settings.signer, stream=False, timeout=timeout, max_retries=retries,
            parse=lambda data, rid: OpenAIObject(data), context=f"embedding with {name}",
        )
        for body in bodies
    ]  # fmt: skip
    return calls, EmbeddingMerge(name, encoding, batches)


def _base64_floats(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def merge_embeddings(merge: EmbeddingMerge, results: list[Any]) -> EmbeddingResponse:
    with reply_shape(f"embedding with {merge.model}", results[0].opc_request_id if results else None):
        return _merge(merge, results)


def _merge(merge: EmbeddingMerge, results: list[Any]) -> EmbeddingResponse:
    data = []
    prompt = total = 0
    for (start, count), result in zip(merge.batches, results, strict=False):
        vectors = result.get("embeddings") or (result.get("embeddingsByType") or {}).get("float") or []
        if len(vectors) != count:
            raise APIResponseValidationError(f"OCI returned {len(vectors)} embeddings for {count} inputs (inputs {start}..{start + count - 1})")
        for offset, vector in enumerate(vectors):
            embedding: Any = _base64_floats(vector) if merge.encoding_format == "base64" else vector
            data.append({"object": "embedding", "index": start + offset, "embedding": embedding})
        usage = result.get("usage") or {}
        prompt += usage.get("promptTokens") or 0
        total += usage.get("totalTokens") or usage.get("promptTokens") or 0
    response = EmbeddingResponse({"object": "list", "data": data, "model": merge.model, "usage": {"prompt_tokens": prompt, "total_tokens": total}})
    response.opc_request_id = results[0].opc_request_id if results else None  # of the first batch
    return response


def batch_error(exc: OCIError, index: int, merge: EmbeddingMerge) -> OCIError:
    """The error of one batch of several, saying which inputs it held; otherwise the same error."""
    start, count = merge.batches[index]
    err = type(exc)(
        f"embedding batch {index + 1} of {len(merge.batches)} (inputs {start}..{start + count - 1}) failed: {exc.message}",
        status_code=exc.status_code, code=exc.code, opc_request_id=exc.opc_request_id, body=exc.body, param=exc.param,
    )  # fmt: skip
    err.retry_after = exc.retry_after
    if isinstance(exc, APIConnectionError):
        err.retryable = exc.retryable  # type: ignore[attr-defined]
    return err
