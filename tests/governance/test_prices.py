"""The built-in OCI price table: its units, its conversions, and what a deployment gets."""

from __future__ import annotations

import pytest

from ocilm.gateway import parse_config
from ocilm.gateway.governance._policy import NANO
from ocilm.gateway.governance._prices import CHARACTERS_PER_TOKEN, builtin_price, priced_models
from ocilm.testing import MODELS

CREDS = {"oci_region": "us-chicago-1", "oci_user": "ocid1.user.oc1..u", "oci_fingerprint": "aa:bb", "oci_tenancy": "ocid1.tenancy.oc1..t",
         "oci_key_file": "/dev/null", "oci_compartment_id": "ocid1.compartment.oc1..c"}  # fmt: skip


def test_token_priced_families_are_stored_per_million_tokens():
    grok = builtin_price("oci/xai.grok-4")
    assert grok is not None and (grok.input_per_token, grok.output_per_token) == (3.00 / 1e6, 15.00 / 1e6)
    assert grok.source == "built-in"
    assert grok.nano(1_000_000, 1_000_000) == 18 * NANO  # $3 in + $15 out


def test_character_priced_families_convert_at_four_characters_a_token():
    llama = builtin_price("meta.llama-3.3-70b-instruct")  # $0.0018 per 10,000 characters
    assert llama is not None and CHARACTERS_PER_TOKEN == 4
    assert llama.input_per_token == pytest.approx(0.0018 / 10_000 * 4) == llama.output_per_token
    # 10,000 characters of prompt are about 2,500 tokens: billed as the 10,000 characters they were
    assert llama.nano(2_500, 0) == pytest.approx(0.0018 * NANO, abs=1)


def test_unknown_models_have_no_price():
    assert builtin_price("oci/meta.llama-99") is None
    assert builtin_price("ocid1.generativeaiendpoint.oc1.us-chicago-1.x") is None


def test_the_table_prices_only_models_oci_serves_by_family():
    families = ("xai.", "google.", "openai.", "meta.", "cohere.")
    for model in priced_models():
        assert model.startswith(families), model
        price = builtin_price(model)
        assert price is not None and 0 < price.input_per_token < 1e-4 and 0 <= price.output_per_token < 1e-4, model
    served = [m for m in MODELS if builtin_price(m) is not None]
    assert len(served) >= 20  # the simulator's catalogue is mostly priced


def _deployment(litellm_params: dict, model_info: dict | None = None):
    entry = {"model_name": "m", "litellm_params": {**CREDS, **litellm_params}}
    if model_info is not None:
        entry["model_info"] = model_info
    return parse_config({"model_list": [entry]}, check_credentials=False).deployments["m"][0]


def test_a_deployment_gets_the_built_in_price_unless_its_config_sets_one():
    assert _deployment({"model": "oci/xai.grok-3"}).price == builtin_price("xai.grok-3")
    configured = _deployment({"model": "oci/xai.grok-3", "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6})
    assert configured.price is not None and configured.price.source == "config" and configured.price.input_per_token == 1e-6
    from_info = _deployment({"model": "oci/xai.grok-3"}, {"input_cost_per_token": 0, "output_cost_per_token": 0})
    assert from_info.price is not None and from_info.price.nano(1000, 1000) == 0  # an explicit zero is a price


def test_a_dedicated_endpoint_has_no_per_request_price():
    dedicated = _deployment({"model": "oci/meta.llama-3.3-70b-instruct", "oci_serving_mode": "DEDICATED",
                             "oci_endpoint_id": "ocid1.generativeaiendpoint.oc1.us-chicago-1.simllama"})  # fmt: skip
    assert dedicated.price is None
