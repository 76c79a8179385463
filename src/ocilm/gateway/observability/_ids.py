"""Request ids without a system call: a random prefix per process and a counter.

``uuid4()`` reads the kernel's random source on every request, and with the store's writer
thread in the process each such call may wait for the GIL (3% of a governed request's samples).
Ids only need to be unique (the spend log's key): 64 random bits per process, drawn again in a
forked child, and a 64-bit counter.
"""

from __future__ import annotations

import itertools
import os

_prefix = os.urandom(8).hex()
_counter = itertools.count()


def _reseed() -> None:
    global _prefix, _counter
    _prefix, _counter = os.urandom(8).hex(), itertools.count()


os.register_at_fork(after_in_child=_reseed)


def new_id(kind: str = "req") -> str:
    """``kind-`` and 32 hex digits, as ``uuid4().hex`` gives, unique across processes."""
    return f"{kind}-{_prefix}{next(_counter):016x}"
