"""OCI HTTP Signature v1, as pure functions: which headers, the signing string, the header.

Nothing here does I/O or holds state, so each step is tested on its own against the
vectors the official SDK produced (``shared/fixtures/signing``).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping

GENERIC_HEADERS: tuple[str, ...] = ("date", "(request-target)", "host")
BODY_HEADERS: tuple[str, ...] = ("content-length", "content-type", "x-content-sha256")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

EMPTY_BODY_SHA256 = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


def headers_to_sign(method: str) -> tuple[str, ...]:
    """The signed header list for a method, in the order OCI's SDK uses."""
    if method.upper() in _BODY_METHODS:
        return GENERIC_HEADERS + BODY_HEADERS
    return GENERIC_HEADERS


def body_sha256(body: bytes) -> str:
    """``x-content-sha256``: base64 of the SHA-256 of the exact body bytes."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def signing_string(
    method: str, target: str, headers: Mapping[str, str], names: tuple[str, ...]
) -> str:
    """The text that is signed: one ``name: value`` line per signed header, LF-joined.

    ``target`` is the path and query exactly as on the request line; ``headers`` must be
    looked up case-insensitively by lower-case name (httpx.Headers and plain lower-case
    dicts both do).
    """
    lines = []
    for name in names:
        if name == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {target}")
        else:
            value = headers.get(name)
            if value is None:
                raise KeyError(f"header {name!r} must be set before signing")
            lines.append(f"{name}: {value}")
    return "\n".join(lines)


def authorization_header(key_id: str, names: tuple[str, ...], signature: str) -> str:
    """The ``Authorization`` value, parameters in the SDK's byte order."""
    return (
        f'Signature algorithm="rsa-sha256",headers="{" ".join(names)}",'
        f'keyId="{key_id}",signature="{signature}",version="1"'
    )


def parse_authorization(value: str) -> dict[str, str]:
    """Parse ``Signature k="v",...`` (any parameter order). Raises ValueError if malformed."""
    scheme, _, rest = value.partition(" ")
    if scheme != "Signature" or not rest:
        raise ValueError("Authorization must start with 'Signature '")
    params: dict[str, str] = {}
    i = 0
    n = len(rest)
    while i < n:
        while i < n and rest[i] in " ,":
            i += 1
        if i >= n:
            break
        eq = rest.find("=", i)
        if eq < 0 or eq + 1 >= n or rest[eq + 1] != '"':
            raise ValueError("Authorization parameters must be key=\"value\" pairs")
        end = rest.find('"', eq + 2)
        if end < 0:
            raise ValueError("unterminated quoted value in Authorization")
        params[rest[i:eq].strip()] = rest[eq + 2 : end]
        i = end + 1
    return params
