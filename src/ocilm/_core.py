"""Turning a call's arguments into a ready-to-send request, and replies into results.

No I/O here: the sync and async clients share all of it and differ only in how they wait.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import __version__
from ._endpoint import action_url
from ._errors import (
    APIResponseValidationError,
    BadRequestError,
    ConfigurationError,
    OCIError,
    error_class_for_status,
)
from ._models import api_format_for, model_info
from ._settings import OCI_PARAMS, Settings, SettingsCache
from ._sse import DONE, SSEDecoder
from ._types import ChatCompletion, ChatCompletionChunk, OpenAIObject
from .auth._signers import RequestSigner
from .formats._common import ChatContext, bad

DEFAULT_TIMEOUT = 600.0
DEFAULT_MAX_RETRIES = 2
TRANSPORT_PARAMS = frozenset({"timeout", "max_retries", "drop_params", "extra_headers"})
_PROTECTED_HEADERS = frozenset({"date", "x-date", "host", "content-length", "content-type", "x-content-sha256", "authorization"})


@dataclass
class PreparedCall:
    action: str
    url: str
    body: bytes
    headers: dict[str, str]
    signer: RequestSigner
    stream: bool
    timeout: float
    max_retries: int
    parse: Callable[[Any, str | None], OpenAIObject]
    new_assembler: Callable[[str | None], ChunkAssembler] | None = None
    context: str = ""  # what the call was, for error messages


def model_id(model: Any) -> str:
    if not isinstance(model, str) or not model.strip():
        raise bad("model", "expected a model name such as 'oci/meta.llama-3.3-70b-instruct'")
    model = model.strip()
    return model[4:] if model.startswith("oci/") else model


def transport_options(params: dict) -> tuple[float, int, dict[str, str]]:
    timeout = params.get("timeout")
    if timeout is None:
        timeout = DEFAULT_TIMEOUT
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise bad("timeout", f"expected a positive number of seconds, got {timeout!r}")
    retries = params.get("max_retries")
    if retries is None:
        retries = DEFAULT_MAX_RETRIES
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise bad("max_retries", f"expected a whole number >= 0, got {retries!r}")
    extra = params.get("extra_headers") or {}
    if not isinstance(extra, dict):
        raise bad("extra_headers", "expected a dict of header name -> value")
    clash = sorted(k for k in extra if k.lower() in _PROTECTED_HEADERS)
    if clash:
        raise bad("extra_headers", f"cannot set {', '.join(clash)}: ocilm sets and signs these itself")
    return float(timeout), retries, {str(k): str(v) for k, v in extra.items()}


def split_params(params: dict) -> tuple[dict, dict]:
    oci = {k: v for k, v in params.items() if k in OCI_PARAMS}
    rest = {k: v for k, v in params.items() if k not in OCI_PARAMS}
    return oci, rest


def serving_mode(settings: Settings, model: str) -> dict:
    if settings.serving_mode == "DEDICATED":
        return {"servingType": "DEDICATED", "endpointId": settings.endpoint_id or model}
    if model.startswith("ocid1.generativeaiendpoint."):
        raise ConfigurationError(
            f"model {model!r} is a dedicated endpoint OCID: pass oci_serving_mode='DEDICATED'",
            param="oci_serving_mode",
        )
    return {"servingType": "ON_DEMAND", "modelId": model}


def encode(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def base_headers(accept: str, extra: dict[str, str]) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "accept": accept,
        "user-agent": f"ocilm/{__version__}",
        "opc-request-id": uuid.uuid4().hex.upper(),
        **extra,
    }


def decode_json(body: bytes, context: str, request_id: str | None) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        snippet = body[:120].decode("utf-8", errors="replace")
        raise APIResponseValidationError(
            f"{context}: OCI replied 200 with a body that is not valid JSON: {snippet!r}", status_code=200, opc_request_id=request_id
        ) from None


# ------------------------------------------------------------------ chat


def translate(build: Callable[..., dict], *args: Any) -> dict:
    """Run a pure translator; input it could not read is the caller's error, never a crash.

    The translators check what they read and raise BadRequestError naming the parameter;
    this catches a shape they did not foresee (a number where an object belongs, say).
    """
    try:
        return build(*args)
    except OCIError:
        raise
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        raise BadRequestError(f"the request could not be read: {type(exc).__name__}: {exc}") from None


def prepare_chat(cache: SettingsCache, model: Any, messages: Any, stream: Any, params: dict) -> PreparedCall:
    from .formats.cohere import CohereStream, cohere_request, cohere_response
    from .formats.generic import GenericStream, generic_request, generic_response

    name = model_id(model)
    oci, rest = split_params(params)
    timeout, retries, extra = transport_options(rest)
    chat_params = {k: v for k, v in rest.items() if k not in TRANSPORT_PARAMS}
    settings = cache.resolve(oci)
    compartment = settings.require_compartment()
    if not isinstance(stream, bool):
        raise bad("stream", f"expected True or False, got {stream!r}")
    options = chat_params.pop("stream_options", None)
    if options is not None and not stream:
        raise bad("stream_options", "only allowed with stream=True")
    if options is not None and not isinstance(options, dict):
        raise bad("stream_options", "expected {'include_usage': bool}")
    fmt = settings.api_format or api_format_for(name)
    ctx = ChatContext(
        model=name,
        info=model_info(name, fmt),
        stream=stream,
        include_usage=bool((options or {}).get("include_usage")),
        drop_params=bool(rest.get("drop_params")),
    )
    if fmt == "COHEREV2":
        raise bad("oci_api_format", "COHEREV2 requests are not supported yet; use COHERE for Cohere models")
    build, parse, stream_cls = (generic_request, generic_response, GenericStream) if fmt == "GENERIC" else (cohere_request, cohere_response, CohereStream)
    chat_request = translate(build, messages, chat_params, ctx)
    payload = {"compartmentId": compartment, "servingMode": serving_mode(settings, name), "chatRequest": chat_request}
    return PreparedCall(
        action="chat",
        url=action_url("chat", region=settings.region, api_base=settings.api_base),
        body=encode(payload),
        headers=base_headers("application/json, text/event-stream", extra),
        signer=settings.signer,
        stream=stream,
        timeout=timeout,
        max_retries=retries,
        parse=lambda data, rid: ChatCompletion(parse(data, ctx, rid)),
        new_assembler=lambda rid: ChunkAssembler(stream_cls(ctx, rid, int(time.time())), rid),
        context=f"chat with {name}",
    )


class ChunkAssembler:
    """Bytes of an OCI chat stream in, OpenAI chunks out (pure and incremental)."""

    def __init__(self, state: Any, request_id: str | None) -> None:
        self.decoder = SSEDecoder()
        self.state = state
        self.request_id = request_id
        self.done = False
        self.delivered = 0

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        try:
            events = self.decoder.feed(data)
        except ValueError as exc:
            raise self._malformed(exc) from None
        return self._events(events)

    def close(self) -> list[ChatCompletionChunk]:
        try:
            events = self.decoder.flush()
        except ValueError as exc:
            raise self._malformed(exc) from None
        return self._events(events) + [self._wrap(c) for c in self.state.close()]

    def _malformed(self, exc: ValueError) -> APIResponseValidationError:
        return APIResponseValidationError(f"OCI sent a malformed stream: {exc}", status_code=200, opc_request_id=self.request_id)

    def _events(self, events: list[Any]) -> list[ChatCompletionChunk]:
        out: list[ChatCompletionChunk] = []
        for event in events:
            if self.done:
                break
            if event is DONE:
                self.done = True
                break
            if not isinstance(event, dict):
                continue
            if "code" in event and "message" in event and "finishReason" not in event and not isinstance(event.get("message"), dict):
                status = int(event["code"]) if str(event["code"]).isdigit() else 500
                raise error_class_for_status(status)(
                    f"error in the middle of the stream, after {self.delivered} chunk(s): {event['message']}",
                    status_code=status, code=str(event["code"]), opc_request_id=self.request_id,
                )  # fmt: skip
            out.extend(self._wrap(c) for c in self.state.feed(event))
        self.delivered += len(out)
        return out

    def _wrap(self, chunk: dict) -> ChatCompletionChunk:
        obj = ChatCompletionChunk(chunk)
        obj.opc_request_id = self.request_id
        return obj
