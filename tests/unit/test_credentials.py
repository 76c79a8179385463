"""Credential sources, precedence, PEM tolerance and clear errors, with no secret leaking."""

from __future__ import annotations

import os
import time

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ocilm._errors import ConfigurationError
from ocilm._settings import SettingsCache, resolve_settings
from ocilm.auth import (
    KeySigner,
    SDKSignerAdapter,
    SessionTokenSigner,
    load_private_key,
    normalize_pem,
)

from ..conftest import COMPARTMENT, FIXTURES, TENANCY, TEST_FINGERPRINT, TEST_KEY_PEM, USER

KEY_ID = f"{TENANCY}/{USER}/{TEST_FINGERPRINT}"
MANUAL = dict(oci_user=USER, oci_fingerprint=TEST_FINGERPRINT, oci_tenancy=TENANCY, oci_key=TEST_KEY_PEM)
SECRET_MARKERS = ("BEGIN PRIVATE KEY", "MIIE", "hunter2", "SECRET.TOKEN")


def _assert_no_secret(text: str) -> None:
    for marker in SECRET_MARKERS:
        assert marker not in text, marker


def _encrypted_pem(pass_phrase: bytes) -> str:
    key = load_private_key(TEST_KEY_PEM)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(pass_phrase),
    ).decode()


def test_manual_credentials_key_text():
    s = resolve_settings({**MANUAL, "oci_region": "us-chicago-1", "oci_compartment_id": COMPARTMENT})
    assert isinstance(s.signer, KeySigner)
    assert s.signer.key_id == KEY_ID
    assert s.region == "us-chicago-1"
    assert s.compartment_id == COMPARTMENT


@pytest.mark.parametrize(
    "mangle",
    [
        lambda pem: pem.replace("\n", "\\n"),
        lambda pem: pem.replace("\n", "\r\n"),
        lambda pem: pem + "OCI_API_KEY\n",
        lambda pem: f'"{pem}"',
        lambda pem: "\n  " + pem.replace("\n", "\\n") + "\\nOCI_API_KEY",
    ],
    ids=["escaped-newlines", "crlf", "console-trailer", "quoted", "escaped-with-trailer"],
)
def test_pem_tolerance(mangle):
    assert normalize_pem(mangle(TEST_KEY_PEM)) == normalize_pem(TEST_KEY_PEM)
    key = load_private_key(mangle(TEST_KEY_PEM))
    assert key.key_size == 2048


def test_key_file_with_tilde(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "keys").mkdir(parents=True)
    (home / "keys" / "k.pem").write_text(TEST_KEY_PEM)
    monkeypatch.setenv("HOME", str(home))
    s = resolve_settings({**MANUAL, "oci_key": None, "oci_key_file": "~/keys/k.pem"})
    assert s.signer.key_id == KEY_ID


def test_env_fallbacks(monkeypatch):
    monkeypatch.setenv("OCI_USER", USER)
    monkeypatch.setenv("OCI_FINGERPRINT", TEST_FINGERPRINT)
    monkeypatch.setenv("OCI_TENANCY", TENANCY)
    monkeypatch.setenv("OCI_KEY", TEST_KEY_PEM.replace("\n", "\\n"))
    monkeypatch.setenv("OCI_REGION", "eu-frankfurt-1")
    monkeypatch.setenv("OCI_COMPARTMENT_ID", COMPARTMENT)
    s = resolve_settings({})
    assert s.signer.key_id == KEY_ID
    assert (s.region, s.compartment_id) == ("eu-frankfurt-1", COMPARTMENT)
    # Explicit keyword arguments beat the environment, field by field.
    s = resolve_settings({"oci_user": "ocid1.user.oc1..other", "oci_region": "ord"})
    assert s.signer.key_id == f"{TENANCY}/ocid1.user.oc1..other/{TEST_FINGERPRINT}"
    assert s.region == "us-chicago-1"


def test_encrypted_key_pass_phrase():
    pem = _encrypted_pem(b"hunter2")
    s = resolve_settings({**MANUAL, "oci_key": pem, "oci_pass_phrase": "hunter2"})
    assert s.signer.key_id == KEY_ID
    with pytest.raises(ConfigurationError, match="oci_pass_phrase") as missing:
        resolve_settings({**MANUAL, "oci_key": pem})
    with pytest.raises(ConfigurationError, match="pass phrase .* is wrong") as wrong:
        resolve_settings({**MANUAL, "oci_key": pem, "oci_pass_phrase": "nope-hunter2x"})
    for err in (missing.value, wrong.value):
        _assert_no_secret(str(err) + repr(err))
        assert "nope-hunter2x" not in str(err)


