"""Processes the benchmarks talk to: the simulator, a minimal pass-through proxy (the limit).

Run as ``python bench/_servers.py simulator PORT KEYFILE KEYID`` or
``python bench/_servers.py proxy|proxy-aiohttp PORT UPSTREAM KEYFILE KEYID``. Each prints "ready"
when listening. The proxies are the gateway's limits: ``proxy`` sends with one ``httpx.AsyncClient``,
``proxy-aiohttp`` with one ``aiohttp.ClientSession`` (the faster of the two, so the limit to beat).
"""

from __future__ import annotations

import sys

BENCH_API_KEY = "sk-bench-genai-api-key-0123456789abcdef0123456789abcdef"


def simulator(port: int, key_file: str, key_id: str) -> None:
    import uvicorn

    from ocilm.auth import load_private_key_file
    from ocilm.testing import SimulatorApp

    app = SimulatorApp()
    app.register_key(key_id, load_private_key_file(key_file).public_key())
    app.register_api_key(BENCH_API_KEY)  # for /openai/v1 arms
    print("ready", flush=True)
    # Keep idle connections as long as a client's pool does (OCI keeps them for minutes), so no
    # benchmark arm meets a connection closed under it.
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="critical", access_log=False, lifespan="off", timeout_keep_alive=60)


def _signed_headers(key_file: str, key_id: str, host: str):
    """The least signing a gateway can do: the OCI algorithm inline, key parsed once."""
    import base64
    import email.utils
    import hashlib

    from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    with open(key_file, "rb") as f:
        key = load_pem_private_key(f.read(), None)

    def headers(path: str, body: bytes) -> dict[str, str]:
        date = email.utils.formatdate(usegmt=True)
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        text = (f"date: {date}\n(request-target): post {path}\nhost: {host}\ncontent-length: {len(body)}\n"
                f"content-type: application/json\nx-content-sha256: {digest}")
        signature = base64.b64encode(key.sign(text.encode(), PKCS1v15(), SHA256())).decode()
        return {
            "date": date, "content-type": "application/json", "x-content-sha256": digest,
            "authorization": f'Signature algorithm="rsa-sha256",headers="date (request-target) host content-length content-type x-content-sha256",keyId="{key_id}",signature="{signature}",version="1"',
        }  # fmt: skip

    return headers


async def _read_body(receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def proxy(port: int, upstream: str, key_file: str, key_id: str) -> None:
    """Take an OCI body, sign it, forward it, relay the reply: raw ASGI, one pooled httpx client,
    signing per request; no parsing, no translation."""
    import httpx
    import uvicorn

    headers_for = _signed_headers(key_file, key_id, upstream.split("://", 1)[1])
    client = httpx.AsyncClient(base_url=upstream, limits=httpx.Limits(max_connections=200, max_keepalive_connections=200))

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        request = client.build_request("POST", scope["path"], content=body, headers=headers_for(scope["path"], body))
        response = await client.send(request, stream=True)
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": [(b"content-type", response.headers["content-type"].encode())]})
        async for part in response.aiter_raw():
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await response.aclose()
        await send({"type": "http.response.body", "body": b""})

    print("ready", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="critical", access_log=False, lifespan="off")


def proxy_aiohttp(port: int, upstream: str, key_file: str, key_id: str) -> None:
    """The same pass-through with one ``aiohttp.ClientSession`` as its upstream client."""
    import aiohttp
    import uvicorn

    headers_for = _signed_headers(key_file, key_id, upstream.split("://", 1)[1])
    session: list[aiohttp.ClientSession] = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        if not session:  # made inside the server's event loop
            session.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)))
        body = await _read_body(receive)
        async with session[0].post(upstream + scope["path"], data=body, headers=headers_for(scope["path"], body)) as response:
            await send({"type": "http.response.start", "status": response.status,
                        "headers": [(b"content-type", response.headers["content-type"].encode())]})
            async for part in response.content.iter_any():
                await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    print("ready", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="critical", access_log=False, lifespan="off")


if __name__ == "__main__":
    kind, port, *rest = sys.argv[1:]
    {"simulator": simulator, "proxy": proxy, "proxy-aiohttp": proxy_aiohttp}[kind](int(port), *rest)
