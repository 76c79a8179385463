"""``/v1/rerank`` (LiteLLM's and Cohere's shape) and Cohere Embed 4 through ``ocilm serve``, with
the openai SDK where it speaks the route, metered like every model route."""

from __future__ import annotations

import base64
import struct

import httpx
import pytest

from ocilm.gateway import create_app, parse_config
from ocilm.testing import BackgroundServer

openai = pytest.importorskip("openai")
MASTER = "sk-master-rerank-1"
ADMIN = {"authorization": f"Bearer {MASTER}"}
PRICE = {"input_cost_per_token": 0.0001, "output_cost_per_token": 0}
PIXEL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


@pytest.fixture
def gateway(creds, tmp_path):
    config = {
        "model_list": [
            {"model_name": "rerank", "litellm_params": {"model": "oci/cohere.rerank-v3.5", **creds, **PRICE}},
            {"model_name": "rerank-4", "litellm_params": {"model": "oci/cohere.rerank-v4.0-pro", **creds, **PRICE}},
            {"model_name": "embed-4", "litellm_params": {"model": "oci/cohere.embed-v4.0", **creds, **PRICE}},
        ],
        "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path / 'g.db'}"},
    }  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as server:
        yield server


def test_rerank_on_every_path_with_cohere_and_litellm_fields(gateway):
    made = httpx.post(f"{gateway.base_url}/key/generate", headers=ADMIN, json={"max_budget": 1}, timeout=30).json()
    headers = {"authorization": f"Bearer {made['key']}"}
    body = {"model": "rerank", "query": "capital of France", "documents": ["Berlin is in Germany", {"text": "Paris is the capital of France"}],
            "top_n": 1, "return_documents": True}  # fmt: skip
    for path in ("/v1/rerank", "/rerank", "/v2/rerank"):
        reply = httpx.post(f"{gateway.base_url}{path}", headers=headers, json=body, timeout=30)
        assert reply.status_code == 200, reply.text
        result = reply.json()
        assert len(result["results"]) == 1 and result["results"][0]["index"] == 1 and result["results"][0]["document"]["text"].startswith("Paris")
        assert result["model"] == "rerank" and float(reply.headers["x-litellm-response-cost"]) > 0
    assert httpx.post(f"{gateway.base_url}/v1/rerank", headers=headers, json={**body, "model": "rerank-4"}, timeout=30).status_code == 200
    logs = httpx.get(f"{gateway.base_url}/spend/logs", headers=ADMIN, params={"api_key": made["token"]}, timeout=30).json()
    assert len(logs) == 4 and all(row["call_type"] == "rerank" and row["prompt_tokens"] > 0 for row in logs)


@pytest.mark.parametrize(("body", "field"), [
    ({"model": "rerank", "documents": ["a"]}, "query"),
    ({"model": "rerank", "query": "q"}, "documents"),
    ({"model": "rerank", "query": "q", "documents": []}, "documents"),
    ({"model": "rerank", "query": "q", "documents": ["a"], "top_n": 0}, "top_n"),
    ({"model": "rerank", "query": "q", "documents": ["a"], "colour": "red"}, "colour"),
])  # fmt: skip
def test_bad_rerank_requests_are_a_400_naming_the_field(gateway, body, field):
    reply = httpx.post(f"{gateway.base_url}/v1/rerank", headers=ADMIN, json=body, timeout=30)
    assert reply.status_code == 400 and field in reply.text


def test_embed_4_dimensions_images_and_base64_with_the_openai_sdk(gateway, oci_simulator):
    # Not strict: the SDK asks for base64 by default and decodes it after its own validation, which
    # strict mode runs first on the base64 text (what OpenAI itself sends then too).
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=MASTER, max_retries=0) as oa:
        reply = oa.embeddings.create(model="embed-4", input=["hello", PIXEL], dimensions=256)
        assert [len(item.embedding) for item in reply.data] == [256, 256]
        sent = next(r for r in reversed(oci_simulator.requests) if r.path.endswith("embedText")).json
        assert sent["outputDimensions"] == 256 and [c["type"] for c in sent["embedContents"]] == ["TEXT", "IMAGE"]
        with pytest.raises(openai.BadRequestError, match="256, 512, 1024 or 1536"):
            oa.embeddings.create(model="embed-4", input="hello", dimensions=300)
    raw = httpx.post(f"{gateway.base_url}/v1/embeddings", headers=ADMIN, json={"model": "embed-4", "input": "hi", "encoding_format": "base64",
                                                                             "dimensions": 512}, timeout=30).json()  # fmt: skip
    vector = base64.b64decode(raw["data"][0]["embedding"])
    assert len(struct.unpack(f"<{len(vector) // 4}f", vector)) == 512
