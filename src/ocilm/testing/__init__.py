"""A faithful local stand-in for OCI Generative AI, for tests, demos and offline work.

``Simulator`` serves OCI's chat, embedText and rerankText actions on loopback: it checks
request signatures and bodies the way OCI does, answers deterministically, streams the
way OCI streams, and misbehaves on demand (``Fault``).
"""

from ._app import RecordedRequest, SimulatorApp
from ._catalog import MODELS, ServedModel
from ._faults import FAULT_HEADER, Fault
from ._server import SIM_COMPARTMENT, BackgroundServer, Simulator, SimulatorView

__all__ = [
    "FAULT_HEADER",
    "MODELS",
    "SIM_COMPARTMENT",
    "BackgroundServer",
    "Fault",
    "RecordedRequest",
    "ServedModel",
    "Simulator",
    "SimulatorApp",
    "SimulatorView",
]
