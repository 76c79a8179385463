"""Rerank: Cohere's rerank shape ⇄ OCI rerankText (no I/O)."""

from __future__ import annotations

from typing import Any

from ._core import PreparedCall, base_headers, call_arguments, encode, serving_mode
from ._endpoint import action_url
from ._openai_api import refuse_on_openai_api
from ._settings import SettingsCache
from ._types import RerankResponse
from .formats._common import bad

RERANK_PARAMS = frozenset({"top_n", "return_documents", "max_chunks_per_doc", "max_tokens_per_doc"})


def prepare_rerank(cache: SettingsCache, model: Any, query: Any, documents: Any, params: dict) -> PreparedCall:
    name, oci, rest, (timeout, retries, extra), _drop = call_arguments(model, params, RERANK_PARAMS, "a rerank")
    if not isinstance(query, str) or not query:
        raise bad("query", "expected a non-empty string")
    if not isinstance(documents, list) or not documents:
        raise bad("documents", "expected a non-empty list of strings or {'text': ...} objects")
    texts = []
    for i, doc in enumerate(documents):
        text = doc.get("text") if isinstance(doc, dict) else doc
        if not isinstance(text, str):
            raise bad(f"documents[{i}]", "expected a string or {'text': ...}")
        texts.append(text)
    settings = cache.resolve(oci)
    refuse_on_openai_api(settings, "rerank")
    body: dict[str, Any] = {"input": query, "compartmentId": settings.require_compartment(), "servingMode": serving_mode(settings, name), "documents": texts}
    for key, field in (("top_n", "topN"), ("max_chunks_per_doc", "maxChunksPerDocument"), ("max_tokens_per_doc", "maxTokensPerDocument")):
        value = rest.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(key, f"expected a whole number >= 1, got {value!r}")
            body[field] = value
    return_documents = bool(rest.get("return_documents"))
    if return_documents:
        body["isEcho"] = True

    def parse(data: Any, request_id: str | None) -> RerankResponse:
        results = []
        for rank in data.get("documentRanks") or []:
            item: dict[str, Any] = {"index": rank["index"], "relevance_score": rank.get("relevanceScore")}
            if return_documents:
                item["document"] = rank.get("document") or {"text": texts[rank["index"]]}
            results.append(item)
        return RerankResponse({"id": data.get("id"), "results": results, "model": name, "meta": {"model_version": data.get("modelVersion")}})

    return PreparedCall(
        url=action_url("rerankText", region=settings.region, api_base=settings.api_base),
        body=encode(body), headers=base_headers("application/json", extra), signer=settings.signer, stream=False,
        timeout=timeout, max_retries=retries, parse=parse, context=f"rerank with {name}",
    )  # fmt: skip
