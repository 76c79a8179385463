"""The simulator's request schema is the official SDK's: regenerated from the installed ``oci``
package and compared with the committed file, so the simulator never accepts what OCI refuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ocilm.testing._schema import SchemaError, check, models

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_schema_is_what_the_installed_sdk_declares():
    pytest.importorskip("oci")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "oci_schema.py"), "--check"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_every_model_a_schema_names_is_in_it():
    known = models()
    for name, entry in known.items():
        for kind in entry["fields"].values():
            for word in kind.replace("list[", " ").replace("dict(str, ", " ").replace("]", " ").replace(")", " ").split():
                assert word in known or word in {"str", "int", "float", "bool", "object", "datetime"}, (name, kind)
        for variant in entry.get("discriminator", {}).get("variants", {}).values():
            assert variant in known


def _chat(request: dict) -> dict:
    return {"compartmentId": "c", "servingMode": {"servingType": "ON_DEMAND", "modelId": "m"}, "chatRequest": request}


@pytest.mark.parametrize(("request_body", "where"), [
    ({"apiFormat": "COHEREV2", "messages": [{"role": "USER", "content": [{"type": "TEXT", "text": "hi"}]},
                                            {"role": "ASSISTANT", "toolCalls": [{"id": "c1", "type": "FUNCTION", "function": {}}]}]},
     "$.chatRequest.messages[1].content"),
    ({"apiFormat": "COHEREV2"}, "$.chatRequest.messages"),
    ({"apiFormat": "COHERE"}, "$.chatRequest.message"),
    ({"apiFormat": "GENERIC", "messages": [{"role": "USER", "content": [{"type": "IMAGE", "imageUrl": {}}]}]},
     "$.chatRequest.messages[0].content[0].imageUrl.url"),
    ({"apiFormat": "GENERIC", "reasoningEffort": "LUDICROUS"}, "$.chatRequest.reasoningEffort"),
    ({"apiFormat": "GENERIC", "tools": [{"type": "FUNCTION", "name": "f"}] * 129}, "$.chatRequest.tools"),
    ({"apiFormat": "NATIVE"}, "$.chatRequest.apiFormat"),
])  # fmt: skip
def test_what_the_sdk_declares_invalid_is_refused_with_its_path(request_body, where):
    with pytest.raises(SchemaError) as refused:
        check(_chat(request_body), "ChatDetails", "$")
    assert refused.value.path == where, str(refused.value)


def test_a_cohere_v2_tool_turn_with_content_is_accepted():
    body = _chat({"apiFormat": "COHEREV2", "messages": [
        {"role": "USER", "content": [{"type": "TEXT", "text": "weather?"}]},
        {"role": "ASSISTANT", "content": [], "toolCalls": [{"id": "c1", "type": "FUNCTION", "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "TOOL", "toolCallId": "c1", "content": [{"type": "TEXT", "text": json.dumps({"t": 20})}]}]})  # fmt: skip
    check(body, "ChatDetails", "$")
