"""Models come and go (issue 36): OCI's ``model-retirement-info`` notice reaches the caller through
the SDK (responses and streams, a DeprecationWarning once per model) and every gateway door (on
streams before the first byte), counted in a metric; the catalogue (ListModels) is read by the SDK,
``ocilm models`` and ``GET /v1/models``; ``model_info.on_retirement`` blocks or re-routes a retired
model without calling OCI. Against the simulator, whose ListModels the official ``oci`` SDK reads."""

from __future__ import annotations

import warnings

import httpx
import pytest

import ocilm
from ocilm import _lifecycle
from ocilm.gateway import GatewayConfigError, create_app, parse_config
from ocilm.testing import BackgroundServer

from ..conftest import FIXTURES, TENANCY, TEST_FINGERPRINT, USER

DEPRECATED, RETIRED = "cohere.command-r-16k", "meta.llama-3-70b-instruct"
HI = [{"role": "user", "content": "Hello"}]
MASTER = "sk-master-lifecycle-1"


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    monkeypatch.setattr(_lifecycle, "_warned", set())


def test_the_sdk_exposes_the_notice_and_warns_once_per_model(creds):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = ocilm.completion(model=f"oci/{DEPRECATED}", messages=HI, **creds)
        again = ocilm.completion(model=f"oci/{DEPRECATED}", messages=HI, **creds)
        stream = ocilm.completion(model=f"oci/{DEPRECATED}", messages=HI, stream=True, **creds)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        current = ocilm.completion(model="oci/meta.llama-3.3-70b-instruct", messages=HI, **creds)
    assert first.model_retirement_info and "will be retired on 2031-01-15" in first.model_retirement_info
    assert again.model_retirement_info == first.model_retirement_info and text
    assert stream.model_retirement_info == first.model_retirement_info  # known before the first chunk
    assert current.model_retirement_info is None
    notices = [w for w in caught if issubclass(w.category, DeprecationWarning) and DEPRECATED in str(w.message)]
    assert len(notices) == 1  # once per model per process


async def test_the_async_sdk_and_its_stream_carry_it_too(creds):
    reply = await ocilm.acompletion(model=f"oci/{DEPRECATED}", messages=HI, **creds)
    stream = await ocilm.acompletion(model=f"oci/{DEPRECATED}", messages=HI, stream=True, **creds)
    async for _ in stream:
        pass
    assert reply.model_retirement_info and stream.model_retirement_info == reply.model_retirement_info


def test_a_retired_model_is_refused_by_oci(creds):
    with pytest.raises(ocilm.BadRequestError, match="retired on 2025-03-01"):
        ocilm.completion(model=f"oci/{RETIRED}", messages=HI, **creds)


def test_the_catalogue_lists_every_model_with_its_dates(creds):
    models = {m.id: m for m in ocilm.list_models(**creds)}
    assert models[DEPRECATED].time_deprecated == "2026-06-01T00:00:00Z" and models[DEPRECATED].time_on_demand_retired == "2031-01-15T00:00:00Z"
    assert models[RETIRED].time_on_demand_retired == "2025-03-01T00:00:00Z"
    assert models["meta.llama-3.3-70b-instruct"].time_deprecated is None and models["meta.llama-3.3-70b-instruct"].capabilities == ["CHAT"]
    assert models["cohere.embed-v4.0"].capabilities == ["TEXT_EMBEDDINGS"] and models["cohere.embed-v4.0"].vendor == "cohere"
    assert all(m.ocid.startswith("ocid1.generativeaimodel.") for m in models.values())


def test_the_official_oci_sdk_reads_the_simulators_list_models(oci_simulator, fixture_key_registered):
    oci = pytest.importorskip("oci")
    config = {"user": USER, "fingerprint": TEST_FINGERPRINT, "tenancy": TENANCY, "region": "us-chicago-1", "key_file": str(FIXTURES / "test_key.pem")}
    client = oci.generative_ai.GenerativeAiClient(config, service_endpoint=oci_simulator.base_url, retry_strategy=oci.retry.NoneRetryStrategy())
    listed = client.list_models(compartment_id="ocid1.compartment.oc1..x", capability=["CHAT"], limit=5)
    assert len(listed.data.items) == 5 and all("CHAT" in m.capabilities for m in listed.data.items)
    assert listed.next_page  # more pages: opc-next-page
    deprecated = client.list_models(compartment_id="ocid1.compartment.oc1..x", display_name=DEPRECATED).data.items[0]
    assert deprecated.time_on_demand_retired.year == 2031 and deprecated.time_deprecated.year == 2026
    got = client.get_model(deprecated.id).data
    assert got.display_name == DEPRECATED and got.time_dedicated_retired.year == 2031


def test_ocilm_models_prints_the_catalogue(creds, capsys, tmp_path):
    from ocilm.cli import main
    from ocilm.testing._server import write_profile

    config = write_profile(creds, str(tmp_path / "oci"))
    args = ["models", "--api-base", creds["api_base"], "--config-file", config, "--compartment-id", creds["oci_compartment_id"]]
    assert main(args) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith(DEPRECATED + " "))
    assert "deprecated 2026-06-01" in line and "on-demand retired 2031-01-15" in line
    assert any(row.startswith("meta.llama-3.3-70b-instruct ") for row in out.splitlines())


