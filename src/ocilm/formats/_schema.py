"""Tool parameter schemas made acceptable to OCI (pure).

OCI answers "Invalid request content: Invalid function schema" to JSON Schema features its
function-calling models do not take. What is always done (each is a failure seen on the live
service or fixed by other OCI clients):
1. local ``$ref`` (``#/$defs/X``, ``#/definitions/X``) inlined; a cycle becomes
   ``{"type": "object"}``; ``$defs``/``definitions`` dropped;
2. ``anyOf``/``oneOf`` with a null branch → the first non-null branch, merged with the
   parent's own keywords; ``type: [T, "null"]`` → ``T``; ``type: "any"`` → ``object``;
3. ``title``, ``default: null`` and ``$schema`` dropped; ``required`` names that are not in
   ``properties`` pruned; arrays without ``items`` get ``{"type": "object"}``; a function's
   parameters without a type become an object (``tool_parameters``).
Keywords that some models refuse and others take (``additionalProperties``, ``format``,
``pattern``, ...) are kept unless the caller names them in ``strip``.
"""

from __future__ import annotations

from typing import Any

OPTIONAL_STRIPS = frozenset({"additionalProperties", "format", "exclusiveMinimum", "exclusiveMaximum", "propertyNames", "pattern"})
_ALWAYS_DROPPED = frozenset({"title", "$schema", "$defs", "definitions", "$id", "$comment"})
_REF_PREFIXES = ("#/$defs/", "#/definitions/")


def sanitize_schema(schema: Any, strip: frozenset[str] = frozenset()) -> Any:
    """A copy of ``schema`` that OCI accepts (the caller's object is not changed)."""
    if not isinstance(schema, dict):
        return schema
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    return _clean(schema, defs, (), strip)


def tool_parameters(schema: Any, strip: frozenset[str] = frozenset()) -> Any:
    """A function's ``parameters`` for OCI: sanitised, and always an object with properties."""
    out = sanitize_schema(schema if schema is not None else {}, strip)
    if isinstance(out, dict) and "type" not in out:
        out = {"type": "object", **out}
    if isinstance(out, dict) and out.get("type") == "object":
        out.setdefault("properties", {})
    return out


def _clean(node: Any, defs: dict, seen: tuple[str, ...], strip: frozenset[str]) -> Any:
    if isinstance(node, list):
        return [_clean(n, defs, seen, strip) for n in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF_PREFIXES):
        name = ref.rsplit("/", 1)[-1]
        if name in seen or name not in defs:
            return {"type": "object"}  # a cycle (or a dangling reference): an open object
        target = _clean(defs[name], defs, (*seen, name), strip)
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return {**(target if isinstance(target, dict) else {}), **_clean(siblings, defs, seen, strip)}
    for union in ("anyOf", "oneOf"):
        branches = node.get(union)
        if isinstance(branches, list):
            non_null = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
            if len(non_null) < len(branches) and non_null:
                own = {k: v for k, v in node.items() if k != union}
                chosen = _clean(non_null[0], defs, seen, strip)
                node = {**(chosen if isinstance(chosen, dict) else {}), **own}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _ALWAYS_DROPPED or key in strip or (key == "default" and value is None):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _clean(prop, defs, seen, strip) for name, prop in value.items()}
        elif key in ("items", "additionalProperties", "not") or key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            out[key] = _clean(value, defs, seen, strip)
        else:
            out[key] = value
    kind = out.get("type")
    if isinstance(kind, list):
        non_null = [k for k in kind if k != "null"]
        out["type"] = non_null[0] if non_null else "object"
    if out.get("type") == "any":
        out["type"] = "object"
    if out.get("type") == "array" and "items" not in out:
        out["items"] = {"type": "object"}
    if isinstance(out.get("required"), list) and isinstance(out.get("properties"), dict):
        out["required"] = [name for name in out["required"] if name in out["properties"]]
    return out
