"""Errors, retries and timeouts, driven by the simulator's fault injection."""

from __future__ import annotations

import email.utils
import socket
import time

import pytest

import ocilm
from ocilm import AsyncClient, Client
from ocilm.testing import Fault

MODEL = "oci/meta.llama-3.3-70b-instruct"
HI = [{"role": "user", "content": "Hi"}]


class Sleeps(list):
    """An injectable sleep that records waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class AsyncSleeps(Sleeps):
    async def __call__(self, seconds: float) -> None:  # type: ignore[override]
        self.append(seconds)


def fault(**kw) -> dict:
    return {"extra_headers": {"x-ocilm-sim-fault": Fault(**kw).header()}}


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def client(creds, sleeps):
    with Client(**creds) as c:
        c._sleep = sleeps
        yield c


@pytest.mark.parametrize(("status", "code", "cls"), [
    (400, "InvalidParameter", ocilm.BadRequestError),
    (403, "NotAllowed", ocilm.PermissionDeniedError),
    (409, "IncorrectState", ocilm.ConflictError),
    (413, "RequestEntityTooLarge", ocilm.RequestTooLargeError),
    (429, "TooManyRequests", ocilm.RateLimitError),
    (500, "InternalServerError", ocilm.InternalServerError),
    (502, "BadGateway", ocilm.InternalServerError),
    (503, "ServiceUnavailable", ocilm.ServiceUnavailableError),
    (504, "GatewayTimeout", ocilm.InternalServerError),
])
def test_status_maps_to_error_class(client, oci_simulator, status, code, cls):
    with pytest.raises(cls) as err:
        client.completion(MODEL, HI, max_retries=0, **fault(status=status, message="nope from OCI", times=None))
    e = err.value
    assert isinstance(e, ocilm.OCIError)
    assert (e.status_code, e.code) == (status, code)
    assert "nope from OCI" in e.message and "chat with meta.llama-3.3-70b-instruct" in e.message
    # OCI extends the client's opc-request-id: the id we sent comes first.
    assert e.opc_request_id and e.opc_request_id.startswith(oci_simulator.requests[-1].headers["opc-request-id"] + "/")
    assert f"HTTP {status}" in str(e)


def test_real_404_and_401(client, creds):
    with pytest.raises(ocilm.NotFoundError) as err:
        client.completion("oci/meta.llama-99", HI)
    assert err.value.code == "404" and "meta.llama-99" in err.value.message
    with pytest.raises(ocilm.AuthenticationError) as err:
        client.completion(MODEL, HI, oci_fingerprint="00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff")
    assert err.value.code == "NotAuthenticated" and err.value.status_code == 401
    assert "BEGIN" not in str(err.value) and creds["oci_key"][40:80] not in repr(err.value)


def test_non_json_error_body(client):
    with pytest.raises(ocilm.InternalServerError) as err:
        client.completion(MODEL, HI, max_retries=0, **fault(status=502, raw_body="<html>Bad Gateway</html>", times=None))
    assert err.value.message.endswith("<html>Bad Gateway</html>") and err.value.code is None


def test_retries_then_succeeds_with_one_retry_token(client, oci_simulator, sleeps, monkeypatch):
    dates = iter([email.utils.formatdate(time.time() + i, usegmt=True) for i in range(100)])
    monkeypatch.setattr(email.utils, "formatdate", lambda *a, **k: next(dates))
    r = client.completion(MODEL, HI, **fault(status=503, times=2))
    assert r.choices[0].message.content.endswith("You said: Hi")
    attempts = oci_simulator.requests
    assert [a.status for a in attempts] == [503, 503, 200]
    assert len({a.headers["opc-retry-token"] for a in attempts}) == 1
    assert len({a.headers["date"] for a in attempts}) == 3  # re-signed with a fresh date each time
    assert len({a.headers["authorization"] for a in attempts}) == 3
    assert len({a.body for a in attempts}) == 1
    assert len(sleeps) == 2 and 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0
    client.completion(MODEL, HI)
    assert oci_simulator.requests[-1].headers["opc-retry-token"] != attempts[0].headers["opc-retry-token"]


def test_retry_after_is_honoured_and_capped(client, sleeps):
    client.completion(MODEL, HI, **fault(status=429, retry_after="2", times=1))
    assert sleeps == [2.0]
    sleeps.clear()
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    client.completion(MODEL, HI, **fault(status=429, retry_after=later, times=1))
    assert 27 <= sleeps[0] <= 30
    sleeps.clear()
    client.completion(MODEL, HI, **fault(status=503, retry_after="100000", times=1))
    assert sleeps == [60.0]


def test_gives_up_after_max_retries(client, oci_simulator, sleeps):
    with pytest.raises(ocilm.RateLimitError):
        client.completion(MODEL, HI, max_retries=3, **fault(status=429, times=None))
    assert len(oci_simulator.requests) == 4 and len(sleeps) == 3
    oci_simulator.reset()
    with pytest.raises(ocilm.InternalServerError):
        client.completion(MODEL, HI, max_retries=0, **fault(status=500, times=None))
    assert len(oci_simulator.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413])
def test_other_4xx_never_retried(client, oci_simulator, sleeps, status):
    with pytest.raises(ocilm.OCIError):
        client.completion(MODEL, HI, **fault(status=status, times=None))
    assert len(oci_simulator.requests) == 1 and sleeps == []


def test_connection_error_is_retried_then_raised(creds, sleeps):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    with Client(**{**creds, "api_base": f"http://127.0.0.1:{port}"}) as client, pytest.raises(ocilm.APIConnectionError) as err:
        client._sleep = sleeps
        client.completion(MODEL, HI)
    assert not isinstance(err.value, ocilm.APITimeoutError)
    assert len(sleeps) == 2 and f"127.0.0.1:{port}" in err.value.message


def test_silent_upstream_times_out_within_the_timeout(client):
    start = time.monotonic()
    with pytest.raises(ocilm.APITimeoutError) as err:
        client.completion(MODEL, HI, timeout=0.3, max_retries=0, **fault(delay=3, times=None))
    assert time.monotonic() - start < 1.5
    assert "0.3 s" in err.value.message


def test_timeout_retried(client, oci_simulator, sleeps):
    r = client.completion(MODEL, HI, timeout=0.3, **fault(delay=2, times=1))
    assert r.choices[0].message.content and len(sleeps) == 1
    assert len(oci_simulator.requests) == 2


def test_client_level_timeout_and_retries(creds, oci_simulator, sleeps):
    with Client(**creds, timeout=0.3, max_retries=1) as client, pytest.raises(ocilm.APITimeoutError):
        client._sleep = sleeps
        client.completion(MODEL, HI, **fault(delay=2, times=None))
    assert len(oci_simulator.requests) == 2


def test_malformed_json_reply(client):
    with pytest.raises(ocilm.APIResponseValidationError, match="not valid JSON"):
        client.completion(MODEL, HI, **fault(malformed=True, times=None))


# ---------------------------------------------------------------- streams


def test_stream_retried_before_first_chunk(client, oci_simulator, sleeps):
    chunks = list(client.completion(MODEL, HI, stream=True, **fault(status=429, retry_after="1", times=1)))
    assert "".join(c.choices[0].delta.content or "" for c in chunks).endswith("You said: Hi")
    assert sleeps == [1.0]
    oci_simulator.reset()
    chunks = list(client.completion(MODEL, HI, stream=True, **fault(cut_after=0, times=1)))
    assert [r.status for r in oci_simulator.requests] == [200, 200] and chunks


def test_stream_cut_after_first_chunk_raises_from_iterator(client, oci_simulator, sleeps):
    stream = client.completion(MODEL, HI, stream=True, **fault(cut_after=3, times=None))
    got = []
    with pytest.raises(ocilm.APIConnectionError, match=r"stream broke after \d chunk") as err:
        for chunk in stream:
            got.append(chunk)
    assert 1 <= len(got) <= 3 and err.value.opc_request_id
    assert len(oci_simulator.requests) == 1 and sleeps == []  # chunks had reached the caller: no retry
    assert stream.response.is_closed


def test_stream_stall_times_out(client):
    stream = client.completion(MODEL, HI, stream=True, timeout=0.3, **fault(stall_after=2, delay=3, times=None))
    start = time.monotonic()
    with pytest.raises(ocilm.APITimeoutError, match="stalled after"):
        list(stream)
    assert time.monotonic() - start < 1.5


def test_stream_error_status_before_start(client):
    with pytest.raises(ocilm.BadRequestError) as err:
        client.completion(MODEL, HI, stream=True, **fault(status=400, code="400", message="Invalid parameter: x", times=None))
    assert err.value.code == "400"


# ---------------------------------------------------------------- async


@pytest.mark.usefixtures("async_backend")
async def test_async_retries_and_errors(creds, oci_simulator):
    sleeps = AsyncSleeps()
    async with AsyncClient(**creds) as client:
        client._sleep = sleeps
        r = await client.completion(MODEL, HI, **fault(status=503, retry_after="1", times=2))
        assert r.choices[0].message.content and sleeps == [1.0, 1.0]
        assert len({a.headers["opc-retry-token"] for a in oci_simulator.requests}) == 1
        with pytest.raises(ocilm.NotFoundError):
            await client.completion("oci/meta.nope", HI)
        with pytest.raises(ocilm.APITimeoutError):
            await client.completion(MODEL, HI, timeout=0.3, max_retries=0, **fault(delay=3, times=None))
        stream = await client.completion(MODEL, HI, stream=True, **fault(status=429, times=1))
        assert "".join([c.choices[0].delta.content or "" async for c in stream]).endswith("Hi")
        stream = await client.completion(MODEL, HI, stream=True, **fault(cut_after=2, times=None))
        with pytest.raises(ocilm.APIConnectionError, match="stream broke"):
            async for _ in stream:
                pass
        stream = await client.completion(MODEL, HI, stream=True, timeout=0.3, **fault(stall_after=2, delay=3, times=None))
        with pytest.raises(ocilm.APITimeoutError):
            async for _ in stream:
                pass


def test_no_secret_in_errors(creds):
    bad_key = creds["oci_key"].replace("MII", "MIX", 1)
    with pytest.raises(ocilm.ConfigurationError) as err:
        ocilm.completion(MODEL, HI, **{**creds, "oci_key": bad_key})
    text = str(err.value) + repr(err.value)
    assert "PRIVATE KEY" not in text and bad_key[40:80] not in text
