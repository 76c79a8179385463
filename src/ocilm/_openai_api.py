"""OCI's OpenAI-compatible API (``/openai/v1``): requests as OpenAI writes them, replies as they
come. No I/O here; the clients send what these functions prepare.

Chat Completions and the Responses API pass through untranslated: the caller's parameters are
OpenAI's, and so are the replies. What ocilm adds is the credential (a Generative AI API key as
``Authorization: Bearer``, or OCI request signing with ``opc-compartment-id``), the project
header, and the refusals OCI would answer anyway, made locally: Cohere models, embeddings and
rerank are not on this API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ._body import SpooledBody
from ._core import (
    CALL_OPTIONS,
    PreparedCall,
    base_headers,
    encode,
    model_id,
    split_params,
    transport_options,
)
from ._endpoint import openai_url
from ._errors import (
    APIResponseValidationError,
    ConfigurationError,
    OCIError,
    error_class_for_status,
)
from ._settings import Settings, SettingsCache
from ._sse import DONE, SSEDecoder
from ._types import (
    ChatCompletion,
    ChatCompletionChunk,
    OpenAIObject,
    Response,
    ResponseDeleted,
    ResponseItemList,
    ResponseStreamEvent,
)
from .formats._common import bad, message_list

# OCI's /openai/v1 compresses each SSE event as its own zstd frame, which breaks common
# decoders: never advertise zstd; gzip replies decode.
ACCEPT_ENCODING = "gzip, deflate"
DROPPED_ON_CHAT = frozenset({"store"})  # OCI's chat completions refuse it


def refuse_on_openai_api(settings: Settings, what: str) -> None:
    """Embeddings and rerank exist only on the native API."""
    if settings.api_mode == "openai":
        how = "an API key reaches only /openai/v1: use IAM credentials" if settings.api_key else "use oci_api_mode='native'"
        raise ConfigurationError(f"{what} is on OCI's native API only, not its OpenAI-compatible API; {how}", param="oci_api_mode")


def _check_model(name: str) -> None:
    if name.startswith("cohere."):
        raise ConfigurationError(f"model {name!r}: Cohere models are not served on OCI's OpenAI-compatible API; "
                                 "use IAM credentials with oci_api_mode='native'", param="model")  # fmt: skip


def openai_headers(settings: Settings, accept: str, extra: dict[str, str]) -> dict[str, str]:
    """The headers every /openai/v1 call carries: the project when configured, the compartment
    on a signed call without one (OCI requires it there), and no zstd."""
    headers = base_headers(accept, {"accept-encoding": ACCEPT_ENCODING, **extra})
    if settings.project:
        headers["openai-project"] = settings.project
    if not settings.api_key and not settings.project:
        headers["opc-compartment-id"] = settings.require_compartment()
    return headers


def _call(cache: SettingsCache, params: dict) -> tuple[Settings, dict, tuple[Any, int, dict[str, str]]]:
    oci, rest = split_params(params)
    transport = transport_options(rest)
    settings = cache.resolve(oci)
    return settings, {k: v for k, v in rest.items() if k not in CALL_OPTIONS}, transport


def prepare_openai_chat(settings: Settings, name: str, messages: Any, stream: bool, params: dict,
                        transport: tuple[Any, int, dict[str, str]]) -> PreparedCall:  # fmt: skip
    """A chat completion on /openai/v1: the caller's OpenAI parameters, untranslated."""
    _check_model(name)
    timeout, retries, extra = transport
    body = {k: v for k, v in params.items() if k not in DROPPED_ON_CHAT and k != "drop_params"}
    body.update(model=name, messages=message_list(messages))
    if stream:
        body["stream"] = True
    return PreparedCall(
        url=openai_url("chat/completions", region=settings.region, api_base=settings.api_base),
        body=encode(body), headers=openai_headers(settings, "application/json, text/event-stream", extra), signer=settings.signer,
        stream=stream, timeout=timeout, max_retries=retries, parse=lambda data, rid: ChatCompletion(data),
        new_assembler=lambda rid: PassThroughAssembler(rid, ChatCompletionChunk), context=f"chat with {name} (/openai/v1)",
    )  # fmt: skip


# ------------------------------------------------------------------ Responses


def prepare_responses_create(cache: SettingsCache, model: Any, input: Any, params: dict) -> tuple[Settings, PreparedCall | None]:
    """A Responses call: on /openai/v1, the request as it is; in native mode ``None`` (the
    caller translates it onto chat), after refusing what only a stored service can do."""
    name = model_id(model)
    settings, rest, (timeout, retries, extra) = _call(cache, params)
    stream = rest.pop("stream", False)
    if not isinstance(stream, bool):
        raise bad("stream", f"expected True or False, got {stream!r}")
    if settings.api_mode != "openai":
        for stateful in ("previous_response_id", "background"):
            if rest.get(stateful):
                raise bad(stateful, "needs OCI's OpenAI-compatible API, which stores responses: pass oci_api_mode='openai' "
                                    "(or an API key); the native API is stateless, send the whole input instead")  # fmt: skip
        return settings, None
    _check_model(name)
    body = {**{k: v for k, v in rest.items() if k != "drop_params"}, "model": name, "input": input}
    if stream:
        body["stream"] = True
    return settings, PreparedCall(
        url=openai_url("responses", region=settings.region, api_base=settings.api_base), body=encode(body),
        headers=openai_headers(settings, "application/json, text/event-stream", extra), signer=settings.signer, stream=stream,
        timeout=timeout, max_retries=retries, parse=lambda data, rid: Response(data),
        new_assembler=lambda rid: PassThroughAssembler(rid, ResponseStreamEvent), context=f"responses with {name} (/openai/v1)",
    )  # fmt: skip


