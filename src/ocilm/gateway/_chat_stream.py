"""OpenAI's chat stream framing: each chunk as a server-sent event under the gateway's model name,
``data: [DONE]`` at the end, and an error event for a failure after the start."""

from __future__ import annotations

import json
from typing import Any

from .._errors import OCIError
from ._errors import GatewayError


class ChatFraming:
    """How ``relay`` writes a chat completion stream."""

    def __init__(self, name: str) -> None:
        self.encode = ChunkEncoder(name)

    def start(self) -> bytes:
        return b""

    def batch(self, chunks: list[Any]) -> bytes:
        encode = self.encode
        return b"".join([encode(chunk) for chunk in chunks])

    def finish(self) -> bytes:
        return b"data: [DONE]\n\n"

    def fail(self, err: GatewayError, exc: OCIError | None) -> bytes:
        return b"data: " + json.dumps(err.body()).encode() + b"\n\n"


class ChunkEncoder:
    """Serialises a stream's chunks as SSE events under the gateway's model name.

    id, object, created and model are the same in every chunk of a stream, so their JSON is
    made once and only the changing fields are encoded per chunk.
    """

    _dumps = json.JSONEncoder(separators=(",", ":")).encode

    def __init__(self, name: str) -> None:
        self.name = name
        self.prefix: bytes | None = None
        self.text_prefix = b""
        self.stream_id: str | None = None

    def __call__(self, chunk: dict) -> bytes:
        if self.prefix is None or chunk["id"] != self.stream_id:
            self.stream_id = chunk["id"]
            head = {"id": chunk["id"], "object": chunk["object"], "created": chunk["created"], "model": self.name}
            self.prefix = b"data: " + self._dumps(head)[:-1].encode() + b',"choices":'
            self.text_prefix = self.prefix + b'[{"index":0,"delta":{"content":'
        choices = dict.__getitem__(chunk, "choices")
        usage_key = "usage" in chunk  # with include_usage every chunk carries "usage": null
        if len(choices) == 1 and (not usage_key or dict.__getitem__(chunk, "usage") is None):
            # Most chunks are one text delta: only the text needs encoding.
            choice = choices[0]
            delta = choice["delta"]
            if (choice["index"] == 0 and choice["finish_reason"] is None and choice["logprobs"] is None and len(delta) == 2
                    and delta["tool_calls"] is None and type(delta.get("content")) is str):  # fmt: skip
                return self.text_prefix + _encode_text(delta["content"]).encode() + (_TEXT_SUFFIX_USAGE if usage_key else _TEXT_SUFFIX)
        rest = self._dumps(choices)
        if "usage" in chunk:
            rest += ',"usage":' + self._dumps(dict.__getitem__(chunk, "usage"))
        return self.prefix + rest.encode() + b',"system_fingerprint":null}\n\n'


_encode_text = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
_TEXT_SUFFIX = b',"tool_calls":null},"finish_reason":null,"logprobs":null}],"system_fingerprint":null}\n\n'
_TEXT_SUFFIX_USAGE = b',"tool_calls":null},"finish_reason":null,"logprobs":null}],"usage":null,"system_fingerprint":null}\n\n'
