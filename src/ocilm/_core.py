"""Turning a call's arguments into a ready-to-send request, and replies into results.

No I/O here: the sync and async clients share all of it and differ only in how they wait.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from . import __version__
from ._body import SpooledBody
from ._capabilities import api_format_for, model_info
from ._endpoint import action_url
from ._errors import (
    APIResponseValidationError,
    ConfigurationError,
    InvalidParameterError,
    OCIError,
    UnsupportedParamsError,
    error_class_for_status,
)
from ._json import loads
from ._settings import CONNECTION_SETTINGS, Settings, SettingsCache
from ._sse import DONE, SSEDecoder
from ._types import ChatCompletion, ChatCompletionChunk, OpenAIObject, stream_chunk
from .auth._signers import RequestSigner
from .formats._common import ChatContext, bad
from .formats.cohere import CohereStream, cohere_request, cohere_response
from .formats.cohere_v2 import CohereV2Stream, cohere_v2_request, cohere_v2_response
from .formats.generic import GenericStream, generic_request, generic_response

DEFAULT_TIMEOUT = 600.0
call_deadline: ContextVar[float | None] = ContextVar("ocilm_call_deadline", default=None)
"""A ``time.monotonic()`` deadline for the calls made in this context (no retry starts past it)."""
DEFAULT_MAX_RETRIES = 2
CALL_OPTIONS = frozenset({"timeout", "max_retries", "drop_params", "extra_headers"})
_PROTECTED_HEADERS = frozenset({"date", "x-date", "host", "content-length", "content-type", "x-content-sha256", "authorization"})


@dataclass
class PreparedCall:
    """A request ready to send. Its repr leaves out the body and headers (prompts, proxy keys)."""

    url: str
    body: bytes | SpooledBody = field(repr=False)  # a SpooledBody: an upload, sent in pieces
    headers: dict[str, str] = field(repr=False)
    signer: RequestSigner
    stream: bool
    timeout: Any  # seconds (float) or an httpx.Timeout, as openai-python takes
    max_retries: int
    parse: Callable[[Any, str | None], OpenAIObject] = field(repr=False)
    new_assembler: Callable[[str | None], Any] | None = field(default=None, repr=False)  # a ChunkAssembler, or /openai/v1's pass-through
    context: str = ""  # what the call was, for error messages
    method: str = "POST"
    raw: bool = False  # the reply's bytes as they came (a file's content, a body passed on), not parsed JSON
    # time.monotonic() past which no retry starts; the gateway sets it per request.
    deadline: float | None = field(default_factory=lambda: call_deadline.get())

    @property
    def timeout_seconds(self) -> float:
        """The per-read timeout, for messages."""
        read = getattr(self.timeout, "read", self.timeout)
        return float(read) if read is not None else math.inf


def model_id(model: Any) -> str:
    if not isinstance(model, str) or not model.strip():
        raise bad("model", "expected a model name such as 'oci/meta.llama-3.3-70b-instruct'")
    model = model.strip()
    return model[4:] if model.startswith("oci/") else model


_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HEADER_VALUE_FORBIDDEN = re.compile(r"[\r\n\x00]")
_TIMEOUT_PARTS = ("connect", "read", "write", "pool")


def _seconds(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _check_timeout(timeout: Any) -> Any:
    if _seconds(timeout):
        return float(timeout)
    if all(hasattr(timeout, part) for part in _TIMEOUT_PARTS):  # an httpx.Timeout
        if all(getattr(timeout, part) is None or _seconds(getattr(timeout, part)) for part in _TIMEOUT_PARTS):
            return timeout
        raise bad("timeout", "each part of an httpx.Timeout must be a positive, finite number of seconds or None")
    raise bad("timeout", "expected a positive, finite number of seconds or an httpx.Timeout")


def check_extra_headers(extra: Any) -> dict[str, str]:
    """Validated before any I/O. Errors name the header, never its value (it may be a key)."""
    if not isinstance(extra, dict):
        raise bad("extra_headers", "expected a dict of header name -> value")
    out: dict[str, str] = {}
    for name, value in extra.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise bad("extra_headers", "a header name must be a non-empty HTTP token (letters, digits, -_.!#$%&'*+^`|~)")
        if name.lower() in _PROTECTED_HEADERS:
            raise bad("extra_headers", f"cannot set {name}: ocilm sets and signs it itself")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise bad("extra_headers", f"the value of {name} must be a string")
        text = str(value)
        if _HEADER_VALUE_FORBIDDEN.search(text):
            raise bad("extra_headers", f"the value of {name} contains a line break or NUL, which HTTP forbids")
        try:
            text.encode("latin-1")
        except UnicodeEncodeError:
            raise bad("extra_headers", f"the value of {name} must be Latin-1 text") from None
        out[name] = text
    return out


def transport_options(params: dict) -> tuple[Any, int, dict[str, str]]:
    timeout = params.get("timeout")
    timeout = DEFAULT_TIMEOUT if timeout is None else _check_timeout(timeout)
    retries = params.get("max_retries")
    if retries is None:
        retries = DEFAULT_MAX_RETRIES
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise bad("max_retries", f"expected a whole number >= 0, got {retries!r}")
    return timeout, retries, check_extra_headers(params.get("extra_headers") or {})


def split_params(params: dict) -> tuple[dict, dict]:
    """(OCI settings, everything else). A misspelled ``oci_*`` setting is an error even with
    ``drop_params``: dropping it would silently use a default region or profile."""
    unknown = sorted(k for k in params if k.startswith("oci_") and k not in CONNECTION_SETTINGS)
    if unknown:
        raise ConfigurationError(
            f"unknown OCI setting(s): {', '.join(unknown)}; expected one of {', '.join(sorted(p for p in CONNECTION_SETTINGS if p.startswith('oci_')))}",
            param=unknown[0],
        )
    oci = {k: v for k, v in params.items() if k in CONNECTION_SETTINGS}
    rest = {k: v for k, v in params.items() if k not in CONNECTION_SETTINGS}
    return oci, rest


def unsupported_param(name: str, model: str, drop: bool, why: str) -> None:
    """Raise for a parameter an embedding or rerank call cannot take, unless it is to be dropped."""
    if drop:
        return
    raise UnsupportedParamsError(f"{name} is not supported by {model!r} ({why}); remove it or pass drop_params=True", param=name)


def call_arguments(model: Any, params: dict, known: frozenset[str], what: str) -> tuple[str, dict, dict, tuple[Any, int, dict[str, str]], bool]:
    """Split an embedding or rerank call's arguments: model id, OCI settings, the rest,
    transport options, drop_params. A parameter not in ``known`` is unsupported."""
    name = model_id(model)
    oci, rest = split_params(params)
    transport = transport_options(rest)
    drop = bool(rest.get("drop_params"))
    for key in sorted(set(rest) - known - CALL_OPTIONS):
        unsupported_param(key, name, drop, f"not {what} parameter ocilm knows")
    return name, oci, rest, transport, drop


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
    """The request body. Text that is not valid Unicode (a lone surrogate such as ``\\ud800``)
    or a non-finite number cannot be sent as JSON: that is the caller's error."""
    try:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParameterError("the request holds text that is not valid Unicode (a lone surrogate such as \\ud800)") from None
    except ValueError:
        raise InvalidParameterError("the request holds a number JSON cannot carry (NaN or Infinity)") from None
    except RecursionError:
        raise InvalidParameterError("the request is nested too deeply") from None


