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


@pytest.fixture
def stale_principal(oci_simulator, creds, resource_principal_files):
    """A resource principal signer that loaded a token, which was then replaced on disk by a fresh
    one that OCI knows; returns the call's settings and the fresh token."""
    token_file, key = resource_principal_files
    token_file.write_text(_rpst("stale"))
    signer = oci.auth.signers.get_resource_principals_signer()
    fresh = _rpst("fresh")
    token_file.write_text(fresh)
    oci_simulator.register_session_token(fresh, key.public_key())
    return {"oci_signer": signer, "api_base": creds["api_base"], "oci_compartment_id": "ocid1.compartment.oc1..rp"}, fresh


def _refreshed_once(oci_simulator, reply, fresh: str) -> None:
    assert reply.choices[0].message.content.endswith("again")
    assert [q.status for q in oci_simulator.requests] == [401, 200]
    assert f"ST${fresh}" in oci_simulator.requests[-1].headers["authorization"]


def test_resource_principal_refreshes_after_401(oci_simulator, stale_principal):
    """OCI answers 401 to the stale token; ocilm asks the signer to refresh and retries once,
    signed with the new token."""
    settings, fresh = stale_principal
    _refreshed_once(oci_simulator, ocilm.completion("oci/xai.grok-3", [{"role": "user", "content": "again"}], **settings), fresh)


@pytest.mark.usefixtures("async_backend")
async def test_resource_principal_refreshes_after_401_async(oci_simulator, stale_principal):
    settings, fresh = stale_principal
    async with ocilm.AsyncClient(**settings) as client:
        reply = await client.completion("oci/xai.grok-3", [{"role": "user", "content": "again"}])
    _refreshed_once(oci_simulator, reply, fresh)


def test_plain_key_signer_does_not_retry_401(oci_simulator, creds):
    with pytest.raises(ocilm.AuthenticationError):
        ocilm.completion("oci/xai.grok-3", [{"role": "user", "content": "x"}], **{**creds, "oci_fingerprint": "00:" * 15 + "00"})
    assert len(oci_simulator.requests) == 1


# ---------------------------------------------------------------- instance principals


def _certificates(tenancy: str):
    """A CA-signed leaf certificate whose subject names the tenancy, as OCI's metadata service hands out."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    def pem_cert(cert) -> str:
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake intermediate")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)).sign(ca_key, hashes.SHA256()))
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ocid1.instance.oc1..fake"),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"opc-tenant:{tenancy}")])
    leaf = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(leaf_key.public_key())
            .serial_number(2).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)).sign(ca_key, hashes.SHA256()))
    key_pem = leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()).decode()
    return pem_cert(leaf), key_pem, pem_cert(ca)


@pytest.fixture
def instance_metadata(oci_simulator, monkeypatch):
    """A loopback stand-in for the instance metadata service and the auth service's /v1/x509."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    from ocilm.testing import BackgroundServer

    tenancy = "ocid1.tenancy.oc1..instanceprincipal"
    leaf, leaf_key, intermediate = _certificates(tenancy)
    issued: list[str] = []
    files = {"instance/region": "ord", "identity/cert.pem": leaf, "identity/key.pem": leaf_key, "identity/intermediate.pem": intermediate}

    async def metadata(request: Request):
        if request.headers.get("authorization") != "Bearer Oracle":
            return PlainTextResponse("metadata needs 'Authorization: Bearer Oracle'", status_code=401)
        return PlainTextResponse(files[request.path_params["path"]])

    async def federation(request: Request):
        body = await request.json()
        assert body["certificate"] in leaf.replace("\n", "") and body["intermediateCertificates"]
        session_public = "-----BEGIN PUBLIC KEY-----\n" + body["publicKey"] + "\n-----END PUBLIC KEY-----\n"
        token = _rpst(f"instance-{len(issued)}")
        oci_simulator.register_session_token(token, session_public)  # the token is bound to the session key
        issued.append(token)
        return JSONResponse({"token": token})

    app = Starlette(routes=[Route("/opc/v2/{path:path}", metadata), Route("/v1/x509", federation, methods=["POST"])])
    with BackgroundServer(app) as server:
        monkeypatch.setenv("OCI_METADATA_BASE_URL", f"{server.base_url}/opc/v2")
        yield server, issued


