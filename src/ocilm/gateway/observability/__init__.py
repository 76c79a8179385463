"""What the gateway shows of itself: Prometheus metrics, JSON access lines, traces and budget
alerts, all fed by one ``RequestRecord`` per request."""

from __future__ import annotations

from ._observer import Observer
from ._record import RequestRecord

__all__ = ["Observer", "RequestRecord"]
