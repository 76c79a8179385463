"""pytest fixtures: ``oci_simulator`` (one per session, a view of its own per test) and ``oci_credentials``.

Enable with ``pytest_plugins = ["ocilm.testing.pytest_plugin"]`` in a conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._server import Simulator, SimulatorView


@pytest.fixture(scope="session")
def _oci_simulator_session() -> Iterator[Simulator]:
    with Simulator() as sim:
        yield sim


@pytest.fixture
def oci_simulator(_oci_simulator_session: Simulator) -> Iterator[SimulatorView]:
    """The session's simulator as this test alone sees it (``Simulator.view``): what another
    test's work sends it late (a gateway still draining, a background poll) never shows in this
    test's ``requests`` nor meets its faults."""
    yield _oci_simulator_session.view()


@pytest.fixture
def oci_credentials(oci_simulator: Simulator) -> dict[str, str]:
    """Keyword arguments that reach the simulator: api_base, a registered key, compartment."""
    return oci_simulator.credentials()
