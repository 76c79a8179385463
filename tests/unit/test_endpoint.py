from __future__ import annotations

import pytest

from ocilm._endpoint import action_url, normalize_region, regional_base_url, split_api_base
from ocilm._errors import ConfigurationError


@pytest.mark.parametrize(
    ("region", "host"),
    [
        ("us-chicago-1", "inference.generativeai.us-chicago-1.oci.oraclecloud.com"),
        ("ord", "inference.generativeai.us-chicago-1.oci.oraclecloud.com"),
        ("us-langley-1", "inference.generativeai.us-langley-1.oci.oraclegovcloud.com"),
        ("uk-gov-london-1", "inference.generativeai.uk-gov-london-1.oci.oraclegovcloud.uk"),
        ("eu-madrid-2", "inference.generativeai.eu-madrid-2.oci.oraclecloud.eu"),
        ("us-gov-ashburn-1", "inference.generativeai.us-gov-ashburn-1.oci.oraclegovcloud.com"),
        ("ap-chiyoda-1", "inference.generativeai.ap-chiyoda-1.oci.oraclecloud8.com"),
    ],
)
def test_regional_hosts(region, host):
    assert regional_base_url(region) == f"https://{host}"


@pytest.mark.parametrize("bad", ["us-chicago-1.evil.com", "a/b", "us_chicago_1", "x", "us-chicago-1@evil", None, 7])
def test_bad_regions(bad):
    with pytest.raises(ConfigurationError, match="oci_region"):
        normalize_region(bad)


def test_api_base_forms():
    assert split_api_base("http://127.0.0.1:8080") == ("http://127.0.0.1:8080", None)
    assert split_api_base("http://127.0.0.1:8080/") == ("http://127.0.0.1:8080", None)
    assert split_api_base("https://proxy.example/oci/20231130/actions/chat") == ("https://proxy.example/oci", "chat")
    assert split_api_base("https://proxy.example/oci/20231130") == ("https://proxy.example/oci", None)
    assert action_url("embedText", region="ord", api_base="http://h:1/20231130/actions/chat") == "http://h:1/20231130/actions/embedText"
    assert action_url("chat", region="ord", api_base=None).endswith("us-chicago-1.oci.oraclecloud.com/20231130/actions/chat")
    for bad in ("ftp://h", "h:80", "http://", "http://h/20231130/actions/launch", "http://h/?q=1", "https://user:SECRETpw@proxy.example"):
        with pytest.raises(ConfigurationError, match="api_base"):
            split_api_base(bad)


def test_api_base_credentials_are_refused_without_echo():
    with pytest.raises(ConfigurationError, match="must not carry credentials") as err:
        split_api_base("https://user:SECRETpw@proxy.example/oci")
    assert "SECRETpw" not in str(err.value)
