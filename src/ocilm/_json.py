"""Parsing what OCI sends: orjson when it is installed (``ocilm[fast]``), else the standard library.

Only parsing goes through here: each stream event and each reply is parsed once, and orjson
does it in about a third of the time (bench/RESULTS.md). Both reject what is not JSON with a
``ValueError``; encoding stays with ``json``, whose errors the request translators rely on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

loads: Callable[[str | bytes], Any]
try:
    import orjson
except ImportError:  # pragma: no cover - depends on the install
    loads = json.loads
else:
    loads = orjson.loads
