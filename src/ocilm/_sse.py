"""An incremental decoder for OCI's data-only server-sent events.

OCI's event boundaries need not line up with network reads, and some events arrive
separated by a single newline, so each complete ``data:`` line that holds a JSON value is
an event by itself; lines that do not parse alone are joined with the following ``data:``
lines of the same event, as the SSE format specifies.
"""

from __future__ import annotations

import json
from typing import Any

DONE = "[DONE]"


class SSEDecoder:
    def __init__(self) -> None:
        self._buffer = b""
        self._pending: list[str] = []

    def feed(self, data: bytes) -> list[str]:
        """Add bytes; return the data payloads of every event completed by them."""
        self._buffer += data
        out: list[str] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                break
            end, after = cut
            line = self._buffer[:end].decode("utf-8", errors="replace")
            self._buffer = self._buffer[after:]
            self._line(line, out)
        return out

    def flush(self) -> list[str]:
        """End of stream: whatever is left, as events."""
        out: list[str] = []
        if self._buffer:
            line, self._buffer = self._buffer.decode("utf-8", errors="replace"), b""
            self._line(line.rstrip("\r"), out)
        if self._pending:
            out.append("\n".join(self._pending))
            self._pending = []
        return out

    def _line(self, line: str, out: list[str]) -> None:
        if not line:
            if self._pending:
                out.append("\n".join(self._pending))
                self._pending = []
            return
        if line.startswith(":"):
            return  # comment / keep-alive
        name, _, value = line.partition(":")
        if name != "data":
            return  # event:, id:, retry: carry nothing OCI uses
        if value.startswith(" "):
            value = value[1:]
        if not self._pending and _complete(value):
            out.append(value)
            return
        self._pending.append(value)
        joined = "\n".join(self._pending)
        if _complete(joined):
            out.append(joined)
            self._pending = []


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    """(end of the first line, start of the next) for LF, CRLF or CR endings."""
    lf = buffer.find(b"\n")
    cr = buffer.find(b"\r")
    if cr != -1 and (lf == -1 or cr < lf):
        if cr + 1 == len(buffer):
            return None  # a CR at the end may be the first half of CRLF
        return (cr, cr + 2) if buffer[cr + 1 : cr + 2] == b"\n" else (cr, cr + 1)
    if lf == -1:
        return None
    return lf, lf + 1


def _complete(value: str) -> bool:
    if value == DONE:
        return True
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def parse_event(data: str) -> Any:
    return DONE if data == DONE else json.loads(data)
