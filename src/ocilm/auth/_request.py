"""What a signer reads and writes, whatever HTTP library sends the request.

Signers add headers to a ``SignableRequest``: the method, the URL's host and request target,
the exact body bytes, and a header mapping looked up by lower-case name. The clients build one
per attempt from plain values (cheaper than an ``httpx.Request``, which costs ~40 µs to build),
and ``SignableRequest.of`` views an ``httpx.Request`` in place, so callers who sign their own
httpx requests keep working.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit


@lru_cache(maxsize=256)
def url_parts(url: str) -> tuple[str, str]:
    """``(netloc, request target)`` of a URL, as they go on the wire (the target keeps its query)."""
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    return parts.netloc, target


class SignableRequest:
    """One outgoing request as a signer sees it; ``headers`` is mutated in place by signing.
    ``content`` is the body's bytes, or an object with a length and a ``sha256`` (a spooled upload)."""

    __slots__ = ("content", "headers", "method", "netloc", "target", "url")

    def __init__(self, method: str, url: str, content: Any, headers: MutableMapping[str, str],
                 netloc: str | None = None, target: str | None = None) -> None:  # fmt: skip
        self.method = method
        self.url = url
        if netloc is None or target is None:
            netloc, target = url_parts(url)
        self.netloc = netloc
        self.target = target
        self.content = content
        self.headers = headers

    @classmethod
    def of(cls, request: Any) -> SignableRequest:
        """``request`` itself, or a view of an ``httpx.Request`` whose headers are its own."""
        if isinstance(request, SignableRequest):
            return request
        return cls(
            request.method, str(request.url), request.content, request.headers,
            netloc=request.url.netloc.decode("ascii"), target=request.url.raw_path.decode("ascii"),
        )  # fmt: skip
