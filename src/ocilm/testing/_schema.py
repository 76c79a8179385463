"""OCI Generative AI's request models (API 20231130), as the official SDK declares them, and a
checker the simulator runs on every request body.

``oci_schema.json`` beside this file is generated from the installed ``oci`` package by
``scripts/oci_schema.py`` (a test regenerates it and fails on any difference): each model's JSON
fields and types, its ``[Required]`` fields, its enums, and for a polymorphic model the field that
names its subclass. The simulator refuses what those models refuse: unknown fields, wrong types,
values outside an enum, unknown subclasses and missing required fields, each with a message that
names the JSON path.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any


class SchemaError(ValueError):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"Invalid request content: {path}: {problem}")
        self.path = path


# Limits OCI enforces that the SDK's models do not declare.
MAX_ITEMS = {("GenericChatRequest", "tools"): 128}
_LIST = re.compile(r"^list\[(.+)\]$")
_DICT = re.compile(r"^dict\(str, (.+)\)$")
_SCALARS = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "datetime": "string"}


@functools.lru_cache(maxsize=1)
def models() -> dict[str, Any]:
    """The SDK's request models, by class name (loaded once)."""
    return json.loads((Path(__file__).with_name("oci_schema.json")).read_text())["models"]  # type: ignore[no-any-return]


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def check(value: Any, kind: str, path: str, owner: tuple[str, str] | None = None) -> None:
    """Raise SchemaError unless ``value`` is valid as the SDK type ``kind`` (``str``,
    ``list[Message]``, ``dict(str, str)``, ``object``, a model's class name)."""
    if kind == "object":
        return  # free-form JSON (a schema, a document, metadata)
    scalar = _SCALARS.get(kind)
    if scalar is not None:
        actual = _type_name(value)
        if not (actual == scalar or (scalar == "number" and actual == "integer")):
            raise SchemaError(path, f"expected {scalar}, got {actual}")
        return
    if (item := _LIST.match(kind)) is not None:
        if not isinstance(value, list):
            raise SchemaError(path, f"expected array, got {_type_name(value)}")
        most = MAX_ITEMS.get(owner) if owner is not None else None
        if most is not None and len(value) > most:
            raise SchemaError(path, f"at most {most} items allowed, got {len(value)}")
        for i, element in enumerate(value):
            check(element, item.group(1), f"{path}[{i}]")
        return
    if (entry := _DICT.match(kind)) is not None:
        if not isinstance(value, dict):
            raise SchemaError(path, f"expected object, got {_type_name(value)}")
        for key, element in value.items():
            check(element, entry.group(1), f"{path}.{key}")
        return
    _check_model(value, kind, path)


def _check_model(value: Any, name: str, path: str) -> None:
    if not isinstance(value, dict):
        raise SchemaError(path, f"expected object, got {_type_name(value)}")
    model = models()[name]
    discriminator = model.get("discriminator")
    if discriminator is not None:
        field, variants = discriminator["field"], discriminator["variants"]
        tag = value.get(field)
        if tag is None:
            raise SchemaError(f"{path}.{field}", "missing required discriminator")
        if tag not in variants:
            raise SchemaError(f"{path}.{field}", f"{tag!r} is not one of {', '.join(sorted(variants))}")
        model = models()[variants[tag]]
        name = variants[tag]
    fields, enums = model["fields"], model["enums"]
    for required in model["required"]:
        if required not in value:
            raise SchemaError(f"{path}.{required}", "missing required field")
    for key, item in value.items():
        kind = fields.get(key)
        if kind is None:
            raise SchemaError(f"{path}.{key}", "unknown field")
        if item is None:
            raise SchemaError(f"{path}.{key}", "null is not allowed (omit the field instead)")
        if discriminator is not None and key == discriminator["field"]:
            continue  # checked against the subclasses above (the SDK's enum lists may lag them)
        allowed = enums.get(key)
        if allowed is not None:
            items = item if kind.startswith("list[") and isinstance(item, list) else [item]
            for k, one in enumerate(items):
                if not isinstance(one, str) or one not in allowed:
                    where = f"{path}.{key}[{k}]" if items is item else f"{path}.{key}"
                    raise SchemaError(where, f"{one!r} is not one of {', '.join(allowed)}")
            continue
        check(item, kind, f"{path}.{key}", (name, key))


CHAT_DETAILS, EMBED_DETAILS, RERANK_DETAILS = "ChatDetails", "EmbedTextDetails", "RerankTextDetails"
