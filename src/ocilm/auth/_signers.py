"""Request signers: who signs (API key, session token, an OCI SDK signer) and how.

Each signer takes a request whose body is final (a ``SignableRequest``, or an ``httpx.Request``)
and adds the OCI signature headers in place. They hold parsed keys, never PEM text, and their repr shows no secret.
"""

from __future__ import annotations

import email.utils
import os
import threading
from typing import TYPE_CHECKING, Any

from .._body import SpooledBody
from .._errors import ConfigurationError
from ._request import SignableRequest
from ._signing import authorization_header, body_sha256, headers_to_sign, signing_string

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey


def rsa_sign(key: RSAPrivateKey, text: str) -> str:
    import base64

    from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
    from cryptography.hazmat.primitives.hashes import SHA256

    return base64.b64encode(key.sign(text.encode("ascii"), PKCS1v15(), SHA256())).decode("ascii")


def fill_signed_headers(request: SignableRequest, names: tuple[str, ...]) -> dict[str, str]:
    """Add the headers OCI signs but the caller may not have set; return the signed values.

    Values the caller set (a fixed ``date``, say) are kept. The returned dict holds exactly
    what is on the request, so the signing string is built without reading headers back.
    """
    request = SignableRequest.of(request)
    headers = request.headers
    values: dict[str, str] = {}
    added: dict[str, str] = {}
    date = headers.get("date")
    values["date"] = date or added.setdefault("date", email.utils.formatdate(usegmt=True))
    host = headers.get("host")
    values["host"] = host or added.setdefault("host", request.netloc)
    if "content-length" in names:
        body = request.content
        content_type = headers.get("content-type")
        values["content-type"] = content_type or added.setdefault("content-type", "application/json")
        values["content-length"] = added["content-length"] = str(len(body))
        # A spooled upload's digest was worked out as it arrived; bytes are hashed here.
        digest = body.sha256 if isinstance(body, SpooledBody) else body_sha256(body)
        values["x-content-sha256"] = added["x-content-sha256"] = digest
    headers.update(added)
    return values


class RequestSigner:
    """Base: ``sign(request)`` adds date/host/content headers and ``authorization``."""

    may_block = False  # True where sign() or on_unauthorized() may wait on I/O (async code runs them in a thread)

    def sign(self, request: Any) -> None:
        """Sign ``request`` (a ``SignableRequest`` or an ``httpx.Request``) in place."""
        raise NotImplementedError

    def on_unauthorized(self) -> bool:
        """Refresh credentials after a 401; True if a retry with fresh credentials may help."""
        return False


class BearerKeySigner(RequestSigner):
    """A Generative AI API key, sent as ``Authorization: Bearer <key>`` (OCI's ``/openai/v1``
    API): no signature. The key is never shown; a 401 is final (a key whose compartment has no
    policy yet answers 401 exactly as a wrong key does)."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def sign(self, request: Any) -> None:
        SignableRequest.of(request).headers["authorization"] = f"Bearer {self._api_key}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api_key='sk-...')"


class _RSASigner(RequestSigner):
    """Signs with a parsed RSA key under the keyId that ``_current_key_id`` gives."""

    _private_key: RSAPrivateKey

    def sign(self, request: Any) -> None:
        request = SignableRequest.of(request)
        names = headers_to_sign(request.method)
        values = fill_signed_headers(request, names)
        text = signing_string(request.method, request.target, values, names)
        request.headers["authorization"] = authorization_header(
            self._current_key_id(), names, rsa_sign(self._private_key, text)
        )

    def _current_key_id(self) -> str:
        raise NotImplementedError


class KeySigner(_RSASigner):
    """Signs with a parsed RSA key under a fixed keyId (``tenancy/user/fingerprint``)."""

    def __init__(self, key_id: str, private_key: RSAPrivateKey) -> None:
        self.key_id = key_id
        self._private_key = private_key

    def _current_key_id(self) -> str:
        return self.key_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_id={self.key_id!r})"


class SessionTokenSigner(_RSASigner):
    """Signs with keyId ``ST$<token>``, re-reading the token file whenever it changes.

    ``oci session refresh`` rewrites the file in place, so a long-running process picks
    up the new token on its next request without a restart.
    """

    def __init__(self, token_file: str, private_key: RSAPrivateKey) -> None:
        self.token_file = os.path.expanduser(token_file)
        self._private_key = private_key
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._token = ""
        self._current_key_id()  # fail now, not on the first request

    def _current_key_id(self) -> str:
        try:
            st = os.stat(self.token_file)
        except OSError as exc:
            raise ConfigurationError(
                f"security_token_file: cannot read the session token file ({exc.strerror})",
                param="oci_security_token_file",
            ) from None
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            with self._lock:
                with open(self.token_file, encoding="utf-8") as f:
                    token = f.read().strip()
                if not token:
                    raise ConfigurationError(
                        "security_token_file is empty: run 'oci session authenticate' or 'oci session refresh'",
                        param="oci_security_token_file",
                    )
                self._token, self._stamp = token, stamp
        return "ST$" + self._token

    def on_unauthorized(self) -> bool:
        self._stamp = None  # force a re-read: the file may have been refreshed in the same second
        return False

    def __repr__(self) -> str:
        return f"SessionTokenSigner(token_file={self.token_file!r})"


class _SDKRequestView:
    """The slice of a ``requests.PreparedRequest`` that OCI SDK signers read and write."""

    def __init__(self, request: SignableRequest) -> None:
        import httpx

        self.method = request.method
        self.url = request.url
        self.path_url = request.target
        self.body = request.content
        # SDK signers look headers up in any case: give them a case-insensitive mapping.
        self.headers = request.headers if isinstance(request.headers, httpx.Headers) else httpx.Headers(dict(request.headers))


class SDKSignerAdapter(RequestSigner):
    """Uses any OCI SDK signer object (API key, session token, instance/resource principal, OKE).

    The SDK signer is called the way the SDK itself calls it (``signer(request)``, which
    lets principal signers refresh an expiring token first), falling back to
    ``do_request_sign``. Host and content headers are filled in first so the SDK signs the
    very values that are sent.
    """

    def __init__(self, signer: Any) -> None:
        if not (callable(signer) or hasattr(signer, "do_request_sign")):
            raise ConfigurationError(
                f"oci_signer must be an OCI SDK signer (with do_request_sign), got {type(signer).__name__}",
                param="oci_signer",
            )
        self.signer = signer

    # Principal signers fetch and refresh tokens over the network inside sign().
    may_block = True

    def sign(self, request: Any) -> None:
        request = SignableRequest.of(request)
        fill_signed_headers(request, headers_to_sign(request.method))
        view = _SDKRequestView(request)
        if callable(self.signer):
            self.signer(view)
        else:
            self.signer.do_request_sign(view)
        if view.body is not request.content:
            raise ConfigurationError("oci_signer replaced the request body; ocilm signs exact bytes only", param="oci_signer")
        if view.headers is not request.headers:
            request.headers.clear()
            request.headers.update((name.lower(), value) for name, value in view.headers.items())

    def on_unauthorized(self) -> bool:
        refresh = getattr(self.signer, "refresh_security_token", None)
        if refresh is None:
            return False
        refresh()
        return True

    def __repr__(self) -> str:
        return f"SDKSignerAdapter({type(self.signer).__module__}.{type(self.signer).__name__})"
