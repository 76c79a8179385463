"""OCI signing as an ``httpx.Auth`` flow: the body httpx sends is the body that is signed."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

import httpx

from ._signers import RequestSigner


class OCIAuth(httpx.Auth):
    """Signs each request; after a 401, a signer that can refresh is refreshed and the request
    is signed and sent once more.

    In async code a signer that may block (an OCI SDK signer fetching a token over the
    network) signs and refreshes in a worker thread, so the event loop never waits for it.
    """

    requires_request_body = True

    def __init__(self, signer: RequestSigner) -> None:
        self.signer = signer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.signer.sign(request)
        response = yield request
        if response.status_code == 401 and self.signer.on_unauthorized():
            _unsign(request)
            self.signer.sign(request)
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not self.signer.may_block:  # signing with a parsed key is quick: stay on the loop
            flow = self.auth_flow(request)
            outgoing = next(flow)
            while True:
                response = yield outgoing
                try:
                    outgoing = flow.send(response)
                except StopIteration:
                    return
        from anyio import to_thread

        await to_thread.run_sync(self.signer.sign, request)
        response = yield request
        if response.status_code == 401 and await to_thread.run_sync(self.signer.on_unauthorized):
            _unsign(request)
            await to_thread.run_sync(self.signer.sign, request)
            yield request

    def __repr__(self) -> str:
        return f"OCIAuth({self.signer!r})"


def _unsign(request: httpx.Request) -> None:
    for name in ("date", "authorization"):
        request.headers.pop(name, None)
