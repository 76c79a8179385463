"""``"generate": false`` (Codex's warm-up frame in WebSocket mode): a response made without
calling the model, through the same gate as any request (the key may use the model, it counts
against its rate limits, it is logged, at no cost), and usable as ``previous_response_id``."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..doors import responses as openai_responses
from ..doors._common import new_id
from ._metering import Metered, SideTarget


async def _admitted(metered: Metered, request: Request, model: str) -> dict[str, str]:
    deployments = metered.router.deployments(model)
    caller = request.state.caller
    allowed = not caller.models or model in caller.models or deployments[0].model_name in caller.models
    _, headers = await metered.side_call(request, "responses", deployments[0].model_name, _nothing, target=SideTarget(deployments[0].model),
                                         allowed=allowed)  # fmt: skip
    return headers


async def _nothing() -> None:
    return None


def _answer(events: list[bytes], final: dict, stream: bool, headers: dict[str, str]) -> Response:
    if not stream:
        return JSONResponse(final, headers=headers)

    async def frames() -> AsyncIterator[bytes]:
        for frame in events:
            yield frame

    return StreamingResponse(frames(), media_type="text/event-stream", headers={"cache-control": "no-cache", **headers})


async def warm_up(metered: Metered, request: Request, call: Any, local: Any, keep: Callable[[], Awaitable[None] | None]) -> Response:
    """The translated door's warm-up: the conversation so far is kept, nothing is generated."""
    headers = await _admitted(metered, request, call.model)
    machine = openai_responses.ResponsesStream(call)
    events = machine.start() + machine.finish()
    if local is not None:
        local.put(call.response_id, call.history)
    kept = keep()
    if kept is not None:
        await kept
    final = openai_responses.response_object(call, [], "completed", None, openai_responses.usage_object(None))
    return _answer(events, final, call.stream, headers)


def as_items(value: Any) -> list[Any]:
    """A Responses ``input`` as a list of items (a string is one user message)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return list(value) if isinstance(value, list) else []


async def warm_up_pass_through(metered: Metered, request: Request, name: str, items: list[Any], stream: bool, local: Any) -> Response:
    """The pass-through's warm-up: its items are kept for the connection, OCI is not called."""
    headers = await _admitted(metered, request, name)
    response_id = new_id("resp")
    if local is not None:
        local.put(response_id, items)
    now = int(time.time())
    usage = {"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 0,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 0}  # fmt: skip
    created = {"id": response_id, "object": "response", "created_at": now, "status": "in_progress", "model": name, "output": [],
               "error": None, "incomplete_details": None, "usage": None}  # fmt: skip
    final = {**created, "status": "completed", "completed_at": now, "usage": usage}
    events = [_sse("response.created", {"type": "response.created", "sequence_number": 0, "response": created}),
              _sse("response.completed", {"type": "response.completed", "sequence_number": 1, "response": final})]  # fmt: skip
    return _answer(events, final, stream, headers)


def _sse(kind: str, payload: dict) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
