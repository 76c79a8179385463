"""The tool-schema sanitiser: each rule, and that the caller's schema is left unchanged."""

from __future__ import annotations

import copy

from ocilm.formats._schema import sanitize_schema, tool_parameters


def test_refs_inlined_cycles_closed_defs_dropped():
    schema = {"$schema": "x", "type": "object", "title": "T", "$defs": {
        "City": {"type": "object", "title": "City", "properties": {"name": {"type": "string"}, "near": {"$ref": "#/$defs/City"}}}},
        "properties": {"city": {"$ref": "#/$defs/City", "description": "where"}}, "required": ["city", "ghost"]}  # fmt: skip
    before = copy.deepcopy(schema)
    out = sanitize_schema(schema)
    assert schema == before
    assert out == {"type": "object", "properties": {"city": {"type": "object", "properties": {
        "name": {"type": "string"}, "near": {"type": "object"}}, "description": "where"}}, "required": ["city"]}  # fmt: skip


def test_nullable_unions_and_types():
    out = sanitize_schema({"type": "object", "properties": {
        "a": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "A", "default": None},
        "b": {"type": ["integer", "null"]},
        "c": {"type": "any"},
        "d": {"type": "array"},
        "e": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
    }})  # fmt: skip
    assert out["properties"] == {
        "a": {"type": "string", "description": "A"}, "b": {"type": "integer"}, "c": {"type": "object"},
        "d": {"type": "array", "items": {"type": "object"}}, "e": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}  # fmt: skip


def test_root_without_type_and_optional_strips():
    assert tool_parameters({}) == tool_parameters(None) == {"type": "object", "properties": {}}
    assert sanitize_schema({"type": "object"}) == {"type": "object"}  # response formats keep their shape
    schema = {"type": "object", "additionalProperties": False, "properties": {"u": {"type": "string", "format": "uri", "pattern": "^h"}}}
    assert sanitize_schema(schema) == schema
    assert sanitize_schema(schema, strip=frozenset({"additionalProperties", "format", "pattern"})) == {
        "type": "object", "properties": {"u": {"type": "string"}}}
