"""Generate the simulator's request schema from the official OCI SDK's declared models.

    python scripts/oci_schema.py            # rewrite src/ocilm/testing/oci_schema.json
    python scripts/oci_schema.py --check    # exit 1 if the committed file differs

Every model class of ``oci.generative_ai_inference.models`` reachable from the request bodies
the simulator serves (ChatDetails, EmbedTextDetails, RerankTextDetails) is written down with its
JSON field names and types (``swagger_types`` and ``attribute_map``), the fields its docstrings
mark ``[Required]``, the values its enum setters allow, and, for a polymorphic base, the field
that discriminates its subclasses and which subclass each value names (``get_subtype``). The
simulator then refuses exactly what the SDK's models declare invalid.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOTS = ("ChatDetails", "EmbedTextDetails", "RerankTextDetails", "ApplyGuardrailsDetails")
OUTPUT = Path(__file__).resolve().parent.parent / "src" / "ocilm" / "testing" / "oci_schema.json"
_CLASS_IN_TYPE = re.compile(r"[A-Z][A-Za-z0-9]+")
_ALLOWED = re.compile(r"allowed_values\s*=\s*\[([^\]]*)\]")
_SUBTYPE = re.compile(r"if type == '([^']+)':\s*return '([A-Za-z0-9]+)'")
_DISCRIMINATOR = re.compile(r"type = object_dictionary\['([^']+)'\]")


def _models() -> Any:
    import oci.generative_ai_inference.models as models

    return models


def _required(cls: type, attribute: str) -> bool:
    prop = getattr(cls, attribute, None)
    doc = prop.fget.__doc__ if isinstance(prop, property) and prop.fget is not None else ""
    return "**[Required]**" in (doc or "")


def _enum(cls: type, attribute: str) -> list[str] | None:
    prop = getattr(cls, attribute, None)
    if not isinstance(prop, property) or prop.fset is None:
        return None
    found = _ALLOWED.search(inspect.getsource(prop.fset))
    if found is None:
        return None
    return [v.strip().strip("'\"") for v in found.group(1).split(",") if v.strip()]


def _subtypes(cls: type) -> tuple[str, dict[str, str]] | None:
    own = cls.__dict__.get("get_subtype")
    if own is None:
        return None
    source = inspect.getsource(own.__func__ if isinstance(own, staticmethod) else own)
    field = _DISCRIMINATOR.search(source)
    if field is None:
        return None
    return field.group(1), dict(_SUBTYPE.findall(source))


def describe(name: str) -> dict[str, Any]:
    """One model class as data: its JSON fields and their SDK types, required fields, enums and
    (for a polymorphic base) its discriminator."""
    cls = getattr(_models(), name)
    instance = cls()
    fields: dict[str, str] = {}
    required: list[str] = []
    enums: dict[str, list[str]] = {}
    for attribute, kind in instance.swagger_types.items():
        key = instance.attribute_map[attribute]
        fields[key] = kind
        if _required(cls, attribute):
            required.append(key)
        values = _enum(cls, attribute)
        if values is not None:
            enums[key] = values
    entry: dict[str, Any] = {"fields": fields, "required": sorted(required), "enums": enums}
    subtypes = _subtypes(cls)
    if subtypes is not None:
        entry["discriminator"] = {"field": subtypes[0], "variants": subtypes[1]}
    return entry


def generate() -> dict[str, Any]:
    import oci

    schema: dict[str, Any] = {}
    pending = list(ROOTS)
    while pending:
        name = pending.pop()
        if name in schema:
            continue
        entry = schema[name] = describe(name)
        referenced = [c for kind in entry["fields"].values() for c in _CLASS_IN_TYPE.findall(kind)]
        referenced += list(entry.get("discriminator", {}).get("variants", {}).values())
        pending += [c for c in referenced if hasattr(_models(), c) and c not in schema]
    return {"source": f"oci {oci.__version__}, oci.generative_ai_inference.models", "roots": list(ROOTS),
            "models": dict(sorted(schema.items()))}  # fmt: skip


def render() -> str:
    return json.dumps(generate(), indent=1, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed schema differs from the installed SDK's")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} differs from the installed oci SDK's models: run python scripts/oci_schema.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