# ---------------------------------------------------------------- the gateway


@pytest.fixture(scope="module")
def gateway(module_simulator):
    creds = module_simulator.credentials()
    config = {"model_list": [
        {"model_name": "old", "litellm_params": {"model": f"oci/{DEPRECATED}", **creds}},
        {"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds}},
        {"model_name": "gone", "litellm_params": {"model": f"oci/{RETIRED}", **creds},
         "model_info": {"on_retirement": "block_after", "replacement": "llama"}},
        {"model_name": "moved", "litellm_params": {"model": f"oci/{RETIRED}", **creds},
         "model_info": {"on_retirement": "alias", "replacement": "llama"}},
    ], "router_settings": {"model_group_alias": {"claude-old": "old"}},
        "general_settings": {"master_key": MASTER}}  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as server:
        yield server


def _post(gateway, path: str, body: dict, **headers: str) -> httpx.Response:
    return httpx.post(f"{gateway.base_url}{path}", json=body, headers={"authorization": f"Bearer {MASTER}", **headers}, timeout=30)


DOORS = {
    "chat": ("/v1/chat/completions", {"model": "old", "messages": HI}),
    "chat stream": ("/v1/chat/completions", {"model": "old", "messages": HI, "stream": True}),
    "responses": ("/v1/responses", {"model": "old", "input": "Hello"}),
    "responses stream": ("/v1/responses", {"model": "old", "input": "Hello", "stream": True}),
    "messages": ("/v1/messages", {"model": "claude-old", "max_tokens": 50, "messages": HI}),
    "messages stream": ("/v1/messages", {"model": "claude-old", "max_tokens": 50, "messages": HI, "stream": True}),
}


@pytest.mark.parametrize("door", list(DOORS))
def test_every_door_passes_the_notice_on_and_counts_it(gateway, door):
    path, body = DOORS[door]
    before = _notices(gateway)
    with httpx.stream("POST", f"{gateway.base_url}{path}", json=body, timeout=30,
                      headers={"authorization": f"Bearer {MASTER}", "anthropic-version": "2023-06-01"}) as reply:  # fmt: skip
        assert reply.status_code == 200
        notice = reply.headers.get("model-retirement-info")  # with the status line: before the first byte of a stream
        reply.read()
    assert notice and "will be retired on 2031-01-15" in notice
    assert _notices(gateway) == before + 1
    plain = _post(gateway, "/v1/chat/completions", {"model": "llama", "messages": HI})
    assert "model-retirement-info" not in plain.headers


def _notices(gateway) -> float:
    metrics = httpx.get(f"{gateway.base_url}/metrics", headers={"authorization": f"Bearer {MASTER}"}, timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("ocilm_model_retirement_notices_total{") and 'model="old"' in line)  # fmt: skip


def test_block_after_refuses_a_retired_model_without_calling_oci(gateway, module_simulator):
    sent = len(module_simulator.requests)
    refused = _post(gateway, "/v1/chat/completions", {"model": "gone", "messages": HI})
    assert refused.status_code == 410 and refused.json()["error"]["code"] == "model_retired"
    assert "llama" in refused.json()["error"]["message"] and "2025-03-01" in refused.json()["error"]["message"]
    assert len(module_simulator.requests) == sent  # nothing reached OCI


def test_alias_answers_with_the_replacement(gateway, module_simulator):
    answered = _post(gateway, "/v1/chat/completions", {"model": "moved", "messages": HI})
    assert answered.status_code == 200 and answered.json()["model"] == "moved"
    sent = module_simulator.requests[-1].json["servingMode"]["modelId"]
    assert sent == "meta.llama-3.3-70b-instruct" and answered.headers["x-litellm-model-group"] == "moved"


def test_v1_models_shows_the_catalogues_dates(gateway):
    listed = httpx.get(f"{gateway.base_url}/v1/models", headers={"authorization": f"Bearer {MASTER}"}, timeout=30).json()["data"]
    by_name = {m["id"]: m for m in listed}
    assert by_name["old"]["oci"]["time_deprecated"] == "2026-06-01T00:00:00Z"
    assert by_name["old"]["oci"]["time_on_demand_retired"] == "2031-01-15T00:00:00Z" and by_name["old"]["oci"]["lifecycle_state"] == "ACTIVE"
    assert by_name["llama"]["oci"]["time_deprecated"] is None


@pytest.mark.parametrize(("info", "named"), [
    ({"on_retirement": "explode"}, "model_info.on_retirement"),
    ({"on_retirement": "alias"}, "model_info.replacement"),
    ({"on_retirement": "alias", "replacement": "nowhere"}, "model_info.replacement"),
])  # fmt: skip
def test_on_retirement_is_checked_by_name(creds, info, named):
    with pytest.raises(GatewayConfigError) as refused:
        parse_config({"model_list": [{"model_name": "m", "litellm_params": {"model": f"oci/{RETIRED}", **creds}, "model_info": info}]})
    assert named in str(refused.value)
