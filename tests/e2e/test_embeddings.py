"""Embeddings and rerank against the simulator, sync and async."""

from __future__ import annotations

import base64
import json
import struct

import pytest

import ocilm
from ocilm.testing import Fault


def test_single_string_and_shape(creds, oci_simulator):
    r = ocilm.embedding(model="oci/cohere.embed-english-v3.0", input="hello world", input_type="search_query", truncate="end", **creds)
    assert r.object == "list" and r.model == "cohere.embed-english-v3.0"
    assert r.data[0].object == "embedding" and r.data[0].index == 0 and len(r.data[0].embedding) == 1024
    assert r["data"][0]["embedding"] == r.data[0].embedding
    assert r.usage.prompt_tokens == 2 and r.usage.total_tokens == 2
    sent = oci_simulator.requests[-1].json
    assert sent["inputs"] == ["hello world"] and sent["inputType"] == "SEARCH_QUERY" and sent["truncate"] == "END"
    assert json.loads(json.dumps(r))["data"][0]["index"] == 0
    assert r.opc_request_id and r.opc_request_id.startswith(oci_simulator.requests[-1].headers["opc-request-id"])


def test_batches_over_96_in_order_with_summed_usage(creds, oci_simulator):
    inputs = [f"text number {i}" for i in range(250)]
    r = ocilm.embedding(model="oci/cohere.embed-english-light-v3.0", input=inputs, **creds)
    assert [d.index for d in r.data] == list(range(250))
    assert r.usage.prompt_tokens == 750
    assert sorted(len(q.json["inputs"]) for q in oci_simulator.requests) == [58, 96, 96]
    single = ocilm.embedding(model="oci/cohere.embed-english-light-v3.0", input=[inputs[200]], **creds)
    assert single.data[0].embedding == r.data[200].embedding  # reassembled in the right order


@pytest.mark.usefixtures("async_backend")
async def test_async_batches(creds, oci_simulator):
    inputs = [f"doc {i}" for i in range(200)]
    r = await ocilm.aembedding(model="oci/cohere.embed-multilingual-v3.0", input=inputs, **creds)
    assert [d.index for d in r.data] == list(range(200)) and len(oci_simulator.requests) == 3
    single = await ocilm.aembedding(model="oci/cohere.embed-multilingual-v3.0", input="doc 150", **creds)
    assert single.data[0].embedding == r.data[150].embedding


def test_failing_batch_names_its_inputs(creds, oci_simulator):
    inputs = ["a"] * 96 + ["needle"] * 4
    only_batch_two = Fault(status=400, message="Invalid request content", match="needle", times=None).header()
    with pytest.raises(ocilm.BadRequestError, match=r"embedding batch 2 of 2 \(inputs 96\.\.99\) failed: .*Invalid request content") as err:
        ocilm.embedding(model="oci/cohere.embed-english-v3.0", input=inputs, extra_headers={"x-ocilm-sim-fault": only_batch_two}, **creds)
    assert err.value.status_code == 400 and err.value.opc_request_id
    # The error is raised as soon as batch 2 fails (review C15): batch 1 may still be in flight.
    assert 400 in [r.status for r in oci_simulator.requests]


@pytest.mark.usefixtures("async_backend")
async def test_async_failing_batch(creds):
    only_batch_one = Fault(status=503, match='"a"', times=None).header()
    with pytest.raises(ocilm.ServiceUnavailableError, match=r"batch 1 of 2 \(inputs 0\.\.95\)"):
        await ocilm.aembedding(model="oci/cohere.embed-english-v3.0", input=["a"] * 96 + ["b"], max_retries=0,
                               extra_headers={"x-ocilm-sim-fault": only_batch_one}, **creds)