def test_instance_principal_signer(oci_simulator, creds, instance_metadata):
    server, issued = instance_metadata
    signer = oci.auth.signers.InstancePrincipalsSecurityTokenSigner(federation_endpoint=f"{server.base_url}/v1/x509")
    assert signer.region == "us-chicago-1" and signer.tenancy_id == "ocid1.tenancy.oc1..instanceprincipal"
    r = ocilm.completion("oci/cohere.command-latest", [{"role": "user", "content": "from an instance"}], oci_signer=signer,
                         api_base=creds["api_base"], oci_compartment_id=signer.tenancy_id)
    assert r.choices[0].message.content.endswith("You said: from an instance")
    assert f'keyId="ST${issued[-1]}"' in oci_simulator.requests[-1].headers["authorization"]

    # The token is revoked: OCI answers 401, ocilm has the signer fetch a new one and retries once.
    del oci_simulator.app.keys["ST$" + issued[-1]]
    r = ocilm.completion("oci/cohere.command-latest", [{"role": "user", "content": "after revocation"}], oci_signer=signer,
                         api_base=creds["api_base"], oci_compartment_id=signer.tenancy_id)
    assert r.choices[0].message.content.endswith("after revocation")
    assert [q.status for q in oci_simulator.requests[-2:]] == [401, 200] and len(issued) == 2


# ---------------------------------------------------------------- OKE workload identity


def _tls_files(tmp_path):
    """A test CA and a server certificate for 127.0.0.1 signed by it (PEM files)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake kubernetes CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "proxymux")])).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    return paths


def test_oke_workload_identity_signer(oci_simulator, creds, tmp_path):
    """The SDK's OKE signer trades a service-account token for an RPST at proxymux (TLS, verified
    against the cluster CA); the RPST is bound to the pod's session key the signer generated."""
    import base64
    import json

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from ocilm.testing import BackgroundServer

    tls = _tls_files(tmp_path)
    issued: list[str] = []
    service_account_token = _rpst("kubernetes-service-account")  # a JWT with an expiry, as Kubernetes issues

    async def proxymux(request: Request):
        if request.headers.get("authorization") != f"Bearer {service_account_token}":
            return Response(status_code=401)
        pod_key = "-----BEGIN PUBLIC KEY-----\n" + (await request.json())["podKey"] + "\n-----END PUBLIC KEY-----\n"
        token = _rpst("oke-pod")
        oci_simulator.register_session_token(token, pod_key)
        issued.append(token)
        return Response(base64.b64encode(json.dumps({"token": "ST$" + token}).encode()), media_type="application/json")

    app = Starlette(routes=[Route("/resourcePrincipalSessionTokens", proxymux, methods=["POST"])])
    with BackgroundServer(app, ssl_certfile=str(tls["cert"]), ssl_keyfile=str(tls["key"])) as server:
        from oci.auth.rpt_path_providers import SuppliedServiceAccountTokenProvider
        from oci.auth.signers.oke_workload_identity_resource_principal_signer import (
            OkeWorkloadIdentityResourcePrincipalSigner,
        )

        signer = OkeWorkloadIdentityResourcePrincipalSigner(
            sa_token_provider=SuppliedServiceAccountTokenProvider(service_account_token), sa_cert_path=str(tls["ca"]),
            service_host="127.0.0.1", service_port=server.port, region="us-chicago-1",
        )
        r = ocilm.completion("oci/openai.gpt-oss-120b", [{"role": "user", "content": "from a pod"}], oci_signer=signer,
                             api_base=creds["api_base"], oci_compartment_id="ocid1.compartment.oc1..rp")
    assert r.choices[0].message.content.endswith("You said: from a pod")
    assert issued and f'keyId="ST${issued[-1]}"' in oci_simulator.requests[-1].headers["authorization"]
