"""The Responses API on OCI's native API: translated onto chat by the same mapping the gateway's
``/v1/responses`` door uses (stateless: no stored responses there), and the door's stream
machine's events read back as typed events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from ._core import split_params
from ._sse import SSEDecoder
from ._types import Response, ResponseStreamEvent


def native_request(model: str, input: Any, params: dict) -> tuple[Any, list, dict, dict]:
    """(the door's call, the chat messages, chat parameters, OCI settings and call options)."""
    from .doors import responses as door

    settings, rest = split_params(params)
    options = {k: rest.pop(k) for k in ("timeout", "max_retries", "extra_headers", "drop_params") if k in rest}
    call = door.parse_request({**rest, "model": model, "input": input}, lambda _: None)
    chat = dict(call.chat)
    messages = chat.pop("messages")
    return call, messages, {**chat, **options, "drop_params": True}, settings


def native_response(call: Any, completion: Any) -> Response:
    from .doors import responses as door

    return Response(door.from_completion(call, completion))


class _Events:
    """The door's stream machine fed chat chunks; its SSE bytes read back as typed events."""

    def __init__(self, call: Any) -> None:
        from .doors import responses as door

        self.machine = door.ResponsesStream(call)
        self.decoder = SSEDecoder()

    def read(self, frames: list[bytes]) -> list[ResponseStreamEvent]:
        return [ResponseStreamEvent(event) for event in self.decoder.feed(b"".join(frames)) if isinstance(event, dict)]


def native_events(call: Any, chunks: Iterator[Any]) -> Iterator[ResponseStreamEvent]:
    events = _Events(call)
    yield from events.read(events.machine.start())
    for chunk in chunks:
        yield from events.read(events.machine.feed(dict(chunk)))
    yield from events.read(events.machine.finish())


async def anative_events(call: Any, chunks: AsyncIterator[Any]) -> AsyncIterator[ResponseStreamEvent]:
    events = _Events(call)
    for event in events.read(events.machine.start()):
        yield event
    async for chunk in chunks:
        for event in events.read(events.machine.feed(dict(chunk))):
            yield event
    for event in events.read(events.machine.finish()):
        yield event
