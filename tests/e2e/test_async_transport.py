"""The async client's transports (aiohttp by default, httpx as the fallback or when injected):
the same guarantees over both, checked against the simulator."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

import ocilm
from ocilm import AsyncClient
from ocilm._transport import AiohttpTransport, HttpxTransport
from ocilm.testing import Fault

aiohttp = pytest.importorskip("aiohttp")
MODEL = "oci/meta.llama-3.3-70b-instruct"
HI = [{"role": "user", "content": "Hi"}]


def fault(**kw) -> dict:
    return {"extra_headers": {"x-ocilm-sim-fault": Fault(**kw).header()}}


async def test_aiohttp_is_the_default_and_httpx_the_fallback(creds, monkeypatch):
    async with AsyncClient(**creds) as client:
        assert isinstance(client.transport, AiohttpTransport) and isinstance(client.http, aiohttp.ClientSession)
    import sys

    monkeypatch.setitem(sys.modules, "aiohttp", None)  # not installed
    async with AsyncClient(**creds) as client:
        assert isinstance(client.transport, HttpxTransport) and isinstance(client.http, httpx.AsyncClient)
        assert (await client.completion(MODEL, HI)).choices[0].message.content.endswith("Hi")


async def test_injected_clients_are_used_and_left_open(creds, oci_simulator):
    async with aiohttp.ClientSession() as session, httpx.AsyncClient() as http:
        for given in (session, http):
            async with AsyncClient(http_client=given, **creds) as client:
                assert client.http is given
                assert (await client.completion(MODEL, HI)).choices[0].message.content.endswith("Hi")
            assert not (session.closed if given is session else http.is_closed)
    assert len(oci_simulator.requests) == 2
    with pytest.raises(TypeError, match="http_client must be an httpx.AsyncClient or an aiohttp.ClientSession"):
        AsyncClient(http_client=httpx.Client(), **creds)


@pytest.mark.usefixtures("async_backend")
async def test_a_stream_read_after_its_whole_body_arrived_is_complete(creds, oci_simulator):
    """aiohttp marks a response closed once its body has arrived; the unread rest must still be read."""
    async with AsyncClient(**creds) as client:
        stream = await client.completion(MODEL, HI, stream=True, stream_options={"include_usage": True}, **fault(events=40))
        assert oci_simulator.requests[-1].finished.wait(5)  # the simulator has sent every event
        await asyncio.sleep(0.2)  # and the client has taken them all into its buffer
        chunks = [c async for c in stream]
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert texts.count("Hello ") == 40 and "".join(texts).endswith("You said: Hi")  # the first delta, 40 times, then the rest
    assert chunks[-1].usage is not None and chunks[-2].choices[0].finish_reason == "stop"


@pytest.mark.usefixtures("async_backend")
async def test_the_timeout_is_per_read_not_for_the_whole_stream(creds):
    async with AsyncClient(**creds) as client:
        began = time.monotonic()
        stream = await client.completion(MODEL, HI, stream=True, timeout=0.5, **fault(events=12, event_delay=0.1, times=None))
        texts = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
        assert texts.count("Hello ") == 12 and "".join(texts).endswith("You said: Hi")
        assert time.monotonic() - began > 1.0  # longer than the timeout, never a gap as long


@pytest.mark.usefixtures("async_backend")
async def test_a_cancelled_call_closes_its_upstream_connection_at_once(creds, oci_simulator):
    async with AsyncClient(**creds) as client:
        task = asyncio.ensure_future(client.completion(MODEL, HI, **fault(delay=5, times=None)))
        while not oci_simulator.requests:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        cancelled = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        upstream = oci_simulator.requests[-1]
        for _ in range(100):
            if upstream.disconnected_at is not None:
                break
            await asyncio.sleep(0.01)
        assert upstream.disconnected_at is not None and upstream.disconnected_at - cancelled < 0.5


async def test_aiohttp_connection_limit_holds(creds, oci_simulator):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2)) as session, AsyncClient(http_client=session, **creds) as client:
        replies = await asyncio.gather(*(client.completion(MODEL, HI, **fault(delay=0.1, times=None)) for _ in range(6)))
    assert all(r.choices[0].message.content for r in replies)
    assert len({r.client for r in oci_simulator.requests}) <= 2  # six calls over at most two connections


@pytest.mark.usefixtures("async_backend")
async def test_retries_keep_one_token_and_sign_each_attempt(creds, oci_simulator):
    async with AsyncClient(**creds) as client:
        client._sleep = lambda _s: asyncio.sleep(0)
        r = await client.completion(MODEL, HI, **fault(status=503, times=2))
    assert r.choices[0].message.content.endswith("Hi")
    attempts = oci_simulator.requests
    assert [a.status for a in attempts] == [503, 503, 200]  # the simulator checked each signature
    assert len({a.headers["opc-retry-token"] for a in attempts}) == 1


@pytest.mark.usefixtures("async_backend")
async def test_an_unreachable_host_is_a_connection_error(creds):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens on it once closed
    async with AsyncClient(**{**creds, "api_base": f"http://127.0.0.1:{port}"}, max_retries=0) as client:
        with pytest.raises(ocilm.APIConnectionError, match=f"connection to http://127.0.0.1:{port}/20231130/actions/chat failed"):
            await client.completion(MODEL, HI)
