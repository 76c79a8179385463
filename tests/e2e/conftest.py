"""Fixtures the end-to-end modules share."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def module_simulator(_oci_simulator_session):
    """A module's own view of the shared simulator, for a gateway that lives as long as the
    module; such a module overrides ``oci_simulator`` with ``module_oci_simulator``."""
    return _oci_simulator_session.view()


@pytest.fixture
def module_oci_simulator(module_simulator):
    module_simulator.reset()  # each test reads only what it sent
    return module_simulator


@pytest.fixture(scope="module")
def sim(module_simulator):
    """A module's simulator: its view of the shared one (what the module's gateways sent, only)."""
    return module_simulator
