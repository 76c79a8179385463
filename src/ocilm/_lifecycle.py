"""OCI's notice that a model is deprecated: the ``model-retirement-info`` header it sends on every
inference reply of such a model, passed on unchanged (never parsed for meaning), and a
``DeprecationWarning`` once per model per process."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping

HEADER = "model-retirement-info"
_warned: set[str] = set()
_lock = threading.Lock()


def retirement_info(headers: Mapping[str, str]) -> str | None:
    value = headers.get(HEADER)
    return value if value else None


def warn_once(model: str | None, info: str) -> None:
    """A ``DeprecationWarning`` the first time this process meets the notice for ``model``."""
    key = model or "?"
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(f"OCI says model {key} is deprecated: {info}", DeprecationWarning, stacklevel=4)
