"""The simulator as a raw ASGI app: OCI's routes, signature checks, validation and faults."""

from __future__ import annotations

import asyncio
import base64
import collections
import email.utils
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..auth._signing import BODY_HEADERS, GENERIC_HEADERS, body_sha256, parse_authorization
from . import _engine, _models
from ._catalog import DEFAULT_ENDPOINTS, LIFECYCLE, MODELS, ServedModel
from ._faults import FAULT_HEADER, Fault
from ._openai_v1 import PREFIX as OPENAI_PREFIX
from ._openai_v1 import APIError, OpenAIv1, RawBody
from ._schema import CHAT_DETAILS, EMBED_DETAILS, RERANK_DETAILS, SchemaError, check

API_PREFIX = "/20231130/actions/"
MODELS_PATH = "/20231130/models"  # the management API (ListModels, GetModel), served at the same base
MAX_EMBED_INPUTS = 96
MAX_RECORDED = 10_000
MAX_BODY = 10 * 1024 * 1024
MAX_UPLOAD_BODY = 512 * 1024 * 1024 + 64 * 1024  # a 512 MB file and its multipart framing
NOT_AUTHENTICATED = "The required information to complete authentication was not provided or was incorrect."


class ServiceError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    client: tuple[str, int] | None = None  # the peer address: which connection carried it
    time: float = field(default_factory=time.time)
    events_sent: int = 0  # stream events written before the stream ended
    disconnected_at: float | None = None  # time.monotonic() when the client left before the answer ended
    finished: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)  # set when answered or abandoned
    tag: str | None = None  # the /t/<tag> prefix it was sent under: which view (a test) it belongs to
    sent_target: str = ""  # the request-target as sent (with its prefix): what its signature covers

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def action(self) -> str:
        return self.path.rsplit("/", 1)[-1]


TAG_PREFIX = "/t/"  # /t/<tag>/...: a view's requests (see Simulator.view)


