"""Request signing for OCI: pure signing steps, credential signers and the request they sign."""

from ._keys import fingerprint, load_private_key, load_private_key_file, normalize_pem
from ._signers import KeySigner, RequestSigner, SDKSignerAdapter, SessionTokenSigner
from ._signing import (
    authorization_header,
    body_sha256,
    headers_to_sign,
    parse_authorization,
    signing_string,
)

__all__ = [
    "KeySigner",
    "RequestSigner",
    "SDKSignerAdapter",
    "SessionTokenSigner",
    "authorization_header",
    "body_sha256",
    "fingerprint",
    "headers_to_sign",
    "load_private_key",
    "load_private_key_file",
    "normalize_pem",
    "parse_authorization",
    "signing_string",
]