def test_non_rsa_key_is_refused():
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with pytest.raises(ConfigurationError, match="RSA"):
        resolve_settings({**MANUAL, "oci_key": ec_pem})


def test_garbage_key_and_missing_file(tmp_path):
    with pytest.raises(ConfigurationError, match="not a PEM private key") as err:
        resolve_settings({**MANUAL, "oci_key": "MIIEsecretbase64butnopem"})
    assert "MIIEsecret" not in str(err.value)
    with pytest.raises(ConfigurationError, match="oci_key_file: no file at the path given"):
        resolve_settings({**MANUAL, "oci_key": None, "oci_key_file": str(tmp_path / "absent.pem")})
    unreadable = tmp_path / "dir.pem"
    unreadable.mkdir()
    with pytest.raises(ConfigurationError, match="cannot read the key file"):
        resolve_settings({**MANUAL, "oci_key": None, "oci_key_file": str(unreadable)})


def test_incomplete_credentials_name_fields_and_places(monkeypatch):
    monkeypatch.setenv("OCI_TENANCY", TENANCY)
    with pytest.raises(ConfigurationError) as err:
        resolve_settings({"oci_user": USER, "oci_key": TEST_KEY_PEM})
    message = str(err.value)
    assert "missing oci_fingerprint" in message
    assert "OCI_FINGERPRINT" in message and "keyword arguments" in message
    assert "oci_tenancy: env OCI_TENANCY" in message
    _assert_no_secret(message)


def test_no_credentials_at_all():
    with pytest.raises(ConfigurationError, match="no OCI credentials found"):
        resolve_settings({})


def _write_config(tmp_path, text: str):
    (tmp_path / "key.pem").write_text(TEST_KEY_PEM)
    path = tmp_path / "config"
    path.write_text(text.replace("KEYFILE", str(tmp_path / "key.pem")))
    return path


def test_config_profile_with_default_inheritance(tmp_path, monkeypatch):
    path = _write_config(tmp_path, f"""[DEFAULT]
tenancy={TENANCY}
region=us-phoenix-1
key_file=KEYFILE
fingerprint={TEST_FINGERPRINT}
user=ocid1.user.oc1..default

[WORK]
user={USER}
region=us-chicago-1
""")
    s = resolve_settings({"oci_config_file": str(path), "oci_profile": "WORK"})
    assert s.signer.key_id == KEY_ID
    assert s.region == "us-chicago-1"
    s = resolve_settings({"oci_config_file": str(path)})
    assert s.signer.key_id == f"{TENANCY}/ocid1.user.oc1..default/{TEST_FINGERPRINT}"
    assert s.region == "us-phoenix-1"
    # OCI_CONFIG_FILE and OCI_CLI_PROFILE are honoured when no keyword says otherwise.
    monkeypatch.setenv("OCI_CONFIG_FILE", str(path))
    monkeypatch.setenv("OCI_CLI_PROFILE", "WORK")
    assert resolve_settings({}).signer.key_id == KEY_ID
    with pytest.raises(ConfigurationError, match="profiles there: DEFAULT, WORK"):
        resolve_settings({"oci_profile": "NOPE"})


def test_default_config_location(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".oci").mkdir(parents=True)
    cfg = _write_config(tmp_path, f"[DEFAULT]\ntenancy={TENANCY}\nuser={USER}\nfingerprint={TEST_FINGERPRINT}\nkey_file=KEYFILE\n")
    (home / ".oci" / "config").write_text(cfg.read_text())
    monkeypatch.setenv("HOME", str(home))
    assert resolve_settings({}).signer.key_id == KEY_ID


def test_profile_missing_fields(tmp_path):
    path = _write_config(tmp_path, "[DEFAULT]\nkey_file=KEYFILE\nuser=u\n")
    with pytest.raises(ConfigurationError, match="missing tenancy, fingerprint"):
        resolve_settings({"oci_config_file": str(path)})
    path.write_text("[DEFAULT]\nkey_content=abc\n")
    with pytest.raises(ConfigurationError, match="key_content is not allowed"):
        resolve_settings({"oci_config_file": str(path)})


