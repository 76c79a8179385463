"""The signer reproduces the official SDK's vectors byte for byte."""

from __future__ import annotations

import httpx
import pytest

from ocilm.auth import (
    KeySigner,
    authorization_header,
    body_sha256,
    fingerprint,
    headers_to_sign,
    load_private_key,
    parse_authorization,
    signing_string,
)
from ocilm.auth._signers import rsa_sign

from ..conftest import FIXTURES, TEST_FINGERPRINT, TEST_KEY_PEM, load_vector

VECTORS = ["vector.json", "vector_get.json", "vector_session_token.json", "vector_localhost.json"]


@pytest.fixture(scope="module")
def key():
    return load_private_key(TEST_KEY_PEM)


def _body(vector) -> bytes:
    return (FIXTURES / vector["body_file"]).read_bytes() if vector["body_file"] else b""


@pytest.mark.parametrize("name", VECTORS)
def test_pure_steps_reproduce_vector(name, key):
    v = load_vector(name)
    names = headers_to_sign(v["method"])
    assert list(names) == v["signed_headers_in_order"]
    headers = v["output_headers"]
    if v["body_file"]:
        assert body_sha256(_body(v)) == v["body_sha256_base64"]
    text = signing_string(v["method"], v["path_url"], headers, names)
    assert text == v["signing_string"]
    header = authorization_header(v["key_id"], names, rsa_sign(key, text))
    assert header == v["output_headers"]["authorization"]


@pytest.mark.parametrize("name", VECTORS)
def test_signer_on_httpx_request_reproduces_vector(name, key):
    """The whole KeySigner on a real httpx.Request: every signed header and Authorization."""
    v = load_vector(name)
    request = httpx.Request(v["method"], v["url"], headers=v["input_headers"], content=_body(v))
    KeySigner(v["key_id"], key).sign(request)
    for header, value in v["output_headers"].items():
        assert request.headers[header] == value, header


def test_fingerprint_matches_fixture(key):
    assert fingerprint(key) == TEST_FINGERPRINT


def test_empty_body_hash():
    assert body_sha256(b"") == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


def test_parse_authorization_any_order():
    v = load_vector("vector.json")
    parsed = parse_authorization(v["output_headers"]["authorization"])
    assert parsed["keyId"] == v["key_id"]
    assert parsed["headers"].split() == v["signed_headers_in_order"]
    reordered = 'Signature version="1",keyId="k",algorithm="rsa-sha256",headers="date",signature="c2ln"'
    assert parse_authorization(reordered) == {
        "version": "1", "keyId": "k", "algorithm": "rsa-sha256", "headers": "date", "signature": "c2ln"
    }
    for bad in ("Bearer x", "Signature ", 'Signature keyId=unquoted', 'Signature keyId="open'):
        with pytest.raises(ValueError):
            parse_authorization(bad)


def test_query_string_and_port_are_signed(key):
    request = httpx.Request("GET", "http://127.0.0.1:8080/a/b?x=1&y=%20z", headers={"date": "Mon, 02 Jun 2025 12:00:00 GMT"})
    KeySigner("k", key).sign(request)
    assert request.headers["host"] == "127.0.0.1:8080"
    assert 'headers="date (request-target) host"' in request.headers["authorization"]
    text = signing_string("GET", "/a/b?x=1&y=%20z", request.headers, headers_to_sign("GET"))
    assert "(request-target): get /a/b?x=1&y=%20z" in text


def test_signs_a_fresh_date_when_none_given(key):
    request = httpx.Request("POST", "https://h/x", content=b"{}")
    KeySigner("k", key).sign(request)
    assert request.headers["date"].endswith(" GMT")
    assert request.headers["content-length"] == "2"
    assert request.headers["x-content-sha256"] == body_sha256(b"{}")


def test_sdk_signer_produces_the_same_authorization(key):
    """Cross-check: the official oci SDK signer and ours sign the same request identically."""
    oci_signer = pytest.importorskip("oci.signer")
    from ocilm.auth import SDKSignerAdapter

    v = load_vector("vector.json")
    sdk = oci_signer.Signer(
        v["key_id"].split("/")[0], v["key_id"].split("/")[1], v["key_id"].split("/")[2],
        private_key_file_location=str(FIXTURES / "test_key.pem"),
    )
    body = _body(v)
    ours = httpx.Request("POST", v["url"], headers=v["input_headers"], content=body)
    KeySigner(v["key_id"], key).sign(ours)
    theirs = httpx.Request("POST", v["url"], headers=v["input_headers"], content=body)
    SDKSignerAdapter(sdk).sign(theirs)
    assert ours.headers["authorization"] == theirs.headers["authorization"] == v["output_headers"]["authorization"]

    # And with a fresh date, through the SDK's own requests-based path.
    import oci._vendor.requests as sdk_requests

    prepared = sdk_requests.Request("POST", v["url"], headers={"content-type": "application/json"}, data=body).prepare()
    sdk(prepared)
    mine = httpx.Request("POST", v["url"], headers={"date": prepared.headers["date"], "content-type": "application/json"}, content=body)
    KeySigner(v["key_id"], key).sign(mine)
    assert mine.headers["authorization"] == prepared.headers["authorization"]
