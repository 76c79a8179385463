"""OCI SDK principal signers, real objects from the `oci` package, driving ocilm offline."""

from __future__ import annotations

import time

import pytest

import ocilm

oci = pytest.importorskip("oci")
jwt = pytest.importorskip("jwt")


def _rpst(tag: str) -> str:
    now = int(time.time())
    claims = {"res_tenant": "ocid1.tenancy.oc1..rp", "res_compartment": "ocid1.compartment.oc1..rp", "sub": tag, "iat": now, "exp": now + 3600}
    return jwt.encode(claims, "not-verified-by-the-client-0123456789", algorithm="HS256")


@pytest.fixture
def resource_principal_files(tmp_path, monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "rp_key.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    token = tmp_path / "rpst"
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_VERSION", "2.2")
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_RPST", str(token))
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM", str(pem))
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_REGION", "us-chicago-1")
    return token, key


def test_resource_principal_signer(oci_simulator, creds, resource_principal_files):
    token_file, key = resource_principal_files
    token = _rpst("first")
    token_file.write_text(token)
    oci_simulator.register_session_token(token, key.public_key())
    signer = oci.auth.signers.get_resource_principals_signer()
    r = ocilm.completion("oci/meta.llama-3.3-70b-instruct", [{"role": "user", "content": "Hi"}], oci_signer=signer,
                         api_base=creds["api_base"], oci_compartment_id=signer.compartment_id)
    assert r.choices[0].message.content.endswith("You said: Hi")
    assert oci_simulator.requests[-1].headers["authorization"].count(f'keyId="ST${token}"') == 1


def test_resource_principal_refreshes_after_401(oci_simulator, creds, resource_principal_files):
    """The token on disk is replaced after the signer loaded it; OCI answers 401 to the old one,
    ocilm asks the signer to refresh and retries once, signed with the new token."""
    token_file, key = resource_principal_files
    token_file.write_text(_rpst("stale"))
    signer = oci.auth.signers.get_resource_principals_signer()
    fresh = _rpst("fresh")
    token_file.write_text(fresh)
    oci_simulator.register_session_token(fresh, key.public_key())
    r = ocilm.completion("oci/xai.grok-3", [{"role": "user", "content": "again"}], oci_signer=signer,
                         api_base=creds["api_base"], oci_compartment_id="ocid1.compartment.oc1..rp")
    assert r.choices[0].message.content.endswith("again")
    assert [q.status for q in oci_simulator.requests] == [401, 200]
    assert f"ST${fresh}" in oci_simulator.requests[-1].headers["authorization"]


def test_plain_key_signer_does_not_retry_401(oci_simulator, creds):
    with pytest.raises(ocilm.AuthenticationError):
        ocilm.completion("oci/xai.grok-3", [{"role": "user", "content": "x"}], **{**creds, "oci_fingerprint": "00:" * 15 + "00"})
    assert len(oci_simulator.requests) == 1