# The exceptions a parser raises when a reply is not in the shape it expects.
SHAPE_ERRORS = (TypeError, AttributeError, KeyError, IndexError, ValueError, struct.error)


def shape_error(context: str, request_id: str | None, exc: Exception) -> APIResponseValidationError:
    """A parser's surprise at a reply's shape, as the error the caller gets."""
    return APIResponseValidationError(
        f"{context}: OCI's reply is not in the documented shape ({type(exc).__name__})", status_code=200, opc_request_id=request_id
    )


@contextlib.contextmanager
def reply_shape(context: str, request_id: str | None) -> Iterator[None]:
    """Turn a parser's surprise at a reply's shape into ``APIResponseValidationError``
    (per stream event, ``ChunkAssembler`` does the same with a plain ``try``: it is cheaper)."""
    try:
        yield
    except OCIError:
        raise
    except SHAPE_ERRORS as exc:
        raise shape_error(context, request_id, exc) from None


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
        return loads(body)
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
    except RecursionError:
        raise InvalidParameterError("the request is nested too deeply") from None
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        raise InvalidParameterError(f"the request could not be read: {type(exc).__name__}: {exc}") from None


def prepare_chat(cache: SettingsCache, model: Any, messages: Any, stream: Any, params: dict) -> PreparedCall:

    name = model_id(model)
    oci, rest = split_params(params)
    timeout, retries, extra = transport_options(rest)
    chat_params = {k: v for k, v in rest.items() if k not in CALL_OPTIONS}
    settings = cache.resolve(oci)
    if not isinstance(stream, bool):
        raise bad("stream", f"expected True or False, got {stream!r}")
    if settings.api_mode == "openai":
        from ._openai_api import prepare_openai_chat

        if chat_params.get("stream_options") is not None and not stream:
            raise bad("stream_options", "only allowed with stream=True")
        return prepare_openai_chat(settings, name, messages, stream, chat_params, (timeout, retries, extra))
    compartment = settings.require_compartment()
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
    build, parse, stream_cls = _TRANSLATORS[fmt]
    chat_request = translate(build, messages, chat_params, ctx)
    payload = {"compartmentId": compartment, "servingMode": serving_mode(settings, name), "chatRequest": chat_request}
    return PreparedCall(
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


_TRANSLATORS: dict[str, tuple[Callable[..., dict], Callable[..., dict], Any]] = {
    "GENERIC": (generic_request, generic_response, GenericStream),
    "COHERE": (cohere_request, cohere_response, CohereStream),
    "COHEREV2": (cohere_v2_request, cohere_v2_response, CohereV2Stream),
}


class ChunkAssembler:
    """Bytes of an OCI chat stream in, OpenAI chunks out (pure and incremental)."""

    def __init__(self, state: Any, request_id: str | None) -> None:
        self.decoder = SSEDecoder()
        self.state = state
        self.request_id = request_id
        self.done = False
        self.delivered = 0
        self.wrap = True  # False: chunks stay plain dicts (a relay that only serialises them)

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        try:
            events = self.decoder.feed(data)
        except ValueError as exc:
            raise self._malformed(exc) from None
        try:
            return self._events(events)
        except OCIError:
            raise
        except SHAPE_ERRORS as exc:
            raise shape_error("the stream", self.request_id, exc) from None

    def close(self) -> list[ChatCompletionChunk]:
        try:
            events = self.decoder.flush()
        except ValueError as exc:
            raise self._malformed(exc) from None
        try:
            tail = self.state.close()
            return self._events(events) + ([self._wrap(c) for c in tail] if self.wrap else tail)
        except OCIError:
            raise
        except SHAPE_ERRORS as exc:
            raise shape_error("the stream", self.request_id, exc) from None

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
            chunks = self.state.feed(event)
            out.extend(map(self._wrap, chunks) if self.wrap else chunks)
        self.delivered += len(out)
        return out

    def _wrap(self, chunk: dict) -> ChatCompletionChunk:
        return stream_chunk(chunk, self.request_id)
