from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# A throwaway key and signatures made by the official OCI signer, kept with the tests so a
# plain clone of the repository runs the whole suite.
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "signing"
TEST_KEY_PEM = (FIXTURES / "test_key.pem").read_text()
TEST_FINGERPRINT = (FIXTURES / "fingerprint.txt").read_text().strip()
TENANCY = "ocid1.tenancy.oc1..aaaaaaaatesttenancy"
USER = "ocid1.user.oc1..aaaaaaaatestuser"
COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaatestcompartment"


def load_vector(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(autouse=True)
def _isolated_oci_env(monkeypatch, tmp_path):
    """No test sees the developer's own OCI env vars or ~/.oci/config."""
    for name in ("OCI_USER", "OCI_FINGERPRINT", "OCI_TENANCY", "OCI_KEY", "OCI_KEY_FILE", "OCI_REGION",
                 "OCI_COMPARTMENT_ID", "OCI_CONFIG_FILE", "OCI_CLI_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

pytest_plugins = ["ocilm.testing.pytest_plugin"]


@pytest.fixture
def creds(oci_credentials):
    """Keyword arguments for ocilm calls that reach the shared simulator."""
    return dict(oci_credentials)


@pytest.fixture
def fixture_key_registered(oci_simulator):
    """The fixture key (``tests/fixtures/signing``), registered with the simulator."""
    from ocilm.auth import load_private_key

    key = load_private_key(TEST_KEY_PEM)
    oci_simulator.register_key(f"{TENANCY}/{USER}/{TEST_FINGERPRINT}", key.public_key())
    return key


def pytest_runtest_makereport(item, call):
    """With OCILM_NO_SKIPS=1 (set by .ci/run), a skipped test fails: CI always runs everything.

    Tests skip, with the reason, where a service or tool they need (PostgreSQL, Redis, an
    agent CLI, an optional package) is missing on a developer's machine.
    """
    import os

    if os.environ.get("OCILM_NO_SKIPS") != "1" or call.excinfo is None or not call.excinfo.errisinstance(pytest.skip.Exception):
        return None
    from _pytest.reports import TestReport

    report = TestReport.from_item_and_call(item, call)
    report.outcome = "failed"
    report.longrepr = f"skipped in CI, where nothing may be skipped: {call.excinfo.value}"
    return report


def pytest_sessionfinish(session, exitstatus):
    """Any skip left (a whole module skipped at import, say) fails the run under OCILM_NO_SKIPS=1."""
    import os

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("OCILM_NO_SKIPS") == "1" and skipped and exitstatus in (0, 5):
        for report in skipped:
            print(f"\nskipped, which CI does not allow: {report.nodeid}: {report.longrepr}")
        session.exitstatus = 1


@pytest.fixture(params=["aiohttp", "httpx"])
def async_backend(request, monkeypatch) -> str:
    """Runs an async test once per transport: aiohttp (the default when installed) and httpx
    (what AsyncClient falls back to when aiohttp is not installed)."""
    import sys

    if request.param == "httpx":
        monkeypatch.setitem(sys.modules, "aiohttp", None)  # as if not installed: `import aiohttp` fails
    return request.param


REDIS = os.environ.get("OCILM_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url():
    """The local Redis (skipped with a reason when it is not reachable; ``.ci/run`` turns that
    skip into a failure). Tests name their counters uniquely, so they share the database."""
    import redis

    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=2).ping()
    except Exception as exc:  # any failure to reach the server means: not available here
        pytest.skip(f"Redis is not reachable at {REDIS.rsplit('@', 1)[-1]} ({type(exc).__name__}); set OCILM_TEST_REDIS")
    return REDIS


def pytest_configure(config):
    """Tests make thousands of one-shot ``httpx`` clients (``httpx.post(...)``); each builds the
    same default SSL context (certifi's bundle, about 30 ms). It is built once here and shared:
    a context with other settings (``verify=``, ``cert=``) is still built for its client."""
    import functools
    import importlib

    for name in ("httpx._transports.default", "httpx2._transports.default"):  # httpx2: the mcp package's
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        build = module.create_ssl_context
        shared_default = functools.lru_cache(maxsize=1)(build)

        def create_ssl_context(verify=True, cert=None, trust_env=True, _build=build, _shared=shared_default):
            if verify is True and cert is None and trust_env:
                return _shared()
            return _build(verify=verify, cert=cert, trust_env=trust_env)

        module.create_ssl_context = create_ssl_context
