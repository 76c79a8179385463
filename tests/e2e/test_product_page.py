"""Every example of the product page (docs: the OCI provider page), unchanged but for the
import and an api_base pointing at the simulator."""

from __future__ import annotations

import pytest

from ocilm import completion


@pytest.fixture
def page(creds, tmp_path):
    """The page's placeholders, filled with credentials the simulator accepts."""
    key_file = tmp_path / "oci_key.pem"
    key_file.write_text(creds["oci_key"])
    return {
        "your_oci_region": "us-chicago-1", "your_oci_user": creds["oci_user"],
        "your_oci_fingerprint": creds["oci_fingerprint"], "your_oci_tenancy": creds["oci_tenancy"],
        "string_with_content_of_oci_key": creds["oci_key"], "oci_compartment_id": creds["oci_compartment_id"],
        "key_file": str(key_file), "api_base": creds["api_base"],
    }


def test_usage_manual_credentials(page, capsys):
    messages = [{"role": "user", "content": "Hey! how's it going?"}]
    response = completion(
        model="oci/xai.grok-4",
        messages=messages,
        oci_region=page["your_oci_region"],
        oci_user=page["your_oci_user"],
        oci_fingerprint=page["your_oci_fingerprint"],
        oci_tenancy=page["your_oci_tenancy"],
        oci_serving_mode="ON_DEMAND",  # Optional, default is "ON_DEMAND". Other option is "DEDICATED"
        oci_key=page["string_with_content_of_oci_key"],
        oci_compartment_id=page["oci_compartment_id"],
        api_base=page["api_base"],
    )
    print(response)
    assert response.choices[0].message.content == "Hello from xai.grok-4! You said: Hey! how's it going?"
    assert '"object": "chat.completion"' in capsys.readouterr().out


def test_usage_key_file(page):
    response = completion(
        model="oci/xai.grok-4",
        messages=[{"role": "user", "content": "Hey! how's it going?"}],
        oci_region=page["your_oci_region"],
        oci_user=page["your_oci_user"],
        oci_fingerprint=page["your_oci_fingerprint"],
        oci_tenancy=page["your_oci_tenancy"],
        oci_key_file=page["key_file"],
        oci_compartment_id=page["oci_compartment_id"],
        api_base=page["api_base"],
    )
    assert response["choices"][0]["message"]["content"].startswith("Hello from xai.grok-4")


def test_usage_streaming(page, capsys):
    messages = [{"role": "user", "content": "Hey! how's it going?"}]
    response = completion(
        model="oci/xai.grok-4",
        messages=messages,
        stream=True,
        oci_region=page["your_oci_region"],
        oci_user=page["your_oci_user"],
        oci_fingerprint=page["your_oci_fingerprint"],
        oci_tenancy=page["your_oci_tenancy"],
        oci_serving_mode="ON_DEMAND",
        oci_key=page["string_with_content_of_oci_key"],
        oci_compartment_id=page["oci_compartment_id"],
        api_base=page["api_base"],
    )
    for chunk in response:
        print(chunk["choices"][0]["delta"]["content"])  # same as openai format
    printed = capsys.readouterr().out.splitlines()
    assert "".join(line for line in printed if line != "None") == "Hello from xai.grok-4! You said: Hey! how's it going?"
    assert printed[-1] == "None"  # the final chunk carries finish_reason and no content


def test_usage_cohere(page):
    messages = [{"role": "user", "content": "Explain quantum computing"}]
    response = completion(
        model="oci/cohere.command-latest",
        messages=messages,
        oci_region="us-chicago-1",
        oci_user=page["your_oci_user"],
        oci_fingerprint=page["your_oci_fingerprint"],
        oci_tenancy=page["your_oci_tenancy"],
        oci_key=page["string_with_content_of_oci_key"],
        oci_compartment_id=page["oci_compartment_id"],
        api_base=page["api_base"],
    )
    assert response.choices[0].message.content == "Hello from cohere.command-latest! You said: Explain quantum computing"


@pytest.mark.parametrize(("model", "endpoint", "served"), [
    ("oci/xai.grok-4", "ocid1.generativeaiendpoint.oc1.us-chicago-1.simgrok", "xai.grok-4"),
    ("oci/cohere.command-latest", "ocid1.generativeaiendpoint.oc1.us-chicago-1.simcohere", "cohere.command-latest"),
])
def test_dedicated_endpoints(page, oci_simulator, model, endpoint, served):
    messages = [{"role": "user", "content": "Hey! how's it going?"}]
    response = completion(
        model=model,  # Must match the model type hosted on the endpoint
        messages=messages,
        oci_region=page["your_oci_region"],
        oci_user=page["your_oci_user"],
        oci_fingerprint=page["your_oci_fingerprint"],
        oci_tenancy=page["your_oci_tenancy"],
        oci_serving_mode="DEDICATED",
        oci_endpoint_id=endpoint,  # Your dedicated endpoint OCID
        oci_key=page["string_with_content_of_oci_key"],
        oci_compartment_id=page["oci_compartment_id"],
        api_base=page["api_base"],
    )
    assert response.choices[0].message.content.startswith(f"Hello from {served}!")
    sent = oci_simulator.requests[-1].json
    assert sent["servingMode"] == {"servingType": "DEDICATED", "endpointId": endpoint}
    assert sent["chatRequest"]["apiFormat"] == ("COHERE" if "cohere" in model else "GENERIC")


def test_dedicated_without_endpoint_id_uses_model_as_endpoint(page, oci_simulator):
    oci_simulator.add_endpoint("ocid1.generativeaiendpoint.oc1.us-chicago-1.legacy", "meta.llama-3.3-70b-instruct")
    response = completion(
        model="oci/ocid1.generativeaiendpoint.oc1.us-chicago-1.legacy",
        messages=[{"role": "user", "content": "Hi"}],
        oci_serving_mode="DEDICATED",
        oci_user=page["your_oci_user"], oci_fingerprint=page["your_oci_fingerprint"], oci_tenancy=page["your_oci_tenancy"],
        oci_key=page["string_with_content_of_oci_key"], oci_compartment_id=page["oci_compartment_id"], api_base=page["api_base"],
    )
    assert response.choices[0].message.content.startswith("Hello from meta.llama-3.3-70b-instruct")


def test_sdk_signer_method(page):
    oci = pytest.importorskip("oci")
    signer = oci.signer.Signer(
        tenancy=page["your_oci_tenancy"], user=page["your_oci_user"], fingerprint=page["your_oci_fingerprint"],
        private_key_file_location=page["key_file"],
    )
    response = completion(
        model="oci/xai.grok-4",
        messages=[{"role": "user", "content": "Hey! how's it going?"}],
        oci_signer=signer,
        oci_region="us-chicago-1",
        oci_compartment_id=page["oci_compartment_id"],
        api_base=page["api_base"],
    )
    assert response.choices[0].message.content.startswith("Hello from xai.grok-4")
