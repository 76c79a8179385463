"""The gateway's view of OCI's catalogue: read once per refresh (dates parsed then, not per
request), a failed read tried again soon, and ``on_retirement`` decided from it."""

from __future__ import annotations

import pytest

from ocilm._catalog import CatalogModel
from ocilm.gateway import parse_config
from ocilm.gateway._errors import GatewayError
from ocilm.gateway._model_catalog import ModelCatalog

CREDS = {"oci_region": "us-chicago-1", "oci_compartment_id": "ocid1.compartment.oc1..x", "oci_user": "u", "oci_tenancy": "t",
         "oci_fingerprint": "f", "oci_key": "k"}  # fmt: skip


def _config():
    return parse_config({"model_list": [
        {"model_name": "old", "litellm_params": {"model": "oci/meta.llama-3-70b-instruct", **CREDS},
         "model_info": {"on_retirement": "block_after", "replacement": "new"}},
        {"model_name": "moved", "litellm_params": {"model": "oci/meta.llama-3-70b-instruct", **CREDS},
         "model_info": {"on_retirement": "alias", "replacement": "new"}},
        {"model_name": "new", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **CREDS}},
    ]}, check_credentials=False)  # fmt: skip


class _Client:
    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    async def list_models(self, **params):
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise ConnectionError("down")
        return [CatalogModel({"id": "meta.llama-3-70b-instruct", "time_on_demand_retired": "2025-03-01T00:00:00Z"}),
                CatalogModel({"id": "meta.llama-3.3-70b-instruct", "time_on_demand_retired": None})]


async def test_a_failed_read_is_tried_again_and_decides_nothing_meanwhile():
    catalog = ModelCatalog(_config(), _Client(failures=1))
    await catalog.refresh()
    assert catalog.read_at is None and catalog.route("old") == "old"  # unread: served as configured
    await catalog.refresh()
    assert catalog.read_at is not None
    with pytest.raises(GatewayError) as refused:
        catalog.route("old")
    assert refused.value.status == 410 and refused.value.code == "model_retired" and "new" in refused.value.message
    assert catalog.route("moved") == "new" and catalog.route("new") == "new"
    assert catalog.route(["not", "a", "name"]) == ["not", "a", "name"]
