"""OCI signing as an ``httpx.Auth`` flow: the body httpx sends is the body that is signed."""

from __future__ import annotations

from collections.abc import Generator

import httpx

from ._signers import RequestSigner


class OCIAuth(httpx.Auth):
    requires_request_body = True

    def __init__(self, signer: RequestSigner) -> None:
        self.signer = signer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.signer.sign(request)
        response = yield request
        if response.status_code == 401 and self.signer.on_unauthorized():
            for name in ("date", "authorization"):
                request.headers.pop(name, None)
            self.signer.sign(request)
            yield request

    def __repr__(self) -> str:
        return f"OCIAuth({self.signer!r})"
