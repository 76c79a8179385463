"""An incremental decoder for OCI's data-only server-sent events.

OCI's event boundaries need not line up with network reads, and some events arrive
separated by a single newline, so each complete ``data:`` line that holds a JSON value is
an event by itself; lines that do not parse alone are joined with the following ``data:``
lines of the same event, as the SSE format specifies. Events come out parsed (each JSON
text is parsed once); ``[DONE]`` comes out as ``DONE``.

As the SSE specification says, an event with empty data (a keep-alive some proxies insert)
is skipped, and comments, ``event:``, ``id:`` and ``retry:`` lines are ignored. An event or
line longer than MAX_EVENT_BYTES is an error rather than unbounded memory.
"""

from __future__ import annotations

from typing import Any

from ._json import loads as _loads

DONE = "[DONE]"
MAX_EVENT_BYTES = 16 * 1024 * 1024


class SSEDecoder:
    def __init__(self) -> None:
        self._buffer = b""
        self._unended: list[bytes] = []  # reads with no line end yet, joined once a line ends
        self._unended_size = 0
        self._pending: list[str] = []
        self._pending_size = 0

    def feed(self, data: bytes) -> list[Any]:
        """Add bytes; return the parsed payload of every event completed by them."""
        if b"\n" not in data and b"\r" not in data:  # the middle of a long line: keep it, join it later
            self._unended.append(data)
            self._unended_size += len(data)
            if self._unended_size + len(self._buffer) > MAX_EVENT_BYTES:
                raise ValueError(f"a stream line exceeds {MAX_EVENT_BYTES} bytes without ending")
            return []
        if self._unended:
            data = b"".join(self._unended) + data
            self._unended, self._unended_size = [], 0
        buffer = self._buffer + data
        held = b""
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):  # maybe the first half of a CRLF: wait for the next read
                buffer, held = buffer[:-1], b"\r"
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, rest = buffer.split(b"\n")
        if len(rest) > MAX_EVENT_BYTES:
            raise ValueError(f"a stream line exceeds {MAX_EVENT_BYTES} bytes without ending")
        self._buffer = rest + held
        out: list[Any] = []
        for line in lines:
            self._line(line.decode("utf-8", errors="replace"), out)
        return out

    def flush(self) -> list[Any]:
        """End of stream: whatever is left, as events. Raises ValueError for a torn event."""
        out: list[Any] = []
        if self._unended:
            self._buffer += b"".join(self._unended)
            self._unended, self._unended_size = [], 0
        if self._buffer:
            line, self._buffer = self._buffer.decode("utf-8", errors="replace"), b""
            self._line(line.rstrip("\r"), out)
        self._end_event(out)
        return out

    def _end_event(self, out: list[Any]) -> None:
        if self._pending:
            text = "\n".join(self._pending)
            self._pending = []
            self._pending_size = 0
            if not text.strip():
                return  # empty data: a keep-alive
            parsed = _parse(text)
            if parsed is _INCOMPLETE:
                raise ValueError(f"stream event is not valid JSON: {text[:120]!r}")
            out.append(parsed)

    def _line(self, line: str, out: list[Any]) -> None:
        if line.startswith("data: ") and not self._pending:  # the common case, fast
            parsed = _parse(line[6:])
            if parsed is not _INCOMPLETE:
                out.append(parsed)
                return
        if not line:
            self._end_event(out)
            return
        if line.startswith(":"):
            return  # comment / keep-alive
        name, _, value = line.partition(":")
        if name != "data":
            return  # event:, id:, retry: carry nothing OCI uses
        if value.startswith(" "):
            value = value[1:]
        if not self._pending:
            if not value:
                return  # empty data line: nothing to add
            parsed = _parse(value)
            if parsed is not _INCOMPLETE:
                out.append(parsed)
                return
        # A JSON text over several data: lines: joined and parsed once, when the event ends.
        self._pending.append(value)
        self._pending_size += len(value)
        if self._pending_size > MAX_EVENT_BYTES:
            self._pending = []
            self._pending_size = 0
            raise ValueError(f"a stream event exceeds {MAX_EVENT_BYTES} bytes")


_INCOMPLETE = object()


def _parse(value: str) -> Any:
    if value == DONE:
        return DONE
    try:
        return _loads(value)
    except ValueError:
        return _INCOMPLETE
