"""``ocilm.OpenAI`` and ``ocilm.AsyncOpenAI``: openai-python's clients on OCI's OpenAI-compatible API
(``/openai/v1``), with ocilm's settings. Every resource of openai-python then reaches OCI (chat,
responses, files, vector stores, conversations, containers) and the simulator alike.

The client is openai-python's own; ocilm adds an ``httpx.Auth`` that authenticates each request
once its body is final: a Generative AI API key as a Bearer secret, or an IAM signature over the
exact bytes sent (the same signers every ocilm call uses), with OCI's headers
(``OpenAI-Project``, and ``opc-compartment-id`` on a signed call without a project).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from ._core import split_params
from ._endpoint import openai_url
from ._errors import ConfigurationError
from ._settings import Settings, resolve_settings

if TYPE_CHECKING:
    import openai

_PLACEHOLDER_KEY = "ocilm-signs-each-request"  # openai-python wants a key; the auth below replaces its header


class OCIAuth:
    """Authenticates a request to ``/openai/v1`` after its body is final (httpx reads it first).
    Mixed into the ``Auth`` class of the HTTP library the client uses (``with_auth_of``): newer
    openai-python releases send through ``httpx2``, older ones through ``httpx``."""

    requires_request_body = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.headers: dict[str, str] = {}
        if settings.project:
            self.headers["openai-project"] = settings.project
        if not settings.api_key and not settings.project:
            self.headers["opc-compartment-id"] = settings.require_compartment()

    def _signed(self, request: Any) -> Any:
        for name, value in self.headers.items():
            request.headers[name] = value
        request.headers.pop("authorization", None)
        self.settings.signer.sign(request)
        return request

    def auth_flow(self, request: Any) -> Generator[Any, Any, None]:
        response = yield self._signed(request)
        if response.status_code == 401 and self.settings.signer.on_unauthorized():  # refreshed credentials: one more try
            yield self._signed(request)

    def __repr__(self) -> str:
        return f"OCIAuth(signer={self.settings.signer!r})"


def with_auth_of(http_client: Any, auth: OCIAuth) -> Any:
    """``http_client`` authenticating each request with ``auth``, as its own library's ``Auth``."""
    import importlib

    roots = (cls.__module__.split(".", 1)[0] for cls in type(http_client).__mro__)
    library = importlib.import_module(next(root for root in roots if root.startswith("httpx")))
    bound: Any = type("OCIAuth", (OCIAuth, library.Auth), {})(auth.settings)
    http_client.auth = bound
    return http_client


def _prepared(kwargs: dict[str, Any]) -> tuple[str, OCIAuth, dict[str, Any]]:
    oci, rest = split_params(kwargs)
    oci.setdefault("oci_api_mode", "openai")
    if oci["oci_api_mode"] != "openai":
        raise ConfigurationError("ocilm.OpenAI speaks OCI's OpenAI-compatible API only: leave oci_api_mode unset or 'openai'",
                                 param="oci_api_mode")  # fmt: skip
    for name in ("api_key", "base_url"):
        if name in rest:
            raise ConfigurationError(f"{name}: set by ocilm from the OCI settings (oci_api_key or IAM credentials; api_base, oci_region)",
                                     param=name)  # fmt: skip
    settings = resolve_settings(oci)
    base_url = openai_url("", region=settings.region, api_base=settings.api_base)
    return base_url, OCIAuth(settings), rest


def OpenAI(**kwargs: Any) -> openai.OpenAI:
    """openai-python's ``OpenAI`` on OCI's ``/openai/v1``. Takes ocilm's settings (``oci_api_key``
    or IAM credentials, ``oci_region``, ``oci_compartment_id``, ``oci_project``, ``api_base``) and
    openai-python's own options (``timeout``, ``max_retries``, ``default_headers``, ...)."""
    import openai

    base_url, auth, rest = _prepared(kwargs)
    http_client = with_auth_of(rest.pop("http_client", None) or openai.DefaultHttpxClient(), auth)
    return openai.OpenAI(api_key=_PLACEHOLDER_KEY, base_url=base_url, http_client=http_client, **rest)


def AsyncOpenAI(**kwargs: Any) -> openai.AsyncOpenAI:
    """openai-python's ``AsyncOpenAI`` on OCI's ``/openai/v1`` (the settings of ``ocilm.OpenAI``)."""
    import openai

    base_url, auth, rest = _prepared(kwargs)
    http_client = with_auth_of(rest.pop("http_client", None) or openai.DefaultAsyncHttpxClient(), auth)
    return openai.AsyncOpenAI(api_key=_PLACEHOLDER_KEY, base_url=base_url, http_client=http_client, **rest)
