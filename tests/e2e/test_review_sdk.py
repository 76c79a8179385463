"""The SDK findings of the December review (C1-C16, S1, D3): each test failed before its fix."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import types

import httpx
import pytest

import ocilm
from ocilm import AsyncClient, Client
from ocilm.testing import BackgroundServer, Fault

from ..conftest import TEST_FINGERPRINT, TEST_KEY_PEM

MODEL = "oci/meta.llama-3.3-70b-instruct"
HI = [{"role": "user", "content": "Hi"}]


def _new_key():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return key, pem


def _fingerprint(key) -> str:
    from ocilm.auth import fingerprint

    return fingerprint(key)


def _socket_count() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


# ---------------------------------------------------------------- C1


def test_c1_asyncio_run_does_not_leak_clients_or_sockets(creds):
    from ocilm import _api

    async def one() -> str:
        r = await ocilm.acompletion(MODEL, HI, **creds)
        return r.choices[0].message.content

    asyncio.run(one())
    held = _api._async[1]
    before = _socket_count()
    for _ in range(20):
        assert asyncio.run(one())
    assert held._transport is None or held._transport.is_closed  # closed when its loop shut down
    assert _socket_count() - before <= 2  # was +40 for 20 runs


# ---------------------------------------------------------------- C2


def test_c2_rotated_key_in_config_is_used_without_restart(oci_simulator, tmp_path):
    tenancy, user = "ocid1.tenancy.oc1..aaaarotate", "ocid1.user.oc1..aaaarotate"
    key_file, config = tmp_path / "key.pem", tmp_path / "config"

    def rotate() -> str:
        key, pem = _new_key()
        key_file.write_text(pem)
        fp = _fingerprint(key)
        config.write_text(f"[DEFAULT]\nuser={user}\nfingerprint={fp}\ntenancy={tenancy}\nkey_file={key_file}\nregion=us-chicago-1\n")
        oci_simulator.register_key(f"{tenancy}/{user}/{fp}", key.public_key())
        return f"{tenancy}/{user}/{fp}"

    old = rotate()
    kwargs = dict(oci_config_file=str(config), api_base=oci_simulator.base_url, oci_compartment_id="ocid1.compartment.oc1..x")
    assert ocilm.completion(MODEL, HI, **kwargs).choices[0].message.content
    del oci_simulator.app.keys[old]  # the operator deletes the old key in the console ...
    time.sleep(0.01)  # ... and rewrites the config and key file in place
    rotate()
    assert ocilm.completion(MODEL, HI, **kwargs).choices[0].message.content  # was 401 until restart


def test_c2_a_401_drops_cached_settings(oci_simulator, creds):
    with Client(**creds) as client:
        client.completion(MODEL, HI)
        assert client._settings._entries
        with pytest.raises(ocilm.AuthenticationError):
            client.completion(MODEL, HI, extra_headers={"x-ocilm-sim-fault": Fault(status=401, times=None).header()})
        assert not client._settings._entries


# ---------------------------------------------------------------- C4


def test_c4_explicit_key_file_beats_env_key(oci_simulator, creds, tmp_path, monkeypatch):
    _, other_pem = _new_key()
    monkeypatch.setenv("OCI_KEY", other_pem)  # not registered: signing with it gives 401
    key_file = tmp_path / "key.pem"
    key_file.write_text(creds["oci_key"])
    explicit = {k: v for k, v in creds.items() if k != "oci_key"}
    r = ocilm.completion(MODEL, HI, oci_key_file=str(key_file), **explicit)
    assert r.choices[0].message.content  # signed with the explicit key file, verified by the simulator


def test_c4_both_explicit_key_forms_are_refused(creds, tmp_path):
    with pytest.raises(ocilm.ConfigurationError, match="oci_key or oci_key_file, not both"):
        ocilm.completion(MODEL, HI, oci_key_file=str(tmp_path / "k.pem"), **creds)


# ---------------------------------------------------------------- C5, C6


def _fixed_reply_server(body: bytes, content_type: str = "application/json") -> BackgroundServer:
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type.encode()), (b"opc-request-id", b"RID")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    return BackgroundServer(app)


@pytest.mark.parametrize("body", [
    b"[]", b'{"chatResponse": {"choices": [{"message": {"content": "hi"}}]}}', b'{"chatResponse": {"choices": ["x"]}}',
    b'{"chatResponse": 5}', b'{"chatResponse": {"choices": [{"message": {"toolCalls": [7]}}]}}',
])  # fmt: skip
def test_c5_unexpected_reply_shapes_raise_validation_error(creds, body):
    with _fixed_reply_server(body) as server, pytest.raises(ocilm.APIResponseValidationError) as err:
        ocilm.completion(MODEL, HI, **{**creds, "api_base": server.base_url})
    assert err.value.opc_request_id == "RID"


def test_c5_embedding_with_null_vector_raises_validation_error(creds):
    body = json.dumps({"embeddings": [[0.1, None]], "usage": {"promptTokens": 1}}).encode()
    with _fixed_reply_server(body) as server, pytest.raises(ocilm.APIResponseValidationError):
        ocilm.embedding("oci/cohere.embed-english-v3.0", "a", encoding_format="base64", **{**creds, "api_base": server.base_url})


def test_c6_stream_answered_with_json_is_refused(creds):
    reply = _fixed_reply_server(b'{"code": "Weird", "message": "not a stream"}')
    with reply as server, pytest.raises(ocilm.APIResponseValidationError, match="text/event-stream.*Weird: not a stream"):
        ocilm.completion(MODEL, HI, stream=True, max_retries=0, **{**creds, "api_base": server.base_url})


@pytest.mark.parametrize("field", ["isStream", "messages", "apiFormat", "servingMode", "chatHistory"])
def test_c6_extra_body_cannot_replace_reserved_fields(creds, field):
    with pytest.raises(ocilm.BadRequestError, match=f"extra_body: cannot set {field}"):
        ocilm.completion(MODEL, HI, stream=True, extra_body={field: False}, **creds)


# ---------------------------------------------------------------- C7 and D3


def test_c7_one_pool_however_many_threads(creds, monkeypatch):
    made: list[httpx.Client] = []
    original = httpx.Client.__init__

    def counting(self, *args, **kwargs):
        made.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "__init__", counting)
    client = Client(**creds)
    barrier = threading.Barrier(8)

    def call() -> None:
        barrier.wait()
        client.completion(MODEL, HI)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    assert len(made) == 1 and made[0].is_closed


def test_d3_injected_http_client_is_used_and_left_open(creds, oci_simulator):
    seen: list[str] = []
    http = httpx.Client(event_hooks={"request": [lambda r: seen.append(r.url.path)]})
    with Client(http_client=http, **creds) as client:
        client.completion(MODEL, HI)
    prefix = httpx.URL(creds["api_base"]).path.rstrip("/")  # the test's own view of the shared simulator
    assert seen == [f"{prefix}/20231130/actions/chat"] and not http.is_closed
    http.close()


# ---------------------------------------------------------------- C9


def test_c9_inherited_pass_phrase_with_plain_key(oci_simulator, tmp_path, creds):
    from cryptography.hazmat.primitives import serialization

    key, plain = _new_key()
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"secret"))  # fmt: skip
    (tmp_path / "enc.pem").write_bytes(encrypted)
    (tmp_path / "plain.pem").write_text(plain)
    fp = _fingerprint(key)
    tenancy, user = "ocid1.tenancy.oc1..aaaapp", "ocid1.user.oc1..aaaapp"
    oci_simulator.register_key(f"{tenancy}/{user}/{fp}", key.public_key())
    (tmp_path / "config").write_text(
        f"[DEFAULT]\nuser={user}\nfingerprint={fp}\ntenancy={tenancy}\nkey_file={tmp_path}/enc.pem\npass_phrase=secret\n\n"
        f"[CHICAGO]\nkey_file={tmp_path}/plain.pem\nregion=us-chicago-1\n"
    )
    for profile in ("DEFAULT", "CHICAGO"):
        r = ocilm.completion(MODEL, HI, oci_config_file=str(tmp_path / "config"), oci_profile=profile,
                             api_base=oci_simulator.base_url, oci_compartment_id="ocid1.compartment.oc1..x")  # fmt: skip
        assert r.choices[0].message.content


# ---------------------------------------------------------------- C10


@pytest.mark.usefixtures("async_backend")
async def test_c10_blocking_sdk_signer_does_not_stall_the_event_loop(oci_simulator, fixture_key_registered, tmp_path):
    oci = pytest.importorskip("oci")
    from ..conftest import TENANCY, USER

    key_file = tmp_path / "key.pem"
    key_file.write_text(TEST_KEY_PEM)

    class SlowSigner(oci.signer.Signer):  # a principal signer's token fetch takes this long
        def __call__(self, request, *args, **kwargs):
            time.sleep(0.5)
            return super().__call__(request, *args, **kwargs)

    signer = SlowSigner(TENANCY, USER, TEST_FINGERPRINT, str(key_file))
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = asyncio.ensure_future(ticker())
    async with AsyncClient(oci_signer=signer, api_base=oci_simulator.base_url, oci_compartment_id="ocid1.compartment.oc1..x") as client:
        r = await client.completion(MODEL, HI)
    stop.set()
    await tick
    assert r.choices[0].message.content
    assert max(gaps) < 0.2  # was 0.5 s and more: the loop waited for the signer


# ---------------------------------------------------------------- C11, C15


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_c11_embedding_429_keeps_retry_after(creds, asynchronous):
    fault = {"x-ocilm-sim-fault": Fault(status=429, retry_after="7", times=None).header()}
    args = dict(model="oci/cohere.embed-english-v3.0", input="a", max_retries=0, extra_headers=fault, **creds)
    with pytest.raises(ocilm.RateLimitError) as err:
        if asynchronous:
            await ocilm.aembedding(**args)
        else:
            ocilm.embedding(**args)
    assert err.value.retry_after == 7.0
    assert err.value.message == "embedding with cohere.embed-english-v3.0: simulated fault: HTTP 429"


def test_c15_sync_batches_fail_fast(creds, oci_simulator):
    inputs = [f"a{i}" for i in range(96)] + ["needle"] + [f"c{i}" for i in range(96 * 3)]
    faults = Fault(status=400, match="needle", times=None).header()  # batch 2 fails at once
    oci_simulator.inject(Fault(delay=3, match='"c', times=None))  # batches 3 to 5 take 3 s
    start = time.monotonic()
    with pytest.raises(ocilm.BadRequestError, match="batch 2 of 5"):
        ocilm.embedding("oci/cohere.embed-english-v3.0", inputs, max_retries=0, extra_headers={"x-ocilm-sim-fault": faults}, **creds)
    assert time.monotonic() - start < 2.0  # was 3 s and more: every batch was awaited


async def test_c15_async_batches_cancelled_on_failure(creds):
    inputs = ["needle"] + ["a"] * (96 * 4)
    faults = Fault(status=400, match="needle", times=None).header()
    with pytest.raises(ocilm.BadRequestError, match="batch 1 of 5"):
        await ocilm.aembedding("oci/cohere.embed-english-v3.0", inputs, max_retries=0, extra_headers={"x-ocilm-sim-fault": faults}, **creds)
    assert len(asyncio.all_tasks()) == 1  # only this test: the other batches were cancelled


# ---------------------------------------------------------------- C14


def test_c14_bad_header_value_refused_before_sending(creds, oci_simulator):
    with pytest.raises(ocilm.BadRequestError, match="the value of x-proxy-key contains a line break") as err:
        ocilm.completion(MODEL, HI, extra_headers={"x-proxy-key": "sk-live-SECRET\r\nx: y"}, **creds)
    assert "SECRET" not in str(err.value) and oci_simulator.requests == []


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), 0, -1, "5", httpx.Timeout(5.0, read=float("nan"))])
def test_c14_bad_timeouts_are_clear(creds, timeout):
    with pytest.raises(ocilm.BadRequestError, match="timeout"):
        ocilm.completion(MODEL, HI, timeout=timeout, **creds)


def test_c14_httpx_timeout_accepted(creds):
    assert ocilm.completion(MODEL, HI, timeout=httpx.Timeout(5.0, connect=2.0), **creds).choices[0].message.content


def test_c14_full_pool_is_not_a_silent_upstream(creds, oci_simulator):
    http = httpx.Client(limits=httpx.Limits(max_connections=1))
    with Client(http_client=http, **creds) as client:
        slow = threading.Thread(target=client.completion, args=(MODEL, HI), kwargs={"extra_headers": {"x-ocilm-sim-fault": Fault(delay=1.5).header()}})
        slow.start()
        time.sleep(0.3)
        with pytest.raises(ocilm.APITimeoutError, match="no free connection in the client's pool") as err:
            client.completion(MODEL, HI, timeout=0.3)
        slow.join()
    assert err.value.retryable is False
    http.close()


# ---------------------------------------------------------------- C16


def test_c16_any_sequence_of_mappings_is_messages(creds):
    messages = (types.MappingProxyType({"role": "user", "content": "Hi"}),)
    assert ocilm.completion(MODEL, messages, **creds).choices[0].message.content


def test_c16_misspelled_setting_is_never_dropped(creds):
    with pytest.raises(ocilm.ConfigurationError, match="unknown OCI setting.*oci_regoin"):
        ocilm.completion(MODEL, HI, oci_regoin="us-chicago-1", drop_params=True, **creds)


# ---------------------------------------------------------------- S1


def test_s1_key_text_passed_as_key_file_is_not_echoed(creds):
    explicit = {k: v for k, v in creds.items() if k != "oci_key"}
    with pytest.raises(ocilm.ConfigurationError) as err:
        ocilm.completion(MODEL, HI, oci_key_file=TEST_KEY_PEM, **explicit)
    text = str(err.value) + repr(err.value)
    assert "oci_key_file holds key text" in text and "BEGIN" not in text and TEST_KEY_PEM.split("\n")[1][:20] not in text


def test_s1_env_key_file_with_key_text_is_not_echoed(creds, monkeypatch):
    monkeypatch.setenv("OCI_KEY_FILE", TEST_KEY_PEM)
    explicit = {k: v for k, v in creds.items() if k not in ("oci_key",)}
    with pytest.raises(ocilm.ConfigurationError) as err:
        ocilm.completion(MODEL, HI, **explicit)
    assert "BEGIN" not in str(err.value) and "MII" not in str(err.value)


@pytest.mark.parametrize("api_base", ["proxyuser:S3cretPW@proxy.corp:8443", "https://proxyuser:S3cretPW@proxy.corp", "ftp://S3cretPW"])
def test_s1_api_base_never_echoed(creds, api_base):
    with pytest.raises(ocilm.ConfigurationError, match="api_base") as err:
        ocilm.completion(MODEL, HI, **{**creds, "api_base": api_base})
    assert "S3cretPW" not in str(err.value)


@pytest.mark.parametrize(("setting", "value"), [("oci_region", "SECRET-region"), ("oci_profile", "SECRET"),
                                                ("oci_config_file", "/SECRET/config"), ("oci_serving_mode", "SECRET")])  # fmt: skip
def test_s1_settings_named_not_echoed(setting, value, tmp_path):
    (tmp_path / "config").write_text("[DEFAULT]\nuser=u\n")
    kwargs = {"oci_config_file": str(tmp_path / "config"), "oci_compartment_id": "c", setting: value}
    with pytest.raises(ocilm.ConfigurationError) as err:
        ocilm.completion(MODEL, HI, **kwargs)
    assert "SECRET" not in str(err.value)


def test_s1_prepared_call_repr_hides_body_and_headers(creds):
    from ocilm._core import prepare_chat
    from ocilm._settings import SettingsCache

    call = prepare_chat(SettingsCache(), MODEL, [{"role": "user", "content": "PRIVATE PROMPT"}], False,
                        {**creds, "extra_headers": {"x-proxy-key": "sk-SECRET"}})  # fmt: skip
    assert "PRIVATE" not in repr(call) and "sk-SECRET" not in repr(call) and "chat with" in repr(call)


# ---------------------------------------------------------------- D5: local misuse is told apart from OCI's 400


def test_d5_local_errors_are_value_errors_and_oci_400s_are_not(creds):
    with pytest.raises(ocilm.InvalidParameterError) as local:
        ocilm.completion(MODEL, HI, temperature="hot", **creds)
    assert isinstance(local.value, ValueError) and isinstance(local.value, ocilm.BadRequestError) and local.value.opc_request_id is None
    with pytest.raises(ocilm.BadRequestError) as remote:
        ocilm.completion(MODEL, HI, max_retries=0, extra_headers={"x-ocilm-sim-fault": Fault(status=400).header()}, **creds)
    assert not isinstance(remote.value, ValueError) and remote.value.opc_request_id


def test_bookkeeping_fields_accepted_by_the_sdk_and_not_sent(creds, oci_simulator):
    ocilm.completion(MODEL, HI, user="alice", store=False, modalities=["text"], **creds)
    assert not {"user", "store", "modalities"} & set(oci_simulator.requests[-1].json["chatRequest"])
    ocilm.embedding("oci/cohere.embed-english-v3.0", "a", user="alice", **creds)
    assert "user" not in oci_simulator.requests[-1].json
