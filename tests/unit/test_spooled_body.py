"""An upload held in a spool: exactly its announced length, its digest taken as it arrives (what an
IAM signature covers), read again from the start on every attempt, and on disk past the buffer."""

from __future__ import annotations

import asyncio

import pytest

from ocilm._body import BodyLengthError, SpooledBody
from ocilm.auth import body_sha256
from ocilm.auth._request import SignableRequest
from ocilm.auth._signers import fill_signed_headers


async def _pieces(data: bytes, size: int = 10_000):
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _spool(data: bytes, length: int | None = None, buffer: int = 1024) -> SpooledBody:
    return asyncio.run(
        SpooledBody.spool(_pieces(data), len(data) if length is None else length, buffer=buffer)
    )


def test_the_digest_and_the_bytes_are_the_uploads_and_every_read_starts_over():
    data = bytes(range(256)) * 1000
    body = _spool(data)
    assert len(body) == len(data) and body.sha256 == body_sha256(data)
    assert body.read() == data and b"".join(body) == data  # a retry sends the same bytes

    async def read_async() -> bytes:
        return b"".join([piece async for piece in body])

    assert asyncio.run(read_async()) == data
    assert body._file._rolled  # past its buffer the spool is on disk, not in memory
    assert repr(body) == "SpooledBody(length=256000)"
    body.close()


@pytest.mark.parametrize("announced", [9_999, 10_001])
def test_a_body_longer_or_shorter_than_announced_is_refused(announced):
    with pytest.raises(BodyLengthError):
        _spool(b"x" * 10_000, length=announced)


def test_a_signer_reads_a_spooled_bodys_digest_and_length_as_it_reads_bytes():
    data = b'--x\r\ncontent-disposition: form-data; name="file"\r\n\r\nhello\r\n--x--\r\n'
    fixed = {
        "date": "Thu, 05 Jan 2014 21:31:40 GMT",
        "content-type": "multipart/form-data; boundary=x",
    }
    names = (
        "date",
        "(request-target)",
        "host",
        "content-length",
        "content-type",
        "x-content-sha256",
    )
    as_bytes = fill_signed_headers(
        SignableRequest("POST", "https://h.example/openai/v1/files", data, dict(fixed)), names
    )
    spooled = fill_signed_headers(
        SignableRequest("POST", "https://h.example/openai/v1/files", _spool(data), dict(fixed)),
        names,
    )
    assert spooled == as_bytes and spooled["content-length"] == str(len(data))


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
@pytest.mark.parametrize("credential", ["iam", "api_key"])
def test_either_transport_sends_a_spooled_upload_that_oci_accepts_and_sends_it_again_on_a_retry(
    transport, credential, oci_simulator
):
    """The simulator checks the signed digest and length against what arrived; a 503 first makes
    the client send the body a second time, from the spool's start."""
    import httpx

    import ocilm
    from ocilm.testing import Fault

    view = oci_simulator.view()
    creds = (
        view.api_key_credentials()
        if credential == "api_key"
        else {**view.credentials(), "oci_api_mode": "openai"}
    )
    data = b'--x\r\ncontent-disposition: form-data; name="purpose"\r\n\r\nassistants\r\n' \
           b'--x\r\ncontent-disposition: form-data; name="file"; filename="n.txt"\r\n\r\n' + b"n" * 300_000 + b"\r\n--x--\r\n"  # fmt: skip

    async def upload() -> dict:
        body = await SpooledBody.spool(_pieces(data), len(data), buffer=64 * 1024)
        http = httpx.AsyncClient() if transport == "httpx" else None
        async with ocilm.AsyncClient(http_client=http, **creds) as client:
            view.inject(Fault(status=503, times=1))
            reply = await client.openai_resource(
                "POST", "files", body, "multipart/form-data; boundary=x", max_retries=1
            )
        if http is not None:
            await http.aclose()
        return reply.json()

    made = asyncio.run(upload())
    assert made["bytes"] == 300_000
    sent = [r for r in view.requests if r.path == "/openai/v1/files"]
    assert len(sent) == 2 and all(len(r.body) == len(data) for r in sent)