def test_session_token_profile_rereads_token(tmp_path):
    token = tmp_path / "token"
    token.write_text("SECRET.TOKEN.ONE\n")
    path = _write_config(tmp_path, f"[DEFAULT]\nkey_file=KEYFILE\nsecurity_token_file={token}\nregion=us-chicago-1\n")
    s = resolve_settings({"oci_config_file": str(path)})
    assert isinstance(s.signer, SessionTokenSigner)
    request = httpx.Request("POST", "https://h/x", content=b"{}")
    s.signer.sign(request)
    assert 'keyId="ST$SECRET.TOKEN.ONE"' in request.headers["authorization"]
    token.write_text("SECRET.TOKEN.TWO-refreshed\n")
    os.utime(token, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    request = httpx.Request("POST", "https://h/x", content=b"{}")
    s.signer.sign(request)
    assert 'keyId="ST$SECRET.TOKEN.TWO-refreshed"' in request.headers["authorization"]
    _assert_no_secret(repr(s) + repr(s.signer) + str(s))


def test_session_token_kwarg(tmp_path):
    token = tmp_path / "token"
    token.write_text("SECRET.TOKEN.X")
    s = resolve_settings({"oci_security_token_file": str(token), "oci_key": TEST_KEY_PEM})
    assert isinstance(s.signer, SessionTokenSigner)
    with pytest.raises(ConfigurationError, match="needs the session's private key"):
        resolve_settings({"oci_security_token_file": str(token)})


def test_sdk_signer_objects():
    oci = pytest.importorskip("oci")
    key = load_private_key(TEST_KEY_PEM)
    for sdk_signer, expected_key_id in [
        (oci.signer.Signer(TENANCY, USER, TEST_FINGERPRINT, str(FIXTURES / "test_key.pem")), KEY_ID),
        (oci.auth.signers.SecurityTokenSigner("SECRET.TOKEN.SDK", key), "ST$SECRET.TOKEN.SDK"),
    ]:
        s = resolve_settings({"oci_signer": sdk_signer, **MANUAL})  # the signer wins
        assert isinstance(s.signer, SDKSignerAdapter)
        request = httpx.Request("POST", "http://127.0.0.1:9/x?y=1", content=b'{"a": 1}')
        s.signer.sign(request)
        assert f'keyId="{expected_key_id}"' in request.headers["authorization"]
        assert request.headers["host"] == "127.0.0.1:9"
        _assert_no_secret(repr(s.signer))
    with pytest.raises(ConfigurationError, match="oci_signer must be an OCI SDK signer"):
        resolve_settings({"oci_signer": "not a signer"})


def test_bad_region_serving_mode_and_api_format():
    for region in ("evil.com/", "us-chicago-1.attacker.net", "", "US CHICAGO"):
        with pytest.raises(ConfigurationError, match="oci_region"):
            resolve_settings({**MANUAL, "oci_region": region})
    with pytest.raises(ConfigurationError, match="ON_DEMAND.*DEDICATED"):
        resolve_settings({**MANUAL, "oci_serving_mode": "SPOT"})
    with pytest.raises(ConfigurationError, match="GENERIC, COHERE"):
        resolve_settings({**MANUAL, "oci_api_format": "OPENAI"})


def test_missing_compartment():
    s = resolve_settings(MANUAL)
    with pytest.raises(ConfigurationError, match="oci_compartment_id is required.*OCI_COMPARTMENT_ID"):
        s.require_compartment()


def test_settings_cache_parses_key_once():
    cache = SettingsCache()
    a = cache.resolve(MANUAL)
    b = cache.resolve(dict(MANUAL))
    assert a is b


def test_settings_cache_sees_environment_changes_at_once(monkeypatch):
    cache = SettingsCache()
    assert cache.resolve(MANUAL).region == "us-ashburn-1"
    monkeypatch.setenv("OCI_REGION", "eu-frankfurt-1")
    assert cache.resolve(MANUAL).region == "eu-frankfurt-1"
    monkeypatch.setenv("OCI_COMPARTMENT_ID", "ocid1.compartment.oc1..fromenv")
    assert cache.resolve(MANUAL).require_compartment() == "ocid1.compartment.oc1..fromenv"
    monkeypatch.delenv("OCI_REGION")
    assert cache.resolve(MANUAL).region == "us-ashburn-1"


def test_no_secret_in_reprs():
    key_pem = _encrypted_pem(b"hunter2")
    s = resolve_settings({**MANUAL, "oci_key": key_pem, "oci_pass_phrase": "hunter2"})
    _assert_no_secret(repr(s) + str(s) + repr(s.signer))




def test_key_text_is_told_from_a_path():
    from ocilm.auth._keys import looks_like_pem

    assert looks_like_pem("-----BEGIN PRIVATE KEY-----\nMIIE...") and looks_like_pem("MIIE\\nabc\nxyz") and looks_like_pem("x" * 5000)
    assert not looks_like_pem("/home/BEGINNER/.oci/key.pem") and not looks_like_pem("~/.oci/oci_api_key.pem")