class SimulatorApp:
    """Behaves like OCI Generative AI inference for chat, embedText and rerankText."""

    def __init__(self, *, max_clock_skew: float | None = 300.0, clock: Callable[[], float] = time.time) -> None:
        self.keys: dict[str, Any] = {}
        self.endpoints: dict[str, str] = dict(DEFAULT_ENDPOINTS)
        self.max_clock_skew = max_clock_skew
        self.clock = clock
        # The newest requests only, so a long-running `ocilm simulate` does not grow without end.
        self.requests: collections.deque[RecordedRequest] = collections.deque(maxlen=MAX_RECORDED)
        self.queued_faults: list[Fault] = []
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        self.openai = OpenAIv1(clock=clock)  # OCI's OpenAI-compatible API under /openai/v1

    # ------------------------------------------------------------- configuration

    def register_key(self, key_id: str, public_key: Any) -> None:
        """Accept signatures by ``key_id`` (``tenancy/user/fingerprint`` or ``ST$token``)."""
        if isinstance(public_key, (str, bytes)):
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            public_key = load_pem_public_key(public_key.encode() if isinstance(public_key, str) else public_key)
        elif hasattr(public_key, "public_key"):
            public_key = public_key.public_key()
        self.keys[key_id] = public_key

    def register_api_key(self, secret: str, *, policy: bool = True) -> None:
        """Accept ``Authorization: Bearer <secret>`` on /openai/v1. ``policy=False``: a key
        whose compartment has no policy yet, which OCI answers with the same 401 as a wrong key."""
        self.openai.api_keys[secret] = policy

    def register_session_token(self, token: str, public_key: Any) -> None:
        self.register_key("ST$" + token, public_key)

    def inject(self, fault: Fault) -> None:
        """Apply ``fault`` to the next request(s) (``fault.times`` of them)."""
        with self._lock:
            self.queued_faults.append(fault)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.queued_faults.clear()
            self._attempts.clear()

    # ------------------------------------------------------------- ASGI

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        target = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        # A file upload may be as large as a file (OCI states no cap; OpenAI's is 512 MB); any other body 10 MB.
        upload = headers.get("content-type", "").lower().startswith("multipart/form-data")
        most, named = (MAX_UPLOAD_BODY, "512 MB") if upload else (MAX_BODY, "10 MB")
        pieces = bytearray()
        while True:
            message = await receive()
            pieces += message.get("body", b"")
            if len(pieces) > most:
                await self._send_json(send, 413, {"code": "RequestEntityTooLarge", "message": f"request body exceeds {named}"}, headers)
                return
            if not message.get("more_body"):
                break
        body = bytes(pieces)
        client = scope.get("client")
        sent, tag = target, None
        if target.startswith(TAG_PREFIX):  # a view's prefix (one test's): recorded, then routed without it
            tag, _, rest = target[len(TAG_PREFIX):].partition("/")
            target = "/" + rest
        record = RecordedRequest(scope["method"], target, headers, body, client=tuple(client) if client else None, tag=tag, sent_target=sent)
        with self._lock:
            self.requests.append(record)
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            record.disconnected_at = time.monotonic()
            gone.set()

        watcher = asyncio.ensure_future(watch())
        try:
            await self._answer(send, record, headers, target, body, gone)
        finally:
            watcher.cancel()
            record.finished.set()

    async def _answer(self, send: Callable, record: RecordedRequest, headers: dict[str, str], target: str, body: bytes,
                      gone: asyncio.Event) -> None:  # fmt: skip
        """Answers one request; stops, as a server does, when the client goes away."""
        try:
            if target.startswith(MODELS_PATH):  # the management API (ListModels, GetModel): signed, never given a fault queued for inference
                self._verify_signature(record.method, record.sent_target, headers, body)
                path, _, query = target.partition("?")
                if record.method != "GET":
                    raise ServiceError(405, "MethodNotAllowed", f"{record.method} is not allowed on {path}")
                try:
                    if path == MODELS_PATH:
                        listed, more = _models.list_models(query)
                    else:
                        listed, more = _models.get_model(path[len(MODELS_PATH) + 1 :], "ocid1.tenancy.oc1..simulated"), {}
                except _models.ModelsError as exc:
                    raise ServiceError(exc.status, exc.code, exc.message) from None
                record.status = 200
                await self._send_json(send, 200, listed, headers, more)
                return
            fault = self._fault_for(headers, target, body, record.tag)
            if fault and fault.delay and fault.stall_after is None:
                await _unless(gone, asyncio.sleep(fault.delay))
                if gone.is_set():
                    return
            if target.startswith(OPENAI_PREFIX):
                await self._openai(send, record, headers, target, body, fault, gone)
                return
            self._verify_signature(record.method, record.sent_target, headers, body)
            if fault and fault.status and fault.raw_body is not None:
                record.status = fault.status
                await self._send(send, fault.status, fault.raw_body.encode(), "text/plain", headers)
                return
            if fault and fault.status:
                extra = {"retry-after": fault.retry_after} if fault.retry_after else {}
                raise ServiceError(fault.status, fault.code or _default_code(fault.status), fault.message or f"simulated fault: HTTP {fault.status}", extra)
            action, payload = self._route(record.method, target, body)
            if fault and fault.malformed:
                record.status = 200
                await self._send(send, 200, b'{"modelId": "broken", "chatResponse": {', "application/json", headers)
                return
            result = self._dispatch(action, payload)
            notice = self._retirement_notice(payload)
        except ServiceError as err:
            record.status = err.status
            await self._send_json(send, err.status, {"code": err.code, "message": err.message}, headers, err.headers)
            return
        record.status = 200
        if isinstance(result, list):
            if fault and fault.events and result:
                result = [result[0]] * fault.events + result[1:]  # a long reply: the first delta, repeated
            await self._stream(send, result, headers, fault, record, gone, notice)
        else:
            await self._send_json(send, 200, result, headers, notice)

    async def _openai(self, send: Callable, record: RecordedRequest, headers: dict[str, str], target: str, body: bytes,
                      fault: Fault | None, gone: asyncio.Event) -> None:  # fmt: skip
        """/openai/v1: an API key (Bearer) or a signature, then OpenAI's request and reply."""
        path, _, query = target.partition("?")
        auth = headers.get("authorization", "")
        try:
            if auth[:7].lower() == "bearer ":
                if not self.openai.bearer_ok(auth[7:].strip()):  # unknown, placeholder or policy-less: one body for all
                    raise ServiceError(401, "NotAuthenticated", NOT_AUTHENTICATED)
                signed = False
            else:
                self._verify_signature(record.method, record.sent_target, headers, body)
                signed = True
            if fault and fault.status:
                extra = {"retry-after": fault.retry_after} if fault.retry_after else {}
                raise ServiceError(fault.status, fault.code or _default_code(fault.status), fault.message or f"simulated fault: HTTP {fault.status}", extra)
            status, result = self.openai.handle(record.method, path, query, headers, body, signed)
        except APIError as exc:
            record.status = exc.status
            await self._send_json(send, exc.status, {"code": exc.code, "message": exc.message}, headers)
            return
        except ServiceError as err:
            record.status = err.status
            await self._send_json(send, err.status, {"code": err.code, "message": err.message}, headers, err.headers)
            return
        record.status = status
        if isinstance(result, list):
            await self._stream(send, result, headers, fault, record, gone)
        elif isinstance(result, RawBody):
            await self._send(send, status, result.content, result.content_type, headers)
        else:
            await self._send_json(send, status, result, headers)

    # ------------------------------------------------------------- steps

    def _fault_for(self, headers: dict[str, str], target: str, body: bytes, tag: str | None = None) -> Fault | None:
        fault = self._fault_chosen(headers, target, body, tag)
        if fault is not None and fault.probability < 1.0 and random.random() >= fault.probability:
            return None  # this request is spared
        return fault

    def _fault_chosen(self, headers: dict[str, str], target: str, body: bytes, tag: str | None = None) -> Fault | None:
        action = target.split("?")[0].rsplit("/", 1)[-1]
        spec = headers.get(FAULT_HEADER)
        with self._lock:
            if spec:
                try:
                    fault = Fault.parse(spec)
                except ValueError as exc:
                    raise ServiceError(400, "InvalidParameter", f"bad {FAULT_HEADER} header: {exc}") from None
                if not ((fault.action and fault.action != action) or (fault.match and fault.match.encode() not in body)):
                    call = headers.get("opc-retry-token") or spec + headers.get("x-content-sha256", "")
                    self._attempts[call] = self._attempts.get(call, 0) + 1
                    return fault if fault.times is None or self._attempts[call] <= fault.times else None
            for i, fault in enumerate(self.queued_faults):
                if (fault.action and fault.action != action) or (fault.match and fault.match.encode() not in body):
                    continue
                if fault.tag is not None and fault.tag != tag:  # a view's fault: only its own requests meet it
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.queued_faults.pop(i)
                return fault
        return None

    def _verify_signature(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        def reject(why: str) -> ServiceError:
            return ServiceError(401, "NotAuthenticated", f"{NOT_AUTHENTICATED} ({why})")

        auth = headers.get("authorization")
        if not auth:
            raise reject("no Authorization header")
        try:
            params = parse_authorization(auth)
        except ValueError as exc:
            raise reject(str(exc)) from None
        for name in ("keyId", "signature", "headers"):
            if not params.get(name):
                raise reject(f"Authorization has no {name}")
        if params.get("algorithm") != "rsa-sha256" or params.get("version", "1") != "1":
            raise reject("algorithm must be rsa-sha256, version 1")
        signed = tuple(params["headers"].split())
        required = set(GENERIC_HEADERS)
        if method.upper() in ("POST", "PUT", "PATCH"):
            required |= set(BODY_HEADERS)
        if "x-date" in signed:
            required.discard("date")
        missing = sorted(required - set(signed))
        if missing:
            raise reject(f"required header(s) not signed: {', '.join(missing)}")
        if "x-content-sha256" in signed and headers.get("x-content-sha256") != body_sha256(body):
            raise reject("x-content-sha256 does not match the body")
        if "content-length" in signed and headers.get("content-length") != str(len(body)):
            raise reject("content-length does not match the body")
        lines = []
        for name in signed:
            if name == "(request-target)":
                lines.append(f"(request-target): {method.lower()} {target}")
            elif name in headers:
                lines.append(f"{name}: {headers[name]}")
            else:
                raise reject(f"signed header {name!r} is not on the request")
        date_value = headers.get("x-date") or headers.get("date")
        if self.max_clock_skew is not None:
            try:
                sent = email.utils.parsedate_to_datetime(date_value or "").timestamp()
            except (TypeError, ValueError):
                raise reject("date header is not an HTTP date") from None
            if abs(self.clock() - sent) > self.max_clock_skew:
                raise reject("date is more than 5 minutes off")
        key = self.keys.get(params["keyId"])
        if key is None:
            raise reject("unknown keyId")
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
        from cryptography.hazmat.primitives.hashes import SHA256

        try:
            key.verify(base64.b64decode(params["signature"]), "\n".join(lines).encode("latin-1"), PKCS1v15(), SHA256())
        except (InvalidSignature, ValueError):
            raise reject("signature does not verify") from None

    def _route(self, method: str, target: str, body: bytes) -> tuple[str, dict]:
        path = target.split("?")[0]
        if not path.startswith(API_PREFIX) or path[len(API_PREFIX) :] not in ("chat", "embedText", "rerankText", "applyGuardrails"):
            raise ServiceError(404, "NotAuthorizedOrNotFound", f"No route for {method} {path}")
        if method != "POST":
            raise ServiceError(405, "MethodNotAllowed", f"{method} is not allowed on {path}")
        try:
            payload = json.loads(body)
        except ValueError:
            raise ServiceError(400, "CannotParseRequest", "The request body is not valid JSON") from None
        return path[len(API_PREFIX) :], payload

    @staticmethod
    def _retirement_notice(payload: dict) -> dict[str, str] | None:
        """OCI's ``model-retirement-info`` header for a deprecated model, on every reply."""
        mode = payload.get("servingMode") or {}
        life = LIFECYCLE.get(mode.get("modelId", ""))
        return {"model-retirement-info": life.notice(mode.get("servingType") == "DEDICATED")} if life else None

    def _model(self, serving_mode: dict, kind: str) -> ServedModel:
        if serving_mode["servingType"] == "DEDICATED":
            model_id = self.endpoints.get(serving_mode["endpointId"])
            if model_id is None:
                raise ServiceError(404, "404", f"Authorization failed or requested resource not found: endpoint {serving_mode['endpointId']!r}")
        else:
            model_id = serving_mode["modelId"]
        model = MODELS.get(model_id)
        if model is None or model.kind != kind:
            raise ServiceError(404, "404", f"Authorization failed or requested resource not found: no {kind} model {model_id!r}")
        life = LIFECYCLE.get(model_id)
        dedicated = serving_mode["servingType"] == "DEDICATED"
        if life is not None and life.retired(dedicated, time.time()):
            when = life.time_dedicated_retired if dedicated else life.time_on_demand_retired
            raise ServiceError(400, "400", f"Model {model_id} was retired on {when} and is no longer served; use {life.replacement}")
        return model

    def _dispatch(self, action: str, payload: dict) -> dict | list:
        schema = {"chat": CHAT_DETAILS, "embedText": EMBED_DETAILS, "rerankText": RERANK_DETAILS, "applyGuardrails": "ApplyGuardrailsDetails"}[action]
        try:
            check(payload, schema, "$")
        except SchemaError as exc:
            raise ServiceError(400, "400", str(exc)) from None
        if action == "applyGuardrails":
            if not payload["guardrailConfigs"]:
                raise ServiceError(400, "400", "Invalid request content: guardrailConfigs must configure at least one guardrail")
            if "input" not in payload and not payload.get("multimodalInput"):
                raise ServiceError(400, "400", "Invalid request content: one of input or multimodalInput is required")
            return _engine.guardrails_result(payload)
        if action == "embedText":
            return self._embed(payload)
        if action == "rerankText":
            return _engine.rerank_result(payload, self._model(payload["servingMode"], "rerank"))
        model = self._model(payload["servingMode"], "chat")
        if model.responses_only:
            raise ServiceError(400, "400", f"Model {model.id} is only served by the OpenAI-compatible Responses API")
        req = payload["chatRequest"]
        fmt = req["apiFormat"]
        if fmt not in model.api_formats:
            raise ServiceError(400, "400", f"Chat request type does not match serving model: {model.id} takes {' or '.join(model.api_formats)}, not {fmt}")
        rejected = sorted(name for name in model.rejects if name in req)
        if rejected:
            hint = " Use 'maxCompletionTokens' instead." if rejected == ["maxTokens"] else ""
            raise ServiceError(400, "400", f"Unsupported parameter: '{rejected[0]}' is not supported with model {model.id}.{hint}")
        if fmt == "GENERIC":
            _check_generic_rules(req, model)
            return _engine.generic_events(req, model) if req.get("isStream") else _engine.generic_result(req, model)
        if fmt == "COHERE":
            _check_cohere_rules(req)
            return _engine.cohere_events(req, model) if req.get("isStream") else _engine.cohere_result(req, model)
        _check_cohere_v2_rules(req, model)
        return _engine.cohere_v2_events(req, model) if req.get("isStream") else _engine.cohere_v2_result(req, model)

    def _embed(self, payload: dict) -> dict:
        model = self._model(payload["servingMode"], "embed")
        inputs = payload.get("inputs") or payload.get("embedContents") or []
        if not inputs:
            raise ServiceError(400, "400", "Invalid request content: one of inputs or embedContents is required")
        if len(inputs) > MAX_EMBED_INPUTS:
            raise ServiceError(400, "400", f"Invalid request content: at most {MAX_EMBED_INPUTS} inputs are allowed per request, got {len(inputs)}")
        dims = payload.get("outputDimensions")
        if dims is not None and dims not in model.output_dimensions:
            allowed = ", ".join(map(str, model.output_dimensions)) or "none (fixed size)"
            raise ServiceError(400, "400", f"Invalid request content: outputDimensions {dims} is not supported by {model.id}; allowed: {allowed}")
        has_image = payload.get("inputType") == "IMAGE" or any(c.get("type") == "IMAGE" for c in payload.get("embedContents") or [])
        if has_image:
            if not model.images:
                raise ServiceError(400, "400", f"Invalid request content: {model.id} does not embed images")
            if payload.get("inputType") == "IMAGE" and (len(inputs) != 1 or not str(inputs[0]).startswith("data:image/")):
                raise ServiceError(400, "400", "Invalid request content: inputType IMAGE takes exactly one data:image/... URI")
        return _engine.embed_result(payload, model)

    # ------------------------------------------------------------- responses

    @staticmethod
    def _request_id(headers: dict[str, str]) -> str:
        own = headers.get("opc-request-id") or uuid.uuid4().hex.upper()
        return f"{own}/{uuid.uuid4().hex.upper()}/{uuid.uuid4().hex.upper()}"

    async def _send(self, send: Callable, status: int, body: bytes, content_type: str, req_headers: dict, extra: dict | None = None) -> None:
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"opc-request-id", self._request_id(req_headers).encode()),
        ]
        headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _send_json(self, send: Callable, status: int, payload: Any, req_headers: dict, extra: dict | None = None) -> None:
        await self._send(send, status, json.dumps(payload).encode(), "application/json", req_headers, extra)

    async def _stream(self, send: Callable, events: list, req_headers: dict, fault: Fault | None,
                      record: RecordedRequest, gone: asyncio.Event, extra: dict | None = None) -> None:  # fmt: skip
        await send({
            "type": "http.response.start", "status": 200,
            "headers": [(b"content-type", b"text/event-stream"), (b"opc-request-id", self._request_id(req_headers).encode()),
                        *((k.encode(), v.encode()) for k, v in (extra or {}).items())],
        })  # fmt: skip
        for i, event in enumerate(events):
            if fault and fault.cut_after is not None and i >= fault.cut_after:
                raise ConnectionAbortedError("simulated stream cut")  # the server drops the connection mid-body
            if fault and fault.stall_after is not None and i == fault.stall_after:
                await _unless(gone, asyncio.sleep(fault.delay))
            if fault and fault.event_delay and i:
                await _unless(gone, asyncio.sleep(fault.event_delay))
            if gone.is_set():
                return
            if isinstance(event, bytes):  # a whole frame already (/openai/v1's typed events)
                frame = event
            else:
                frame = f"data: {event if isinstance(event, str) else json.dumps(event)}\n\n".encode()
            await send({"type": "http.response.body", "body": frame, "more_body": True})
            record.events_sent = i + 1
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _unless(gone: asyncio.Event, wait: Any) -> None:
    """Wait for ``wait`` unless the client leaves first."""
    waiting = asyncio.ensure_future(wait)
    leaving = asyncio.ensure_future(gone.wait())
    await asyncio.wait({waiting, leaving}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    leaving.cancel()


def _default_code(status: int) -> str:
    return {400: "InvalidParameter", 401: "NotAuthenticated", 403: "NotAllowed", 404: "NotAuthorizedOrNotFound",
            409: "IncorrectState", 413: "RequestEntityTooLarge", 429: "TooManyRequests", 500: "InternalServerError",
            502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout"}.get(status, str(status))  # fmt: skip


def _check_generic_rules(req: dict, model: ServedModel) -> None:
    previous_ids: set[str] = set()
    for i, message in enumerate(req.get("messages") or []):
        role = message["role"]
        if role == "ASSISTANT":
            previous_ids = {c["id"] for c in message.get("toolCalls") or []}
        elif role == "TOOL":
            if message["toolCallId"] not in previous_ids:
                raise ServiceError(400, "400", f"Invalid parameter: 'toolCallId' of '{message['toolCallId']}' not found in 'toolCalls' of previous message.")
        else:
            previous_ids = set()
        for part in message.get("content") or []:
            if part["type"] == "IMAGE" and not model.vision:
                raise ServiceError(400, "400", f"Invalid request content: messages[{i}]: {model.id} does not accept image content")
    choice = req.get("toolChoice")
    if choice and choice["type"] == "FUNCTION" and choice["name"] not in {t["name"] for t in req.get("tools") or []}:
        raise ServiceError(400, "400", f"Invalid request content: toolChoice names {choice['name']!r}, which is not in tools")


def _check_cohere_v2_rules(req: dict, model: ServedModel) -> None:
    previous_calls: set[str] = set()
    for i, message in enumerate(req["messages"]):
        if message["role"] == "TOOL" and message["toolCallId"] not in previous_calls:
            raise ServiceError(400, "400", f"Invalid parameter: messages[{i}].toolCallId does not match a tool call of an earlier assistant message.")
        if message["role"] == "ASSISTANT":
            previous_calls |= {c.get("id") for c in message.get("toolCalls") or []}
        if not model.vision and any(p.get("type") == "IMAGE_URL" for p in message.get("content") or []):
            raise ServiceError(400, "400", f"Model {model.id} does not support image input.")
    if req.get("thinking") and not model.reasoning:
        raise ServiceError(400, "400", f"Model {model.id} does not support thinking.")


def _check_cohere_rules(req: dict) -> None:
    history = req.get("chatHistory") or []
    if req.get("toolResults") and req.get("message"):
        raise ServiceError(400, "400", "Invalid request content: message must be empty when toolResults are given")
    if history and history[-1]["role"] == "TOOL" and req.get("message"):
        raise ServiceError(400, "400", "Invalid request content: message must be empty when the last chatHistory entry holds tool results")
    for tool in req.get("tools") or []:
        for name, definition in (tool.get("parameterDefinitions") or {}).items():
            if definition["type"] not in ("str", "int", "float", "bool", "list", "dict", "number", "integer", "string", "boolean", "object", "array"):
                raise ServiceError(500, "InternalServerError", f"Internal error processing tool {tool['name']} parameter {name}")
