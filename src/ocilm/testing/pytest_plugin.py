"""pytest fixtures: ``oci_simulator`` (one per session, reset per test) and ``oci_credentials``.

Enable with ``pytest_plugins = ["ocilm.testing.pytest_plugin"]`` in a conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._server import Simulator


@pytest.fixture(scope="session")
def _oci_simulator_session() -> Iterator[Simulator]:
    with Simulator() as sim:
        yield sim


@pytest.fixture
def oci_simulator(_oci_simulator_session: Simulator) -> Iterator[Simulator]:
    _oci_simulator_session.reset()
    yield _oci_simulator_session


@pytest.fixture
def oci_credentials(oci_simulator: Simulator) -> dict[str, str]:
    """Keyword arguments that reach the simulator: api_base, a registered key, compartment."""
    return oci_simulator.credentials()
