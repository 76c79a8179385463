"""Response objects in OpenAI's shapes, readable both as attributes and as items.

``response.choices[0].message.content == response["choices"][0]["message"]["content"]``.
They are dicts underneath, so ``json.dumps(response)`` works and printing shows JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

Messages = Sequence[Mapping[str, Any]]
"""Chat messages in OpenAI's shape: ``[{"role": "user", "content": "Hi"}, ...]``."""


class OpenAIObject(dict):
    """A dict whose keys are also attributes.

    Nested dicts (and dicts in lists) become OpenAIObjects when first read, so building one
    from a large reply costs a plain dict copy and only what is used gets wrapped.
    """

    __slots__ = ("opc_request_id",)

    def __init__(self, data: dict[str, Any] | None = None, /, **kwargs: Any) -> None:
        super().__init__(data or (), **kwargs)
        object.__setattr__(self, "opc_request_id", None)

    def __getitem__(self, key: str) -> Any:
        value = dict.__getitem__(self, key)
        wrapped = _wrap(value)
        if wrapped is not value:
            dict.__setitem__(self, key, wrapped)
        return wrapped

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name in OpenAIObject.__slots__:
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default  # noqa: SIM401 - self.get would recurse; self[key] wraps nested dicts

    def model_dump(self) -> dict[str, Any]:
        """A plain-dict deep copy (what openai-python's pydantic models offer under this name)."""
        return json.loads(json.dumps(self))

    def model_dump_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self, indent=indent)

    to_dict = model_dump
    json = model_dump_json

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={self[k]!r}" for k in self)
        return f"{type(self).__name__}({fields})"

    def __str__(self) -> str:
        return f"{type(self).__name__} {json.dumps(self, indent=2)}"

    def __reduce__(self) -> tuple:
        return (type(self), (dict(self),))


def _wrap(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return OpenAIObject(value)
    if kind is list and value and any(type(v) is dict for v in value):
        return [OpenAIObject(v) if type(v) is dict else v for v in value]
    return value


class ChatCompletion(OpenAIObject):
    """``object == "chat.completion"``."""


class ChatCompletionChunk(OpenAIObject):
    """``object == "chat.completion.chunk"``."""


class EmbeddingResponse(OpenAIObject):
    """``object == "list"`` of ``{"object": "embedding", "index", "embedding"}``."""


class RerankResponse(OpenAIObject):
    """Cohere-style ``results`` of ``{"index", "relevance_score", "document"?}``."""