def test_dimensions_and_base64(creds, oci_simulator):
    r = ocilm.embedding(model="oci/cohere.embed-v4.0", input=["a", "b"], dimensions=256, encoding_format="base64", **creds)
    raw = base64.b64decode(r.data[0].embedding)
    vector = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert len(vector) == 256
    floats = ocilm.embedding(model="oci/cohere.embed-v4.0", input=["a"], dimensions=256, **creds)
    assert vector == pytest.approx(floats.data[0].embedding, abs=1e-6)
    assert oci_simulator.requests[-1].json["outputDimensions"] == 256
    with pytest.raises(ocilm.BadRequestError, match="dimensions: cohere.embed-v4.0 supports 256, 512, 1024 or 1536"):
        ocilm.embedding(model="oci/cohere.embed-v4.0", input="a", dimensions=300, **creds)
    with pytest.raises(ocilm.UnsupportedParamsError, match="dimensions is not supported"):
        ocilm.embedding(model="oci/cohere.embed-english-v3.0", input="a", dimensions=256, **creds)
    r = ocilm.embedding(model="oci/cohere.embed-english-v3.0", input="a", dimensions=256, drop_params=True, **creds)
    assert len(r.data[0].embedding) == 1024


def test_images(creds, oci_simulator):
    image = "data:image/png;base64,iVBORw0KGgo="
    r = ocilm.embedding(model="oci/cohere.embed-v4.0", input=["a caption", image], **creds)
    assert len(r.data) == 2
    assert oci_simulator.requests[-1].json["embedContents"][1] == {"type": "IMAGE", "imageUrl": {"url": image}}
    r = ocilm.embedding(model="oci/cohere.embed-english-image-v3.0", input=[image, image], **creds)
    assert len(r.data) == 2 and oci_simulator.requests[-1].json["inputType"] == "IMAGE"
    with pytest.raises(ocilm.BadRequestError, match="does not embed images"):
        ocilm.embedding(model="oci/cohere.embed-english-v3.0", input=[image], **creds)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"input": []}, "input: expected a string or a non-empty list"),
    ({"input": ["a", 3]}, "input: expected a string"),
    ({"input": "a", "input_type": "poetry"}, "input_type: expected one of"),
    ({"input": "a", "encoding_format": "int8"}, "encoding_format: expected 'float' or 'base64'"),
    ({"input": "a", "truncate": "MIDDLE"}, "truncate: expected NONE, START or END"),
    ({"input": "a", "colour": "blue"}, "colour is not supported"),
])
def test_bad_embedding_input(creds, kwargs, message):
    with pytest.raises(ocilm.BadRequestError, match=message):
        ocilm.embedding(model="oci/cohere.embed-english-v3.0", **kwargs, **creds)


def test_dedicated_embedding_with_config_profile(creds, tmp_path, monkeypatch):
    key = tmp_path / "k.pem"
    key.write_text(creds["oci_key"])
    config = tmp_path / "config"
    config.write_text(f"[DEFAULT]\nuser={creds['oci_user']}\ntenancy={creds['oci_tenancy']}\nfingerprint={creds['oci_fingerprint']}\n"
                      f"key_file={key}\nregion=us-chicago-1\n")
    monkeypatch.setenv("OCI_CONFIG_FILE", str(config))
    monkeypatch.setenv("OCI_COMPARTMENT_ID", creds["oci_compartment_id"])
    r = ocilm.embedding(model="oci/cohere.embed-english-v3.0", input="x", api_base=creds["api_base"],
                        oci_serving_mode="DEDICATED", oci_endpoint_id="ocid1.generativeaiendpoint.oc1.us-chicago-1.simembed")
    assert len(r.data[0].embedding) == 1024


def test_rerank(creds, oci_simulator):
    docs = ["Paris is the capital of France", "The cat sat", {"text": "France borders Spain"}]
    r = ocilm.rerank(model="oci/cohere.rerank-v3.5", query="capital of France", documents=docs, top_n=2, return_documents=True, **creds)
    assert [x.index for x in r.results] == [0, 2]
    assert r.results[0].relevance_score > r.results[1].relevance_score
    assert r.results[0].document.text == "Paris is the capital of France"
    sent = oci_simulator.requests[-1].json
    assert sent["topN"] == 2 and sent["isEcho"] is True and sent["documents"][2] == "France borders Spain"
    plain = ocilm.rerank(model="oci/cohere.rerank-v3.5", query="cat", documents=["dog", "cat"], **creds)
    assert "document" not in plain.results[0]
    with pytest.raises(ocilm.BadRequestError, match=r"documents\[0\]: expected a string"):
        ocilm.rerank(model="oci/cohere.rerank-v3.5", query="q", documents=[3], **creds)


async def test_arerank(creds):
    r = await ocilm.arerank(model="oci/cohere.rerank-v3.5", query="cat", documents=["dog", "cat"], **creds)
    assert r.results[0].index == 1
