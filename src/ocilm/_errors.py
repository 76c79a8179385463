"""Error classes. One base, ``OCIError``; subclasses named as in the OpenAI SDK."""

from __future__ import annotations

from typing import Any


class OCIError(Exception):
    """Base of every error ocilm raises.

    ``status_code`` is the HTTP status (None when no response was received),
    ``code`` is OCI's error code string, ``message`` the human-readable text and
    ``opc_request_id`` the id OCI returned, for support requests.
    """

    status_code: int | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        opc_request_id: str | None = None,
        body: Any = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.code = code
        self.opc_request_id = opc_request_id
        self.body = body
        self.param = param
        self.retry_after: float | None = None

    def __str__(self) -> str:
        parts = []
        # Errors raised locally (bad input) carry a status for the gateway but no reply from OCI.
        if self.status_code is not None and (self.code is not None or self.opc_request_id is not None):
            parts.append(f"HTTP {self.status_code}")
        if self.code:
            parts.append(f"code={self.code}")
        if self.opc_request_id:
            parts.append(f"opc-request-id={self.opc_request_id}")
        prefix = f"[{', '.join(parts)}] " if parts else ""
        return prefix + self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, status_code={self.status_code!r}, "
            f"code={self.code!r}, opc_request_id={self.opc_request_id!r})"
        )


class ConfigurationError(OCIError, ValueError):
    """Bad settings or credentials, detected before any network call."""


class BadRequestError(OCIError):
    status_code = 400


class InvalidParameterError(BadRequestError, ValueError):
    """A call's arguments are wrong, found before anything was sent (no ``opc_request_id``).

    A ``BadRequestError``, so one ``except`` catches it and OCI's own 400s alike; and a
    ``ValueError``, as openai-python raises for local misuse, so the two can be told apart.
    """


class UnsupportedParamsError(InvalidParameterError):
    """A parameter the chosen model or API format cannot take (pass drop_params=True to drop it)."""


class AuthenticationError(OCIError):
    status_code = 401


class PermissionDeniedError(OCIError):
    status_code = 403


class NotFoundError(OCIError):
    status_code = 404


class ConflictError(OCIError):
    status_code = 409


class RequestTooLargeError(OCIError):
    status_code = 413


class UnprocessableEntityError(OCIError):
    status_code = 422


class RateLimitError(OCIError):
    status_code = 429


class InternalServerError(OCIError):
    status_code = 500


class ServiceUnavailableError(InternalServerError):
    status_code = 503


class APIConnectionError(OCIError):
    """The request could not reach OCI, or the connection broke before the reply ended."""

    retryable = True  # False where trying again cannot help (a request httpx refused to send)


class APITimeoutError(APIConnectionError):
    """No reply (or no next stream event) within the configured timeout."""


class APIResponseValidationError(OCIError):
    """OCI replied with something that is not the documented shape (for example malformed JSON)."""


_BY_STATUS: dict[int, type[OCIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: RequestTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def error_class_for_status(status: int) -> type[OCIError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return InternalServerError
    if 400 <= status < 500:
        return BadRequestError
    return OCIError


API_KEY_401_HINT = (" (a Generative AI API key is refused until a policy lets API keys use Generative AI in its compartment, "
                    "and OCI answers a key created before that policy the same way as a wrong key; a key works only in its region)")


def error_from_response(
    status: int, body: bytes, opc_request_id: str | None, *, context: str = "", hint_401: str = ""
) -> OCIError:
    """Build the typed error for an error reply: OCI's JSON ``{code, message}``, OpenAI's
    ``{"error": {message, code, ...}}``, or raw text."""
    import json

    text = body.decode("utf-8", errors="replace")
    code: str | None = None
    message = text.strip() or f"HTTP {status} with an empty body"
    parsed: Any = None
    try:
        parsed = json.loads(text)
    except ValueError:
        pass
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):  # OpenAI's shape (OCI's /openai/v1 may answer it)
        inner = parsed["error"]
        code = None if inner.get("code") is None else str(inner.get("code"))
        if isinstance(inner.get("message"), str):
            message = inner["message"]
    elif isinstance(parsed, dict):  # OCI's own: {"code", "message"}
        code = None if parsed.get("code") is None else str(parsed.get("code"))
        if isinstance(parsed.get("message"), str):
            message = parsed["message"]
    if context:
        message = f"{context}: {message}"
    if status == 401:
        message += hint_401
    cls = error_class_for_status(status)
    return cls(message, status_code=status, code=code, opc_request_id=opc_request_id, body=parsed if parsed is not None else text)