_STORED = {
    "get": ("GET", "", Response),
    "delete": ("DELETE", "", ResponseDeleted),
    "input_items": ("GET", "/input_items", ResponseItemList),
    "cancel": ("POST", "/cancel", Response),  # a background response that has not ended
}


def prepare_stored_response(cache: SettingsCache, what: str, response_id: Any, params: dict) -> PreparedCall:
    """Retrieve, delete or list the input items of a stored response (/openai/v1 only)."""
    if not isinstance(response_id, str) or not response_id or "/" in response_id or "?" in response_id:
        raise bad("response_id", "expected a response id such as 'resp_...'")
    settings, rest, (timeout, retries, extra) = _call(cache, params)
    if settings.api_mode != "openai":
        raise ConfigurationError("stored responses live on OCI's OpenAI-compatible API: pass oci_api_mode='openai' (or an API key)",
                                 param="oci_api_mode")  # fmt: skip
    method, suffix, cls = _STORED[what]
    query = "&".join(f"{k}={v}" for k, v in sorted(rest.items()) if k in ("limit", "after", "before", "order") and v is not None)
    url = openai_url(f"responses/{response_id}{suffix}", region=settings.region, api_base=settings.api_base)
    return PreparedCall(
        url=f"{url}?{query}" if query else url, body=b"", headers=openai_headers(settings, "application/json", extra), signer=settings.signer,
        stream=False, timeout=timeout, max_retries=retries, parse=lambda data, rid: cls(data), context=f"responses {what} (/openai/v1)",
        method=method,
    )  # fmt: skip


@dataclass
class RawReply:
    """A reply passed on as it came: its bytes, content type and OCI's request id."""

    body: bytes
    content_type: str
    opc_request_id: str | None = None
    next_page: str | None = None  # OCI's opc-next-page, on a list that goes on

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def prepare_openai_resource(cache: SettingsCache, method: str, path: str, body: bytes | SpooledBody, content_type: str | None, query: str,
                            params: dict) -> PreparedCall:  # fmt: skip
    """A call to ``/openai/v1/<path>`` with the exact body given (a multipart upload, or JSON)."""
    if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/") or "?" in path:
        raise bad("path", "expected a resource path such as 'files/file-abc'")
    settings, _, (timeout, retries, extra) = _call(cache, params)
    if settings.api_mode != "openai":
        raise ConfigurationError("files, vector stores, conversations and containers live on OCI's OpenAI-compatible API: pass "
                                 "oci_api_mode='openai' (or an API key)", param="oci_api_mode")  # fmt: skip
    headers = openai_headers(settings, "*/*", extra)
    if content_type:
        headers["content-type"] = content_type
    elif not body:
        headers.pop("content-type", None)
    url = openai_url(path, region=settings.region, api_base=settings.api_base)
    return PreparedCall(url=f"{url}?{query}" if query else url, body=body, headers=headers, signer=settings.signer, stream=False,
                        timeout=timeout, max_retries=retries, parse=lambda data, rid: data, context=f"{method} /openai/v1/{path.split('/')[0]}",
                        method=method, raw=True)  # fmt: skip


class PassThroughAssembler:
    """OpenAI's SSE in, typed objects out (chat chunks until ``[DONE]``, or Responses events),
    with the interface of the native ``ChunkAssembler``."""

    def __init__(self, request_id: str | None, cls: type[OpenAIObject]) -> None:
        self.decoder = SSEDecoder()
        self.request_id, self.cls = request_id, cls
        self.done = False
        self.delivered = 0
        self.wrap = True

    def feed(self, data: bytes) -> list[Any]:
        try:
            return self._events(self.decoder.feed(data))
        except ValueError as exc:
            raise APIResponseValidationError(f"OCI sent a malformed stream: {exc}", status_code=200, opc_request_id=self.request_id) from None

    def close(self) -> list[Any]:
        try:
            return self._events(self.decoder.flush())
        except ValueError as exc:
            raise APIResponseValidationError(f"OCI sent a malformed stream: {exc}", status_code=200, opc_request_id=self.request_id) from None

    def _events(self, events: list[Any]) -> list[Any]:
        out: list[Any] = []
        for event in events:
            if self.done:
                break
            if event is DONE:
                self.done = True
                break
            if not isinstance(event, dict):
                continue
            if isinstance(event.get("error"), dict) and "choices" not in event and "type" not in event:
                raise _stream_error(event["error"], self.delivered + len(out), self.request_id)
            if event.get("type") == "error":
                raise _stream_error(event, self.delivered + len(out), self.request_id)
            if not self.wrap:
                out.append(event)
                continue
            obj = self.cls(event)
            obj.opc_request_id = self.request_id
            out.append(obj)
            if event.get("type") in ("response.completed", "response.failed", "response.incomplete"):
                self.done = True
        self.delivered += len(out)
        return out


def _stream_error(error: dict, delivered: int, request_id: str | None) -> OCIError:
    code = error.get("code")
    status = int(code) if isinstance(code, int) or (isinstance(code, str) and code.isdigit()) else 500
    return error_class_for_status(status)(f"error in the middle of the stream, after {delivered} event(s): {error.get('message')}",
                                          status_code=status, code=None if code is None else str(code), opc_request_id=request_id)  # fmt: skip
